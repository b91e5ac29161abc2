"""Train a denoiser from a recipe: ``python -m models.train models/configs/noisenil_fb.json``.

- Mixtures come from ``models.mixing.Mixer`` (seeded per example index), built in a worker process.
- Checkpoints go to ``models/checkpoints/<name>.pt`` every ``checkpoint_minutes`` and at the end;
  a run started again with the same config resumes from there (same examples, same schedule), so a
  recipe can be spread over several sessions (``--minutes`` bounds one sitting).
- ``models/<name>.train.log`` gets one line per ``log_every`` steps and a dev line per ``dev_every``
  (the dev loss on fixed dev-split mixtures picks ``models/checkpoints/<name>.best.pt``).
- ``--export`` writes the ONNX model, manifest and golden pair from the best checkpoint.
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

from . import distill, fullband
from .mixing import MixConfig, Mixer, warm

MODELS_DIR = Path(__file__).resolve().parent
CHECKPOINTS = MODELS_DIR / "checkpoints"


class MixtureSet(torch.utils.data.Dataset):
    def __init__(self, config: MixConfig, length: int):
        self.config, self.length, self.mixer = config, length, None

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        if self.mixer is None:
            self.mixer = Mixer(self.config)
        ex = self.mixer.example(index)
        return torch.from_numpy(ex["noisy"]), torch.from_numpy(ex["clean"])


class FromStep(torch.utils.data.Sampler):
    """Example indices step * batch onwards, in order: a resumed run continues where it stopped."""

    def __init__(self, start: int, stop: int):
        self.start, self.stop = start, stop

    def __iter__(self):
        return iter(range(self.start, self.stop))

    def __len__(self):
        return self.stop - self.start


class TeacherMixtures(torch.utils.data.Dataset):
    """Teacher-labelled examples (noisy, clean, teacher gains) as tensors, from a built cache
    (``distill.CachedSet``, recipe key ``cache``) or a ring labelled while the run trains
    (``distill.LiveSet``, recipe key ``live``)."""

    def __init__(self, labelled, length: int):
        self.labelled, self.length = labelled, length

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        return tuple(torch.from_numpy(a) for a in self.labelled[index])


class RecipeError(RuntimeError):
    """A recipe that cannot run as it stands (its data is missing or was made for another recipe);
    the message names the folder or file and what to do."""


def live_folder(cfg: dict, log=print, poll_seconds: float = 5.0) -> Path:
    """The recipe's live ring, once it holds ``min_ready`` labelled mixtures."""
    c = cfg["live"]
    folder = Path(os.environ.get("NOISENIL_FB_LIVE", c["dir"]))
    hint = f"start the labelling first: python -m models.distill live {folder} --config RECIPE --workers N"
    if not (folder / "live.json").is_file():
        raise RecipeError(f"{folder}: no live teacher ring; {hint}")
    info = json.loads((folder / "live.json").read_text())
    if info["mix"].get("seed") != c["seed"]:
        raise RecipeError(f"{folder}: labels mixtures of seed {info['mix'].get('seed')}; the recipe wants seed {c['seed']}")
    bins = distill.live_bins(cfg)
    if bins and info.get("teacher_bins", 0) < bins:
        raise RecipeError(f"{folder}: the ring labels per-bin gains on {info.get('teacher_bins', 0)} bins; the loss 'teacher_bins' wants {bins}; start the ring again with this recipe: {hint}")
    ring, t0 = distill.LiveSet(folder), time.time()
    while ring.ready() < c.get("min_ready", 1):
        if time.time() - t0 > c.get("wait_minutes", 10) * 60:
            raise RecipeError(f"{folder}: {ring.ready()} mixtures ready after {c.get('wait_minutes', 10)} min, {c.get('min_ready', 1)} wanted; is the labelling running? {hint}")
        time.sleep(poll_seconds)
    log(f"live teacher ring {folder}: {ring.ready()} mixtures ready after {time.time() - t0:.0f} s of waiting")
    return folder


