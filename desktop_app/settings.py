"""Settings remembered between runs, with their defaults, stored as JSON in the user's config folder."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from plugin_host import DEFAULT_DENOISER
from plugin_host.live import DEFAULT_SAFETY_MS
from plugin_host.processor import MAX_ATTENUATION_DB

DEFAULT_ATTENUATION_LIMIT_DB = MAX_ATTENUATION_DB
DEFAULT_LOUDNESS_LUFS = -16.0

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


@dataclass
class Settings:
    model: str = DEFAULT_DENOISER
    attenuation_limit_db: float = DEFAULT_ATTENUATION_LIMIT_DB
    preset: str = ""  # "" = no preset, the model alone
    loudness_enabled: bool = False
    loudness_lufs: float = DEFAULT_LOUDNESS_LUFS
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
        known = {f.name: f.type for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        try:
            return cls(**values)
        except TypeError:
            return cls()

    def save(self) -> None:
        path = config_dir() / "settings.json"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
            tmp.replace(path)
        except OSError as exc:
            log.warning("cannot save settings to %s: %s", path, exc)
