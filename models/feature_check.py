"""How much of the DeepFilterNet3 teacher's gains one input feature explains, frame by frame:
``python -m models.feature_check CACHE`` (a cache from ``python -m models.distill build`` and
``bins``). For each feature, the share of the variance of the teacher's gain logits (band gains
per ERB band; per-bin gains on the lowest 96 bins) that a cubic in that feature alone explains,
pooled over bands or bins and over frames 50 on (after the running means settle). A quick check
of whether an input is worth a training sitting, not a measure of what a network makes of it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def _r2(x: np.ndarray, y: np.ndarray) -> float:
    x = np.clip(x, -1.0, 2.5)
    a = np.stack([np.ones_like(x), x, x**2, x**3], 1)
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    return float(1.0 - np.mean((a @ coef - y) ** 2) / np.var(y))


def _logit(g: np.ndarray) -> np.ndarray:
    g = np.clip(g.astype(np.float64), 1e-3, 1 - 1e-3)
    return np.log(g / (1 - g))


def check(cache: Path, mixtures: int = 300, seed: int = 0) -> dict:
    import torch

    from . import fullband

    noisy = np.load(cache / "noisy.npy", mmap_mode="r")
    bands_t = np.load(cache / "teacher.npy", mmap_mode="r")
    bins_t = np.load(cache / "teacher_bins.npy", mmap_mode="r")
    net = fullband.FullBandNet(logmag_bins=96, noise_floor=True)
    nb, nd = net.bands, net.df_bins
    cols = {"band: level vs 1 s mean": [], "band: level above floor": [], "bin: level vs 1 s mean": [], "bin: level above floor": []}
    ys = {"band": [], "bin": []}
    for i in np.random.default_rng(seed).choice(noisy.shape[0], mixtures, replace=False):
        spec = fullband.stft(torch.from_numpy(noisy[i].astype(np.float32))[None])
        with torch.no_grad():
            f = net.features_sequence(spec.real.contiguous(), spec.imag.contiguous())[0].numpy()[:, 50:]  # (C_in, T)
        t = f.shape[1] + 50
        cols["band: level vs 1 s mean"].append(f[:nb].ravel())
        cols["bin: level vs 1 s mean"].append(f[nb + 2 * nd : nb + 3 * nd].ravel())
        cols["band: level above floor"].append(f[nb + 3 * nd : 2 * nb + 3 * nd].ravel())
        cols["bin: level above floor"].append(f[2 * nb + 3 * nd :].ravel())
        ys["band"].append(_logit(bands_t[i][50:t]).T.ravel())
        ys["bin"].append(_logit(bins_t[i][50:t, :nd]).T.ravel())
    return {name: round(_r2(np.concatenate(v), np.concatenate(ys[name.split(":")[0]])), 3) for name, v in cols.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.feature_check", description=__doc__.splitlines()[0])
    ap.add_argument("cache", type=Path)
    ap.add_argument("--mixtures", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(json.dumps(check(args.cache, args.mixtures, args.seed), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
