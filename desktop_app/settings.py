"""Settings remembered between runs, with their defaults, stored as JSON in the user's config folder."""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from plugin_host import DEFAULT_DENOISER, DENOISERS, NoiseNilError, preset_names
from plugin_host.live import DEFAULT_SAFETY_MS
from plugin_host.processor import MAX_ATTENUATION_DB

DEFAULT_ATTENUATION_LIMIT_DB = MAX_ATTENUATION_DB
DEFAULT_LOUDNESS_LUFS = -16.0
LOUDNESS_CHOICES_LUFS = (-40.0, -6.0)  # the app's loudness targets
BLOCK_CHOICES = (0, 64, 128, 256, 480, 512, 1024, 2048)  # live block sizes; 0 = 10 ms
BITRATE_CHOICES_KBPS = (0, 64, 96, 128, 192, 256, 320)  # a lossy export's bit rate (MP3, M4A, Opus, Ogg); 0 = the input's
RATE_CHOICES = (0, 16000, 44100, 48000, 96000)  # live sample rates; 0 = the device's own
SAFETY_RANGE_MS = (0.0, 1000.0)

log = logging.getLogger("noisenil.gui")


def config_dir() -> Path:
    env = os.environ.get("NOISENIL_CONFIG_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_config_dir("noisenil", appauthor=False))


def log_dir() -> Path:
    env = os.environ.get("NOISENIL_CONFIG_DIR")
    if env:
        return Path(env) / "logs"
    import platformdirs

    return Path(platformdirs.user_log_dir("noisenil", appauthor=False))


def cache_dir() -> Path:
    """Where long recordings' audio is kept on disk while open (the app's working copies)."""
    env = os.environ.get("NOISENIL_CONFIG_DIR")
    if env:
        return Path(env) / "cache"
    import platformdirs

    return Path(platformdirs.user_cache_dir("noisenil", appauthor=False))


@dataclass
class Settings:
    model: str = DEFAULT_DENOISER
    attenuation_limit_db: float = DEFAULT_ATTENUATION_LIMIT_DB
    preset: str = ""  # "" = no preset, the model alone
    loudness_enabled: bool = False
    loudness_lufs: float = DEFAULT_LOUDNESS_LUFS
    bitrate_kbps: int = 0  # lossy exports (MP3, M4A, Opus, Ogg); 0 = as the input
    declip: bool = False  # fill in clipped peaks before denoising
    dehum: bool = False  # notch out mains hum before denoising
    level: bool = False  # even out the voices' levels after denoising
    last_open_dir: str = ""
    last_export_dir: str = ""
    # the Live page
    live_input: str = ""  # device name; "" = the system default
    live_output: str = ""
    live_sample_rate: int = 0  # 0 = the input device's own rate
    live_block_size: int = 0  # 0 = 10 ms
    live_model: str = DEFAULT_DENOISER
    live_attenuation_limit_db: float = DEFAULT_ATTENUATION_LIMIT_DB
    live_safety_ms: float = DEFAULT_SAFETY_MS
    live_dehum: bool = False  # notch out the mains hum found in the mic
    live_record_dir: str = ""  # "" = ~/NoiseNil recordings

    @classmethod
    def load(cls) -> Settings:
        path = config_dir() / "settings.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            log.warning("settings %s unreadable (%s); using defaults", path, exc)
            return cls()
        if not isinstance(data, dict):
            log.warning("settings %s is not a JSON object; using defaults", path)
            return cls()
        defaults = cls()
        values = {}
        for f in fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            if _usable(f.name, value, getattr(defaults, f.name)):
                values[f.name] = value
            else:  # a model since removed, a hand-edited value: the default, not a broken app
                log.warning("settings %s: %s = %r cannot be used; using %r", path, f.name, value, getattr(defaults, f.name))
        return cls(**values)

    def save(self) -> None:
        path = config_dir() / "settings.json"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
            tmp.replace(path)
        except OSError as exc:
            log.warning("cannot save settings to %s: %s", path, exc)


def _usable(name: str, value, default) -> bool:
    """Whether a stored value has the field's type and is one the app can use today."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
    elif not isinstance(value, type(default)):
        return False
    if name in ("attenuation_limit_db", "live_attenuation_limit_db"):
        return 0.0 <= value <= MAX_ATTENUATION_DB
    if name == "loudness_lufs":
        return LOUDNESS_CHOICES_LUFS[0] <= value <= LOUDNESS_CHOICES_LUFS[1]
    if name == "live_safety_ms":
        return SAFETY_RANGE_MS[0] <= value <= SAFETY_RANGE_MS[1]
    if name == "bitrate_kbps":
        return value in BITRATE_CHOICES_KBPS
    if name == "live_sample_rate":
        return value in RATE_CHOICES
    if name == "live_block_size":
        return value in BLOCK_CHOICES
    if name == "preset":
        return value == "" or value in preset_names()
    if name == "model":
        return value == "auto" or value in DENOISERS.names()
    if name == "live_model":
        return is_streaming_model(value)
    return True


def is_streaming_model(name: str) -> bool:
    """A registered model that can run live (offline models look up to a second ahead)."""
    try:
        return DENOISERS.get(name).streaming
    except NoiseNilError:
        return False
