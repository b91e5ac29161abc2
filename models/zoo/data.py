"""A fixed, seeded set of 16 kHz training pairs for the seed zoo, made once and shared by every model.

The pairs come from ``models.mixing.Mixer`` (48 kHz, all of issue 3's augmentations: 1-3 noises
incl. synthetic hum/hiss/clicks, reverb, low-pass, clipping, shift, volume) resampled to 16 kHz.
On 2 CPU cores mixing on the fly would starve six small models, so the set is built once
(``python -m models.zoo.data OUT.npy --examples N``) and each model draws random crops and gains
from it. Examples are float16 (noisy, clean) pairs, shape (N, 2, samples).
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soxr

from ..mixing import MixConfig, Mixer

SAMPLE_RATE = 16000
_mixer = None


def _make(args):
    seed, split, seconds, index = args
    global _mixer
    if _mixer is None or _mixer.config.seed != seed or _mixer.config.split != split:
        _mixer = Mixer(MixConfig(seed=seed, split=split, seconds=seconds))
    ex = _mixer.example(index)
    pair = np.stack([ex["noisy"], ex["clean"]])
    out = soxr.resample(pair.T, 48000, SAMPLE_RATE, quality="HQ").T
    return np.clip(out, -1.0, 1.0).astype(np.float16)


def build(n: int, seed: int, split: str = "train", seconds: float = 2.0, workers: int = 2) -> np.ndarray:
    jobs = [(seed, split, seconds, i) for i in range(n)]
    with ProcessPoolExecutor(workers) as pool:
        return np.stack(list(pool.map(_make, jobs, chunksize=16)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.zoo.data", description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--examples", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--split", default="train")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    a = ap.parse_args(argv)
    pairs = build(a.examples, a.seed, a.split, a.seconds, a.workers)
    tmp = a.out.with_suffix(".tmp.npy")
    np.save(tmp, pairs)
    os.replace(tmp, a.out)
    print(f"{a.out}: {pairs.shape} float16 ({pairs.nbytes / 1e6:.0f} MB), seed {a.seed}, split {a.split}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
