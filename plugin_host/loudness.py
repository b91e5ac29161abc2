"""Streaming loudness (ITU-R BS.1770-4 integrated, gated) and true peak, in constant memory.

pyloudnorm needs the whole signal in memory; here K-weighting runs chunk by chunk with filter
state, and only one energy value per 100 ms is kept (72,000 floats for two hours).
"""

from __future__ import annotations

import numpy as np
import pyloudnorm
import scipy.signal
import soxr


class LoudnessMeter:
    def __init__(self, sample_rate: int, channels: int):
        self.sample_rate, self.channels = sample_rate, channels
        meter = pyloudnorm.Meter(sample_rate)  # its K-weighting coefficients for this rate
        self._filters = [(np.asarray(f.b, float), np.asarray(f.a, float)) for f in meter._filters.values()]
        self._zi = [np.zeros((channels, max(len(b), len(a)) - 1)) for b, a in self._filters]
        self._step = int(round(0.1 * sample_rate))
        self._acc = np.zeros(channels)
        self._fill = 0
        self._segments: list[np.ndarray] = []  # mean square per channel per 100 ms
        self._peak = 0.0
        self._tp_factor = max(1, int(np.ceil(192000 / sample_rate)))
        self._tp_stream = soxr.ResampleStream(sample_rate, sample_rate * self._tp_factor, channels, dtype="float32") if self._tp_factor > 1 else None
        self._true_peak = 0.0

    def add(self, chunk: np.ndarray) -> None:
        """chunk: (channels, n) float32."""
        if chunk.shape[-1] == 0:  # scipy's lfilter returns a state of [1, 0, ...] for no samples, not the state it was given
            return
        x = chunk.astype(np.float64)
        self._peak = max(self._peak, float(np.max(np.abs(x), initial=0.0)))
        if self._tp_stream is not None:
            up = self._tp_stream.resample_chunk(np.ascontiguousarray(chunk.T))
            self._true_peak = max(self._true_peak, float(np.max(np.abs(up), initial=0.0)))
        else:
            self._true_peak = max(self._true_peak, self._peak)
        for i, (b, a) in enumerate(self._filters):
            x, self._zi[i] = scipy.signal.lfilter(b, a, x, axis=1, zi=self._zi[i])
        sq = x**2
        pos = 0
        while pos < sq.shape[1]:
            take = min(self._step - self._fill, sq.shape[1] - pos)
            self._acc += sq[:, pos : pos + take].sum(axis=1)
            self._fill += take
            pos += take
            if self._fill == self._step:
                self._segments.append(self._acc / self._step)
                self._acc = np.zeros(self.channels)
                self._fill = 0

    @property
    def measured_seconds(self) -> float:
        """Audio in whole 100 ms segments so far; under 0.4 s there is no loudness to measure."""
        return len(self._segments) * self._step / self.sample_rate

    @property
    def sample_peak_dbfs(self) -> float:
        return 20 * np.log10(self._peak) if self._peak > 0 else -np.inf

    @property
    def true_peak_dbtp(self) -> float:
        peak = max(self._true_peak, self._peak)  # the resampler holds back the last few samples
        return 20 * np.log10(peak) if peak > 0 else -np.inf

    def integrated_lufs(self) -> float:
        """Gated integrated loudness (-inf for silence or audio shorter than 400 ms)."""
        seg = np.asarray(self._segments)
        if len(seg) < 4:
            return -np.inf
        blocks = (seg[:-3] + seg[1:-2] + seg[2:-1] + seg[3:]) / 4.0  # 400 ms blocks, 75 % overlap
        z = blocks.sum(axis=1)  # channel weights 1.0 (mono/stereo)
        with np.errstate(divide="ignore"):
            lk = -0.691 + 10 * np.log10(z)
        gated = z[lk >= -70.0]
        if len(gated) == 0:
            return -np.inf
        rel = -0.691 + 10 * np.log10(gated.mean()) - 10.0
        final = z[(lk >= -70.0) & (lk >= rel)]
        if len(final) == 0:
            return -np.inf
        return float(-0.691 + 10 * np.log10(final.mean()))


def normalization_gain_db(measured_lufs: float, target_lufs: float, true_peak_dbtp: float, ceiling_dbtp: float) -> tuple[float, bool]:
    """Gain that reaches the target loudness without pushing the true peak over the ceiling; (gain, limited_by_peak)."""
    if not np.isfinite(measured_lufs):
        return 0.0, False
    gain = target_lufs - measured_lufs
    if np.isfinite(true_peak_dbtp) and true_peak_dbtp + gain > ceiling_dbtp:
        return ceiling_dbtp - true_peak_dbtp, True
    return gain, False