def cache_folder(cfg: dict, bins: bool = False) -> Path:
    """The recipe's teacher cache, built beforehand (it is data, not part of the repository);
    ``bins``: with the teacher's per-bin gains added (``python -m models.distill bins``)."""
    c = cfg["cache"]
    folder = Path(os.environ.get("NOISENIL_FB_CACHE", c["dir"]))
    if not (folder / "cache.json").is_file():
        raise RecipeError(
            f"{folder}: teacher cache not built; run: python -m models.distill build {folder} --examples {c['examples']} --seed {c['seed']}"
        )
    built = json.loads((folder / "cache.json").read_text())
    if built["examples"] != c["examples"] or built["mix"].get("seed") != c["seed"]:
        raise RecipeError(f"{folder}: built with {built['examples']} examples, seed {built['mix'].get('seed')}; the recipe wants {c['examples']}, seed {c['seed']}")
    if bins and not built.get("teacher_bins"):
        raise RecipeError(f"{folder}: no per-bin teacher gains for the loss 'teacher_bins'; run: python -m models.distill bins {folder}")
    return folder


def build_net(cfg: dict) -> fullband.FullBandNet:
    if cfg.get("model", "fullband") != "fullband":
        raise ValueError(f"model {cfg.get('model')!r} not in ['fullband']")
    return fullband.FullBandNet(**cfg.get("net", {}))


