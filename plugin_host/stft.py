"""Streaming STFT analysis / weighted overlap-add synthesis with perfect reconstruction.

The synthesis window is the analysis window divided by the overlap-added squared window, so
analysis followed by synthesis with an identity mask reproduces the input exactly (delayed by
``n_fft - hop_length``) for any window whose shifted squares cover every sample.
"""

from __future__ import annotations

import numpy as np


def make_window(name: str, n_fft: int) -> np.ndarray:
    n = np.arange(n_fft)
    if name == "hann":
        w = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)
    elif name == "sqrt_hann":
        w = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft))
    elif name == "vorbis":
        w = np.sin(0.5 * np.pi * np.sin(np.pi * (n + 0.5) / n_fft) ** 2)
    else:
        raise ValueError(f"window {name!r} not in hann, sqrt_hann, vorbis")
    return w.astype(np.float64)


def synthesis_window(analysis: np.ndarray, hop_length: int) -> np.ndarray:
    n_fft = len(analysis)
    norm = np.zeros(n_fft)
    for shift in range(-n_fft + hop_length, n_fft, hop_length):
        lo, hi = max(0, shift), min(n_fft, n_fft + shift)
        norm[lo:hi] += analysis[lo - shift : hi - shift] ** 2
    if np.any(norm < 1e-8):
        raise ValueError("window does not cover every sample at this hop: no perfect reconstruction")
    return analysis / norm


class StreamingSTFT:
    """One channel: ``analyze(hop) -> complex frame``, ``synthesize(frame) -> hop`` (float32)."""

    def __init__(self, n_fft: int, hop_length: int, window: str = "sqrt_hann"):
        self.n_fft, self.hop_length = n_fft, hop_length
        self.window = make_window(window, n_fft)
        self.synth = synthesis_window(self.window, hop_length)
        self._in = np.zeros(n_fft)
        self._ola = np.zeros(n_fft)

    def reset(self) -> None:
        self._in[:] = 0.0
        self._ola[:] = 0.0

    def analyze(self, hop: np.ndarray) -> np.ndarray:
        h = self.hop_length
        self._in[:-h] = self._in[h:]
        self._in[-h:] = hop
        return np.fft.rfft(self._in * self.window)

    def synthesize(self, spectrum: np.ndarray) -> np.ndarray:
        h = self.hop_length
        self._ola += np.fft.irfft(spectrum, n=self.n_fft) * self.synth
        out = self._ola[:h].astype(np.float32)
        self._ola[:-h] = self._ola[h:]
        self._ola[-h:] = 0.0
        return out
