"""Model registries: one per kind (denoisers, classifiers), built from ``*.json`` manifests.

A model is ``name.onnx`` + ``name.json``. The manifest says how the engine feeds the graph
(sample rate, STFT, tensor names/shapes, state tensors and their initial values, latency),
and records the sha256 of the ONNX file, its licence, training data and measured metrics.
Loading verifies the hash and that the graph's tensors have the declared shapes.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelError, UnknownNameError

MANIFEST_FORMAT = 1
KINDS = ("denoiser", "classifier")
FEATURES = ("complex", "power", "magnitude")  # what the engine computes from each STFT frame
OUTPUTS = ("mask", "complex")  # real gain per bin, or an enhanced complex spectrum
WINDOWS = ("sqrt_hann", "hann", "vorbis")


def shipped_models_dir() -> Path:
    """The folder of the shipped models: ``models/`` of a checkout, or the installed package data."""
    here = Path(__file__).resolve().parent
    checkout = here.parent / "models"
    if any(checkout.glob("*.json")):
        return checkout
    try:
        import noisenil_models  # installed as package data by pyproject.toml

        return Path(noisenil_models.__file__).resolve().parent
    except ImportError:  # pragma: no cover - only in a broken install
        return checkout


def model_dirs() -> list[Path]:
    """Where manifests are looked up: ``$NOISENIL_MODEL_PATH`` (os.pathsep-separated) first, then the shipped folder."""
    extra = [Path(p) for p in os.environ.get("NOISENIL_MODEL_PATH", "").split(os.pathsep) if p]
    return extra + [shipped_models_dir()]


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class StateSpec:
    input: str
    output: str
    shape: tuple[int, ...]
    init: float = 0.0


@dataclass(frozen=True)
class Manifest:
    """A parsed, validated model manifest (see ``models/README.md`` for the format)."""

    name: str
    kind: str
    path: Path  # the .json file
    onnx_path: Path
    sha256: str
    sample_rate: int
    streaming: bool
    n_fft: int
    hop_length: int
    window: str
    lookahead_frames: int
    feature: str
    input: TensorSpec
    output_kind: str
    output: TensorSpec
    states: tuple[StateSpec, ...]
    licence: str
    description: str = ""
    display_name: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def latency_samples(self) -> int:
        """Algorithmic latency at the model's rate: the STFT overlap plus the lookahead."""
        return self.n_fft - self.hop_length + self.lookahead_frames * self.hop_length

    @property
    def latency_ms(self) -> float:
        return 1000.0 * self.latency_samples / self.sample_rate


def _need(data: dict, key: str, where: Path):
    if key not in data:
        raise ModelError(f"{where}: manifest lacks {key!r}")
    return data[key]


def _choice(value, allowed, what: str, where: Path):
    if value not in allowed:
        raise ModelError(f"{where}: {what} {value!r} is not one of {', '.join(allowed)}")
    return value


