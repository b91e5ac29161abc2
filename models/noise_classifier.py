"""Noise classifier: which noise is in a recording, even while someone talks.

    python -m models.noise_classifier train  [models/configs/noise_classifier.json]
    python -m models.noise_classifier export [config]     # ONNX + manifest + golden pair
    python -m models.noise_classifier evaluate [config]   # accuracy, macro-F1, confusion matrix -> model card

Input: 1 s of 16 kHz audio as a (64 mel x 98 frame) log-mel patch (``plugin_host.features``, the
same code the engine runs). Output: probabilities over the corpus labels plus ``quiet``.
Data (seeded, balanced over classes): 1 s of a labelled noise alone or under speech at -5..20 dB
SNR, at random levels; ``hum_hiss`` is synthesised (mains hum 50/60 Hz with harmonics, buzz,
white/pink/brown hiss), ``babble`` is topped up with synthetic crowds of 4-8 training talkers,
``quiet`` is speech alone or near-silent room tone. Training uses only sources the corpus
licence rule allows for shipped models; the dev set uses every dev file (an experiment).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import soxr
import torch
from torch import nn

from plugin_host.features import log_mel

from . import data

HERE = Path(__file__).resolve().parent
CACHE = HERE.parent / "build" / "cache"
DEFAULT_CONFIG = HERE / "configs" / "noise_classifier.json"


def load_config(path=None) -> dict:
    return json.loads(Path(path or DEFAULT_CONFIG).read_text())


class NoiseCNN(nn.Module):
    def __init__(self, n_mels: int, n_classes: int, channels=(24, 48, 96, 128)):
        super().__init__()
        layers, c_in = [nn.BatchNorm2d(1)], 1
        for i, c in enumerate(channels):
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
            if i < len(channels) - 1:
                layers.append(nn.MaxPool2d(2))
            c_in = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(2 * c_in, n_classes))

    def logits(self, x):
        h = self.features(x)
        h = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
        return self.head(h)

    def forward(self, x):
        return torch.softmax(self.logits(x), dim=1)


# data ------------------------------------------------------------------------------------------------
def _segment(x: np.ndarray, n: int, rng) -> np.ndarray:
    if len(x) < n:
        x = np.tile(x, int(np.ceil(n / max(len(x), 1))) + 1)
    start = int(rng.integers(0, len(x) - n + 1))
    return x[start : start + n]


def _db(x):
    return 10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-12)


def build_set(cfg: dict, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(features [N, 1, n_mels, frames], labels [N]) for 'train' or 'dev'; cached under build/cache."""
    count = cfg[f"{split}_examples"]
    cache = CACHE / f"noise_classifier_{split}_{cfg['seed']}_{count}_{cfg['n_mels']}_v2.npz"
    if cache.exists():
        z = np.load(cache)
        return z["x"], z["y"]
    rate, labels = cfg["sample_rate"], cfg["labels"]
    rows = data.read_manifest()
    ship_only = split == "train"
    noise_rows = {lab: data.select(rows, "noise", split, ship_only, labels=[lab]) for lab in labels}
    # construction has one file, all in train: its first 70 % trains, its last 30 % is the dev example
    construction = data.select(rows, "noise", "train", True, labels=["construction"])
    speech_rows = data.select(rows, "speech", split, ship_only)
    speech_rows = [r for r in speech_rows if not r.licence.startswith("CC-BY-SA")]  # keep ShareAlike out of weights
    rng = np.random.default_rng(cfg["seed"] + (0 if split == "train" else 1000))
    speech_pick = [speech_rows[i] for i in rng.permutation(len(speech_rows))[:400]]
    speech = [data.load(r.path, rate) for r in speech_pick]
    n = cfg["n_fft"] + cfg["hop_length"] * (cfg["patch_frames"] - 1)
    n48 = int(np.ceil(n * 48000 / rate)) + 64

    def as_corpus(x48: np.ndarray) -> np.ndarray:
        """Synthesise at 48 kHz and resample like every corpus file, so no class is told apart by
        the resampler's band edge (the first model learned exactly that shortcut)."""
        return soxr.resample(x48, 48000, rate)[:n].astype(np.float32)

    xs, ys = [], []
    t0 = time.time()
    for i in range(count):
        k = i % len(labels)
        lab = labels[k]
        if lab == "hum_hiss":
            noise = as_corpus(data.hum_hiss(n48, 48000, rng))
        elif lab == "quiet":
            noise = as_corpus(data.hiss(n48, 48000, rng)) * 10 ** (rng.uniform(-95, -65) / 20)
        elif lab == "construction":
            full = data.load(construction[0].path, rate)
            cut = int(0.7 * len(full))
            noise = _segment(full[:cut] if split == "train" else full[cut:], n, rng)
        elif lab == "babble" and (not noise_rows[lab] or rng.random() < 0.5):
            noise = data.babble(n, speech, rng)
        else:
            r = noise_rows[lab][int(rng.integers(len(noise_rows[lab])))]
            noise = _segment(data.load(r.path, rate), n, rng)
        noise = noise.astype(np.float32)
        if lab != "quiet":
            noise = noise / (np.sqrt(np.mean(noise**2)) + 1e-9) * 10 ** (rng.uniform(-50, -20) / 20)
        if rng.random() < cfg["p_speech"] or lab == "quiet" and rng.random() < 0.7:
            s = _segment(speech[int(rng.integers(len(speech)))], n, rng)
            s = s / (np.sqrt(np.mean(s**2)) + 1e-9)
            if lab == "quiet":
                s = s * 10 ** (rng.uniform(-40, -15) / 20)
                noise = noise * min(1.0, 10 ** ((_db(s) - rng.uniform(35, 60) - _db(noise)) / 20))
            else:
                snr = rng.uniform(*cfg["snr_db"])
                s = s * 10 ** ((_db(noise) + snr) / 20)
            mix = s + noise
        else:
            mix = noise
        mix = mix * min(1.0, 0.95 / (np.max(np.abs(mix)) + 1e-9))
        xs.append(log_mel(mix, rate, cfg["n_fft"], cfg["hop_length"], cfg["n_mels"]).T[None])
        ys.append(k)
    x, y = np.asarray(xs, np.float32), np.asarray(ys, np.int64)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, x=x, y=y)
    print(f"built {split}: {x.shape} in {time.time() - t0:.0f} s", flush=True)
    return x, y


