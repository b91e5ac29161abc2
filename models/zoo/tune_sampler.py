"""Choose where the diffusion sampler starts, on the dev pairs, after training:
``python -m models.zoo.tune_sampler --starts 1.0 0.6 0.4 0.25 0.15``.

``sample_start`` is a sampling setting, not a weight: the same trained noise predictor can sample
from pure noise (1.0) or from "keep everything" noised to an earlier step (SDEdit-style; see
``nets.MelDiffusion``). Each start is scored as training scores checkpoints (mean SI-SDR
improvement on the dev pairs, seeded noise); the best is written into the checkpoint's recipe,
which the export reads, and every score goes to the model's training log.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from . import train

NAME = "mel_diffusion"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.zoo.tune_sampler", description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=float, nargs="+", default=[1.0, 0.6, 0.4, 0.25, 0.15])
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    path = train.CHECKPOINTS / f"zoo_{NAME}.pt"
    ck = torch.load(path, weights_only=False, map_location="cpu")
    cfg = ck["config"]
    dev = np.load(train.data_dir() / cfg.get("dev", "dev.npy"))
    scores = {}
    for start in a.starts:
        net = train.build({**cfg, "net": {**cfg["net"], "sample_start": start}})
        net.load_state_dict(ck["model"])
        scores[start] = train.dev_gain_db(net, dev)
        print(f"sample_start {start:g}: dev si-sdr improvement {scores[start]:+.2f} dB", flush=True)
    best = max(scores, key=lambda s: (round(scores[s], 2), s))  # a tie goes to the later start (more of the sampler)
    ck["config"] = {**cfg, "net": {**cfg["net"], "sample_start": best}}
    ck["sampler_scores"] = {str(k): round(v, 3) for k, v in scores.items()}
    torch.save(ck, path)
    line = ", ".join(f"{k:g}: {v:+.2f} dB" for k, v in scores.items())
    with open(train.LOGS / f"{NAME}.train.log", "a", encoding="utf-8") as f:
        f.write(f"# {time.strftime('%Y-%m-%d %H:%M')} python -m models.zoo.tune_sampler: {line}; kept sample_start {best:g}\n")
    print(f"kept sample_start {best:g} in {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
