"""Export a streaming torch module to ONNX, strictly: parity with torch or no file.

``export_streaming(module, name, fields, frames)``:
1. exports ``module(x, *states) -> (y, *states_out)`` with the legacy exporter (one file),
2. runs torch and onnxruntime frame by frame over ``frames`` with the states fed back, and
   raises ``ExportMismatch`` (deleting the ONNX file) if they differ by more than ``atol``,
3. writes ``golden/<name>.npz`` (inputs and expected outputs of the first frames), which CI
   checks against onnxruntime without torch,
4. writes ``<name>.json`` with the sha256 (keeping measured ``metrics`` only if the graph is unchanged).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

MODELS_DIR = Path(__file__).resolve().parent
GOLDEN_FRAMES = 40


class ExportMismatch(RuntimeError):
    pass


def parity_signal(sample_rate, seconds=4.0, seed=1234) -> np.ndarray:
    """A deterministic speech-like signal (voiced harmonics with gaps) in noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 25))
    envelope = (np.sin(2 * np.pi * 1.5 * t) > -0.2).astype(float)
    return 0.2 * voiced * envelope + 0.03 * rng.standard_normal(n)


def parity_frames(sample_rate, n_fft, hop, window, feature="power", seconds=4.0, seed=1234) -> np.ndarray:
    """Frames of ``parity_signal`` as the engine computes them."""
    from plugin_host.stft import StreamingSTFT

    x = parity_signal(sample_rate, seconds, seed)
    n = len(x)
    stft = StreamingSTFT(n_fft, hop, window)
    frames = []
    for i in range(0, n - hop + 1, hop):
        spec = stft.analyze(x[i : i + hop])
        if feature == "complex":
            frames.append(np.stack([spec.real, spec.imag]))
        elif feature == "power":
            frames.append(np.abs(spec) ** 2)
        else:
            frames.append(np.abs(spec))
    return np.asarray(frames, dtype=np.float32)


def _run_onnx(path: Path, input_name, state_specs, frames, output_name):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    states = [np.full(s["shape"], s["init"], np.float32) for s in state_specs]
    outs = []
    for f in frames:
        feeds = {input_name: f[None]} | {s["input"]: v for s, v in zip(state_specs, states)}
        y, *states = sess.run([output_name] + [s["output"] for s in state_specs], feeds)
        outs.append(y[0])
    return np.asarray(outs)


def _run_torch(module, state_specs, frames):
    states = [torch.full(s["shape"], float(s["init"])) for s in state_specs]
    outs = []
    with torch.no_grad():
        for f in frames:
            result = module(torch.from_numpy(f[None]), *states)
            y, *states = result if isinstance(result, tuple) else (result,)
            outs.append(y[0].numpy())
    return np.asarray(outs)


def export_streaming(module, name: str, fields: dict, frames: np.ndarray, atol: float = 1e-4, out_dir: Path = MODELS_DIR) -> Path:
    out_dir = Path(out_dir)
    onnx_path = out_dir / f"{name}.onnx"
    states = fields["states"]
    in_name, out_name = fields["input"]["name"], fields["output"]["name"]
    example = (torch.from_numpy(frames[0][None]),) + tuple(torch.full(s["shape"], float(s["init"])) for s in states)
    tmp = onnx_path.with_suffix(".onnx.tmp")
    torch.onnx.export(
        module,
        example,
        str(tmp),
        input_names=[in_name] + [s["input"] for s in states],
        output_names=[out_name] + [s["output"] for s in states],
        opset_version=17,
        dynamo=False,
    )
    expected = _run_torch(module, states, frames)
    got = _run_onnx(tmp, in_name, states, frames, out_name)
    err = float(np.max(np.abs(expected - got)))
    if not np.isfinite(err) or err > atol:
        tmp.unlink(missing_ok=True)
        raise ExportMismatch(f"{name}: ONNX and torch differ by {err:.3g} (> {atol:g}); nothing written")
    tmp.replace(onnx_path)

    golden_dir = out_dir / "golden"
    golden_dir.mkdir(exist_ok=True)
    k = min(GOLDEN_FRAMES, len(frames))
    np.savez_compressed(golden_dir / f"{name}.npz", input=frames[:k], output=got[:k])

    _write_manifest(module, name, fields, onnx_path, {"parity_max_abs_error": err, "parity_frames": len(frames)})
    return onnx_path


def _write_manifest(module, name: str, fields: dict, onnx_path: Path, parity: dict) -> None:
    """``<name>.json`` beside the graph: its hash, the recipe's fields, the parity check and the
    parameter count; measured ``metrics`` are kept only while the graph is unchanged."""
    manifest_path = onnx_path.with_suffix(".json")
    digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    old = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest = {
        "format_version": 1,
        "name": name,
        "kind": fields.get("kind", "denoiser"),
        "onnx": onnx_path.name,
        "sha256": digest,
        **{k: v for k, v in fields.items() if k != "kind"},
        "golden": f"golden/{name}.npz",
        "export": {"torch": torch.__version__, "opset": 17, **parity},
        "parameters": int(sum(p.numel() for p in module.parameters())),
        "metrics": old.get("metrics", {}) if old.get("sha256") == digest else {},
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")


def export_oneshot(module, name: str, fields: dict, inputs: dict[str, np.ndarray], output_name: str, atol: float = 1e-4, out_dir: Path = MODELS_DIR) -> Path:
    """Strict export of a stateless graph run once per patch or chunk (the offline zoo models).

    ``inputs`` maps each input name to ``K`` example calls stacked on a new first axis. Torch and
    onnxruntime must agree on every call within ``atol`` times the output's scale, or nothing is
    written; ``golden/<name>.npz`` keeps the calls (``in_<name>`` arrays and ``output``) for CI.
    """
    import onnxruntime as ort

    out_dir = Path(out_dir)
    onnx_path = out_dir / f"{name}.onnx"
    names = list(inputs)
    calls = len(inputs[names[0]])
    example = tuple(torch.from_numpy(inputs[n][0]) for n in names)
    tmp = onnx_path.with_suffix(".onnx.tmp")
    torch.onnx.export(module, example, str(tmp), input_names=names, output_names=[output_name], opset_version=17, dynamo=False)
    with torch.no_grad():
        expected = np.asarray([module(*(torch.from_numpy(inputs[n][k]) for n in names)).numpy() for k in range(calls)])
    sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    got = np.asarray([sess.run([output_name], {n: inputs[n][k] for n in names})[0] for k in range(calls)])
    scale = max(1.0, float(np.max(np.abs(expected))))
    err = float(np.max(np.abs(expected - got)))
    if not np.isfinite(err) or err > atol * scale:
        tmp.unlink(missing_ok=True)
        raise ExportMismatch(f"{name}: ONNX and torch differ by {err:.3g} (> {atol * scale:g}); nothing written")
    tmp.replace(onnx_path)
    golden_dir = out_dir / "golden"
    golden_dir.mkdir(exist_ok=True)
    np.savez_compressed(golden_dir / f"{name}.npz", output=got, **{f"in_{n}": inputs[n] for n in names})
    _write_manifest(module, name, fields, onnx_path, {"parity_max_abs_error": err, "parity_calls": calls})
    return onnx_path
