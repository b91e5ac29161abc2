"""Seeded, on-the-fly training mixtures at 48 kHz (torch-free; the training loop wraps it).

``Mixer(config).example(index)`` returns the same noisy/clean pair for the same (seed, index) on
any machine and in any worker, so a resumed run sees exactly the examples it would have seen.

One example:
- speech: excerpts of shippable training speech joined with short gaps until the length is filled,
  sometimes shifted in time (a late start) and with a slow volume ride; full-band voices (KLettres,
  44.1/48 kHz) are drawn with probability ``p_fullband`` because most of the corpus is 16 kHz;
- band limits, deliberately: speech is resampled from its native rate, so a 16 kHz utterance has
  nothing above 8 kHz and the clean target has nothing there either, while the noise keeps its full
  band. The model (bounded gains above the deep-filtered low bins) cannot create content there; it
  only learns to remove the noise, and full-band voices teach it to keep real high-band speech;
- reverberation (``p_reverb``) through a training impulse response; the target keeps the direct
  sound and the first 50 ms of reflections (the usual "early reverberation" target);
- 1-3 noises: shippable corpus noises, synthetic mains hum / white-pink-brown hiss / clicks
  (``models.data``), or babble made of training speech; mixed at an SNR from ``snr_db``;
- the seed projects' augmentations: low-pass "muffled" filtering (speech and target alike, as a
  dull microphone), clipping of the noisy input, volume scaling of the whole pair.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soxr
from scipy import signal

from . import data

SAMPLE_RATE = 48000


@dataclass(frozen=True)
class MixConfig:
    seed: int = 0
    seconds: float = 3.0
    snr_db: tuple = (-5.0, 25.0)
    p_fullband: float = 0.3
    p_reverb: float = 0.35
    p_synthetic_noise: float = 0.25
    p_babble: float = 0.08
    max_noises: int = 3
    p_lowpass: float = 0.1
    lowpass_hz: tuple = (2500.0, 7000.0)
    p_clip: float = 0.05
    p_shift: float = 0.2
    p_volume_ride: float = 0.2
    p_speech_only: float = 0.03  # no noise at all: the model must leave clean speech alone
    p_noise_only: float = 0.03  # no speech: everything is noise
    level_dbfs: tuple = (-38.0, -12.0)
    split: str = "train"
    data_dir: str = str(data.DATA_DIR)
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> "MixConfig":
        known = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def band_hz(row: data.Row) -> float:
    """Effective speech bandwidth: the manifest's ``bw~`` note (kHz), else the Nyquist frequency."""
    for note in row.notes.split(";"):
        note = note.strip()
        if note.startswith("bw~"):
            try:
                return min(float(note[3:].split()[0].rstrip("kHz")) * 1000.0, row.sample_rate / 2)
            except ValueError:
                break
    return row.sample_rate / 2


@functools.lru_cache(maxsize=None)
def _native(path: str, data_dir: str) -> tuple[np.ndarray, int]:
    """A corpus file at its own rate, mono float32, and that rate (cached per process). The rate
    is the file's, not the manifest's, so a re-encoded copy of the corpus still plays at pitch."""
    import soundfile as sf

    x, rate = sf.read(str(Path(data_dir) / path), dtype="float32", always_2d=True)
    return x.mean(axis=1), int(rate)


def _excerpt(row: data.Row, n_out: int, rng: np.random.Generator, data_dir: str) -> np.ndarray:
    """Up to ``n_out`` samples at 48 kHz from a random place in ``row`` (resampling only the excerpt)."""
    x, rate = _native(row.path, data_dir)
    n_in = int(np.ceil(n_out * rate / SAMPLE_RATE)) + 64
    if len(x) > n_in:
        start = int(rng.integers(0, len(x) - n_in + 1))
        x = x[start : start + n_in]
    if rate != SAMPLE_RATE:
        x = soxr.resample(x, rate, SAMPLE_RATE, quality="HQ")
    return np.asarray(x[:n_out], np.float32)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def _active_rms(x: np.ndarray) -> float:
    """RMS over the loudest half of 20 ms frames (speech level without its pauses)."""
    hop = 960
    frames = len(x) // hop
    if frames < 2:
        return _rms(x)
    e = np.mean(np.square(x[: frames * hop].reshape(frames, hop), dtype=np.float64), axis=1)
    loud = np.sort(e)[frames // 2 :]
    return float(np.sqrt(np.mean(loud) + 1e-12))


def _fades(n: int, fade: int = SAMPLE_RATE // 100) -> np.ndarray:
    """10 ms raised-cosine fade in and out: an excerpt cut mid-word must not click (a click would
    put broadband energy above a band-limited voice's Nyquist frequency into the target)."""
    env = np.ones(n, np.float32)
    k = min(fade, n // 2)
    if k > 0:
        ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(k) + 0.5) / k)).astype(np.float32)
        env[:k], env[n - k :] = ramp, ramp[::-1]
    return env