def _sqrt_mse(gains: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """RNNoise's gain loss: MSE between square-rooted gains."""
    return torch.nn.functional.mse_loss((gains + 1e-6).sqrt(), (target + 1e-6).sqrt())


def _energy_weighted_sqrt_mse(gains: torch.Tensor, target: torch.Tensor, band_power: torch.Tensor, exponent: float) -> torch.Tensor:
    """``_sqrt_mse`` with each (frame, band) weighted by the noisy band power raised to
    ``exponent`` (a mean of 1 per example, so the level does not count): an error where the input
    is loud (speech to keep, noise to remove; mostly the low bands) counts more than the same error
    in a near-empty band. At 0 it is ``_sqrt_mse``."""
    if not exponent:
        return _sqrt_mse(gains, target)
    w = (band_power.detach() + 1e-10).pow(exponent)
    w = w / w.mean(dim=(1, 2), keepdim=True)
    return (w * ((gains + 1e-6).sqrt() - (target + 1e-6).sqrt()) ** 2).mean()


def losses(net, noisy, clean, weights: dict, teacher: torch.Tensor | None = None, teacher_bins: torch.Tensor | None = None) -> dict:
    """The recipe's loss terms and their weighted ``total``. ``weights`` maps term -> weight, plus
    ``teacher_energy_exponent`` (not a term): weight the teacher term by the noisy band power to
    that power (``_energy_weighted_sqrt_mse``; 0 or absent: unweighted). ``teacher_bins``: the
    teacher's per-bin gains on the lowest bins (``distill.bin_gains``), the target of the term of
    that name for the per-bin gains of a net with ``bin_gains``."""
    n_spec, c_spec = fullband.stft(noisy), fullband.stft(clean)
    n_re, n_im = n_spec.real.contiguous(), n_spec.imag.contiguous()
    c_re, c_im = c_spec.real.contiguous(), c_spec.imag.contiguous()
    o_re, o_im, gains, applied = net.forward_sequence(n_re, n_im, with_bins=True)
    # level-independent loss: every example counts alike, whatever its loudness (the model sees the
    # real level, as it will in the engine)
    scale = 1.0 / (noisy.pow(2).mean(-1).sqrt() + 1e-5)[:, None, None]
    mag, cplx = fullband.compressed_loss(o_re * scale, o_im * scale, c_re * scale, c_im * scale)
    target = fullband.band_gain_target(n_re, n_im, c_re, c_im, net)
    parts = {"mag": mag, "cplx": cplx, "gain": _sqrt_mse(gains, target)}
    if weights.get("sisdr"):
        # waveform term: minus the SI-SDR (dB) of the resynthesised output, the evaluation's own
        # measure; it charges speech distortion and residual noise alike (the spectral terms and
        # the gain term were seen to improve while the dev pairs' SI-SDR and PESQ got worse)
        t = n_spec.shape[1]
        est = fullband.istft(torch.complex(o_re, o_im))[:, fullband.HOP : t * fullband.HOP]
        parts["sisdr"] = -si_sdr_torch(est, clean[:, : t * fullband.HOP - fullband.HOP]).mean()
    if teacher is not None and weights.get("teacher"):
        # distillation: DeepFilterNet3's output projected onto the same ERB bands (models/distill.py)
        band_power = (n_re**2 + n_im**2) @ net.erb_avg
        parts["teacher"] = _energy_weighted_sqrt_mse(gains, teacher[:, : gains.shape[1]], band_power, weights.get("teacher_energy_exponent", 0.0))
    if teacher_bins is not None and weights.get("teacher_bins"):
        # distillation below the band gains: DeepFilterNet3's output magnitude over the input's in
        # each of the lowest bins (the structure between harmonics that 2-bin bands average away)
        k = min(teacher_bins.shape[-1], net.bin_gains or teacher_bins.shape[-1])
        t = min(applied.shape[1], teacher_bins.shape[1])
        parts["teacher_bins"] = _sqrt_mse(applied[:, :t, :k], teacher_bins[:, :t, :k])
    parts["total"] = sum(weights.get(k, 1.0) * v for k, v in parts.items())
    return parts


def si_sdr_torch(est: torch.Tensor, ref: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-example SI-SDR (dB) of (B, N) waveforms; silent references count as 0 dB."""
    alpha = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + eps)
    target = alpha * ref
    ratio = (target.pow(2).sum(-1) + eps) / ((est - target).pow(2).sum(-1) + eps)
    value = 10 * torch.log10(ratio)
    return torch.where(ref.abs().sum(-1) > 0, value, torch.zeros_like(value))


def si_sdr_db(est: np.ndarray, ref: np.ndarray) -> float:
    alpha = np.dot(est, ref) / (np.dot(ref, ref) + 1e-9)
    target = alpha * ref
    return float(10 * np.log10((np.sum(target**2) + 1e-9) / (np.sum((est - target) ** 2) + 1e-9)))


def dev_score(net, dev: list[tuple[torch.Tensor, torch.Tensor]], weights: dict) -> tuple[float, float]:
    """Mean dev loss and SI-SDR improvement (dB) on fixed dev-split mixtures."""
    net.eval()
    total, gain_db = 0.0, []
    device = next(net.parameters()).device
    with torch.no_grad():
        for noisy, clean in dev:
            total += float(losses(net, noisy[None].to(device), clean[None].to(device), weights)["total"])
            spec = fullband.stft(noisy[None].to(device))
            o_re, o_im, _ = net.forward_sequence(spec.real.contiguous(), spec.imag.contiguous())
            y = fullband.istft(torch.complex(o_re, o_im))[0].cpu().numpy()
            t = spec.shape[1]
            est, ref, nz = y[480 : t * 480], clean.numpy()[: t * 480 - 480], noisy.numpy()[: t * 480 - 480]
            if np.any(ref):
                gain_db.append(si_sdr_db(est, ref) - si_sdr_db(nz, ref))
    net.train()
    return total / len(dev), float(np.mean(gain_db))


RUNTIME_KEYS = ("threads", "workers", "log_every", "checkpoint_minutes", "machine")  # how a sitting runs, not what it learns


def _training_keys(cfg: dict) -> dict:
    """What a resumed run must share with the checkpoint (``export_*`` keys only shape the export)."""
    return {k: v for k, v in cfg.items() if not k.startswith("export_") and k not in RUNTIME_KEYS}


def progress(step: int, cfg: dict, minutes: float = 0.0) -> float:
    """How far through its schedule a run is: by steps, or by time when the recipe sets
    ``schedule_minutes`` (a sitting on a lent GPU, whose speed is not known in advance, still ends
    with a fully decayed learning rate; its log records the steps it reached)."""
    warm, steps = cfg.get("warmup_steps", 0), cfg["steps"]
    p = (step - warm) / max(1, steps - warm)
    if cfg.get("schedule_minutes"):
        p = max(p, minutes / cfg["schedule_minutes"])
    return min(1.0, max(0.0, p))


def lr_at(step: int, cfg: dict, minutes: float = 0.0) -> float:
    peak, low, warm = cfg["learning_rate"], cfg.get("lr_min", cfg["learning_rate"] / 10), cfg.get("warmup_steps", 0)
    if step < warm:
        return peak * (step + 1) / warm
    p = progress(step, cfg, minutes)
    return low + 0.5 * (peak - low) * (1 + math.cos(math.pi * p))


def save(path: Path, **payload) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def pick_device(name: str | None = None) -> torch.device:
    """``cuda`` when a GPU is there (a lent machine), else the CPU; or the one asked for."""
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def train(cfg: dict, minutes: float | None = None, log=print, steps_now: int | None = None, device: str | None = None) -> Path:
    name = cfg["name"]
    dev_ = pick_device(device)
    if dev_.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.set_num_threads(int(cfg.get("threads", 2)))
    torch.manual_seed(cfg.get("seed", 0))
    CHECKPOINTS.mkdir(exist_ok=True)
    last, best = CHECKPOINTS / f"{name}.pt", CHECKPOINTS / f"{name}.best.pt"
    net = build_net(cfg).to(dev_)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=cfg["learning_rate"], weight_decay=cfg.get("weight_decay", 1e-4))
    step, best_dev, seconds_before = 0, float("inf"), 0.0
    if last.exists():
        ck = torch.load(last, weights_only=False, map_location=dev_)
        if _training_keys(ck["config"]) != _training_keys(cfg):
            raise RecipeError(f"{last} was trained with another config; move it away to start again")
        net.load_state_dict(ck["model"])
        if ck.get("optimizer"):
            opt.load_state_dict(ck["optimizer"])
        else:  # a weights-only checkpoint (as a lent GPU machine returns them): Adam starts afresh
            log(f"{last} holds no optimizer state: Adam starts afresh")
        step, best_dev, seconds_before = ck["step"], ck["best_dev"], ck.get("seconds", 0.0)
        log(f"resumed at step {step} ({seconds_before / 60:.1f} min trained)")
    elif cfg.get("init_from"):  # a new recipe that starts from another run's weights (fine-tuning, longer runs)
        state = torch.load(MODELS_DIR.parent / cfg["init_from"], weights_only=False, map_location=dev_)["model"]
        mine = net.state_dict()
        same_shapes = all(state[k].shape == v.shape for k, v in mine.items() if k in state)
        grown = not same_shapes or len(state) != len(mine)  # a smaller net's weights: grow them first
        net.load_state_dict(fullband.grow_state_dict(net, state) if grown else state)
        if not net.deep_filter:
            net.switch_off_deep_filter()
        log(f"initialised from {cfg['init_from']}" + (" (grown to this net: the same function to start with)" if grown else ""))
    mix = MixConfig.from_dict({**cfg["mix"], "seed": cfg.get("seed", 0)})
    dev_mix = MixConfig.from_dict({**cfg["mix"], "seed": 10_000 + cfg.get("seed", 0), "split": "dev"})
    # dev_examples 0: no dev scoring in the sitting (a lent GPU machine carries only the training
    # split); checkpoints are then chosen afterwards with ``python -m models.distill score``
    n_dev = cfg.get("dev_examples", 24)
    dev_mixer = Mixer(dev_mix) if n_dev else None
    dev = [tuple(torch.from_numpy(dev_mixer.example(i)[k]) for k in ("noisy", "clean")) for i in range(n_dev)]
    batch = cfg["batch_size"]
    bins = bool(cfg.get("loss", {}).get("teacher_bins"))  # the teacher's per-bin gains travel with each example
    if cfg.get("live"):
        dataset, workers = TeacherMixtures(distill.LiveSet(live_folder(cfg, log), cfg.get("seed", 0), bins), cfg["steps"] * batch), 0
    elif cfg.get("cache"):
        dataset, workers = TeacherMixtures(distill.CachedSet(cache_folder(cfg, bins), cfg.get("seed", 0), bins), cfg["steps"] * batch), 0
    else:
        dataset, workers = MixtureSet(mix, cfg["steps"] * batch), cfg.get("workers", 1)
        if workers > 1:
            t_warm = time.time()
            n_files = warm(mix, threads=workers)
            log(f"decoded {n_files} corpus files in {time.time() - t_warm:.0f} s, shared by {workers} mixing workers")
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch,
        sampler=FromStep(step * batch, cfg["steps"] * batch),
        num_workers=workers,
        prefetch_factor=4 if workers else None,
        pin_memory=dev_.type == "cuda",
        persistent_workers=False,
    )
    weights = cfg.get("loss", {})
    start_step = step
    t0 = time.time()
    last_save, acc, acc_n, mark = t0, {}, 0, 0.0

    def checkpoint(path):
        save(path, model=net.state_dict(), optimizer=opt.state_dict(), step=step, best_dev=best_dev, config=cfg, seconds=seconds_before + time.time() - t0)

    for noisy, clean, *teacher in loader:
        teacher, teacher_bins = [t.to(dev_) if t is not None else None for t in ([*teacher, None, None])[:2]]
        run_minutes = (time.time() - t0 + seconds_before) / 60
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg, run_minutes)
        noisy, clean = noisy.to(dev_, non_blocking=True), clean.to(dev_, non_blocking=True)
        parts = losses(net, noisy, clean, weights, teacher, teacher_bins)
        opt.zero_grad(set_to_none=True)
        parts["total"].backward()
        norm = torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.get("clip_grad", 3.0))
        if torch.isfinite(norm):
            opt.step()
        else:  # a bad batch must not poison the weights: skip it, and say so
            log(f"step {step + 1}: non-finite gradient, batch skipped")
        step += 1
        for k, v in parts.items():
            acc[k] = acc.get(k, 0.0) + float(v.detach())
        acc_n += 1
        elapsed = time.time() - t0
        if step % cfg.get("log_every", 100) == 0:
            log(f"step {step:6d}  " + "  ".join(f"{k} {v / acc_n:.4f}" for k, v in acc.items()) + f"  lr {lr_at(step, cfg, run_minutes):.2e}  {acc_n * batch / max(elapsed - mark, 1e-9):.1f} ex/s  {(seconds_before + elapsed) / 60:.1f} min")
            mark, acc, acc_n = elapsed, {}, 0
        done = step >= cfg["steps"] or (step > cfg.get("warmup_steps", 0) and progress(step, cfg, run_minutes) >= 1.0) or (minutes is not None and elapsed > minutes * 60) or (steps_now is not None and step >= start_step + steps_now)
        if dev and (step % cfg.get("dev_every", 500) == 0 or done):
            dev_loss, dev_gain = dev_score(net, dev, weights)
            note = ""
            if dev_loss < best_dev:
                best_dev, note = dev_loss, "  (best)"
                checkpoint(best)
            log(f"dev   {step:6d}  loss {dev_loss:.4f}  si-sdr improvement {dev_gain:+.2f} dB{note}")
        if done or time.time() - last_save > cfg.get("checkpoint_minutes", 5) * 60:
            checkpoint(last)
            last_save = time.time()
        if done:
            break
    if cfg.get("live"):
        ring = dataset.labelled
        log(f"live teacher ring: {int(np.asarray(ring.arrays['done']).sum())} mixtures labelled so far, {ring.ready()} in the ring")
    return best


def export_dir_after_training(cfg: dict, models_dir: Path) -> Path:
    """Where a training run's closing export goes: ``models_dir`` when that is where this recipe's
    model ships (no model of its export name there yet, or the one there was trained by this
    recipe), else ``models_dir/candidates/<recipe>``, so that an experiment never replaces the
    shipped model behind its back (``--export`` still writes to ``models_dir``: shipping is a
    deliberate step)."""
    shipped = models_dir / f"{cfg.get('export_name', cfg['name'])}.json"
    try:
        by = json.loads(shipped.read_text()).get("training", {}).get("config")
    except FileNotFoundError:
        return models_dir
    except (OSError, json.JSONDecodeError, AttributeError):
        by = None
    from .export_fullband import recipe_path

    return models_dir if by == recipe_path(cfg) else models_dir / "candidates" / cfg["name"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.train", description=__doc__.splitlines()[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("--minutes", type=float, help="stop (with a checkpoint) after this many minutes; run again to resume")
    ap.add_argument("--export", action="store_true", help="only export the best checkpoint to ONNX + manifest + golden pair")
    ap.add_argument("--checkpoint", type=Path, help="with --export: export this checkpoint instead of the recipe's best-on-dev-loss one")
    ap.add_argument("--device", help="cpu or cuda (default: cuda when there is one)")
    ap.add_argument("--workers", type=int, help="mixing processes (default: the config's)")
    ap.add_argument("--no-export", action="store_true", help="train only (e.g. on a machine without onnxruntime); without it a run ends with an export, into models/ only when the model there was trained by this recipe, else into models/candidates/NAME")
    ap.add_argument("--export-dir", type=Path, help="write the ONNX, manifest and golden pair here instead of models/ (a candidate to evaluate before it replaces the shipped model)")
    args = ap.parse_args(argv)
    try:
        cfg = json.loads(args.config.read_text())
    except (OSError, json.JSONDecodeError) as e:
        print(f"error: {args.config}: {e}", file=sys.stderr)
        return 2
    if not args.export:
        log_path = MODELS_DIR / f"{cfg['name']}.train.log"

        def log(line):
            print(line, flush=True)
            with open(log_path, "a", encoding="utf-8") as f:
                f.write(line + "\n")

        if args.workers is not None:
            cfg["workers"] = args.workers
        where = pick_device(args.device)
        on = torch.cuda.get_device_name(where) if where.type == "cuda" else f"cpu, threads {cfg.get('threads', 2)}"
        log(f"# {time.strftime('%Y-%m-%d %H:%M')} {args.config} torch {torch.__version__} on {on}, workers {cfg.get('workers', 1)}")
        try:
            train(cfg, args.minutes, log, device=args.device)
        except RecipeError as e:
            print(f"error: {args.config}: {e}", file=sys.stderr)
            return 2
        if args.no_export:
            return 0
    from .export_fullband import default_checkpoint, export

    checkpoint = args.checkpoint or default_checkpoint(cfg)
    if not checkpoint.is_file():
        print(f"error: {checkpoint}: no such checkpoint (train the recipe first, or pass --checkpoint)", file=sys.stderr)
        return 2
    out_dir = args.export_dir or (MODELS_DIR if args.export else export_dir_after_training(cfg, MODELS_DIR))
    out_dir.mkdir(parents=True, exist_ok=True)
    export(cfg, checkpoint, out_dir=out_dir)
    if out_dir != MODELS_DIR and not args.export_dir:
        print(f"exported to {out_dir} (the shipped {cfg.get('export_name', cfg['name'])} was trained by another recipe; "
              f"to ship this one: python -m models.train {args.config} --export)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
