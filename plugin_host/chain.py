"""A list-like chain mixing NoiseNil effects with native pedalboard plugins, and chain presets.

pedalboard cannot host Python plugins inside its own ``Pedalboard`` (spotify/pedalboard#12), so
``Chain`` runs each run of consecutive native plugins as one native ``Pedalboard`` and our
effects between them. With ``reset=True`` every step is latency-compensated, so the whole
chain's output lines up with its input; with ``reset=False`` it streams, delayed by
``streaming_latency_samples``.
"""

from __future__ import annotations

import inspect
import json
import os
import re
from collections.abc import MutableSequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pedalboard

from .effects import Denoise, as_channels_first, check_buffer_size, restore_layout, run_offline
from .engine import check_sample_rate
from .errors import NoiseNilError, ParameterError, UnknownNameError, check_range

PRESETS_DIR = Path(__file__).resolve().parent / "presets"
LOUDNESS_RANGE_LUFS = (-70.0, 0.0)  # integrated loudness targets (BS.1770)
TRUE_PEAK_RANGE_DBTP = (-20.0, 0.0)  # true-peak ceilings for loudness normalisation
_NOT_FOR_PRESETS = {"Plugin", "PluginContainer", "Pedalboard", "Chain", "Mix", "ExternalPlugin", "VST3Plugin", "AudioUnitPlugin"}


def native_plugin_names() -> list[str]:
    """pedalboard's built-in plugins that a preset may name."""
    return sorted(
        n
        for n in dir(pedalboard)
        if n not in _NOT_FOR_PRESETS
        and not n.startswith("_")
        and isinstance(getattr(pedalboard, n), type)
        and issubclass(getattr(pedalboard, n), pedalboard.Plugin)
    )


def _our_effects() -> dict:
    from .classify import ClassifyNoise
    from .declip import Declip
    from .dehum import Dehum
    from .level import Level

    return {"Denoise": Denoise, "Declip": Declip, "Dehum": Dehum, "Level": Level, "ClassifyNoise": ClassifyNoise}


NATIVE_BUFFER_SIZE = 8192  # constant: pedalboard re-prepares (resets) plugins when buffer_size changes


def _is_native(plugin) -> bool:
    return isinstance(plugin, pedalboard.Plugin)


def prime_native(board, sample_rate: int, channels: int, buffer_size: int = NATIVE_BUFFER_SIZE) -> None:
    """Reset a native sub-chain, teach it our (channels, samples) layout and its largest block.

    pedalboard guesses the layout of each array and cannot tell (2, 1) or (2, 2) apart; it
    remembers the layout of the last non-square array. It also re-prepares (resets) plugins
    when a block is larger than any before, which would reset a compressor mid-stream when
    chunk sizes vary. One full block of zeros with reset=True settles both, leaving the
    plugins as fresh as a reset would (they have seen nothing but silence).
    """
    zeros = np.zeros((channels, max(buffer_size, channels + 1)), np.float32)
    board.process(zeros, sample_rate, buffer_size=buffer_size, reset=True)


def _holds(chain, target) -> bool:
    """Whether ``chain`` is ``target`` or holds it, at any depth."""
    return chain is target or (isinstance(chain, Chain) and any(_holds(step, target) for step in chain._plugins))


def _check_plugin(plugin, owner=None):
    if owner is not None and _holds(plugin, owner):
        raise ParameterError("a Chain cannot hold itself (it would run forever)")
    if _is_native(plugin) or (callable(getattr(plugin, "process", None)) and callable(getattr(plugin, "reset", None))):
        return plugin
    raise ParameterError(f"a Chain holds pedalboard plugins or NoiseNil effects, got {plugin!r}")


def scan_input(steps, chunks, sample_rate: int) -> None:
    """Show a whole input, once, to the steps at the head of a chain that look at it before they
    run (``Declip`` and ``Dehum`` with a level or hum to find: their ``scanner``); the first step
    that does not look (``scans_input``) ends the head, as the steps after it hear something else."""
    scanners = []
    for step in steps:
        if not getattr(step, "scans_input", False):
            break
        scanner = step.scanner(sample_rate)
        if scanner is not None:
            scanners.append(scanner)
    if scanners:
        for chunk in chunks:
            for scanner in scanners:
                scanner.add(chunk)
        for scanner in scanners:
            scanner.finish()


