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
WINDOWS = ("sqrt_hann", "hann", "vorbis", "rect")
ADAPTERS = ("spectral", "dtln", "deepfilternet", "classifier", "patch", "wave")  # how the engine drives the graph(s); see adapters.py


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


def user_models_dir() -> Path:
    """Where ``noisenil models add`` installs models: ``$NOISENIL_HOME/models``, else the XDG data folder."""
    home = os.environ.get("NOISENIL_HOME")
    if home:
        return Path(home) / "models"
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data) / "noisenil" / "models"


def model_dirs() -> list[Path]:
    """Where manifests are looked up, first match wins: ``$NOISENIL_MODEL_PATH`` (os.pathsep-separated),
    the user's models (``noisenil models add``), then the shipped folder."""
    extra = [Path(p) for p in os.environ.get("NOISENIL_MODEL_PATH", "").split(os.pathsep) if p]
    return extra + [user_models_dir(), shipped_models_dir()]


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
class ModelFile:
    role: str  # "model" for single-file models; e.g. "enc", "erb_dec", "df_dec" for several graphs
    path: Path
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """A parsed, validated model manifest (see ``models/README.md`` for the format)."""

    name: str
    kind: str
    path: Path  # the .json file
    files: tuple[ModelFile, ...]
    adapter: str
    sample_rate: int
    streaming: bool
    n_fft: int
    hop_length: int
    window: str
    lookahead_frames: int
    feature: str
    input: TensorSpec | None
    output_kind: str
    output: TensorSpec | None
    states: tuple[StateSpec, ...]
    licence: str
    description: str = ""
    display_name: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)  # adapter-specific settings
    tensors: dict[str, dict[str, tuple[int, ...]]] = field(default_factory=dict)  # role -> name -> shape, checked at load
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def onnx_path(self) -> Path:
        return self.files[0].path

    @property
    def sha256(self) -> str:
        return self.files[0].sha256

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def latency_samples(self) -> int:
        """Algorithmic latency at the model's rate: the STFT overlap plus the lookahead (or the
        manifest's own ``latency_samples``, for models that are not framed by an STFT)."""
        return manifest_latency_samples(self.raw)

    @property
    def latency_ms(self) -> float:
        return 1000.0 * self.latency_samples / self.sample_rate


