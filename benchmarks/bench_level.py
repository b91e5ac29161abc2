"""Level on made-up conversations of dev-split voices at different levels: how even they come out.

    python benchmarks/bench_level.py [--conversations 12] [--out benchmarks/results/level.md]

Each conversation strings together 6 dev-split utterances (seeded pick; ../shared/data or
$NOISENIL_DATA), each at its own speech level drawn from -40 to -20 dBFS RMS, with 0.6 s pauses
of -70 dBFS room tone between them, at 48 kHz. Scored per utterance, its middle half (the
leveler's gain is still moving at the turns): the spread of the utterances' RMS levels within
a conversation (standard deviation and largest minus smallest, dB), before and after ``Level()``
with its defaults, averaged over the conversations; RTF: its time over the audio's length.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from plugin_host import Level
from plugin_host.evaluation import _corpus

RATE = 48000


def rms_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=12)
    parser.add_argument("--data", default=None)
    parser.add_argument("--out")
    args = parser.parse_args()
    data, rows = _corpus(args.data)  # the folder and its manifest, as eval reads them
    rows = [r for r in rows if r["kind"] == "speech" and r["split"] == "dev" and float(r["seconds"]) >= 2.5]
    rng = np.random.default_rng(2026)
    spread_in, spread_out, range_in, range_out, elapsed, audio = [], [], [], [], 0.0, 0.0
    for _ in range(args.conversations):
        parts, spans, pos = [], [], 0
        for i in rng.choice(len(rows), 6, replace=False):
            x, rate = sf.read(data / rows[i]["path"], dtype="float64", always_2d=True)
            x = soxr.resample(x[:, 0], rate, RATE)
            x *= 10 ** (rng.uniform(-40.0, -20.0) / 20) / np.sqrt(np.mean(x**2))
            pause = 10 ** (-70 / 20) * rng.standard_normal(int(0.6 * RATE))
            parts += [x, pause]
            spans.append((pos + len(x) // 4, pos + 3 * len(x) // 4))
            pos += len(x) + len(pause)
        take = np.concatenate(parts).astype(np.float32)
        effect = Level()
        t0 = time.perf_counter()
        out = effect(take, RATE)
        elapsed += time.perf_counter() - t0
        audio += len(take) / RATE
        before = np.array([rms_db(take[a:b]) for a, b in spans])
        after = np.array([rms_db(out[a:b]) for a, b in spans])
        spread_in.append(np.std(before))
        spread_out.append(np.std(after))
        range_in.append(np.ptp(before))
        range_out.append(np.ptp(after))
    lines = [
        f"{args.conversations} conversations of 6 dev-split utterances each ({audio:.0f} s), at speech levels drawn from -40 to -20 dBFS, 48 kHz.",
        "Per conversation, the utterances' RMS levels (their middle half): standard deviation and largest minus smallest, mean over the conversations.",
        "",
        "| | spread (std, dB) | largest - smallest (dB) | RTF |",
        "|---|---|---|---|",
        f"| input | {np.mean(spread_in):.1f} | {np.mean(range_in):.1f} | - |",
        f"| Level() | {np.mean(spread_out):.1f} | {np.mean(range_out):.1f} | {elapsed / audio:.3f} |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
