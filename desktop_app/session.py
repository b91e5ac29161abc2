"""The state the GUI shows: the open recordings (the batch queue) and their render results."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np


class Status(Enum):
    QUEUED = "queued"
    LOADING = "loading"
    RENDERING = "rendering"
    DONE = "done"
    FAILED = "failed"
    EXPORTED = "exported"


@dataclass
class Recording:
    path: Path
    status: Status = Status.QUEUED
    message: str = ""
    sample_rate: int = 0
    noisy: np.ndarray | None = None  # (channels, samples) float32
    cleaned: np.ndarray | None = None
    spec_noisy: np.ndarray | None = None  # (columns, bins) dB
    spec_cleaned: np.ndarray | None = None
    spec_seconds_per_column: float = 0.0
    loudness_noisy: float = float("-inf")
    loudness_cleaned: float = float("-inf")
    progress: float = 0.0
    noise_label: str = ""  # what the classifier heard (auto mode)
    clipped: str = ""  # where the recording clipped ("clipped in 3 places (first at ...)"), "" if it never did
    clip_seconds: list = field(default_factory=list)  # where each flat top starts (the first 10,000), for the waveform
    hum: str = ""  # the mains hum found in it ("mains hum at 50.0 Hz, -41 dBFS (5 lines up to 350 Hz)"), "" if none
    settings_key: tuple = field(default_factory=tuple)  # the settings the cleaned audio was made with

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def seconds(self) -> float:
        return 0.0 if self.noisy is None or not self.sample_rate else self.noisy.shape[1] / self.sample_rate

    def label(self) -> str:
        extra = f" {self.progress:.0%}" if self.status in (Status.LOADING, Status.RENDERING) else ""
        why = f": {self.message}" if self.message and self.status == Status.FAILED else ""
        heard = f"  · noise: {self.noise_label.replace('_', '/')}" if self.noise_label else ""
        clipped = f"  · {self.clipped.split(' (')[0]}" if self.clipped else ""  # the where is in the tooltip
        hum = f"  · {self.hum.split(',')[0].replace('mains hum at', 'hum at')}" if self.hum else ""  # its level and lines too
        return f"{self.name} [{self.status.value}{extra}]{why}{heard}{clipped}{hum}"

    def tooltip(self) -> str:
        lines = [str(self.path)]
        if self.clipped:
            lines.append(f"{self.clipped[0].upper()}{self.clipped[1:]}: a denoiser cannot bring back what was cut off")
        if self.hum:
            lines.append(f"{self.hum[0].upper()}{self.hum[1:]}: Remove mains hum notches it")
        return "\n".join(lines)


class Session:
    """The open recordings, in queue order, and which one is shown."""

    def __init__(self):
        self.recordings: list[Recording] = []
        self.current: int = -1

    def add(self, path: Path) -> Recording | None:
        path = Path(path).resolve()
        if any(r.path == path for r in self.recordings):
            return None
        rec = Recording(path)
        self.recordings.append(rec)
        if self.current < 0:
            self.current = 0
        return rec

    def remove(self, rec: Recording) -> int:
        """Take ``rec`` off the queue; returns the row it had. The selection stays on the recording
        it was on, or moves to the one that took the removed one's row (else the new last)."""
        row = self.recordings.index(rec)
        shown = self.selected
        del self.recordings[row]
        if shown is not rec and shown is not None:
            self.current = self.recordings.index(shown)
        else:
            self.current = min(row, len(self.recordings) - 1)
        return row

    @property
    def selected(self) -> Recording | None:
        return self.recordings[self.current] if 0 <= self.current < len(self.recordings) else None

    def all_done(self) -> bool:
        return bool(self.recordings) and all(r.status in (Status.DONE, Status.FAILED, Status.EXPORTED) for r in self.recordings)
