"""Frame processors and the block adapter.

Every model sits behind a small stateful frame processor (one per channel):
``frame_size``, ``hop_length``, ``latency_samples``, ``process_frame(hop) -> hop``, ``reset()``.
``HopAdapter`` turns any host buffer size into whole hops for a set of per-channel processors.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Protocol

import numpy as np

from .errors import check_range
from .registry import LoadedModel
from .stft import StreamingSTFT

MAX_ATTENUATION_DB = 100.0
#: corner of the DC blocker in front of a denoiser: far below any voice (phase at 100 Hz: 0.6
#: degrees; on the dev pairs it moves noisenil_fb's SI-SDR by 0.01 dB, where 3 Hz cost 0.05 dB)
DC_CUTOFF_HZ = 1.0


class FrameProcessor(Protocol):
    frame_size: int
    hop_length: int
    latency_samples: int

    def process_frame(self, hop: np.ndarray) -> np.ndarray: ...

    def reset(self) -> None: ...


def attenuation_floor(attenuation_limit_db: float) -> float:
    """The smallest gain allowed by an attenuation limit (100 dB means no limit at all)."""
    db = check_range("attenuation_limit_db", attenuation_limit_db, 0.0, MAX_ATTENUATION_DB)
    return 0.0 if db >= MAX_ATTENUATION_DB else float(10.0 ** (-db / 20.0))


class Controls:
    """The user's two knobs, shared by every frame processor.

    ``attenuation_limit_db`` bounds how far noise may be pushed down (as a floor of the noisy
    signal kept in the output); ``mix`` blends the model's output with the time-aligned input.
    """

    @property
    def attenuation_limit_db(self) -> float:
        return self._limit_db

    @attenuation_limit_db.setter
    def attenuation_limit_db(self, value: float) -> None:
        self._floor = attenuation_floor(value)
        self._limit_db = float(value)

    @property
    def mix(self) -> float:
        return self._mix

    @mix.setter
    def mix(self, value: float) -> None:
        self._mix = check_range("mix", value, 0.0, 1.0)

    def blend(self, enhanced, noisy):
        """Apply the attenuation floor and the dry/wet mix to aligned enhanced/noisy signals or spectra."""
        if self._floor > 0.0:  # as DeepFilterNet: keep a floor of the noisy signal
            enhanced = enhanced * (1.0 - self._floor) + noisy * self._floor
        if self._mix < 1.0:
            enhanced = self._mix * enhanced + (1.0 - self._mix) * noisy
        return enhanced


class SpectralModelProcessor(Controls):
    """One channel of an STFT-domain ONNX model: features in, mask or spectrum out, states carried.

    Both knobs act per frame, so changing them while streaming is smoothed by the overlap-add
    and does not click. A complex input/output whose shape ends in 2 holds real/imag on the last
    axis (GTCRN's [1, F, 1, 2]); otherwise on the axis before the bins ([1, 2, F]).
    """

    def __init__(self, model: LoadedModel, attenuation_limit_db: float = MAX_ATTENUATION_DB, mix: float = 1.0):
        m = model.manifest
        self.model = model
        self.frame_size, self.hop_length = m.n_fft, m.hop_length
        self.latency_samples = m.latency_samples
        self.stft = StreamingSTFT(m.n_fft, m.hop_length, m.window)
        self._feed_shape = m.input.shape
        self._ri_last_in = m.input.shape[-1] == 2 and m.feature == "complex"
        self._ri_last_out = m.output.shape[-1] == 2 and m.output_kind == "complex"
        self._names = (m.input.name, [s.input for s in m.states])
        self._noisy = deque(maxlen=m.lookahead_frames + 1)  # noisy spectra aligned with the model's output
        self.attenuation_limit_db = attenuation_limit_db
        self.mix = mix
        self.reset()

    def reset(self) -> None:
        m = self.model.manifest
        self.stft.reset()
        self._states = [np.full(s.shape, s.init, dtype=np.float32) for s in m.states]
        self._noisy.clear()
        for _ in range(m.lookahead_frames):
            self._noisy.append(np.zeros(m.n_bins, dtype=np.complex128))

    def _feature(self, spec: np.ndarray) -> np.ndarray:
        feature = self.model.manifest.feature
        if feature == "complex":
            x = np.stack([spec.real, spec.imag], axis=-1 if self._ri_last_in else 0)
        elif feature == "power":
            x = spec.real**2 + spec.imag**2
        else:
            x = np.abs(spec)
        return x.astype(np.float32).reshape(self._feed_shape)

    def process_frame(self, hop: np.ndarray) -> np.ndarray:
        spec = self.stft.analyze(hop)
        self._noisy.append(spec)
        in_name, state_names = self._names
        feeds = {in_name: self._feature(spec)}
        feeds.update(zip(state_names, self._states))
        out, *self._states = self.model.run(feeds)
        noisy = self._noisy[0]
        if self.model.manifest.output_kind == "mask":
            gain = np.maximum(out.reshape(-1).astype(np.float64), self._floor)
            enhanced = noisy * (self._mix * gain + (1.0 - self._mix))
        else:
            o = out.reshape(-1, 2).T if self._ri_last_out else out.reshape(2, -1)
            enhanced = self.blend(o[0].astype(np.float64) + 1j * o[1], noisy)
        return self.stft.synthesize(enhanced)


class DCBlocker:
    """One-pole high-pass at ``cutoff_hz`` for (channels, n) blocks: takes out a DC offset and slow drift
    (and, at 100 Hz, the rumble the leveler's level detector leaves out).

    A denoiser's gains rise and fall with the voice; on an offset (cheap interfaces and USB mics
    record with one) they would turn it into a wandering level, thumps below 20 Hz at every
    phrase. Unity gain at Nyquist. It starts from rest, as the recording did: an offset is gone
    after about half a second (the time constant at 1 Hz is 0.16 s). Taking the first block's mean
    as the offset instead cost 0.15 dB SI-SDR on the dev pairs: under low rumble it is not the offset.
    """

    def __init__(self, channels: int, sample_rate: int, cutoff_hz: float = DC_CUTOFF_HZ):
        from scipy.signal import lfilter  # here, not at the top: scipy.signal costs 0.6 s of every start-up

        self._lfilter = lfilter
        pole = math.exp(-2.0 * math.pi * cutoff_hz / sample_rate)
        g = (1.0 + pole) / 2.0
        self._b, self._a = np.array([g, -g]), np.array([1.0, -pole])
        self._channels = channels
        self.reset()

    def reset(self) -> None:
        self._zi = np.zeros((self._channels, 1))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y, self._zi = self._lfilter(self._b, self._a, x, axis=1, zi=self._zi)
        return y.astype(np.float32)


class HopAdapter:
    """Feeds any number of samples to per-channel frame processors, one hop at a time.

    ``push(x)`` with ``x`` of shape (channels, n) returns the output of every hop completed by
    it, shape (channels, k * hop_length). Concatenated outputs do not depend on how the input
    was split. With ``dc_cutoff_hz`` (and the processors' ``sample_rate``) each hop goes through
    a ``DCBlocker`` first; ``remove_dc`` switches it at the next hop.
    """

    def __init__(self, processors: list, dc_cutoff_hz: float | None = None, sample_rate: int | None = None):
        self.processors = processors
        self.hop_length = processors[0].hop_length
        self.latency_samples = processors[0].latency_samples
        # one processor with ``multichannel = True`` takes every channel's hop at once, (channels, hop)
        self.multichannel = bool(getattr(processors[0], "multichannel", False))
        channels = processors[0].channels if self.multichannel else len(processors)
        self._buf = np.zeros((channels, self.hop_length), dtype=np.float32)
        self._fill = 0
        self._dc = DCBlocker(channels, sample_rate, dc_cutoff_hz) if dc_cutoff_hz else None
        self.remove_dc = self._dc is not None

    @property
    def remove_dc(self) -> bool:
        return self._remove_dc

    @remove_dc.setter
    def remove_dc(self, value: bool) -> None:
        if value and self._dc is None:
            raise ValueError("this adapter was made without a DC blocker (dc_cutoff_hz)")
        if value and not getattr(self, "_remove_dc", False):
            self._dc.reset()  # switched on: from its next hop, as from a start
        self._remove_dc = bool(value)

    def reset(self) -> None:
        self._fill = 0
        if self._dc is not None:
            self._dc.reset()
        for p in self.processors:
            p.reset()

    def push(self, x: np.ndarray) -> np.ndarray:
        h, n = self.hop_length, x.shape[1]
        n_hops = (self._fill + n) // h
        out = np.empty((self._buf.shape[0], n_hops * h), dtype=np.float32)
        pos = 0
        for k in range(n_hops):
            take = h - self._fill
            self._buf[:, self._fill :] = x[:, pos : pos + take]
            pos += take
            self._fill = 0
            hops = self._dc(self._buf) if self._remove_dc else self._buf
            if self.multichannel:
                out[:, k * h : (k + 1) * h] = self.processors[0].process_frame(hops)
                continue
            for c, p in enumerate(self.processors):
                out[c, k * h : (k + 1) * h] = p.process_frame(hops[c])
        rest = n - pos
        self._buf[:, self._fill : self._fill + rest] = x[:, pos:]
        self._fill += rest
        return out
