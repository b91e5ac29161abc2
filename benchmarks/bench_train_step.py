"""Time of one training step (forward and backward) of a recipe's net, with and without the
zero deep filter in the graph, interleaved.

    python benchmarks/bench_train_step.py models/configs/noisenil_fb_cpu_gru6.json [--batch 8] [--rounds 10] [--threads 2]

A gains-only recipe (``"deep_filter": false``) trains with the deep-filter head zeroed and
frozen. Until 2026-11-25 the training graph still ran that head and the filter's arithmetic
(adding exact zeros); now it leaves them out, as the gains-only export does. This runs both
graphs in turn on the same random 3-second batch (the recipe's net, the loss a plain
spectral term, since only the graph differs) and reports the best and median milliseconds per
step and the ratio. Needs torch (the ``train`` extra).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from models import fullband

    torch.set_num_threads(args.threads)
    recipe = json.loads(args.config.read_text())
    net = fullband.FullBandNet(**{**recipe["net"], "deep_filter": False})
    net.train()
    x = torch.from_numpy(
        np.random.default_rng(0)
        .standard_normal((args.batch, round(args.seconds * 48000)))
        .astype(np.float32)
        * 0.05
    )
    spec = fullband.stft(x)
    re, im = spec.real.contiguous(), spec.imag.contiguous()

    def step(filter_in_graph: bool) -> float:
        net.deep_filter = filter_in_graph  # the head stays zero and frozen either way
        net.zero_grad()
        t0 = time.perf_counter()
        o_re, o_im, gains = net.forward_sequence(re, im)
        loss = sum(fullband.compressed_loss(o_re, o_im, re, im)) + gains.mean()
        loss.backward()
        return (time.perf_counter() - t0) * 1e3

    names = {True: "zero deep filter in the graph (before)", False: "gains only (now)"}
    times: dict[bool, list[float]] = {True: [], False: []}
    step(True), step(False)  # warm-up
    for _ in range(args.rounds):
        for k in (True, False):
            times[k].append(step(k))
    print(
        f"{args.config.name}: batch {args.batch} x {args.seconds:g} s, {args.threads} threads, {args.rounds} rounds, {platform.processor() or platform.machine()}, torch {torch.__version__}\n"
    )
    print(
        "| training graph | best (ms/step) | median (ms/step) | median ratio to before |"
    )
    print("|---|---|---|---|")
    base = float(np.median(times[True]))
    for k in (True, False):
        print(
            f"| {names[k]} | {min(times[k]):.0f} | {np.median(times[k]):.0f} | {np.median(times[k]) / base:.3f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
