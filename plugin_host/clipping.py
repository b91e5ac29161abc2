"""Where a recording clipped: flat tops, counted as a file streams past (numpy only).

Two kinds are found. At full scale: ``CLIP_RUN`` or more samples in a row at or above
``CLIP_LEVEL``, in any channel. Below it: a take that clipped and was then turned down (normalised
in an editor, or clipped by a plug-in's ceiling) has its flat tops at one level under full scale,
each a run of exactly equal samples at the file's peak. A voice's own crests are neither flat
for three samples at 16 bits or more, nor all at one level, so ``MIN_SCALED_PLACES`` such runs at
the peak (within ``SCALED_TOLERANCE`` or two 16-bit steps) are taken as clipping there.
Resampling or lossy coding after the clip ripples the flat tops; those are not found.
"""

from __future__ import annotations

import numpy as np

#: a sample this close to full scale (0.01 dB) is at it; CLIP_RUN of them in a row are a flat top
CLIP_LEVEL = 0.999
CLIP_RUN = 3
MAX_CLIP_POSITIONS = 10000  # where the first ones are, for drawing
SCALED_FLOOR = 0.1  # a take turned down further than -20 dBFS is not looked at for flat tops
SCALED_TOLERANCE = 1e-4  # relative: a flat top this close to the peak is at it (the rails are a step apart)
SIXTEEN_BIT_STEP = 1.0 / 32768.0
MIN_SCALED_PLACES = 3  # evidence that flat tops below full scale are clipping, not a crest that happened to be flat


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