class Chain(MutableSequence):
    """``Chain([HighpassFilter(80), Denoise(), Compressor()])``; list operations; pedalboard's process contract."""

    def __init__(self, plugins=None):
        self._plugins = [_check_plugin(p) for p in (plugins or [])]
        self._segments = None
        self._primed: set[tuple[int, int, int, int]] = set()  # (segment id, rate, channels, buffer size) primed

    # list protocol -------------------------------------------------------------------------------
    def __getitem__(self, index):
        return Chain(self._plugins[index]) if isinstance(index, slice) else self._plugins[index]

    def __setitem__(self, index, plugin):
        if isinstance(index, slice):
            self._plugins[index] = [_check_plugin(p, self) for p in plugin]
        else:
            self._plugins[index] = _check_plugin(plugin, self)
        self._segments = None

    def __delitem__(self, index):
        del self._plugins[index]
        self._segments = None

    def __len__(self):
        return len(self._plugins)

    def insert(self, index, plugin):
        self._plugins.insert(index, _check_plugin(plugin, self))
        self._segments = None

    def __repr__(self):
        return f"<plugin_host.Chain with {len(self)} plugins: {self._plugins!r}>"

    # processing ------------------------------------------------------------------------------------
    def _build(self):
        segments, native = [], []
        for p in self._plugins:
            if _is_native(p):
                native.append(p)
                continue
            if native:
                segments.append(pedalboard.Pedalboard(native))
                native = []
            segments.append(p)
        if native:
            segments.append(pedalboard.Pedalboard(native))
        self._segments = segments
        return segments

    @property
    def segments(self) -> list:
        """What actually runs: native ``Pedalboard`` sub-chains and our effects, in order."""
        return self._segments if self._segments is not None else self._build()

    def reset(self) -> None:
        for p in self._plugins:
            p.reset()
        self._primed.clear()

    def streaming_latency_samples(self, sample_rate: float) -> int:
        """Total delay with ``reset=False`` (native plugins report none)."""
        return sum(p.streaming_latency_samples(sample_rate) for p in self._plugins if not _is_native(p))

    def offline_pipeline(self, sample_rate: int, channels: int) -> ChainPipeline:
        """Aligned chunked rendering of the whole chain (used for files: flat memory, exact length)."""
        return ChainPipeline(self.segments, check_sample_rate(sample_rate), channels)

    def process(self, input_array, sample_rate: float, buffer_size: int = 8192, reset: bool = True) -> np.ndarray:
        rate = check_sample_rate(sample_rate)
        size = check_buffer_size(buffer_size)
        x, layout = as_channels_first(input_array)
        if reset:
            if np.all(np.isfinite(x)):  # a Declip or Dehum at the head finds its level or hum in the whole input
                scan_input(self._plugins, [x], rate)
            y = run_offline(self.offline_pipeline(rate, x.shape[0]), x, size)
        else:
            for segment in self.segments:
                key = (id(segment), rate, x.shape[0], size)
                if _is_native(segment) and key not in self._primed:
                    prime_native(segment, rate, x.shape[0], size)
                    self._primed.add(key)
                x = segment.process(x, rate, buffer_size=size, reset=False)
            y = x
        return restore_layout(np.asarray(y, dtype=np.float32), layout)

    __call__ = process


class ChainPipeline:
    """Push chunks through every step; our effects drop their latency, native sub-chains stream.

    Native pedalboard plugins here are run with ``reset=False`` one chunk at a time (they are
    primed first); pedalboard reports no latency for them, and the built-in filters, gates and
    compressors have none.
    """

    def __init__(self, segments: list, sample_rate: int, channels: int):
        self.sample_rate = sample_rate
        self.stages = []
        for seg in segments:
            if _is_native(seg):
                prime_native(seg, sample_rate, channels)
                self.stages.append(seg)
            else:
                self.stages.append(seg.offline_pipeline(sample_rate, channels))
        self.channels = channels

    def _stage_push(self, stage, x: np.ndarray) -> np.ndarray:
        if x.shape[1] == 0:
            return x
        if _is_native(stage):
            return np.asarray(stage.process(x, self.sample_rate, buffer_size=NATIVE_BUFFER_SIZE, reset=False), np.float32)
        return stage.push(x)

    def push(self, x: np.ndarray) -> np.ndarray:
        for stage in self.stages:
            x = self._stage_push(stage, x)
        return x

    def finish(self) -> np.ndarray:
        carry = np.zeros((self.channels, 0), np.float32)
        for stage in self.stages:
            carry = self._stage_push(stage, carry)
            if not _is_native(stage):
                carry = np.concatenate([carry, stage.finish()], axis=1)
        return carry