def warm(config: MixConfig, threads: int = 8) -> int:
    """Decode every file ``Mixer(config)`` can draw into this process' cache, with a thread pool
    (libsndfile runs outside the GIL). Called in the training process before its mixing workers
    fork, so they share one decoded copy instead of each decoding the corpus. Returns the count."""
    from concurrent.futures import ThreadPoolExecutor

    m = Mixer(config)
    paths = [r.path for r in m.speech_fullband + m.speech_narrow + m.noises + m.rirs]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda p: _native(p, config.data_dir), paths))
    return len(paths)


class Mixer:
    """Deterministic mixtures from the corpus rows a shipped model may learn from."""

    def __init__(self, config: MixConfig):
        self.config = config
        rows = data.read_manifest(Path(config.data_dir))
        speech = data.select(rows, "speech", config.split, ship_only=True)
        self.speech_fullband = [r for r in speech if r.sample_rate >= 44100]
        self.speech_narrow = [r for r in speech if r.sample_rate < 44100]
        self.noises = data.select(rows, "noise", config.split, ship_only=True)
        self.rirs = data.select(rows, "rir", config.split, ship_only=True)
        self._rows = {r.path: r for r in speech}
        if not (self.speech_narrow and self.noises):
            raise RuntimeError(f"no shippable {config.split} speech or noise under {config.data_dir}")
        self.n = int(round(config.seconds * SAMPLE_RATE))

    # ------------------------------------------------------------------------------------- parts
    def _speech(self, rng: np.random.Generator) -> tuple[np.ndarray, float, list[str]]:
        c, n = self.config, self.n
        pool = self.speech_fullband if (self.speech_fullband and rng.random() < c.p_fullband) else self.speech_narrow
        out = np.zeros(n, np.float32)
        pos = int(rng.integers(0, n // 3)) if rng.random() < c.p_shift else 0
        band, files = 0.0, []
        while pos < n - SAMPLE_RATE // 10:
            row = pool[int(rng.integers(len(pool)))]
            piece = _excerpt(row, n - pos, rng, c.data_dir)
            piece = piece / (_active_rms(piece) + 1e-6) * _fades(len(piece))
            out[pos : pos + len(piece)] = piece
            band = max(band, band_hz(row))
            files.append(row.path)
            pos += len(piece) + int(rng.integers(SAMPLE_RATE // 20, SAMPLE_RATE // 2))
        if rng.random() < c.p_volume_ride:  # a slow ride of +-6 dB, as a talker moving
            t = np.linspace(0, 1, n)
            ride_db = rng.uniform(-6, 6) * np.sin(2 * np.pi * rng.uniform(0.1, 0.7) * t + rng.uniform(0, 6.3))
            out *= (10 ** (ride_db / 20)).astype(np.float32)
        return out, band, files

    def _reverb(self, speech: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        row = self.rirs[int(rng.integers(len(self.rirs)))]
        rir, rate = _native(row.path, self.config.data_dir)
        if rate != SAMPLE_RATE:
            rir = soxr.resample(rir, rate, SAMPLE_RATE)
        rir = rir[: SAMPLE_RATE] / (np.max(np.abs(rir)) + 1e-9)
        direct = int(np.argmax(np.abs(rir)))
        rir = rir[max(0, direct - 48) :]  # the direct sound at 1 ms: no extra delay
        early = rir.copy()
        early[48 + SAMPLE_RATE // 20 :] = 0.0
        wet = signal.fftconvolve(speech, rir)[: self.n].astype(np.float32)
        target = signal.fftconvolve(speech, early)[: self.n].astype(np.float32)
        g = 1.0 / (_active_rms(wet) + 1e-6)
        return wet * g, target * g

    def _one_noise(self, rng: np.random.Generator) -> np.ndarray:
        c, n = self.config, self.n
        u = rng.random()
        if u < c.p_synthetic_noise:
            kind = int(rng.integers(0, 4))
            if kind == 0:
                x = data.hum(n, SAMPLE_RATE, rng)
            elif kind == 1:
                x = data.hiss(n, SAMPLE_RATE, rng)
            elif kind == 2:
                x = data.clicks(n, SAMPLE_RATE, rng)
            else:
                x = data.hum_hiss(n, SAMPLE_RATE, rng)
        elif u < c.p_synthetic_noise + c.p_babble:
            talkers = [_excerpt(self.speech_narrow[int(rng.integers(len(self.speech_narrow)))], n, rng, c.data_dir) for _ in range(6)]
            x = data.babble(n, [t for t in talkers if len(t) > 0], rng)
        else:
            row = self.noises[int(rng.integers(len(self.noises)))]
            x = _excerpt(row, n, rng, c.data_dir)
            if len(x) < n:  # loop short noises
                x = np.tile(x, int(np.ceil(n / max(len(x), 1))))[:n]
        return np.asarray(x, np.float32) / (_rms(x) + 1e-9)

    # ------------------------------------------------------------------------------------ example
    def example(self, index: int) -> dict:
        """``{"noisy", "clean"}`` float32 arrays of ``seconds`` at 48 kHz, plus what was drawn."""
        c, n = self.config, self.n
        rng = np.random.default_rng([c.seed, index])
        speech, band, files = self._speech(rng)
        clean = speech
        reverb = bool(self.rirs) and rng.random() < c.p_reverb
        if reverb:
            speech, clean = self._reverb(speech, rng)
        noise = np.zeros(n, np.float32)
        for k in range(int(rng.integers(1, c.max_noises + 1))):
            noise += self._one_noise(rng) * (1.0 if k == 0 else rng.uniform(0.2, 0.8))
        snr = float(rng.uniform(*c.snr_db))
        u = rng.random()
        if u < c.p_speech_only:
            noise[:] = 0.0
            snr = float("inf")
        elif u < c.p_speech_only + c.p_noise_only:
            speech, clean = speech * 0.0, clean * 0.0
        else:
            noise *= _active_rms(speech) / (_rms(noise) + 1e-9) / 10 ** (snr / 20)
        noisy = speech + noise
        lowpass_hz = None
        if rng.random() < c.p_lowpass:  # a muffled microphone: the voice itself is dull
            lowpass_hz = float(rng.uniform(*c.lowpass_hz))
            sos = signal.butter(4, lowpass_hz, fs=SAMPLE_RATE, output="sos")
            noisy = signal.sosfilt(sos, noisy).astype(np.float32)
            clean = signal.sosfilt(sos, clean).astype(np.float32)
            noise = signal.sosfilt(sos, noise).astype(np.float32)
        level = 10 ** (rng.uniform(*c.level_dbfs) / 20) / (_active_rms(noisy) + 1e-9)
        noisy, clean, noise = noisy * level, clean * level, noise * level
        clipped = rng.random() < c.p_clip
        if clipped:  # an overdriven input: the noisy signal clips, the target does not
            ceiling = np.quantile(np.abs(noisy), rng.uniform(0.98, 0.999)) + 1e-6
            noisy = np.clip(noisy, -ceiling, ceiling)
        return {
            "noisy": noisy.astype(np.float32),
            "clean": clean.astype(np.float32),
            "noise": noise.astype(np.float32),  # what was added (before any clipping)
            "snr_db": snr,
            "speech_band_hz": band,  # the widest effective bandwidth among the excerpts (manifest bw~ notes)
            "speech_nyquist_hz": max((self._rows[f].sample_rate / 2 for f in files), default=0.0),
            "speech_files": files,
            "reverb": reverb,
            "lowpass_hz": lowpass_hz,
            "clipped": clipped,
        }
