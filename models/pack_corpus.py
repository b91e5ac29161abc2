"""A compact copy of the shippable training corpus, for a lent GPU machine that cannot see ../shared.

``python -m models.pack_corpus OUT [--split train]`` writes OUT/manifest.csv and, for every row a
shipped model may learn from (``data.select(..., ship_only=True)``):
- speech and noise re-encoded as Ogg/Opus (speech ~25 kbps at 16 kHz, ~36 kbps full band; noise
  ~22 kbps), 44.1 kHz files resampled to 48 kHz first (Opus has no 44.1 kHz mode); the manifest
  keeps the original sample rate, which is what the mixer's band-limit logic reads, while the
  mixer resamples from the file's own rate;
- impulse responses as 16-bit FLAC cut to 1 s (the mixer uses at most 1 s).

The device tool carries at most 64 MiB, repository included; this pack is about 45 MB instead of
the corpus' 180. Training there: ``NOISENIL_DATA=OUT python -m models.train RECIPE``. The copy is
lossy, so a model card says when its weights were trained on it. The folder is data, never
committed (it sits in a path that git ignores).
"""

from __future__ import annotations

import argparse
import csv
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from . import data

# libsndfile's Opus bitrate follows compression_level (0: ~256 kbps ... 1: ~6 kbps per channel)
LEVELS = {"speech": 0.92, "speech_fullband": 0.88, "noise": 0.93}


def _pack_one(job: tuple[str, str, str, str]) -> int:
    src, dst, kind, data_dir = job
    x, rate = sf.read(str(Path(data_dir) / src), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    dst_path = Path(dst)
    dst_path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "rir":
        sf.write(str(dst_path), x[: rate], rate, format="FLAC", subtype="PCM_16")
    else:
        if rate not in (8000, 12000, 16000, 24000, 48000):
            x, rate = soxr.resample(x, rate, 48000).astype(np.float32), 48000
        level = LEVELS["speech_fullband" if kind == "speech" and rate >= 44100 else kind]
        with sf.SoundFile(str(dst_path), "w", rate, 1, format="OGG", subtype="OPUS", compression_level=level) as f:
            f.write(np.clip(x, -1.0, 1.0))
    return dst_path.stat().st_size


def pack(out: Path, splits=("train",), data_dir: Path = data.DATA_DIR, workers: int = 2, limit: int | None = None) -> tuple[int, int]:
    """Returns (files, bytes). ``limit``: at most that many rows per kind, speech per rate group."""
    rows = data.read_manifest(data_dir)
    keep = []
    for split in splits:
        for kind in ("speech", "noise", "rir"):
            chosen = data.select(rows, kind, split, ship_only=True)
            if limit is not None:  # a small pack (tests): some of each kind, full-band voices too
                chosen = [r for r in chosen if r.sample_rate < 44100][:limit] + [r for r in chosen if r.sample_rate >= 44100][:limit]
            keep += chosen
    with open(Path(data_dir) / "manifest.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields, by_path = reader.fieldnames, {r["path"]: r for r in reader}
    out.mkdir(parents=True, exist_ok=True)
    jobs, lines = [], []
    for row in keep:
        new = row.path if row.kind == "rir" else str(Path(row.path).with_suffix(".opus"))
        jobs.append((row.path, str(out / new), row.kind, str(data_dir)))
        lines.append({**by_path[row.path], "path": new})
    with ProcessPoolExecutor(workers) as pool:
        total = sum(pool.map(_pack_one, jobs, chunksize=16))
    tmp = out / "manifest.csv.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(lines)
    tmp.replace(out / "manifest.csv")
    return len(jobs), total


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.pack_corpus", description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--split", action="append", help="splits to pack (default: train)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    if not (data.DATA_DIR / "manifest.csv").is_file():
        print(f"error: {data.DATA_DIR}: no corpus manifest.csv", file=sys.stderr)
        return 2
    n, size = pack(args.out, tuple(args.split or ["train"]), workers=args.workers)
    print(f"{args.out}: {n} files, {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
