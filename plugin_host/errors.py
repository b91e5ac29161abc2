"""Typed errors. Each message quotes the bad value and, where there is a closed set, the allowed ones.

Library code raises these; only the CLI turns them into one-line messages and exit codes.
"""

from __future__ import annotations


class NoiseNilError(Exception):
    """Base class of every error NoiseNil raises on purpose."""


class UnknownNameError(NoiseNilError, KeyError):
    """A name that is not in a registry (model, preset, format...)."""

    def __init__(self, kind: str, name: str, valid: list[str] | tuple[str, ...], where: str | None = None):
        self.kind, self.name, self.valid = kind, name, list(valid)
        prefix = f"{where}: " if where else ""  # the file that names it (a preset)
        super().__init__(f"{prefix}unknown {kind} {name!r}; valid: {', '.join(self.valid) or '(none)'}")

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.args[0]


class ModelError(NoiseNilError):
    """A model file or manifest is missing, damaged or inconsistent."""


class ParameterError(NoiseNilError, ValueError):
    """A parameter outside its allowed range."""


class AudioFileError(NoiseNilError):
    """An input file that cannot be read as audio, or an output that cannot be written."""

    def __init__(self, path, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{self.path}: {problem}")


class AudioDeviceError(NoiseNilError):
    """An audio device that is missing, cannot be opened with the asked settings, or failed mid-stream."""


def check_range(name: str, value: float, low: float, high: float) -> float:
    """Return float(value) if low <= value <= high, else raise ParameterError quoting it."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}") from None
    if not (low <= v <= high):  # also rejects NaN
        raise ParameterError(f"{name} must be in [{low:g}, {high:g}], got {value!r}")
    return v