def manifest_latency_samples(data: dict) -> int:
    """Algorithmic latency of a manifest's raw dict, in samples at its rate: its own
    ``latency_samples`` when it has one, else the STFT overlap plus the lookahead."""
    if "latency_samples" in data:
        return int(data["latency_samples"])
    stft = data["stft"]
    return stft["n_fft"] - stft["hop_length"] + int(data.get("lookahead_frames", 0)) * stft["hop_length"]


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
        adapter = _choice(data.get("adapter", "spectral"), ADAPTERS, "adapter", path)
        if adapter in ("spectral", "classifier"):
            inp, out = _need(data, "input", path), _need(data, "output", path)
        else:
            inp, out = data.get("input"), data.get("output")
        if "files" in data:
            files = tuple(
                ModelFile(role, path.parent / str(f["path"]), str(f["sha256"]).lower()) for role, f in data["files"].items()
            )
        else:
            files = (ModelFile("model", path.parent / str(data.get("onnx", path.stem + ".onnx")), str(_need(data, "sha256", path)).lower()),)
        manifest = Manifest(
            name=str(_need(data, "name", path)),
            kind=_choice(_need(data, "kind", path), KINDS, "kind", path),
            path=path,
            files=files,
            adapter=adapter,
            sample_rate=int(_need(data, "sample_rate", path)),
            streaming=bool(data.get("streaming", True)),
            n_fft=int(_need(stft, "n_fft", path)),
            hop_length=int(_need(stft, "hop_length", path)),
            window=_choice(stft.get("window", "sqrt_hann"), WINDOWS, "window", path),
            lookahead_frames=int(data.get("lookahead_frames", 0)),
            feature=_choice((inp or {}).get("feature", "complex"), FEATURES, "input feature", path),
            input=TensorSpec(str(_need(inp, "name", path)), tuple(int(d) for d in _need(inp, "shape", path))) if inp else None,
            output_kind=_choice((out or {}).get("kind", "mask"), OUTPUTS, "output kind", path),
            output=TensorSpec(str(_need(out, "name", path)), tuple(int(d) for d in _need(out, "shape", path))) if out else None,
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
            params=dict(data.get("params", {})),
            tensors={
                role: {name: tuple(int(d) for d in shape) for name, shape in names.items()}
                for role, names in data.get("tensors", {}).items()
            },
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
    """A verified manifest with its onnxruntime sessions, by role (shared by every channel and effect)."""

    manifest: Manifest
    sessions: dict[str, Any]

    @property
    def session(self):
        return self.sessions[self.manifest.files[0].role]

    def run(self, feeds: dict[str, Any]) -> list[Any]:
        """Run the main graph of a spectral model: [output, *state outputs]."""
        return self.session.run(self._output_names, feeds)

    @property
    def _output_names(self) -> list[str]:
        return [self.manifest.output.name] + [s.output for s in self.manifest.states]


def _declared_shapes(manifest: Manifest) -> dict[str, dict[str, tuple[int, ...]]]:
    declared = {role: dict(names) for role, names in manifest.tensors.items()}
    if manifest.input is not None and manifest.output is not None:
        main = declared.setdefault(manifest.files[0].role, {})
        main[manifest.input.name] = manifest.input.shape
        main[manifest.output.name] = manifest.output.shape
        for s in manifest.states:
            main[s.input] = s.shape
            main[s.output] = s.shape
    return declared


def _check_shapes(manifest: Manifest, sessions: dict[str, Any]) -> None:
    paths = {f.role: f.path for f in manifest.files}
    for role, declared in _declared_shapes(manifest).items():
        if role not in sessions:
            raise ModelError(f"{manifest.path}: tensors declared for {role!r}, which is not one of its files")
        session = sessions[role]
        actual = {t.name: t.shape for t in list(session.get_inputs()) + list(session.get_outputs())}
        for name, shape in declared.items():
            if name not in actual:
                raise ModelError(f"{paths[role]}: graph has no tensor {name!r}; it has {', '.join(sorted(actual))}")
            got = actual[name]
            if len(got) != len(shape) or any(isinstance(g, int) and g != d for g, d in zip(got, shape)):
                raise ModelError(f"{paths[role]}: tensor {name!r} has shape {list(got)}, manifest says {list(shape)}")


def open_session(source, what: str):
    """An onnxruntime session for a path or serialized model, tuned for frame-sized graphs."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # frame-sized graphs: threads cost more than they give
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(source) if isinstance(source, Path) else source, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ModelError(f"{what}: onnxruntime cannot load it ({str(exc).splitlines()[0]})") from None


def load_onnx(manifest: Manifest) -> LoadedModel:
    """Verify every file against the manifest (sha256, tensor shapes) and open it."""
    sessions = {}
    for f in manifest.files:
        if not f.path.is_file():
            raise ModelError(f"{f.path}: model file missing (manifest {manifest.path.name})")
        digest = file_sha256(f.path)
        if digest != f.sha256:
            raise ModelError(
                f"{f.path}: sha256 {digest[:12]}... does not match the manifest's {f.sha256[:12]}... "
                "(damaged or replaced file)"
            )
        sessions[f.role] = open_session(f.path, str(f.path))
    _check_shapes(manifest, sessions)
    return LoadedModel(manifest, sessions)


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
        """The manifest of a registered name, of a path to a ``.json`` manifest, or of a path to the ``.onnx`` beside one."""
        text = os.fspath(name)
        if text.lower().endswith(".onnx"):
            # the graph a manifest describes: read the manifest beside it
            graph = Path(text)
            if not graph.is_file():
                raise ModelError(f"{text}: model file not found")
            text = os.fspath(graph.with_suffix(".json"))
            if not Path(text).is_file():
                raise ModelError(
                    f"{graph}: no manifest {graph.with_suffix('.json').name} beside it; "
                    f"a bare ONNX file needs one (`noisenil models add {graph}` writes it for GTCRN, DTLN and DeepFilterNet3)"
                )
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


def unreadable_manifests() -> list[tuple[Path, str]]:
    """``.json`` files in the model folders that no registry can read (not JSON, or no known
    ``kind``): every registry skips them, so ``noisenil models`` names them and says why."""
    bad = []
    for folder in model_dirs():
        for path in sorted(folder.glob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                bad.append((path, f"not valid JSON ({exc})"))
                continue
            kind = data.get("kind") if isinstance(data, dict) else None
            if kind not in KINDS:
                bad.append((path, f"kind {kind!r} is not one of {', '.join(KINDS)}"))
    return bad


DENOISERS = Registry("denoiser")
CLASSIFIERS = Registry("classifier")
DEFAULT_DENOISER = "noisenil_fb"
