"""Export a trained full-band model (the best checkpoint of its recipe) to ONNX, strictly.

``python -m models.train CONFIG --export`` calls ``export(config)``: the streaming step module
(one frame in, one frame out, every state explicit) goes through ``models.export.export_streaming``,
which fails and writes nothing when onnxruntime and torch disagree, and writes the golden pair.
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import fullband
from .export import MODELS_DIR, export_streaming, parity_frames
from .mixing import MixConfig

SOURCES = (
    "speech: LibriSpeech train-clean-100 (CC-BY-4.0), Speech Commands v0.02 (CC-BY-4.0), Asterisk IVR prompts "
    "(CC-BY-3.0 / CC-BY-SA-3.0), Mycroft Precise (CC0), KLettres voices (GPL-2.0-or-later); noise: every train-split "
    "noise not marked non-commercial or 'unstated' (blanket, moodist, librosa, BigSoundBank, Speech Commands "
    "background, audiomentations; see ../shared/data/README.md), plus synthetic hum, hiss and clicks; room impulse "
    "responses: simulated shoebox rooms, spatialaudio and audiomentations measured IRs"
)


def recipe_path(cfg: dict) -> str:
    """The recipe's path as a manifest's ``training.config`` names it."""
    return f"models/configs/{cfg['name']}.json"


def fields_for(cfg: dict, net: fullband.FullBandNet, checkpoint: dict) -> dict:
    mix = MixConfig.from_dict(cfg["mix"])
    fields = {
        "kind": "denoiser",
        "sample_rate": fullband.SAMPLE_RATE,
        "streaming": True,
        "stft": {"n_fft": fullband.N_FFT, "hop_length": fullband.HOP, "window": "sqrt_hann"},
        "lookahead_frames": net.lookahead,
        "input": {"name": "spec", "shape": [1, 2, fullband.N_BINS], "feature": "complex"},
        "output": {"name": "enhanced", "shape": [1, 2, fullband.N_BINS], "kind": "complex"},
        "states": net.state_specs(),
        "display_name": "NoiseNil full-band",
        "description": (
            "NoiseNil's own causal full-band denoiser: 32 ERB-band gains plus a 3-tap deep filter on the bins below "
            "4.75 kHz, from a dilated causal convolution network over 1 s-normalised features"
            + (f" (with the log magnitude of each of the {net.logmag_bins} lowest bins)" if net.logmag_bins else "")
            + (f", per-bin gains on the {net.bin_gains} lowest bins" if net.bin_gains else "")
            + (" refined by a convolution along frequency" if net.bin_conv else "")
            + (", with each band's and low bin's level above its running noise floor as inputs" if net.noise_floor else "")
            + (f", and a {net.gru_units}-unit GRU after the convolutions" if net.gru_units else "")
            + (", with the low band's autocorrelation at pitch periods of 2.5-16.7 ms as harmonicity inputs" if net.pitch else "")
            + (f", and a context head over the {net.bin_gains} lowest bins' log magnitudes in the last {net.bin_context} frames" if net.bin_context else "")
            + ". 48 kHz, 20 ms frames, 10 ms hop, "
            + (f"{10 * (1 + net.lookahead)} ms latency ({net.lookahead} frame{'s' if net.lookahead > 1 else ''} of lookahead)" if net.lookahead else "10 ms latency, no lookahead")
            + ". See models/noisenil_fb.md."
        ),
        "licence": "GPL-3.0-or-later",
        "architecture": {
            "trunk": f"causal TCN, {net.channels} channels, kernel {net.kernel}, dilations {list(net.dilations)}",
            "erb_bands": net.bands,
            "logmag_bins": net.logmag_bins,
            "bin_gains": net.bin_gains,
            "bin_hidden": net.bin_hidden,
            "bin_conv": net.bin_conv,
            "noise_floor": net.noise_floor,
            "gru": net.gru_units,
            "pitch": net.pitch,
            "bin_context": net.bin_context,
            "bin_context_hidden": net.bin_context_hidden if net.bin_context else 0,
            "deep_filter": {"bins": net.df_bins, "order": net.df_order, "lookahead": 0},
            "macs_per_frame": fullband.count_macs_per_frame(net),
            "macs_per_second": fullband.count_macs_per_frame(net) * fullband.SAMPLE_RATE // fullband.HOP,
        },
        "training": {
            "config": recipe_path(cfg),
            "log": f"models/{cfg['name']}.train.log",
            "steps": int(checkpoint["step"]),
            "examples": int(checkpoint["step"]) * int(cfg["batch_size"]),
            "hours_of_audio": round(int(checkpoint["step"]) * int(cfg["batch_size"]) * mix.seconds / 3600, 1),
            "minutes": round(float(checkpoint.get("seconds", 0.0)) / 60, 1),
            "machine": cfg.get("machine", f"CPU, {cfg.get('threads', 2)} threads"),
            "data": SOURCES,
            "snr_db": list(mix.snr_db),
        },
    }
    if checkpoint.get("averaged_from"):  # python -m models.average: the mean of several runs' weights
        t = fields["training"]
        runs = []
        for path in checkpoint["averaged_from"]:
            run = torch.load(MODELS_DIR.parent / path, weights_only=False, map_location="cpu")
            log = f"models/{Path(path).stem}.train.log"
            runs.append({"checkpoint": path, "steps": int(run["step"]), "minutes": round(float(run.get("seconds", 0.0)) / 60, 1)}
                        | ({"log": log} if (MODELS_DIR.parent / log).is_file() else {}))
        t["averaged_from"] = runs
        t["steps"] = sum(r["steps"] for r in runs)
        t["examples"] = t["steps"] * int(cfg["batch_size"])
        t["hours_of_audio"] = round(t["examples"] * mix.seconds / 3600, 1)
        t["minutes"] = round(sum(r["minutes"] for r in runs), 1)
    if cfg.get("init_from"):
        fields["training"]["init_from"] = cfg["init_from"]
    if checkpoint.get("context_steps"):  # python -m models.bin_context: the head trained alone on the frozen net
        s = cfg["context_training"]
        fields["training"]["context_head"] = {
            "steps": int(checkpoint["context_steps"]),
            "batch_size": int(s["batch_size"]),
            "minutes": round(float(checkpoint.get("context_seconds", 0.0)) / 60, 1),
            "loss": f"per-bin teacher gains + {s.get('ideal', 0.0)} x ideal per-bin gains (square-rooted MSE), output held at zero below bin {s.get('from_bin', 0)}",
            "command": "python -m models.bin_context (see the recipe's purpose)",
        }
    if cfg.get("loss"):
        fields["training"]["loss_weights"] = dict(cfg["loss"])
    teacher = (
        "teacher: DeepFilterNet3 (MIT OR Apache-2.0, Schröter et al. 2023), its output projected onto the 32 ERB bands, "
        f"as an extra gain target (weight {cfg.get('loss', {}).get('teacher', 0)})"
    )
    if cfg.get("loss", {}).get("teacher_bins"):
        teacher += (
            f"; and its output magnitude over the input's in each of the {net.bin_gains} lowest bins as the target of the per-bin gains "
            f"(weight {cfg['loss']['teacher_bins']}; python -m models.distill bins)"
        )
    if cfg.get("live"):
        c = cfg["live"]
        fields["training"]["distillation"] = (
            f"{teacher} on fresh mixtures (seed {c['seed']}) that worker processes label, before or beside the training, into a ring of "
            f"up to {c['capacity']} (python -m models.distill live; counts in the log); the clean-speech losses stay. "
            "Not bit-reproducible: which mixtures a step draws depends on labelling speed"
        )
    elif cfg.get("cache"):
        c = cfg["cache"]
        fields["training"]["distillation"] = (
            f"{teacher} on {c['examples']} cached mixtures (seed {c['seed']}; python -m models.distill build); the clean-speech losses stay"
        )
    return fields


def default_checkpoint(cfg: dict) -> Path:
    """What ``--export`` takes without ``--checkpoint``: the best-on-dev-loss checkpoint, or the
    last one for a recipe that keeps no dev set (``dev_examples`` 0, as the lent-GPU ones)."""
    best = MODELS_DIR / "checkpoints" / f"{cfg['name']}.best.pt"
    return best if best.is_file() else MODELS_DIR / "checkpoints" / f"{cfg['name']}.pt"


def export(cfg: dict, checkpoint_path: Path | None = None, out_dir: Path = MODELS_DIR, deep_filter: bool | None = None) -> Path:
    """``deep_filter=False`` zeroes the deep-filter head (gains only); default: the recipe's
    ``export_deep_filter`` (true unless the recipe says otherwise)."""
    checkpoint_path = checkpoint_path or default_checkpoint(cfg)
    ck = torch.load(checkpoint_path, weights_only=False, map_location="cpu")
    if deep_filter is None:
        deep_filter = bool(cfg.get("export_deep_filter", True))
    if not deep_filter:
        ck["model"]["df_head.weight"].zero_()
        ck["model"]["df_head.bias"].zero_()
    net = fullband.FullBandNet(**cfg.get("net", {}))
    net.load_state_dict(ck["model"])
    if not deep_filter:
        net.switch_off_deep_filter()
    net.eval()
    step = fullband.FullBandStep(net).eval()
    frames = parity_frames(fullband.SAMPLE_RATE, fullband.N_FFT, fullband.HOP, "sqrt_hann", feature="complex", seconds=4.0)
    fields = fields_for(cfg, net, ck)
    fields["architecture"]["deep_filter"]["enabled"] = deep_filter
    if not deep_filter:
        fields["description"] = fields["description"].replace(
            "32 ERB-band gains plus a 3-tap deep filter on the bins below 4.75 kHz",
            "32 ERB-band gains (its deep-filter head is switched off at export: it cost quality on the dev set)",
        )
    path = export_streaming(step, cfg.get("export_name", cfg["name"]), fields, frames, atol=1e-3, out_dir=out_dir)
    print(f"exported {path} from {checkpoint_path} (step {ck['step']})")
    return path