# training --------------------------------------------------------------------------------------------
def train(cfg: dict) -> Path:
    torch.manual_seed(cfg["seed"])
    np.random.seed(cfg["seed"])
    torch.set_num_threads(2)
    xtr, ytr = build_set(cfg, "train")
    xdv, ydv = build_set(cfg, "dev")
    model = NoiseCNN(cfg["n_mels"], len(cfg["labels"]), cfg["channels"])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["learning_rate"], weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["learning_rate"], total_steps=cfg["epochs"] * int(np.ceil(len(xtr) / cfg["batch_size"])))
    ckpt = CACHE / f"{cfg['name']}.pt"
    log_path = HERE / f"{cfg['name']}.train.log"
    start_epoch = 0
    if ckpt.exists():  # resume
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start_epoch = state["epoch"] + 1
    g = torch.Generator().manual_seed(cfg["seed"])
    xtr_t, ytr_t = torch.from_numpy(xtr), torch.from_numpy(ytr)
    with open(log_path, "a") as log:
        for epoch in range(start_epoch, cfg["epochs"]):
            model.train()
            t0, total = time.time(), 0.0
            perm = torch.randperm(len(xtr), generator=g)
            for b in range(0, len(perm), cfg["batch_size"]):
                idx = perm[b : b + cfg["batch_size"]]
                xb = xtr_t[idx].clone()
                # SpecAugment-style masks and level shifts (the classifier must not key on loudness alone)
                for j in range(len(xb)):
                    f0 = int(torch.randint(0, cfg["n_mels"] - 8, (1,), generator=g))
                    t0m = int(torch.randint(0, cfg["patch_frames"] - 12, (1,), generator=g))
                    xb[j, :, f0 : f0 + int(torch.randint(0, 8, (1,), generator=g))] = xb[j].min()
                    xb[j, :, :, t0m : t0m + int(torch.randint(0, 12, (1,), generator=g))] = xb[j].min()
                loss = nn.functional.cross_entropy(model.logits(xb), ytr_t[idx], label_smoothing=0.05)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item() * len(idx)
            acc, f1, _ = scores(model, xdv, ydv, len(cfg["labels"]))
            line = f"epoch {epoch + 1:2d}/{cfg['epochs']} loss {total / len(xtr):.4f} dev acc {acc:.3f} macro-F1 {f1:.3f} ({time.time() - t0:.0f} s)"
            print(line, flush=True)
            log.write(line + "\n")
            log.flush()
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "epoch": epoch, "config": cfg}, ckpt)
    return ckpt


def predict(model, x: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(x[i : i + 256])).numpy() for i in range(0, len(x), 256)])