def parse_manifest(path: str | os.PathLike) -> Manifest:
    """Read and validate one manifest (no hash check: that happens when the model is loaded)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: manifest not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: manifest is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: manifest must be a JSON object")
    version = _need(data, "format_version", path)
    if version != MANIFEST_FORMAT:
        raise ModelError(f"{path}: format_version {version!r} is not supported (this engine reads {MANIFEST_FORMAT})")
    try:
        stft = _need(data, "stft", path)
        inp, out = _need(data, "input", path), _need(data, "output", path)
        manifest = Manifest(
            name=str(_need(data, "name", path)),
            kind=_choice(_need(data, "kind", path), KINDS, "kind", path),
            path=path,
            onnx_path=path.parent / str(data.get("onnx", path.stem + ".onnx")),
            sha256=str(_need(data, "sha256", path)).lower(),
            sample_rate=int(_need(data, "sample_rate", path)),
            streaming=bool(data.get("streaming", True)),
            n_fft=int(_need(stft, "n_fft", path)),
            hop_length=int(_need(stft, "hop_length", path)),
            window=_choice(stft.get("window", "sqrt_hann"), WINDOWS, "window", path),
            lookahead_frames=int(data.get("lookahead_frames", 0)),
            feature=_choice(inp.get("feature", "complex"), FEATURES, "input feature", path),
            input=TensorSpec(str(_need(inp, "name", path)), tuple(int(d) for d in _need(inp, "shape", path))),
            output_kind=_choice(out.get("kind", "mask"), OUTPUTS, "output kind", path),
            output=TensorSpec(str(_need(out, "name", path)), tuple(int(d) for d in _need(out, "shape", path))),
            states=tuple(
                StateSpec(str(s["input"]), str(s["output"]), tuple(int(d) for d in s["shape"]), float(s.get("init", 0.0)))
                for s in data.get("states", [])
            ),
            licence=str(_need(data, "licence", path)),
            description=str(data.get("description", "")),
            display_name=str(data.get("display_name", data["name"])),
            metrics=dict(data.get("metrics", {})),
            training=dict(data.get("training", {})),
            labels=tuple(data.get("labels", ())),
            raw=data,
        )
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelError(f"{path}: malformed manifest ({exc!r})") from None
    if manifest.name != path.stem:
        raise ModelError(f"{path}: manifest name {manifest.name!r} does not match its file name {path.stem!r}")
    if not (0 < manifest.hop_length <= manifest.n_fft):
        raise ModelError(f"{path}: hop_length {manifest.hop_length} must be in 1..n_fft ({manifest.n_fft})")
    if not (8000 <= manifest.sample_rate <= 192000):
        raise ModelError(f"{path}: sample_rate {manifest.sample_rate} is outside 8000..192000")
    return manifest


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class LoadedModel:
    """A verified manifest with its onnxruntime session (shared by every channel and effect that uses it)."""

    manifest: Manifest
    session: Any

    def run(self, feeds: dict[str, Any]) -> list[Any]:
        return self.session.run(self._output_names, feeds)

    @property
    def _output_names(self) -> list[str]:
        return [self.manifest.output.name] + [s.output for s in self.manifest.states]


def _check_shapes(manifest: Manifest, session) -> None:
    declared = {manifest.input.name: manifest.input.shape, manifest.output.name: manifest.output.shape}
    for s in manifest.states:
        declared[s.input] = s.shape
        declared[s.output] = s.shape
    actual = {t.name: t.shape for t in list(session.get_inputs()) + list(session.get_outputs())}
    for name, shape in declared.items():
        if name not in actual:
            raise ModelError(f"{manifest.onnx_path}: graph has no tensor {name!r}; it has {', '.join(sorted(actual))}")
        got = actual[name]
        if len(got) != len(shape) or any(isinstance(g, int) and g != d for g, d in zip(got, shape)):
            raise ModelError(f"{manifest.onnx_path}: tensor {name!r} has shape {list(got)}, manifest says {list(shape)}")


def load_onnx(manifest: Manifest) -> LoadedModel:
    """Verify the ONNX file against the manifest (sha256, tensor shapes) and open it."""
    import onnxruntime as ort

    if not manifest.onnx_path.is_file():
        raise ModelError(f"{manifest.onnx_path}: model file missing (manifest {manifest.path.name})")
    digest = file_sha256(manifest.onnx_path)
    if digest != manifest.sha256:
        raise ModelError(
            f"{manifest.onnx_path}: sha256 {digest[:12]}... does not match the manifest's {manifest.sha256[:12]}... "
            "(damaged or replaced file)"
        )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # frame-sized graphs: threads cost more than they give
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(manifest.onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ModelError(f"{manifest.onnx_path}: onnxruntime cannot load it ({str(exc).splitlines()[0]})") from None
    _check_shapes(manifest, session)
    return LoadedModel(manifest, session)


class Registry:
    """Models of one kind, by name. ``get`` and ``load`` raise UnknownNameError listing the valid names."""

    def __init__(self, kind: str):
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r} not in {KINDS}")
        self.kind = kind
        self._loaded: dict[Path, LoadedModel] = {}
        self._lock = threading.Lock()

    def _scan(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for folder in model_dirs():
            for path in sorted(folder.glob("*.json")):
                if path.stem in found:
                    continue  # earlier folders win (user models can shadow shipped ones)
                try:
                    kind = json.loads(path.read_text(encoding="utf-8")).get("kind")
                except (OSError, ValueError, AttributeError):
                    continue
                if kind == self.kind:
                    found[path.stem] = path
        return found

    def names(self) -> list[str]:
        return sorted(self._scan())

    def get(self, name: str | os.PathLike) -> Manifest:
        """The manifest of a registered name, or of a path to a ``.json`` manifest."""
        text = os.fspath(name)
        if text.endswith(".json") or os.sep in text:
            manifest = parse_manifest(text)
            if manifest.kind != self.kind:
                raise ModelError(f"{text}: is a {manifest.kind}, not a {self.kind}")
            return manifest
        found = self._scan()
        if text not in found:
            raise UnknownNameError(self.kind, text, sorted(found))
        return parse_manifest(found[text])

    def load(self, name: str | os.PathLike) -> LoadedModel:
        manifest = self.get(name)
        with self._lock:
            cached = self._loaded.get(manifest.path.resolve())
            if cached is None or cached.manifest != manifest:
                cached = self._loaded[manifest.path.resolve()] = load_onnx(manifest)
            return cached


DENOISERS = Registry("denoiser")
CLASSIFIERS = Registry("classifier")
DEFAULT_DENOISER = "wiener"
