"""Rate conversion and latency handling around the per-channel frame processors.

Two ways through the same parts (input resampler -> HopAdapter (DC blocker, frame processors) ->
output resampler):

* ``OfflinePipeline``: drops the model's latency at the model rate and flushes the tail, so the
  output has exactly the input's length and lines up with it sample for sample, at any rate.
  Used by ``process(..., reset=True)`` and by file rendering, one chunk at a time (flat memory).
* ``RealtimePipeline``: returns exactly as many samples as it is given, delayed by a fixed
  ``latency_samples`` (host rate). Used by ``process(..., reset=False)`` and live monitoring.

soxr streams are chunk-invariant and aligned with one-shot resampling; they only hold samples
back. The real-time delay therefore covers the largest hold-back of both resamplers (probed
once per rate pair), the hop buffering and the model's algorithmic latency.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import soxr

from .errors import ParameterError, check_range
from .processor import HopAdapter

MIN_RATE, MAX_RATE = 8000, 192000
RESAMPLE_QUALITY = "HQ"


def check_sample_rate(sample_rate) -> int:
    rate = check_range("sample_rate", sample_rate, MIN_RATE, MAX_RATE)
    if rate != int(rate):
        raise ParameterError(f"sample_rate must be a whole number of Hz, got {sample_rate!r}")
    return int(rate)


class Resampler:
    """soxr stream for (channels, n) arrays; identity when the rates are equal."""

    def __init__(self, in_rate: int, out_rate: int, channels: int):
        self.identity = in_rate == out_rate
        self.channels = channels
        self._args = (in_rate, out_rate, channels)
        self.reset()

    def reset(self) -> None:
        if not self.identity:
            a, b, c = self._args
            self._stream = soxr.ResampleStream(a, b, c, dtype="float32", quality=RESAMPLE_QUALITY)

    def __call__(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        if self.identity:
            return x
        y = self._stream.resample_chunk(np.ascontiguousarray(x.T), last=last)
        return np.ascontiguousarray(y.T, dtype=np.float32)


@functools.lru_cache(maxsize=64)
def max_holdback(in_rate: int, out_rate: int) -> int:
    """Largest number of output samples a soxr stream holds back, fed in small chunks (probed once)."""
    if in_rate == out_rate:
        return 0
    r = Resampler(in_rate, out_rate, 1)
    step = max(1, in_rate // 4000)
    n_in, n_out, worst = 0, 0, 0.0
    block = np.zeros((1, step), dtype=np.float32)
    for _ in range(int(0.6 * in_rate) // step):
        n_out += r(block).shape[1]
        n_in += step
        worst = max(worst, n_in * out_rate / in_rate - n_out)
    return int(math.ceil(worst + (step + 1) * out_rate / in_rate)) + 2


class OfflinePipeline:
    """Aligned rendering: ``push`` chunks, then ``finish``; total output length == total input length."""

    def __init__(self, make_processors: Callable[[int], list], host_rate: int, model_rate: int, channels: int, dc_cutoff_hz: float | None = None):
        self.host_rate, self.model_rate, self.channels = host_rate, model_rate, channels
        self.adapter = HopAdapter(make_processors(channels), dc_cutoff_hz, model_rate)
        self._in = Resampler(host_rate, model_rate, channels)
        self._out = Resampler(model_rate, host_rate, channels)
        self.reset()

    def reset(self) -> None:
        self.adapter.reset()
        self._in.reset()
        self._out.reset()
        self._to_drop = self.adapter.latency_samples
        self._n_host_in = 0
        self._n_model_in = 0
        self._n_model_out = 0  # kept (after the drop) and sent to the output resampler
        self._n_host_out = 0

    def _through_model(self, y: np.ndarray, limit: int | None = None) -> np.ndarray:
        z = self.adapter.push(y)
        if self._to_drop:
            d = min(self._to_drop, z.shape[1])
            z, self._to_drop = z[:, d:], self._to_drop - d
        if limit is not None:
            z = z[:, : max(0, limit - self._n_model_out)]
        self._n_model_out += z.shape[1]
        return z

    def push(self, x: np.ndarray) -> np.ndarray:
        self._n_host_in += x.shape[1]
        y = self._in(x)
        self._n_model_in += y.shape[1]
        out = self._out(self._through_model(y))
        self._n_host_out += out.shape[1]
        return out

    def finish(self) -> np.ndarray:
        """Flush every stage; returns the remaining output (the total then equals the input length)."""
        tail = []
        y = self._in(np.zeros((self.channels, 0), np.float32), last=True)
        self._n_model_in += y.shape[1]
        tail.append(self._through_model(y, self._n_model_in))
        h = self.adapter.hop_length
        while self._n_model_out < self._n_model_in:
            zeros = np.zeros((self.channels, h), np.float32)
            tail.append(self._through_model(zeros, self._n_model_in))
        z = np.concatenate(tail, axis=1)
        out = self._out(z, last=True) if not self._out.identity else z
        need = self._n_host_in - self._n_host_out
        if out.shape[1] >= need:
            out = out[:, :need]
        else:
            out = np.concatenate([out, np.zeros((self.channels, need - out.shape[1]), np.float32)], axis=1)
        self._n_host_out += out.shape[1]
        return out


class RealtimePipeline:
    """Fixed-delay streaming: every ``process(x)`` returns ``x.shape[1]`` samples, ``latency_samples`` late."""

    def __init__(
        self,
        make_processors: Callable[[int], list],
        host_rate: int,
        model_rate: int,
        channels: int,
        block_size: int | None = None,
        dc_cutoff_hz: float | None = None,
    ):
        self.host_rate, self.model_rate, self.channels = host_rate, model_rate, channels
        self.adapter = HopAdapter(make_processors(channels), dc_cutoff_hz, model_rate)
        self._in = Resampler(host_rate, model_rate, channels)
        self._out = Resampler(model_rate, host_rate, channels)
        ratio = host_rate / model_rate
        # Samples held back before the output is complete: resamplers and hop buffering. They are
        # covered by a prefill of silence, so every call can return as many samples as it got.
        # A caller that promises blocks of exactly ``block_size`` samples (a live stream) at the
        # model's rate, a whole number of hops each, needs no hop buffering.
        hop_aligned = block_size is not None and host_rate == model_rate and block_size % self.adapter.hop_length == 0
        self.block_size = block_size
        self.prefill_samples = (
            int(math.ceil(max_holdback(host_rate, model_rate) * ratio))
            + (0 if hop_aligned else int(math.ceil(self.adapter.hop_length * ratio)))
            + max_holdback(model_rate, host_rate)
        )
        #: output delay behind the input, in host samples (exact when the rates are equal,
        #: otherwise rounded to the nearest sample)
        self.latency_samples = self.prefill_samples + int(round(self.adapter.latency_samples * ratio))
        self.reset()

    def reset(self) -> None:
        self.adapter.reset()
        self._in.reset()
        self._out.reset()
        self._fifo = np.zeros((self.channels, self.prefill_samples), np.float32)

    def process(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[1]
        if self.block_size is not None and n != self.block_size:
            raise ValueError(f"this pipeline takes blocks of exactly {self.block_size} samples, got {n}")
        y = self._out(self.adapter.push(self._in(x)))
        fifo = np.concatenate([self._fifo, y], axis=1) if y.shape[1] else self._fifo
        if fifo.shape[1] < n:  # would mean latency_samples is too small: a bug, never silence
            raise RuntimeError(f"real-time pipeline underflow ({fifo.shape[1]} < {n}); latency bound is wrong")
        out, self._fifo = fifo[:, :n], fifo[:, n:]
        return out
