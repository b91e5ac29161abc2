"""The context head (``FullBandNet(bin_context=...)``) trained on its own over a frozen net.

The head reads what the rest of the net has already computed (the trunk's output, the low bins'
logits) plus the low bins' log magnitudes over the last frames, so with the rest frozen those can
be computed once per mixture and cached; the head is then a few matrix products a frame, and
trains many times faster than the whole net on this CPU (``models/noisenil_fb_ctx.train.log``:
6,000 steps of 32 three-second mixtures in 14.4 minutes on the 2 cores, 0.14 s a step;
``benchmarks/bench_train_step.py`` measures about 0.57 s a step of 8 through the whole net on one
thread).

    python -m models.bin_context cache RECIPE RING OUT --examples N [--first K]
    python -m models.bin_context train RECIPE CACHE --val CACHE [--minutes M]

``RECIPE`` is a ``models.train`` recipe whose ``net`` has ``bin_context`` and whose ``init_from`` is
the frozen net's checkpoint; its ``context_training`` key holds this module's settings (steps,
batch, learning rate, the weight of the ideal-gain term, ``from_bin``). ``RING`` is a labelled live
ring with the teacher's per-bin gains (``python -m models.distill live``). ``train`` writes
``models/checkpoints/<name>.pt``, a full checkpoint: ``python -m models.train RECIPE --export``
exports it.

The loss: the teacher term of the per-bin gains (``teacher_bins``: MSE of square-rooted gains
against DeepFilterNet3's per-bin gains) plus ``ideal`` times the same against the ideal per-bin
gains min(|clean| / |noisy|, 1). The ideal term keeps speech the teacher's gains would dull on
near-clean input. The head's outputs for the bins below ``from_bin`` are held at zero: there the
teacher's cuts (hum, rumble) cost SI-SDR against references that keep their low end, and PESQ-WB
does not count them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from . import fullband

REPO = Path(__file__).resolve().parent.parent
ARRAYS = ("logmag", "logits", "trunk", "teacher_bins", "ideal_bins")


def _net_from_recipe(recipe: dict, with_context: bool):
    """The recipe's net; without ``with_context`` the frozen net it starts from, with its
    ``init_from`` weights (gains only)."""
    import torch

    net_cfg = dict(recipe["net"])
    if not with_context:
        net_cfg["bin_context"] = 0
    net = fullband.FullBandNet(**{**net_cfg, "deep_filter": False})  # gains only: the deep filter switched off
    ck = torch.load(REPO / recipe["init_from"], weights_only=False, map_location="cpu")
    missing, unexpected = net.load_state_dict(ck["model"], strict=False)
    if unexpected or any(not k.startswith("ctx_") for k in missing):
        raise ValueError(f"{recipe['init_from']}: does not fit the recipe's net (missing {missing}, unexpected {unexpected})")
    return net.eval(), ck


def cache(recipe: dict, ring: Path, out: Path, examples: int, first: int = 0, batch: int = 16, log=print) -> Path:
    """Per mixture of the ring (slots ``first`` .. ``first + examples``): the low bins' log
    magnitude features, the frozen net's low-bin logits and trunk output, the teacher's per-bin
    gains and the ideal per-bin gains, float16 (T, ...) arrays in ``out``."""
    import torch

    net, _ = _net_from_recipe(recipe, with_context=False)
    n, off = net.bin_gains, net.bands + 2 * net.df_bins
    ring = Path(ring)
    noisy = np.load(ring / "noisy.npy", mmap_mode="r")
    clean = np.load(ring / "clean.npy", mmap_mode="r")
    teacher = np.load(ring / "teacher_bins.npy", mmap_mode="r")
    if teacher.shape[-1] < n:
        raise ValueError(f"{ring}: per-bin teacher gains on {teacher.shape[-1]} bins, the net's head has {n}")
    if first + examples > len(noisy):
        raise ValueError(f"{ring}: {len(noisy)} slots, asked for {first} .. {first + examples}")
    frames = teacher.shape[1]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    widths = {"logmag": n, "logits": n, "trunk": net.channels, "teacher_bins": n, "ideal_bins": n}
    arrays = {k: np.lib.format.open_memmap(out / f"{k}.npy", "w+", np.float16, (examples, frames, w)) for k, w in widths.items()}
    t0 = time.time()
    with torch.no_grad():
        for i in range(0, examples, batch):
            j = slice(first + i, first + min(i + batch, examples))
            spec = fullband.stft(torch.from_numpy(np.asarray(noisy[j], np.float32)))
            ref = fullband.stft(torch.from_numpy(np.asarray(clean[j], np.float32)))
            re, im = spec.real.contiguous(), spec.imag.contiguous()
            feat = net.features_sequence(re, im)
            h = net.hidden_sequence(feat)
            g = net.per_bin_gains(h, feat)[..., :n].clamp(1e-6, 1 - 1e-6)
            t = min(frames, g.shape[1])
            k = slice(i, i + g.shape[0])
            arrays["logmag"][k, :t] = feat[:, off : off + n].transpose(1, 2)[:, :t].numpy()
            arrays["logits"][k, :t] = torch.logit(g)[:, :t].numpy()
            arrays["trunk"][k, :t] = h.transpose(1, 2)[:, :t].numpy()
            arrays["teacher_bins"][k, :t] = np.asarray(teacher[j, :t, :n])
            arrays["ideal_bins"][k, :t] = (ref.abs()[..., :n] / (spec.abs()[..., :n] + 1e-8)).clamp(max=1.0)[:, :t].numpy()
            if i % (batch * 100) == 0:
                log(f"cache {i}/{examples} {time.time() - t0:.0f} s")
    for a in arrays.values():
        a.flush()
    (out / "cache.json").write_text(json.dumps({"ring": str(ring), "first": first, "examples": examples, "init_from": recipe["init_from"], "bins": n}, indent=1))
    log(f"cache: {examples} mixtures in {time.time() - t0:.0f} s -> {out}")
    return out


def _load(folder: Path, limit: int | None = None) -> list[np.ndarray]:
    return [np.load(Path(folder) / f"{k}.npy", mmap_mode="r")[:limit] for k in ARRAYS]


CRITERIA = ("mse", "l1")


def criterion(kind: str):
    """The gain loss on square-rooted gains: "mse" (RNNoise's, ``train._sqrt_mse``: under an uncertain
    target it predicts the mean, between a kept and a removed bin) or "l1" (the median: it has to
    pick a side)."""
    import torch

    from .train import _sqrt_mse

    if kind == "mse":
        return _sqrt_mse
    if kind == "l1":
        return lambda gains, target: torch.nn.functional.l1_loss((gains + 1e-6).sqrt(), (target + 1e-6).sqrt())
    raise ValueError(f"context_training loss {kind!r}: must be one of {', '.join(CRITERIA)}")


def head_loss(net, logmag, logits, trunk, teacher_bins, ideal_bins, ideal: float, from_bin: int, kind: str = "mse") -> tuple:
    """(total, teacher term, ideal term) of the context head on cached (B, T, ...) arrays."""
    import torch
    import torch.nn.functional as F

    loss = criterion(kind)
    window = F.pad(logmag.transpose(1, 2), (net.bin_context - 1, 0))
    z = net.context_logits(trunk.transpose(1, 2), window, logits)
    z = torch.cat([torch.zeros_like(z[..., :from_bin]), z[..., from_bin:]], -1)
    g = torch.sigmoid(logits + z)
    t, i = loss(g, teacher_bins), loss(g, ideal_bins)
    return t + ideal * i, t, i


def train(recipe: dict, cache_dir: Path, val_dir: Path, minutes: float | None = None, log=print) -> Path:
    """Train the context head of the recipe's net on a cache (the rest of the net frozen) and write
    the full checkpoint ``models/checkpoints/<name>.pt``."""
    import torch

    s = recipe["context_training"]
    torch.manual_seed(recipe.get("seed", 0))
    torch.set_num_threads(recipe.get("threads", 2))
    net, start = _net_from_recipe(recipe, with_context=True)
    params = [p for k, p in net.named_parameters() if k.startswith("ctx_")]
    for k, p in net.named_parameters():
        p.requires_grad_(k.startswith("ctx_"))
    from_bin, ideal, batch, steps = int(s.get("from_bin", 0)), float(s.get("ideal", 0.0)), int(s["batch_size"]), int(s["steps"])
    kind = s.get("loss", "mse")
    loss_of = criterion(kind)
    # the bins below from_bin: held at zero in training too, unless the recipe trains the head on
    # them and only zeroes them in the written weights ("train_from_bin": 0)
    train_from = int(s.get("train_from_bin", from_bin))
    opt = torch.optim.AdamW(params, lr=s["learning_rate"], weight_decay=s.get("weight_decay", 1e-4))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=s["learning_rate"], total_steps=steps, pct_start=s.get("warmup", 0.03))
    data = _load(cache_dir)
    val = [torch.from_numpy(np.asarray(a, np.float32)) for a in _load(val_dir, s.get("val_examples", 512))]
    rng = np.random.default_rng([recipe.get("seed", 0), 1])
    n, t0, run = len(data[0]), time.time(), 0.0

    def validate() -> str:
        with torch.no_grad():
            _, t, i = head_loss(net, *val, ideal=ideal, from_bin=from_bin, kind=kind)
        return f"val teacher {t.item():.5f} ideal {i.item():.5f}"

    with torch.no_grad():
        base_t, base_i = loss_of(torch.sigmoid(val[1]), val[3]).item(), loss_of(torch.sigmoid(val[1]), val[4]).item()
    log(f"context head: {sum(p.numel() for p in params):,} parameters, {n} cached mixtures, {kind} loss; without it: val teacher {base_t:.5f} ideal {base_i:.5f}")
    step = 0
    for step in range(1, steps + 1):
        idx = np.sort(rng.choice(n, batch, replace=False))
        arrays = [torch.from_numpy(np.asarray(a[idx], np.float32)) for a in data]
        loss, _, _ = head_loss(net, *arrays, ideal=ideal, from_bin=train_from, kind=kind)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, s.get("clip_grad", 3.0))
        opt.step()
        sched.step()
        run = 0.98 * run + 0.02 * loss.item()
        if step % s.get("log_every", 500) == 0 or step == steps:
            log(f"step {step} {time.time() - t0:.0f} s train {run / (1 - 0.98**step):.5f} {validate()}")
        if minutes and time.time() - t0 > 60 * minutes:
            log(f"stopped at step {step}: --minutes {minutes}")
            break
    with torch.no_grad():  # the bins below from_bin: the head's output held at zero in the weights too
        net.ctx_out.weight[:from_bin] = 0.0
        net.ctx_out.bias[:from_bin] = 0.0
    path = REPO / "models" / "checkpoints" / f"{recipe['name']}.pt"
    payload = {
        "model": net.state_dict(),
        "step": start["step"],
        "context_steps": step,
        "best_dev": start.get("best_dev"),
        "config": recipe,
        "seconds": start.get("seconds", 0.0),  # the frozen net's training
        "context_seconds": time.time() - t0,
    }
    if start.get("averaged_from"):
        payload["averaged_from"] = start["averaged_from"]
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    log(f"wrote {path} ({step} steps, {(time.time() - t0) / 60:.1f} min)")
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.bin_context", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cache", help="cache the frozen net's outputs and the targets for a ring's mixtures")
    c.add_argument("recipe", type=Path)
    c.add_argument("ring", type=Path)
    c.add_argument("out", type=Path)
    c.add_argument("--examples", type=int, required=True)
    c.add_argument("--first", type=int, default=0, help="the first ring slot")
    t = sub.add_parser("train", help="train the context head on a cache and write the full checkpoint")
    t.add_argument("recipe", type=Path)
    t.add_argument("cache", type=Path)
    t.add_argument("--val", type=Path, required=True, help="a cache of other mixtures for the validation losses")
    t.add_argument("--minutes", type=float, help="stop after this many minutes")
    args = ap.parse_args(argv)
    try:
        recipe = json.loads(args.recipe.read_text())
        if not recipe.get("net", {}).get("bin_context"):
            raise ValueError(f"{args.recipe}: the recipe's net has no bin_context")
        if args.cmd == "cache":
            cache(recipe, args.ring, args.out, args.examples, args.first)
        else:
            if "context_training" not in recipe:
                raise ValueError(f"{args.recipe}: no 'context_training' settings")
            train(recipe, args.cache, args.val, args.minutes)
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
