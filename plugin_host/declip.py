"""Declip: fill in the flat tops of a recording that clipped, streaming, with a fixed lookahead.

A guest too hot into the interface leaves flat tops at full scale: the peaks are cut off and the
voice crackles. A take that clipped and was then turned down has them at a lower level, which
``clipping.ClipCounter`` finds in the whole file (``threshold_db=None``). Each flat top
(``CLIP_RUN`` or more samples in a row at or above that level) is treated as missing and filled in by least-squares
autoregressive interpolation (Janssen et al., 1986): an AR model is fitted to the unclipped
samples around it, the missing samples are those that make the prediction error smallest, and
they are kept on the clipped side of the threshold (a clipped sample was at least that loud).

Runs longer than ``max_gap_ms`` are left as they are (speech is no longer predictable over them).
The output is ``max_gap_ms + CONTEXT_MS`` late while streaming (offline, aligned as every effect).
The restored peaks go above full scale: a loudness target (its limiter) or a float file keeps
them; a 16- or 24-bit file without one clips them again, and the render says so.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .effects import StreamingEffect, feed
from .errors import ParameterError, check_range
from .clipping import CLIP_RUN, ClipCounter

CONTEXT_MS = 4.0  # unclipped samples used on each side of a gap
AR_ORDER = 24
MAX_RESTORE = 4.0  # a fill more than 12 dB over the clip level is a fit that ran away, not a peak
FULL_SCALE_DB = -0.01  # the clip level where none was found below full scale


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def fill_gap(window: np.ndarray, unknown: np.ndarray, order: int = AR_ORDER) -> np.ndarray:
    """The least-squares AR interpolation of ``window`` at the ``unknown`` positions (a boolean mask).

    The AR coefficients are fitted by least squares to the stretches of the window that are
    wholly known (the covariance method: a zero-filled autocorrelation pulls the fill towards
    zero); the unknown samples then minimise the energy of the prediction error over the whole
    window, a second small least-squares problem.
    """
    n = len(window)
    order = min(order, max(2, int(np.sum(~unknown)) // 8))
    lagged = sliding_window_view(window, order + 1)  # row t: window[t .. t + order]
    whole = ~sliding_window_view(unknown, order + 1).any(axis=1)
    if np.sum(whole) < 2 * order:
        return window[unknown]
    X, target = lagged[whole, :order][:, ::-1], lagged[whole, order]
    ridge = 1e-9 * np.trace(X.T @ X) / order  # keeps a silent or pure-tone context solvable
    phi = np.linalg.solve(X.T @ X + ridge * np.eye(order), X.T @ target)
    a = np.concatenate(([1.0], -phi))
    rows = n - order
    A = np.zeros((rows, n))  # prediction error e[t] = sum_k a[k] x[t + order - k]
    for k in range(order + 1):
        A[np.arange(rows), np.arange(rows) + order - k] = a[k]
    y, *_ = np.linalg.lstsq(A[:, unknown], -A[:, ~unknown] @ window[~unknown], rcond=None)
    return y


class DeclipProcessor:
    """One channel: a hop in, the hop ``latency_samples`` earlier out, with its flat tops filled."""

    def __init__(self, threshold: float, max_gap: int, context: int, hop: int):
        self.hop_length = self.frame_size = hop
        self.max_gap, self.context, self.threshold = max_gap, context, threshold
        self.latency_samples = max_gap + context
        self._n = context + hop + self.latency_samples  # left context, the hop going out, the lookahead
        self.repaired = 0  # flat tops filled in
        self.left = 0  # flat tops left as they came: too long, or the fill ran away
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros(self._n)
        self._done = np.zeros(self._n, bool)  # filled in, or judged too long: never looked at again

    def process_frame(self, hop: np.ndarray) -> np.ndarray:
        h, ctx = self.hop_length, self.context
        self._buf[:-h], self._buf[-h:] = self._buf[h:], hop
        self._done[:-h], self._done[-h:] = self._done[h:], False
        clipped = (np.abs(self._buf) >= self.threshold) & ~self._done
        starts, ends = _runs(clipped)
        for start, end in zip(starts, ends):
            if start < ctx or start >= ctx + h or self._done[start]:  # handled, or not in the hop going out yet
                continue
            length = end - start
            if length < CLIP_RUN:
                continue
            if length > self.max_gap or end >= self._n - ctx:  # too long to predict (or longer than we can see)
                self._done[start:end] = True
                self.left += 1
                continue
            # this flat top and every other one within its window are filled in together (nearby
            # ones are no evidence); those wholly inside the window are written and done
            lo, hi = start - ctx, min(self._n, end + ctx)
            unknown = clipped[lo:hi] & ~self._done[lo:hi]
            y = fill_gap(self._buf[lo:hi], unknown)
            filled = np.where(unknown, 0.0, np.nan)
            filled[unknown] = y
            run_starts, run_ends = _runs(unknown)
            for rs, re in zip(run_starts + lo, run_ends + lo):
                if re - rs < CLIP_RUN or (re == hi and hi < self._n):  # a transient, or runs on past the window
                    continue
                sign = np.sign(self._buf[rs:re])
                guess = sign * filled[rs - lo : re - lo]
                if np.all(np.isfinite(guess)) and np.max(guess) < MAX_RESTORE * self.threshold:
                    self._buf[rs:re] = sign * np.maximum(guess, self.threshold)  # a clipped sample was at least that loud
                    self.repaired += 1
                else:  # the fit ran away: leave the flat top as it came
                    self.left += 1
                self._done[rs:re] = True
        return self._buf[ctx : ctx + h].astype(np.float32)


class _LevelScan:
    """Finds the level a whole input clipped at, for a ``Declip`` (see ``Declip.scanner``)."""

    def __init__(self, effect: Declip, sample_rate: int):
        self.effect, self.counter = effect, ClipCounter(sample_rate)

    def add(self, chunk: np.ndarray) -> None:
        self.counter.add(chunk)

    def finish(self) -> ClipCounter:
        counter = self.counter.finish()
        below = counter.count and counter.level is not None and counter.level_db < FULL_SCALE_DB
        self.effect._found_db = float(counter.level_db) - 1e-6 if below else FULL_SCALE_DB  # just under it: that rail counts
        return counter


class Declip(StreamingEffect):
    """Fill in clipped peaks (pedalboard's effect contract, as ``Denoise``).

    threshold_db: a sample at or above this level (dBFS) is at the clip. None (the default): the
    level the recording clipped at, found in the whole input first: full scale, or where a take
    clipped and was then turned down, that level. The input is looked at by ``process`` with
    ``reset=True``, by a ``Chain`` that starts with this step, and by ``render``; streaming
    (``reset=False``) uses the level last found, full scale until one is.
    max_gap_ms: longer flat tops are left as they are; the lookahead is this plus 4 ms of context.
    """

    def __init__(self, threshold_db: float | None = None, max_gap_ms: float = 5.0):
        super().__init__()
        self.threshold_db = threshold_db
        self.max_gap_ms = max_gap_ms
        self._found_db = FULL_SCALE_DB
        self._processors: list[DeclipProcessor] = []

    @property
    def threshold_db(self) -> float | None:
        return self._threshold_db

    @threshold_db.setter
    def threshold_db(self, value: float | None) -> None:
        self._threshold_db = None if value is None else check_range("threshold_db", value, -40.0, 0.0)

    @property
    def clip_level_db(self) -> float:
        """The level in use: ``threshold_db``, or the one found in the input."""
        return self._found_db if self._threshold_db is None else self._threshold_db

    scans_input = True

    def scanner(self, sample_rate: int) -> _LevelScan | None:
        """The level the input clipped at, to be found (None with a ``threshold_db`` of its own)."""
        return _LevelScan(self, sample_rate) if self._threshold_db is None else None

    def find_level(self, chunks, sample_rate: int) -> ClipCounter:
        """Look at the whole input (an iterable of (channels, n) chunks) for the level it clipped
        at, and use it while ``threshold_db`` is None; returns the counter (places, positions)."""
        return feed(_LevelScan(self, sample_rate), chunks)

    @property
    def max_gap_ms(self) -> float:
        return self._max_gap_ms

    @max_gap_ms.setter
    def max_gap_ms(self, value: float) -> None:
        if self._stream is not None:
            raise ParameterError("max_gap_ms sets the lookahead: change it before streaming, or reset() first")
        self._max_gap_ms = check_range("max_gap_ms", value, 0.1, 20.0)

    @property
    def repaired(self) -> int:
        """Flat tops filled in by the last render or the stream going on (all channels)."""
        return sum(p.repaired for p in self._processors)

    @property
    def left(self) -> int:
        """Flat tops left as they were: longer than ``max_gap_ms``, or whose fill ran away."""
        return sum(p.left for p in self._processors)

    def _make_processors(self, channels: int) -> list:
        rate = self._rate
        max_gap = max(CLIP_RUN, int(round(self._max_gap_ms * rate / 1000)))
        context = int(round(CONTEXT_MS * rate / 1000))
        threshold = 10.0 ** (self.clip_level_db / 20.0)
        self._processors = [DeclipProcessor(threshold, max_gap, context, hop=max_gap) for _ in range(channels)]
        return self._processors

    def __reduce__(self):
        return (type(self), (self._threshold_db, self._max_gap_ms))

    def __repr__(self) -> str:
        level = "auto" if self._threshold_db is None else f"{self._threshold_db:g}"
        return f"<plugin_host.Declip threshold_db={level} max_gap_ms={self._max_gap_ms:g}>"
