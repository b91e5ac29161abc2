"""Log-mel features shared by training (models/) and the engine, so both compute them identically."""

from __future__ import annotations

import functools

import numpy as np


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 50.0, fmax: float | None = None) -> np.ndarray:
    """Triangular HTK-mel filters, (n_mels, n_fft // 2 + 1), each normalised to unit area."""
    fmax = fmax or sample_rate / 2
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fb = np.zeros((n_mels, len(bins)))
    for i in range(n_mels):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        up = (bins - lo) / max(mid - lo, 1e-9)
        down = (hi - bins) / max(hi - mid, 1e-9)
        fb[i] = np.clip(np.minimum(up, down), 0.0, None)
    fb /= np.maximum(fb.sum(axis=1, keepdims=True), 1e-9)
    return fb.astype(np.float32)


def log_mel(x: np.ndarray, sample_rate: int, n_fft: int, hop: int, n_mels: int) -> np.ndarray:
    """(frames, n_mels) log-mel power in dB of a mono signal; frame t covers x[t*hop : t*hop + n_fft]."""
    x = np.asarray(x, np.float32)
    if len(x) < n_fft:
        return np.zeros((0, n_mels), np.float32)
    n = 1 + (len(x) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]
    window = np.hanning(n_fft).astype(np.float32)
    power = np.abs(np.fft.rfft(x[idx] * window, axis=1)) ** 2 / (window**2).sum()
    mel = power @ mel_filterbank(sample_rate, n_fft, n_mels).T
    return (10.0 * np.log10(mel + 1e-10)).astype(np.float32)
