"""Where a recording clipped: flat tops at full scale, counted as a file streams past (numpy only)."""

from __future__ import annotations

import numpy as np

#: a sample this close to full scale (0.01 dB) is at it; CLIP_RUN of them in a row are a flat top
CLIP_LEVEL = 0.999
CLIP_RUN = 3
MAX_CLIP_POSITIONS = 10000  # where the first ones are, for drawing


class ClipCounter:
    """Counts the places where a recording clipped, chunk by chunk: flat tops, runs of ``CLIP_RUN``
    or more samples in a row at full scale in any channel (one loud sample is not a clip). A run
    that goes on across chunks counts once."""

    def __init__(self, sample_rate: int):
        self.sample_rate = sample_rate
        self.count = 0  # places
        self.samples = 0  # samples at full scale in them
        self.first_seconds: float | None = None
        self.positions: list[float] = []  # where each starts (s), the first MAX_CLIP_POSITIONS
        self._pos = 0  # samples seen
        self._run = 0  # length of the run going on at the end of the last chunk

    def add(self, chunk: np.ndarray) -> None:
        """chunk: (channels, n) float32."""
        n = chunk.shape[-1]
        if n == 0:
            return
        at = np.any(np.abs(chunk) >= CLIP_LEVEL, axis=0).astype(np.int8)
        edges = np.diff(np.concatenate(([0], at, [0])))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
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
        self._pos += n

    def _close(self, start: int, length: int) -> None:
        if length >= CLIP_RUN:
            self.count += 1
            self.samples += length
            if len(self.positions) < MAX_CLIP_POSITIONS:
                self.positions.append(start / self.sample_rate)
            if self.first_seconds is None:
                self.first_seconds = start / self.sample_rate

    def finish(self) -> ClipCounter:
        if self._run:
            self._close(self._pos - self._run, self._run)
            self._run = 0
        return self

    def describe(self) -> str | None:
        """``clipped in 37 places (first at 1:03.2, 12 ms in all)``; None where it never clipped."""
        if not self.count:
            return None
        minutes, seconds = divmod(self.first_seconds, 60.0)
        places = "1 place" if self.count == 1 else f"{self.count} places"
        return f"clipped in {places} (first at {int(minutes)}:{seconds:04.1f}, {1000 * self.samples / self.sample_rate:.0f} ms in all)"
