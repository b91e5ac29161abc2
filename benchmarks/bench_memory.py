"""Peak memory of `noisenil render` on long files: it must stay flat whatever the length.

    python benchmarks/bench_memory.py [--hours 2] [--out benchmarks/results/memory.md]

Generates 48 kHz mono 16-bit WAV files of 10 minutes and of ``--hours`` hours (noise plus tones,
written chunk by chunk), renders each in a child process and reads that process's peak RSS.
The files live in a temporary folder and are deleted afterwards (2 h = 691 MB on disk).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pedalboard.io import AudioFile

RATE = 48000


def make_file(path: Path, seconds: float) -> None:
    rng = np.random.default_rng(0)
    block = RATE * 60
    t = np.arange(block) / RATE
    tone = 0.1 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)
    with AudioFile(str(path), "w", RATE, 1, bit_depth=16) as f:
        left = int(seconds * RATE)
        while left > 0:
            n = min(block, left)
            f.write((tone[:n] + 0.02 * rng.standard_normal(n)).astype(np.float32)[np.newaxis])
            left -= n


def render_peak_rss(src: Path, dst: Path) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of a child `noisenil render`."""
    code = (
        "import resource, sys\n"
        "from plugin_host.cli import main\n"
        f"rc = main(['render', {str(src)!r}, '-o', {str(dst)!r}, '-q'])\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
        "sys.exit(rc)\n"
    )
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024.0, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--out")
    args = parser.parse_args()
    rows = ["| file length | peak RSS | render time | speed |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in (600.0, args.hours * 3600.0):
            src, dst = Path(tmp) / f"long_{int(seconds)}.wav", Path(tmp) / f"clean_{int(seconds)}.wav"
            make_file(src, seconds)
            rss, wall = render_peak_rss(src, dst)
            rows.append(f"| {seconds / 60:.0f} min | {rss:.0f} MB | {wall:.0f} s | {seconds / wall:.0f}x real time |")
            print(rows[-1], flush=True)
            src.unlink()
            dst.unlink()
    text = "\n".join(rows)
    print("\n" + text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
