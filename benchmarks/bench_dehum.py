"""Dehum on dev-split voices with hum added: is it found, how much is left, what the voice loses.

    python benchmarks/bench_dehum.py [--episodes 8] [--out benchmarks/results/dehum.md]

Each "episode" is four speech files of the corpus' dev split (seeded pick; ../shared/data or
$NOISENIL_DATA) at 48 kHz, each peak-normalised to -6 dBFS, end to end (about 20-30 s). Hum is
added at an RMS of -45 or -35 dBFS: a 50 Hz hum (harmonics 1, 2, 3 and 5 at 1/k), a 60 Hz buzz
(harmonics 1-20 at 1/sqrt(k)), and a 50 Hz hum whose frequency wanders +-0.05 Hz (a grid's drift,
over 20 s). Reported, mean over the episodes:
- found: episodes where ``Dehum()`` found hum at the right mains frequency;
- hum left: the hum's share still in the output, 20 log10 of its least-squares gain (the rest is
  notched out);
- voice SNR: the dehummed output against the voice alone, where the notches also take some voice;
- SI-SDR of ``noisenil_fb`` alone and after ``Dehum``.
Clean episodes (no hum) show what the voice loses when nothing is there to find, and with the
50 Hz notches forced (``Dehum(frequency_hz=50)``). RTF: Dehum's time (its look at the whole
input included) over the audio's length, on this machine.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from plugin_host import Chain, Dehum, Denoise
from plugin_host.evaluation import _corpus, si_sdr

RATE = 48000
LEVELS_DBFS = (-45.0, -35.0)


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2)))


def episodes(data: Path | None, count: int, seed: int = 2026) -> list[np.ndarray]:
    data, rows = _corpus(data)
    rows = [r for r in rows if r["kind"] == "speech" and r["split"] == "dev"]
    pick = np.random.default_rng(seed).permutation(len(rows))[: 4 * count]
    out = []
    for i in range(count):
        parts = []
        for j in pick[4 * i : 4 * i + 4]:
            x, rate = sf.read(data / rows[j]["path"], dtype="float64", always_2d=True)
            x = soxr.resample(x[:, 0], rate, RATE) if rate != RATE else x[:, 0]
            parts.append(0.5 * x / np.max(np.abs(x)))
        out.append(np.concatenate(parts))
    return out


def hum(kind: str, n: int, seed: int) -> tuple[np.ndarray, float]:
    t = np.arange(n) / RATE
    phases = np.random.default_rng(seed).uniform(0, 2 * np.pi, 20)
    if kind == "50 Hz hum":
        return sum(np.sin(2 * np.pi * 50.0 * k * t + phases[k]) / k for k in (1, 2, 3, 5)), 50.0
    if kind == "60 Hz buzz":
        return sum(np.sin(2 * np.pi * 60.0 * k * t + phases[k - 1]) / np.sqrt(k) for k in range(1, 21)), 60.0
    drift = 50.0 + 0.05 * np.sin(2 * np.pi * t / 20.0)  # the grid wandering
    phase = 2 * np.pi * np.cumsum(drift) / RATE
    return sum(np.sin(k * phase + phases[k]) / k for k in (1, 2, 3, 5)), 50.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--data", default=None)
    parser.add_argument("--out")
    args = parser.parse_args()
    voices = episodes(args.data, args.episodes)
    seconds = sum(len(x) for x in voices) / RATE
    lines = [
        f"{len(voices)} episodes of 4 dev-split voices each ({seconds:.0f} s at 48 kHz, voices peak-normalised to -6 dBFS), hum added.",
        "Means over the episodes. Hum left: 20 log10 of the hum's least-squares gain in the output. Voice SNR: the dehummed output against the voice alone.",
        "",
        "| hum | RMS | found | hum left | voice SNR in | after Dehum | noisenil_fb SI-SDR | Dehum + noisenil_fb | Dehum RTF |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in ("50 Hz hum", "60 Hz buzz", "drifting 50 Hz hum"):
        for level in LEVELS_DBFS:
            found, left, before, after, plain, both, elapsed = 0, [], [], [], [], [], 0.0
            for i, x in enumerate(voices):
                h, mains = hum(kind, len(x), seed=i)
                h = h / np.sqrt(np.mean(h**2)) * 10 ** (level / 20)
                noisy = (x + h).astype(np.float32)
                effect = Dehum()
                t0 = time.perf_counter()
                y = effect(noisy, RATE).astype(np.float64)
                elapsed += time.perf_counter() - t0
                found += effect.found is not None and effect.found.mains_hz == mains
                gain = np.dot(y - x, h) / np.dot(h, h)
                left.append(20 * np.log10(max(abs(gain), 1e-6)))
                before.append(snr_db(x, noisy))
                after.append(snr_db(x, y))
                plain.append(si_sdr(x, Denoise("noisenil_fb")(noisy, RATE).astype(np.float64)))
                both.append(si_sdr(x, Chain([Dehum(), Denoise("noisenil_fb")])(noisy, RATE).astype(np.float64)))
            lines.append(
                f"| {kind} | {level:g} dBFS | {found}/{len(voices)} | {np.mean(left):.1f} dB | {np.mean(before):.1f} dB | {np.mean(after):.1f} dB | {np.mean(plain):.2f} dB | {np.mean(both):.2f} dB | {elapsed / seconds:.4f} |"
            )
            print(lines[-1], flush=True)
    false_found, auto, forced = 0, [], []
    for x in voices:
        effect = Dehum()
        auto.append(snr_db(x, effect(x.astype(np.float32), RATE).astype(np.float64)))
        false_found += effect.found is not None
        forced.append(snr_db(x, Dehum(frequency_hz=50)(x.astype(np.float32), RATE).astype(np.float64)))
    lines += [
        "",
        f"Clean episodes (no hum added): hum found in {false_found}/{len(voices)}; voice SNR after Dehum() {np.mean(auto):.1f} dB (worst {np.min(auto):.1f});"
        f" with 20 notches forced at 50 Hz (Dehum(frequency_hz=50)) {np.mean(forced):.1f} dB (worst {np.min(forced):.1f}).",
    ]
    print(lines[-1])
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