# presets -------------------------------------------------------------------------------------------
@dataclass
class Preset:
    name: str
    description: str
    chain: Chain
    loudness_lufs: float | None = None
    true_peak_dbtp: float = -1.0


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.json"))


def _make_step(step: dict, where: str):
    if not isinstance(step, dict) or "plugin" not in step:
        raise ParameterError(f"{where}: each step must be an object with a 'plugin' key, got {step!r}")
    kind, kwargs = step["plugin"], {k: v for k, v in step.items() if k != "plugin"}
    natives = native_plugin_names()
    ours = _our_effects()
    if kind in ours:
        cls = ours[kind]
    elif kind in natives:
        cls = getattr(pedalboard, kind)
    else:
        raise UnknownNameError("plugin", kind, sorted(ours) + natives, where=where)
    valid, signature = _parameters(cls)
    unknown = sorted(k for k in kwargs if valid is not None and k not in valid)
    if unknown:
        raise ParameterError(f"{where}: {kind} has no parameter {', '.join(unknown)}; valid: {', '.join(valid) or '(none)'}")
    try:
        return cls(**kwargs)
    except NoiseNilError as exc:  # ours: a value out of range, a model that is not registered
        raise ParameterError(f"{where}: {kind}: {exc}") from None
    except (TypeError, ValueError):  # pedalboard's own: a wrong type or a value it refuses
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise ParameterError(f"{where}: {kind}: bad value in {given}; expected {signature or ', '.join(valid or [])}") from None


def _parameters(cls) -> tuple[list[str] | None, str]:
    """A plugin class's constructor parameters (None: unknown) and, for pedalboard's compiled
    classes, their signature as text, both from the signature line of the docstring."""
    try:
        params = inspect.signature(cls.__init__).parameters
        return [p for p in params if p != "self"], ""
    except (TypeError, ValueError):
        pass
    first = (cls.__init__.__doc__ or "").strip().splitlines()[0] if cls.__init__.__doc__ else ""
    if not (first.startswith("__init__(self") and ") -> " in first):
        return None, ""
    inside = first[first.find("(") + 1 : first.rfind(") -> ")]
    names = [n for n in re.findall(r"(?:^|, )(\w+): ", inside) if n != "self"]
    return names, inside.split(", ", 1)[1] if ", " in inside else ""


def load_preset(name_or_path: str | os.PathLike, model: str | None = None) -> Preset:
    """A preset by name (``preset_names()``) or path to a JSON file; ``model`` overrides its denoisers' model."""
    text = os.fspath(name_or_path)
    path = Path(text) if (text.endswith(".json") or os.sep in text) else PRESETS_DIR / f"{text}.json"
    if not path.is_file():
        if path.parent == PRESETS_DIR:
            raise UnknownNameError("preset", text, preset_names())
        raise ParameterError(f"{path}: preset file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ParameterError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except (OSError, ValueError) as exc:
        raise ParameterError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    steps = data.get("steps") if isinstance(data, dict) else None
    if not isinstance(steps, list):
        raise ParameterError(f"{path}: a preset is a JSON object with a list of 'steps', e.g. {{\"steps\": [{{\"plugin\": \"Denoise\"}}]}}")
    if model is not None:
        from .registry import DENOISERS

        DENOISERS.get(model)  # a bad --model is the user's, not the preset file's: say so plainly
        steps = [dict(s, model=model) if isinstance(s, dict) and s.get("plugin") == "Denoise" else s for s in steps]
    chain = Chain([_make_step(s, str(path)) for s in steps])
    try:
        loudness = data.get("loudness_lufs")
        loudness = None if loudness is None else check_range("loudness_lufs", loudness, *LOUDNESS_RANGE_LUFS)
        ceiling = check_range("true_peak_dbtp", data.get("true_peak_dbtp", -1.0), *TRUE_PEAK_RANGE_DBTP)
    except ParameterError as exc:
        raise ParameterError(f"{path}: {exc}") from None
    return Preset(
        name=str(data.get("name", path.stem)),
        description=str(data.get("description", "")),
        chain=chain,
        loudness_lufs=loudness,
        true_peak_dbtp=ceiling,
    )