def scores(model, x, y, n_classes):
    pred = predict(model, x).argmax(axis=1)
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (y, pred), 1)
    tp = np.diag(cm).astype(float)
    precision = tp / np.maximum(cm.sum(axis=0), 1)
    recall = tp / np.maximum(cm.sum(axis=1), 1)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-9), 0.0)
    return float(tp.sum() / cm.sum()), float(f1.mean()), cm


def _trained(cfg):
    ckpt = CACHE / f"{cfg['name']}.pt"
    if not ckpt.exists():
        raise SystemExit(f"no checkpoint at {ckpt}: run `python -m models.noise_classifier train` first")
    model = NoiseCNN(cfg["n_mels"], len(cfg["labels"]), cfg["channels"])
    model.load_state_dict(torch.load(ckpt, weights_only=False)["model"])
    return model.eval()


def export(cfg: dict) -> Path:
    from .export import export_streaming

    model = _trained(cfg)
    xdv, _ = build_set(cfg, "dev")
    frames = xdv[:48, 0]  # [K, n_mels, frames] -> fed as [1, 1, n_mels, frames]
    fields = {
        "kind": "classifier",
        "adapter": "classifier",
        "display_name": "Noise classifier (log-mel CNN)",
        "description": "Names the background noise in 1 s of audio, also under speech: " + ", ".join(cfg["labels"]) + ".",
        "sample_rate": cfg["sample_rate"],
        "streaming": True,
        "stft": {"n_fft": cfg["n_fft"], "hop_length": cfg["hop_length"], "window": "hann"},
        "input": {"name": "log_mel", "shape": [1, 1, cfg["n_mels"], cfg["patch_frames"]], "feature": "power"},
        "output": {"name": "probabilities", "shape": [1, len(cfg["labels"])], "kind": "mask"},
        "states": [],
        "labels": cfg["labels"],
        "params": {"n_mels": cfg["n_mels"], "patch_frames": cfg["patch_frames"], "step_seconds": cfg["step_seconds"]},
        "licence": "GPL-3.0-or-later",
        "training": {
            "config": "models/configs/noise_classifier.json",
            "data": "../shared/data train split, shippable licences only (no CC-BY-NC, no unstated, no CC-BY-SA speech); "
            "synthetic hum/hiss and synthetic babble from training speech; see models/noise_classifier.md",
            "log": "models/noise_classifier.train.log",
        },
    }

    class Wrapped(nn.Module):  # export takes [1, n_mels, frames] frames; the graph sees [1, 1, n_mels, frames]
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m(x)

    path = export_streaming(Wrapped(model).eval(), cfg["name"], fields, frames[:, None], atol=1e-4)
    return path


def evaluate(cfg: dict) -> str:
    model = _trained(cfg)
    xdv, ydv = build_set(cfg, "dev")
    acc, f1, cm = scores(model, xdv, ydv, len(cfg["labels"]))
    labels = cfg["labels"]
    lines = [
        f"Dev set: {len(ydv)} one-second examples ({len(ydv) // len(labels)} per class), every dev noise file, dev speech, "
        f"speech present in {cfg['p_speech']:.0%} at {cfg['snr_db'][0]}..{cfg['snr_db'][1]} dB SNR.",
        "",
        f"**Accuracy {acc:.3f}, macro-F1 {f1:.3f}**",
        "",
        "Confusion matrix (rows: true class, columns: predicted):",
        "",
        "| true \\ predicted | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for i, lab in enumerate(labels):
        lines.append(f"| **{lab}** | " + " | ".join(str(v) for v in cm[i]) + " |")
    table = "\n".join(lines)
    (HERE / f"{cfg['name']}_eval.md").write_text(table + "\n")
    manifest = HERE / f"{cfg['name']}.json"
    if manifest.exists():
        m = json.loads(manifest.read_text())
        m["metrics"] = {"accuracy": round(acc, 4), "macro_f1": round(f1, 4), "dev_examples": int(len(ydv)), "command": "python -m models.noise_classifier evaluate"}
        manifest.write_text(json.dumps(m, indent=2) + "\n")
    return table


if __name__ == "__main__":
    action = sys.argv[1] if len(sys.argv) > 1 else "train"
    config = load_config(sys.argv[2] if len(sys.argv) > 2 else None)
    if action == "train":
        train(config)
    elif action == "export":
        print(f"exported {export(config)}")
    elif action == "evaluate":
        print(evaluate(config))
    else:
        raise SystemExit("usage: python -m models.noise_classifier train|export|evaluate [CONFIG]")