class ClipCounter:
    """Counts the places where a recording clipped, chunk by chunk; a run that goes on across
    chunks counts once, however the file is read.

    level: linear; a sample at or above it is at the clip. None (the default): full scale, or, where
    nothing reached it, the level the take clipped at before it was turned down (see the module).
    After ``finish()``, ``level`` is the level the places were counted at (None where none were).
    """

    def __init__(self, sample_rate: int, level: float | None = None):
        self.sample_rate = sample_rate
        self.count = 0  # places
        self.samples = 0  # samples at the clip in them
        self.first_seconds: float | None = None
        self.positions: list[float] = []  # where each starts (s), the first MAX_CLIP_POSITIONS
        self.level: float | None = level
        self._fixed = level is not None
        self._at = CLIP_LEVEL if level is None else level
        self._pos = 0  # samples seen
        self._run = 0  # length of the run going on at the end of the last chunk
        self._peak = 0.0
        self._carry: list[tuple[float, int, int]] = []  # per channel: last value, its run's start, its run's length
        self._flat: list[np.ndarray] = []  # rows of (level, start, end) of equal runs near the running peak

    # full scale (or a level given) -------------------------------------------------------------------
    def add(self, chunk: np.ndarray) -> None:
        """chunk: (channels, n) float32."""
        n = chunk.shape[-1]
        if n == 0:
            return
        magnitude = np.abs(chunk)
        at = np.any(magnitude >= self._at, axis=0)
        starts, ends = _runs(at)
        lengths = ends - starts
        if self._run and len(starts) and starts[0] == 0:  # the run from the last chunk goes on
            lengths[0] += self._run
            starts[0] -= self._run
        elif self._run:
            self._close(self._pos - self._run, self._run)
        self._run = 0
        if len(ends) and ends[-1] == n:  # still going at the end of this chunk
            self._run, starts, lengths = int(lengths[-1]), starts[:-1], lengths[:-1]
        for start, length in zip(starts, lengths):
            self._close(self._pos + int(start), int(length))
        if not self._fixed:
            self._peak = max(self._peak, float(np.max(magnitude)))
            for channel in range(chunk.shape[0]):
                self._equal_runs(channel, chunk[channel])
        self._pos += n

    def _close(self, start: int, length: int) -> None:
        if length >= CLIP_RUN:
            self.count += 1
            self.samples += length
            if len(self.positions) < MAX_CLIP_POSITIONS:
                self.positions.append(start / self.sample_rate)
            if self.first_seconds is None:
                self.first_seconds = start / self.sample_rate

    # below full scale ----------------------------------------------------------------------------------
    def _near_peak(self) -> float:
        return max(SCALED_FLOOR, self._peak * (1.0 - SCALED_TOLERANCE) - 2 * SIXTEEN_BIT_STEP)

    def _equal_runs(self, channel: int, y: np.ndarray) -> None:
        """Runs of exactly equal samples in one channel, kept where they are loud enough to be at the peak."""
        if channel == len(self._carry):
            self._carry.append((np.nan, 0, 0))
        last, carried_start, carried_length = self._carry[channel]
        n = len(y)
        same = np.empty(n, bool)
        same[0] = y[0] == last
        same[1:] = y[1:] == y[:-1]
        starts = np.flatnonzero(~same)  # where a new run begins in this chunk
        if same[0]:  # the carried run goes on into this chunk
            run_starts = np.concatenate(([carried_start - self._pos], starts))
        else:
            if carried_length:  # it ended with the last chunk
                self._keep(last, carried_start, carried_start + carried_length)
            run_starts = starts
        lengths = np.diff(np.concatenate((run_starts, [n])))
        values = y[np.maximum(run_starts, 0)]
        closed = slice(0, len(run_starts) - 1)  # the last run may go on
        long = lengths[closed] >= CLIP_RUN
        if np.any(long):
            loud = np.abs(values[closed][long]).astype(np.float64)
            keep = loud >= self._near_peak()
            if np.any(keep):
                begin = run_starts[closed][long][keep] + self._pos
                self._flat.append(np.stack([loud[keep], begin, begin + lengths[closed][long][keep]], axis=1))
        tail_start = int(run_starts[-1]) + self._pos
        self._carry[channel] = (float(values[-1]), tail_start, int(lengths[-1]))

    def _keep(self, value: float, start: int, end: int) -> None:
        if end - start >= CLIP_RUN and abs(value) >= self._near_peak():
            self._flat.append(np.array([[abs(value), start, end]], np.float64))

    def _scaled(self) -> None:
        """Where nothing reached full scale: the flat tops at the file's peak, if there are enough."""
        for last, start, length in self._carry:
            if length:
                self._keep(last, start, start + length)
        self._carry = []
        if not self._flat:
            return
        rows = np.concatenate(self._flat)
        rows = rows[rows[:, 0] >= self._near_peak()]
        if len(rows) == 0:
            return
        rows = rows[np.argsort(rows[:, 1], kind="stable")]
        places = []  # the channels' runs merged where they overlap
        for level, start, end in rows:
            if places and start <= places[-1][1]:
                places[-1][1] = max(places[-1][1], end)
            else:
                places.append([start, end])
        if len(places) < MIN_SCALED_PLACES:
            return
        self.level = float(np.min(rows[:, 0]))
        for start, end in places:
            self._close(int(start), int(end - start))

    def finish(self) -> ClipCounter:
        if self._run:
            self._close(self._pos - self._run, self._run)
            self._run = 0
        if self._fixed:
            return self
        if self.count:
            self.level = CLIP_LEVEL
        else:
            self._scaled()
        self._flat = []
        return self

    @property
    def level_db(self) -> float | None:
        """The level the places were counted at, dBFS (None where it never clipped)."""
        return None if self.level is None or not self.count else float(20.0 * np.log10(self.level))

    def describe(self) -> str | None:
        """``clipped in 37 places (first at 1:03.2, 12 ms in all)``, with ``at -4.0 dBFS`` after the
        places where the take clipped and was then turned down; None where it never clipped."""
        if not self.count:
            return None
        minutes, seconds = divmod(self.first_seconds, 60.0)
        places = "1 place" if self.count == 1 else f"{self.count} places"
        below = f" at {self.level_db:.1f} dBFS" if self.level is not None and self.level < CLIP_LEVEL else ""
        return f"clipped in {places}{below} (first at {int(minutes)}:{seconds:04.1f}, {1000 * self.samples / self.sample_rate:.0f} ms in all)"
