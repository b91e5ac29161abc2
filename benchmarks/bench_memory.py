"""Peak memory of `noisenil render` on long files: it must stay flat whatever the length.

    python benchmarks/bench_memory.py [--hours 2] [--out benchmarks/results/memory.md]
    python benchmarks/bench_memory.py --app [--minutes 10 30] [--out benchmarks/results/memory_app.md]

Generates 48 kHz mono 16-bit WAV files of 10 minutes and of ``--hours`` hours (noise plus tones,
written chunk by chunk), renders each in a child process and reads that process's peak RSS.
The files live in a temporary folder and are deleted afterwards (2 h = 691 MB on disk).

``--app``: the desktop app (offscreen) opens a stereo file of each length and renders it; it
holds the recording and its cleaned version (to draw and play them), so its peak grows with the
length. Reported as the peak above the app's own start-up RSS, in multiples of one float32 copy
of the recording (2 = the original and the cleaned audio, nothing else), and as anonymous memory
(``RssAnon``, sampled every 20 ms): a recording over ``SPILL_BYTES`` is held in a file-backed map,
whose pages count in RSS while memory is plentiful but that the system can drop and read back
instead of swapping.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pedalboard.io import AudioFile

RATE = 48000


def make_file(path: Path, seconds: float, channels: int = 1) -> None:
    rng = np.random.default_rng(0)
    block = RATE * 60
    t = np.arange(block) / RATE
    tone = 0.1 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)
    with AudioFile(str(path), "w", RATE, channels, bit_depth=16) as f:
        left = int(seconds * RATE)
        while left > 0:
            n = min(block, left)
            f.write(np.tile((tone[:n] + 0.02 * rng.standard_normal(n)).astype(np.float32), (channels, 1)))
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


APP_CODE = """
import os, resource, sys, time
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6.QtWidgets import QApplication
app = QApplication([])
from desktop_app.main_window import MainWindow
from desktop_app.settings import Settings
w = MainWindow(Settings())
w.show()
app.processEvents()

def anon_kb():  # memory only swap can take back; a file-backed map's pages are RssFile
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("RssAnon:"))

base, base_anon = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, anon_kb()
peak_anon = base_anon
t0 = time.perf_counter()
w.open_files([sys.argv[1]])
while not (w.session.all_done() and not (w.job and w.job.isRunning())):
    app.processEvents()
    peak_anon = max(peak_anon, anon_kb())
    time.sleep(0.02)
assert str(w.session.selected.status) == "Status.DONE", w.session.selected.message
print(base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter() - t0, base_anon, max(peak_anon, anon_kb()))
"""


def app_peak_rss(src: Path, config: Path) -> tuple[float, float, float, float, float]:
    """(start-up RSS, peak RSS, seconds to rendered, start-up and peak anonymous memory) of the
    app opening ``src``; memory in MB. The anonymous peak is sampled every 20 ms."""
    env = dict(os.environ, NOISENIL_CONFIG_DIR=str(config), PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    out = subprocess.run([sys.executable, "-c", APP_CODE, str(src)], capture_output=True, text=True, check=True, env=env)
    base, peak, wall, base_anon, peak_anon = out.stdout.strip().splitlines()[-1].split()
    return int(base) / 1024.0, int(peak) / 1024.0, float(wall), int(base_anon) / 1024.0, int(peak_anon) / 1024.0


def main_app(minutes: list[float], out: str | None) -> None:
    rows = [
        "| stereo file | one float32 copy | app start-up RSS | peak RSS | peak above start-up | in copies of the recording | anonymous memory above start-up (peak) | in copies | seconds to rendered |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for m in minutes:
            src = Path(tmp) / f"stereo_{int(m)}.wav"
            make_file(src, m * 60, channels=2)
            base, peak, wall, base_anon, peak_anon = app_peak_rss(src, Path(tmp) / "config")
            copy = m * 60 * RATE * 2 * 4 / 2**20
            anon = peak_anon - base_anon
            rows.append(f"| {m:g} min | {copy:.0f} MB | {base:.0f} MB | {peak:.0f} MB | {peak - base:.0f} MB | {(peak - base) / copy:.2f} | {anon:.0f} MB | {anon / copy:.2f} | {wall:.0f} s |")
            print(rows[-1], flush=True)
            src.unlink()
    text = "\n".join(rows)
    print("\n" + text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--app", action="store_true", help="the desktop app instead of noisenil render")
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0, 30.0], help="with --app: file lengths")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.app:
        main_app(args.minutes, args.out)
        return
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
