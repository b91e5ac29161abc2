"""Make the bundled example recording: espeak-ng speech in a noisy room, all generated here.

    python examples/make_example.py        # needs espeak-ng (apt-get install espeak-ng)

Writes ``examples/clean_speech.flac`` (the speech alone) and ``examples/noisy_podcast.flac``
(speech + 50 Hz mains hum with harmonics + pink hiss + a fan-like rumble, 48 kHz mono). Nothing
comes from a corpus, so both files may be redistributed with the project (GPL-3.0-or-later).
The output is deterministic for a given espeak-ng version (seeded noise).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soxr
from pedalboard.io import AudioFile

HERE = Path(__file__).resolve().parent
RATE = 48000
TEXT = (
    "Welcome back to the show. Today we talk about cleaning up podcast audio. "
    "Noise from fans, hum and hiss can ruin a great conversation. "
    "Let's see how much of it we can remove."
)


def speech(text: str = TEXT) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), text], check=True)
        with AudioFile(str(wav)) as f:
            x, rate = f.read(f.frames)[0], f.samplerate
    x = soxr.resample(x, rate, RATE)
    return (0.3 * x / np.max(np.abs(x))).astype(np.float32)


def pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n, 1 / RATE), 20.0)
    x = np.fft.irfft(spec / np.sqrt(f), n)
    return x / np.std(x)


def noise(n: int, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / RATE
    hum = sum(np.sin(2 * np.pi * 50 * k * t + k) / k for k in (1, 2, 3, 5, 7))
    fan = np.convolve(rng.standard_normal(n), np.ones(64) / 64, mode="same")
    fan = fan / np.std(fan) * (1 + 0.1 * np.sin(2 * np.pi * 3 * t))
    return (0.01 * hum + 0.012 * pink(n, rng) + 0.01 * fan).astype(np.float32)


def main() -> int:
    clean = speech()
    pad = np.zeros(int(0.7 * RATE), np.float32)  # room tone before and after the voice
    clean = np.concatenate([pad, clean, pad])
    noisy = clean + noise(len(clean))
    for name, x in (("clean_speech.flac", clean), ("noisy_podcast.flac", noisy)):
        with AudioFile(str(HERE / name), "w", RATE, 1, bit_depth=16) as f:
            f.write(x[np.newaxis, :])
        print(f"wrote {HERE / name} ({len(x) / RATE:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
