"""Train one seed-zoo model: ``python -m models.zoo.train models/configs/zoo_ddae.json``.

Draws random 2 s crops (with a random gain) from the fixed 16 kHz pair sets built by
``python -m models.zoo.data`` (``data`` in the recipe, relative to ``$NOISENIL_ZOO_DATA`` or
/tmp/noisenil-zoo), scores SI-SDR improvement on fixed dev-split pairs every ``dev_every`` steps
and keeps the best weights in ``models/checkpoints/zoo_<name>.pt``. The learning rate follows a
cosine over ``minutes`` of wall-clock time (2 CPU cores here, or a GPU when lent), so a recipe
says how long it trains; the log (``models/zoo/logs/<name>.train.log``) records the steps reached.
The FCN's feature-loss network is trained first, for ``lossnet_minutes``, then frozen.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .. import data as corpus
from . import nets

MODELS_DIR = Path(__file__).resolve().parent.parent
CHECKPOINTS = MODELS_DIR / "checkpoints"
LOGS = Path(__file__).resolve().parent / "logs"


def data_dir() -> Path:
    return Path(os.environ.get("NOISENIL_ZOO_DATA", "/tmp/noisenil-zoo"))


def load_pairs(names) -> np.ndarray:
    sets = [np.load(data_dir() / n, mmap_mode="r") for n in names]
    return np.concatenate([np.asarray(s) for s in sets]) if len(sets) > 1 else np.asarray(sets[0])


def si_sdr_db(est: np.ndarray, ref: np.ndarray) -> float:
    alpha = np.dot(est, ref) / (np.dot(ref, ref) + 1e-9)
    target = alpha * ref
    return float(10 * np.log10((np.sum(target**2) + 1e-9) / (np.sum((est - target) ** 2) + 1e-9)))


def dev_gain_db(net, dev: np.ndarray) -> float:
    """Mean SI-SDR improvement (dB) of the whole-signal enhancer on the dev pairs."""
    net.eval()
    gains = []
    delay = nets.N_FFT - nets.HOP
    with torch.no_grad():
        torch.manual_seed(0)
        for pair in dev:
            noisy, clean = pair[0].astype(np.float32), pair[1].astype(np.float32)
            if np.sqrt(np.mean(clean**2)) < 1e-4:  # noise-only pairs (-120 dBFS "speech"): SI-SDR means nothing
                continue
            y = net.enhance(torch.from_numpy(noisy)[None])[0].numpy()
            n = min(len(y), len(clean) + delay) - delay
            gains.append(si_sdr_db(y[delay : delay + n], clean[:n]) - si_sdr_db(noisy[:n], clean[:n]))
    net.train()
    return float(np.mean(gains))


class Batches:
    """Random crops with a random gain (+-10 dB), from a seeded generator."""

    def __init__(self, pairs: np.ndarray, batch: int, samples: int, seed: int):
        self.pairs, self.batch, self.samples = pairs, batch, samples
        self.rng = np.random.default_rng(seed)

    def __call__(self):
        idx = self.rng.integers(0, len(self.pairs), self.batch)
        n = self.pairs.shape[-1]
        starts = self.rng.integers(0, n - self.samples + 1, self.batch)
        x = np.stack([self.pairs[i, :, s : s + self.samples] for i, s in zip(idx, starts)]).astype(np.float32)
        x *= (10.0 ** (self.rng.uniform(-10, 10, self.batch) / 20.0)).astype(np.float32)[:, None, None]
        x = np.clip(x, -1.0, 1.0)
        return torch.from_numpy(x[:, 0].copy()), torch.from_numpy(x[:, 1].copy())


def cosine_lr(peak: float, low: float, p: float) -> float:
    return low + 0.5 * (peak - low) * (1 + math.cos(math.pi * min(1.0, p)))


# ------------------------------------------------------------------ the FCN's feature-loss network
def classification_clips(seconds: float, seed: int):
    """Labelled 16 kHz clips for the loss network: every shippable training noise label, and speech."""
    rows = corpus.read_manifest()
    noise = corpus.select(rows, "noise", "train", ship_only=True)
    speech = corpus.select(rows, "speech", "train", ship_only=True)
    labels = sorted({r.label for r in noise}) + ["speech"]
    by_label = {lab: [r for r in noise if r.label == lab] for lab in labels[:-1]}
    by_label["speech"] = speech[:: max(1, len(speech) // 300)]
    rng = np.random.default_rng(seed)
    n = int(seconds * nets.SAMPLE_RATE)

    def draw(batch):
        xs, ys = [], []
        for _ in range(batch):
            k = int(rng.integers(len(labels)))
            row = by_label[labels[k]][int(rng.integers(len(by_label[labels[k]])))]
            x = corpus.load(row.path, nets.SAMPLE_RATE)
            if len(x) < n:
                x = np.pad(x, (0, n - len(x)))
            s = int(rng.integers(0, len(x) - n + 1))
            clip = x[s : s + n] * 10.0 ** (rng.uniform(-20, 10) / 20.0)
            xs.append(np.clip(clip, -1, 1))
            ys.append(k)
        return torch.from_numpy(np.asarray(xs, np.float32)), torch.tensor(ys)

    return labels, draw


def train_lossnet(cfg: dict, log) -> tuple[nets.LossNet, list[str]]:
    path = CHECKPOINTS / f"zoo_{cfg['name']}_lossnet.pt"
    labels, draw = classification_clips(1.0, cfg.get("seed", 0) + 1)
    net = nets.LossNet(len(labels))
    if path.exists():
        net.load_state_dict(torch.load(path, weights_only=False)["model"])
        log(f"loss network loaded from {path.name}")
        return net.eval(), labels
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
    t0, step, acc = time.time(), 0, []
    minutes = cfg.get("lossnet_minutes", 3.0)
    while time.time() - t0 < minutes * 60:
        x, y = draw(32)
        for g in opt.param_groups:
            g["lr"] = cosine_lr(2e-3, 1e-4, (time.time() - t0) / (minutes * 60))
        logits = net(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        acc.append(float((logits.argmax(1) == y).float().mean()))
        step += 1
        if step % 100 == 0:
            log(f"lossnet step {step:5d}  loss {float(loss):.3f}  accuracy (last 100) {np.mean(acc[-100:]):.2f}")
    torch.save({"model": net.state_dict(), "labels": labels, "steps": step}, path)
    log(f"loss network: {len(labels)} classes, {step} steps, training accuracy {np.mean(acc[-200:]):.2f}")
    return net.eval(), labels


# ------------------------------------------------------------------------------------- training
def build(cfg: dict) -> torch.nn.Module:
    arch = cfg["arch"]
    if arch not in nets.ARCHITECTURES:
        raise ValueError(f"arch {arch!r} not in {sorted(nets.ARCHITECTURES)}")
    net = nets.ARCHITECTURES[arch](**cfg.get("net", {}))
    if "aux_mask_loss" in cfg:
        net.aux_weight = float(cfg["aux_mask_loss"])
    if "sdw_loss" in cfg:
        net.sdw_weight = float(cfg["sdw_loss"])
        net.sdw_alpha = float(cfg.get("sdw_alpha", 0.7))
    return net


def train(cfg: dict, log=print, minutes: float | None = None, recipe: str = "") -> Path:
    torch.set_num_threads(int(cfg.get("threads", 2)))
    torch.manual_seed(cfg.get("seed", 0))
    CHECKPOINTS.mkdir(exist_ok=True)
    best_path = CHECKPOINTS / f"zoo_{cfg['name']}.pt"
    net = build(cfg)
    n_params = sum(p.numel() for p in net.parameters())
    log(f"{cfg['name']}: {cfg['arch']}, {n_params} parameters")
    if cfg.get("init_from"):  # a further sitting: start from a kept checkpoint (its dev score is the bar)
        ck = torch.load(MODELS_DIR.parent / cfg["init_from"], weights_only=False, map_location="cpu")
        net.load_state_dict(ck["model"])
        log(f"initialised from {cfg['init_from']} (step {ck['step']}, dev {ck['dev_si_sdr_gain_db']:+.2f} dB)")
        before = {"steps": ck.get("total_steps", ck["step"]), "minutes": ck.get("total_minutes", ck["config"]["minutes"]), "recipes": ck.get("recipes", [f"models/configs/zoo_{ck['config']['name']}.json"])}
    else:
        before = {"steps": 0, "minutes": 0.0, "recipes": []}
    feature = None
    if cfg["arch"] == "fcn_dfl":
        lossnet, _ = train_lossnet(cfg, log)
        for p in lossnet.parameters():
            p.requires_grad_(False)
        feature = lossnet
    pairs = load_pairs(cfg["data"])
    dev = np.load(data_dir() / cfg.get("dev", "dev.npy"))
    batches = Batches(pairs, cfg["batch_size"], int(cfg.get("seconds", 2.0) * nets.SAMPLE_RATE), cfg.get("seed", 0))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg["learning_rate"], weight_decay=cfg.get("weight_decay", 1e-4))
    minutes = minutes or cfg["minutes"]
    weights = None
    t0, step, best, acc, mark = time.time(), 0, -float("inf"), [], time.time()
    if cfg.get("init_from"):
        best = dev_gain_db(net, dev)
        log(f"dev   {step:6d}  si-sdr improvement {best:+.2f} dB (start)")
    log(f"data: {len(pairs)} pairs of {pairs.shape[-1] / nets.SAMPLE_RATE:.1f} s; dev {len(dev)} pairs; {minutes:g} min")
    while True:
        p = (time.time() - t0) / (minutes * 60)
        lr = cfg["learning_rate"] * min(1.0, (step + 1) / cfg.get("warmup_steps", 50))
        lr = min(lr, cosine_lr(cfg["learning_rate"], cfg.get("lr_min", cfg["learning_rate"] / 20), p))
        for g in opt.param_groups:
            g["lr"] = lr
        noisy, clean = batches()
        if feature is not None:
            if weights is None:  # each layer counts alike: 1 / its mean activation on clean speech
                with torch.no_grad():
                    weights = [1.0 / (float(a.abs().mean()) + 1e-6) for a in feature.features(clean)]
            est = net(noisy)
            loss = nets.feature_loss(feature, weights, est, clean) + cfg.get("wave_l1", 0.0) * torch.nn.functional.l1_loss(est, clean) / (clean.abs().mean() + 1e-5)
        else:
            loss = net.loss(noisy, clean)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.get("clip_grad", 5.0))
        if torch.isfinite(norm):
            opt.step()
        step += 1
        acc.append(float(loss.detach()))
        done = p >= 1.0
        if step % cfg.get("log_every", 50) == 0:
            log(f"step {step:6d}  loss {np.mean(acc):.4f}  lr {lr:.2e}  {len(acc) / (time.time() - mark):.2f} steps/s  {(time.time() - t0) / 60:.1f} min")
            acc, mark = [], time.time()
        if step % cfg.get("dev_every", 200) == 0 or done:
            gain = dev_gain_db(net, dev)
            note = ""
            if gain > best:
                best, note = gain, "  (best)"
                torch.save(
                    {
                        "model": net.state_dict(), "config": cfg, "step": step, "dev_si_sdr_gain_db": gain,
                        "total_steps": before["steps"] + step, "total_minutes": before["minutes"] + minutes, "recipes": before["recipes"] + [recipe],
                    },
                    best_path,
                )
            log(f"dev   {step:6d}  si-sdr improvement {gain:+.2f} dB{note}")
        if done:
            break
    log(f"done: {step} steps in {(time.time() - t0) / 60:.1f} min; best dev si-sdr improvement {best:+.2f} dB")
    return best_path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.zoo.train", description=__doc__.splitlines()[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("--minutes", type=float, help="override the recipe's training time")
    a = ap.parse_args(argv)
    cfg = json.loads(a.config.read_text())
    LOGS.mkdir(exist_ok=True)
    log_path = LOGS / f"{cfg['name']}.train.log"

    def log(line):
        print(line, flush=True)
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    log(f"# {time.strftime('%Y-%m-%d %H:%M')} {a.config} torch {torch.__version__}, {cfg.get('threads', 2)} CPU threads")
    train(cfg, log, a.minutes, recipe=str(a.config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
