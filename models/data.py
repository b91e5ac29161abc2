"""The training corpus (../shared/data): manifest, splits, licence rule, loading, synthetic noises.

Shipped models train only on sources the corpus README allows (everything except CC-BY-NC and
'unstated' licences, plus what we synthesise here); evaluation may use every dev file.
"""

from __future__ import annotations

import csv
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

DATA_DIR = Path(os.environ.get("NOISENIL_DATA", Path(__file__).resolve().parent.parent.parent / "shared" / "data"))
NOT_FOR_SHIPPING = ("CC-BY-NC", "unstated")


@dataclass(frozen=True)
class Row:
    path: str
    kind: str
    label: str
    speaker: str
    sample_rate: int
    seconds: float
    split: str
    licence: str
    notes: str

    @property
    def shippable(self) -> bool:
        return not self.licence.startswith(NOT_FOR_SHIPPING)

    @property
    def speech_like(self) -> bool:
        return "VAD speech" in self.notes


def read_manifest(data_dir: Path = DATA_DIR) -> list[Row]:
    with open(Path(data_dir) / "manifest.csv", newline="", encoding="utf-8") as f:
        return [
            Row(r["path"], r["kind"], r["label"], r["speaker"], int(r["sample_rate"]), float(r["seconds"]), r["split"], r["licence"], r["notes"])
            for r in csv.DictReader(f)
        ]


def select(rows, kind: str, split: str, ship_only: bool, labels=None, drop_speech_like: bool = True) -> list[Row]:
    out = [r for r in rows if r.kind == kind and r.split == split and (r.shippable or not ship_only)]
    if labels is not None:
        out = [r for r in out if r.label in labels]
    if drop_speech_like and kind == "noise":
        out = [r for r in out if not (r.speech_like and r.label != "babble")]
    return sorted(out, key=lambda r: r.path)


@functools.lru_cache(maxsize=4096)
def load(path: str, sample_rate: int, data_dir: str = str(DATA_DIR), max_seconds: float = 60.0) -> np.ndarray:
    """Mono float32 at ``sample_rate`` (at most ``max_seconds``), cached."""
    import soundfile as sf

    x, rate = sf.read(str(Path(data_dir) / path), dtype="float32", always_2d=False)
    if x.ndim > 1:
        x = x.mean(axis=1)
    x = x[: int(max_seconds * rate)]
    if rate != sample_rate:
        x = soxr.resample(x, rate, sample_rate).astype(np.float32)
    return x


# synthetic noises the corpus lacks ------------------------------------------------------------------
def hum(n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    f0 = rng.choice([50.0, 60.0]) * (1 + rng.uniform(-0.005, 0.005))
    t = np.arange(n) / sample_rate
    harmonics = rng.integers(3, 12)
    x = sum(rng.uniform(0.1, 1.0) / k**rng.uniform(0.3, 1.2) * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) for k in range(1, harmonics + 1))
    if rng.random() < 0.5:  # buzz: clipped hum has strong odd harmonics
        x = np.tanh(3 * x)
    return (x / (np.std(x) + 1e-9)).astype(np.float32)


def hiss(n: int, sample_rate: int, rng: np.random.Generator, colour: str | None = None) -> np.ndarray:
    colour = colour or rng.choice(["white", "pink", "brown"])
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n, 1 / sample_rate), 20.0)
    spec = spec / {"white": np.ones_like(f), "pink": np.sqrt(f), "brown": f}[colour]
    x = np.fft.irfft(spec, n)
    return (x / (np.std(x) + 1e-9)).astype(np.float32)


def clicks(n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    x = np.zeros(n, np.float32)
    for pos in rng.integers(0, n, rng.integers(3, 30)):
        length = int(rng.integers(20, 400))
        x[pos : pos + length] += (rng.standard_normal(min(length, n - pos)) * np.exp(-np.arange(min(length, n - pos)) / (length / 5))).astype(np.float32)
    return x / (np.std(x) + 1e-9)


def hum_hiss(n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    kind = rng.integers(0, 3)
    if kind == 0:
        return hum(n, sample_rate, rng)
    if kind == 1:
        return hiss(n, sample_rate, rng)
    mix = hum(n, sample_rate, rng) * rng.uniform(0.2, 1) + hiss(n, sample_rate, rng) * rng.uniform(0.2, 1)
    return (mix / (np.std(mix) + 1e-9)).astype(np.float32)


def babble(n: int, speech: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Several overlapping talkers from training speech: crowd-like babble we are free to use."""
    talkers = int(rng.integers(4, 9))
    x = np.zeros(n, np.float32)
    for _ in range(talkers):
        s = speech[int(rng.integers(len(speech)))]
        if len(s) < n:
            s = np.tile(s, int(np.ceil(n / max(len(s), 1))) + 1)
        start = int(rng.integers(0, len(s) - n + 1))
        x += s[start : start + n] / (np.std(s[start : start + n]) + 1e-6) * rng.uniform(0.5, 1.0)
    return x / (np.std(x) + 1e-9)
