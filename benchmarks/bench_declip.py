"""Declip on dev-split voices: how much of a clipped peak comes back, and at what speed.

    python benchmarks/bench_declip.py [--files 24] [--rates 48000 16000] [--out benchmarks/results/declip.md]

Takes ``--files`` speech files of the corpus' dev split (seeded pick; ../shared/data or
$NOISENIL_DATA), resamples each to the rate, scales its peak to 0 dBFS, then drives it 1, 3, 6 and
10 dB over full scale and clips it there. The reference is the driven voice before clipping; the
score is its SNR against the clipped file and against the declipped one (whole file), averaged
over the files, with the worst single file's change. Each is also normalised to -1 dBFS at 16 bits
after clipping (a take clipped and then turned down in an editor): ``Declip()`` has to find that
level itself, and the restored file is turned back up by as much before it is scored. RTF: Declip's time over the audio's
length, offline, on this machine.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from plugin_host import Declip
from plugin_host.evaluation import _corpus

OVERDRIVES_DB = (1.0, 3.0, 6.0, 10.0)
TURNED_DOWN_DB = -1.0  # a clipped take normalised to this peak afterwards


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2)))


def voices(data: Path | None, files: int, seed: int = 2026) -> list[tuple[str, np.ndarray, int]]:
    data, rows = _corpus(data)  # the folder and its manifest, as eval reads them
    rows = [r for r in rows if r["kind"] == "speech" and r["split"] == "dev"]
    pick = np.random.default_rng(seed).choice(len(rows), min(files, len(rows)), replace=False)
    out = []
    for i in sorted(pick):
        x, rate = sf.read(data / rows[i]["path"], dtype="float64", always_2d=True)
        out.append((rows[i]["path"], x[:, 0], rate))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=24)
    parser.add_argument("--rates", type=int, nargs="+", default=[48000, 16000])
    parser.add_argument("--data", default=None)
    parser.add_argument("--out")
    args = parser.parse_args()
    clips = voices(args.data, args.files)
    seconds = sum(len(x) / r for _, x, r in clips)
    lines = [
        f"{len(clips)} dev-split voices ({seconds:.0f} s; LibriSpeech 16 kHz and KLettres 44.1 kHz sources), each peak-normalised, driven over full scale and clipped there.",
        "SNR against the voice before clipping (dB, mean over the files); worst: the smallest change of one file.",
        "",
        "| rate | driven over full scale | flat tops | clipped SNR | declipped SNR | change | worst file | left (too long) | RTF |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for turned_down_db, rate, over_db in itertools.product((None, TURNED_DOWN_DB), args.rates, OVERDRIVES_DB):
        before, after, filled, left, elapsed, audio = [], [], 0, 0, 0.0, 0.0
        for _, x, source_rate in clips:
            y = soxr.resample(x, source_rate, rate) if source_rate != rate else x
            reference = y / np.max(np.abs(y)) * 10 ** (over_db / 20)
            clipped = np.clip(reference, -1.0, 1.0).astype(np.float32)
            gain = 1.0
            if turned_down_db is not None:  # normalised in an editor and written at 16 bits
                gain = 10 ** (turned_down_db / 20)
                clipped = (np.round(clipped * gain * 32768) / 32768).astype(np.float32)
            effect = Declip()
            t0 = time.perf_counter()
            restored = effect(clipped, rate) / gain
            elapsed += time.perf_counter() - t0
            audio += len(y) / rate
            before.append(snr_db(reference, clipped / gain))
            after.append(snr_db(reference, restored))
            filled, left = filled + effect.repaired, left + effect.left
        change = np.array(after) - np.array(before)
        how = f"{over_db:g} dB" + ("" if turned_down_db is None else f", then {turned_down_db:g} dBFS at 16 bits")
        lines.append(
            f"| {rate} | {how} | {filled} | {np.mean(before):.1f} | {np.mean(after):.1f} | {np.mean(change):+.1f} | {np.min(change):+.2f} | {left} | {elapsed / audio:.3f} |"
        )
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
