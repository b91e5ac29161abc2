"""Export trained seed-zoo models: ``python -m models.zoo.export NAME [NAME ...]`` (or ``all``).

Streaming models (DDAE, CR-CED) go through ``models.export.export_streaming`` (one frame per call,
explicit state); the offline ones (patch models, the FCN) through ``export_oneshot`` (one patch
or waveform chunk per call). Both fail, writing nothing, when onnxruntime and torch disagree, and
write the golden pair CI replays. The DDAE is also written int8-quantized (``ddae_int8``,
onnxruntime dynamic quantization of its weights), with its own golden pair and its distance from
the float model in the manifest.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from ..export import export_oneshot, export_streaming, parity_frames, parity_signal
from . import nets
from .train import CHECKPOINTS, build

MODELS_DIR = Path(__file__).resolve().parent.parent
NAMES = ("ddae", "crced", "dncnn", "resunet", "mel_diffusion", "fcn_dfl")
FCN_CHUNK, FCN_CONTEXT = 4096, 1024  # samples per call, and context on each side (>= the receptive radius)

DATA = (
    "a fixed set of 12,000 2 s pairs (6.7 h) at 16 kHz from NoiseNil's seeded mixer (python -m models.zoo.data, seeds 5 "
    "and 6): shippable train-split speech (LibriSpeech train-clean-100, Speech Commands, Asterisk prompts, Mycroft "
    "Precise, KLettres) with 1-3 shippable noises or synthetic hum/hiss/clicks at -5..25 dB SNR, reverb, low-pass, "
    "clipping, shift and volume augmentation; see ../shared/data/README.md"
)

CARDS = {
    "ddae": ("Seed DDAE (streaming)", "Deep denoising autoencoder (Lu et al. 2013) on log-power spectra, 5 causal frames in, fully connected 3 x 512, the hearing-aid seed project's model; 16 kHz, 16 ms hop, 16 ms latency."),
    "ddae_int8": ("Seed DDAE int8 (streaming)", "The DDAE with int8 weights (onnxruntime dynamic quantization) for small devices; 16 kHz, 16 ms latency."),
    "crced": ("Seed CR-CED (streaming)", "Cascaded redundant convolutional encoder-decoder (Park & Lee 2017): 8 causal magnitude frames in, convolutions along frequency only; 16 kHz, 16 ms latency."),
    "dncnn": ("Seed DnCNN (offline)", "Residual DnCNN on log-magnitude spectrogram patches (64 frames, 1 s), log-cosh loss, noisy phase; offline (1 s lookahead)."),
    "resunet": ("Seed ResNet U-Net (offline)", "U-Net with a small ResNet encoder trained from scratch on log-magnitude patches (64 frames); offline (1 s lookahead)."),
    "mel_diffusion": ("Seed mel diffusion (offline)", "Conditional diffusion model that samples the clean log-mel spectrogram (64 bands, 64-frame patches) from the noisy one in 6 DDIM steps; mel gains applied with the noisy phase; offline (1 s lookahead)."),
    "fcn_dfl": ("Seed FCN + deep feature loss (offline)", "Fully convolutional context-aggregation network on the waveform (Germain et al. 2018), trained with a deep feature loss from a frozen noise-classification network; offline (256 ms chunks)."),
}


def _config(name: str) -> dict:
    return json.loads((MODELS_DIR / "configs" / f"zoo_{name}.json").read_text())


def _load(name: str, checkpoint: Path | None = None):
    ck = torch.load(checkpoint or CHECKPOINTS / f"zoo_{name}.pt", weights_only=False, map_location="cpu")
    cfg = ck.get("config") or _config(name)  # the recipe the weights were trained with (its net settings)
    net = build(cfg)
    net.load_state_dict(ck["model"])
    return cfg, ck, net.eval()


def _common(name: str, cfg: dict, ck: dict) -> dict:
    title, text = CARDS[name]
    if cfg.get("net", {}).get("target") == "log_gain":
        text = text.replace("the clean log-mel spectrogram", "the clean log-mel spectrogram (as its log ratio to the noisy one, 0 to -30 dB)")
    return {
        "kind": "denoiser",
        "sample_rate": nets.SAMPLE_RATE,
        "display_name": title,
        "description": text + " See models/zoo.md.",
        "licence": "GPL-3.0-or-later",
        "family": "seed zoo",
        "training": {
            "config": ck.get("recipes") or [f"models/configs/zoo_{cfg['name']}.json"],
            "log": f"models/zoo/logs/{cfg['name']}.train.log",
            "steps": int(ck.get("total_steps", ck["step"])),
            "minutes": float(ck.get("total_minutes", cfg["minutes"])),
            "machine": f"CPU, {cfg.get('threads', 2)} threads",
            "data": DATA,
            "dev_si_sdr_gain_db_at_best": round(float(ck["dev_si_sdr_gain_db"]), 2),
            **({"sampler_start_dev_si_sdr_gain_db": ck["sampler_scores"]} if "sampler_scores" in ck else {}),
        },
    }


def _stft() -> dict:
    return {"n_fft": nets.N_FFT, "hop_length": nets.HOP, "window": "sqrt_hann"}


def export_streaming_model(name: str, checkpoint: Path | None = None, out_dir: Path = MODELS_DIR) -> Path:
    cfg, ck, net = _load(name, checkpoint)
    step = net.export_module().eval()
    feature = in_name = step.feature
    fields = {
        **_common(name, cfg, ck),
        "streaming": True,
        "stft": _stft(),
        "lookahead_frames": 0,
        "input": {"name": in_name, "shape": [1, 1, nets.N_BINS], "feature": feature},
        "output": {"name": "gain", "shape": [1, 1, nets.N_BINS], "kind": "mask"},
        "states": step.states(),
    }
    frames = parity_frames(nets.SAMPLE_RATE, nets.N_FFT, nets.HOP, "sqrt_hann", feature=feature, seconds=4.0)[:, None, :]
    return export_streaming(step, name, fields, frames, atol=1e-4, out_dir=out_dir)


def quantize_ddae(out_dir: Path = MODELS_DIR) -> Path:
    """``ddae_int8``: the exported DDAE with int8 weights; golden pair from the int8 graph itself."""
    import hashlib

    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = out_dir / "ddae.onnx", out_dir / "ddae_int8.onnx"
    tmp = dst.with_suffix(".onnx.tmp")
    quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8)
    manifest = json.loads((out_dir / "ddae.json").read_text())
    golden = np.load(out_dir / manifest["golden"])
    sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    st = manifest["states"][0]
    state = np.full(st["shape"], st["init"], np.float32)
    outs = []
    for frame in golden["input"]:
        y, state = sess.run(["gain", st["output"]], {"power": frame[None], st["input"]: state})
        outs.append(y[0])
    outs = np.asarray(outs)
    diff = float(np.max(np.abs(outs - golden["output"])))
    if not np.isfinite(diff) or diff > 0.2:  # int8 weights move gains a little, never wildly
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"ddae_int8 differs from the float DDAE by {diff:.3g} in gain; nothing written")
    tmp.replace(dst)
    np.savez_compressed(out_dir / "golden" / "ddae_int8.npz", input=golden["input"], output=outs)
    title, text = CARDS["ddae_int8"]
    old = json.loads((out_dir / "ddae_int8.json").read_text()) if (out_dir / "ddae_int8.json").exists() else {}
    digest = hashlib.sha256(dst.read_bytes()).hexdigest()
    manifest.update(
        name="ddae_int8",
        onnx=dst.name,
        sha256=digest,
        display_name=title,
        description=text + " See models/zoo.md.",
        golden="golden/ddae_int8.npz",
        quantization={"method": "onnxruntime quantize_dynamic, QInt8 weights", "from": "ddae.onnx", "max_gain_difference_on_parity_frames": diff, "bytes": dst.stat().st_size, "float_bytes": src.stat().st_size},
        metrics=old.get("metrics", {}) if old.get("sha256") == digest else {},
    )
    (out_dir / "ddae_int8.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return dst


def export_patch_model(name: str, checkpoint: Path | None = None, out_dir: Path = MODELS_DIR) -> Path:
    cfg, ck, net = _load(name, checkpoint)
    module = net.export_module().eval()
    p = net.patch
    mags = parity_frames(nets.SAMPLE_RATE, nets.N_FFT, nets.HOP, "sqrt_hann", feature="magnitude", seconds=4.0)
    patches = np.stack([mags[k : k + p].T[None, None] for k in (0, p // 2, p)]).astype(np.float32)  # (3, 1, 1, F, P)
    inputs = {"magnitude": patches}
    params = {"patch_frames": p}
    tensors = {}
    if name == "mel_diffusion":
        rng = np.random.default_rng(0)
        inputs["noise"] = rng.standard_normal((3, 1, 1, net.n_mels, p)).astype(np.float32)
        params.update(noise_input="noise", noise_shape=[1, 1, net.n_mels, p], noise_seed=0, sample_steps=net.sample_steps, diffusion_steps=net.steps, target=net.target, sample_start=net.sample_start)
        tensors = {"model": {"noise": [1, 1, net.n_mels, p]}}
    fields = {
        **_common(name, cfg, ck),
        "adapter": "patch",
        "streaming": False,
        "stft": _stft(),
        "lookahead_frames": p - 1,
        "input": {"name": "magnitude", "shape": [1, 1, nets.N_BINS, p], "feature": "magnitude"},
        "output": {"name": "gain", "shape": [1, 1, nets.N_BINS, p], "kind": "mask"},
        "states": [],
        "params": params,
    }
    if tensors:
        fields["tensors"] = tensors
    atol = 2e-3 if name == "mel_diffusion" else 1e-4
    return export_oneshot(module, name, fields, inputs, "gain", atol=atol, out_dir=out_dir)


def export_wave_model(name: str, checkpoint: Path | None = None, out_dir: Path = MODELS_DIR) -> Path:
    cfg, ck, net = _load(name, checkpoint)
    module = net.export_module().eval()
    x = parity_signal(nets.SAMPLE_RATE, 4.0).astype(np.float32)
    n = FCN_CHUNK + 2 * FCN_CONTEXT
    chunks = np.stack([x[k : k + n][None, None] for k in (0, FCN_CHUNK, 2 * FCN_CHUNK)])
    fields = {
        **_common(name, cfg, ck),
        "adapter": "wave",
        "streaming": False,
        "stft": {"n_fft": FCN_CHUNK, "hop_length": FCN_CHUNK, "window": "rect"},
        "lookahead_frames": 0,
        "latency_samples": FCN_CONTEXT,
        "input": {"name": "audio", "shape": [1, 1, n], "feature": "magnitude"},
        "output": {"name": "enhanced", "shape": [1, 1, n], "kind": "mask"},
        "states": [],
        "params": {"chunk_samples": FCN_CHUNK, "context_samples": FCN_CONTEXT, "receptive_radius_samples": net.radius},
    }
    return export_oneshot(module, name, fields, {"audio": chunks}, "enhanced", atol=1e-4, out_dir=out_dir)


def export(name: str, checkpoint: Path | None = None, out_dir: Path = MODELS_DIR) -> list[Path]:
    if name in ("ddae", "crced"):
        paths = [export_streaming_model(name, checkpoint, out_dir)]
        if name == "ddae":
            paths.append(quantize_ddae(out_dir))
        return paths
    if name == "fcn_dfl":
        return [export_wave_model(name, checkpoint, out_dir)]
    return [export_patch_model(name, checkpoint, out_dir)]


def main(argv=None) -> int:
    names = list(argv if argv is not None else sys.argv[1:]) or ["all"]
    if names == ["all"]:
        names = [n for n in NAMES if (CHECKPOINTS / f"zoo_{n}.pt").exists()]
    for name in names:
        if name not in NAMES:
            print(f"error: {name!r} is not a seed-zoo model; known: {', '.join(NAMES)}", file=sys.stderr)
            return 2
        for path in export(name):
            print(f"exported {path.relative_to(MODELS_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
