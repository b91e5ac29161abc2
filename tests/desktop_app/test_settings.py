"""desktop_app/settings.py: what the app remembers, and what it does with a stored value it cannot use."""

import json
import logging

import pytest

from desktop_app.settings import Settings


@pytest.fixture(autouse=True)
def isolated_config(tmp_path, monkeypatch):
    monkeypatch.setenv("NOISENIL_CONFIG_DIR", str(tmp_path))


def stored(tmp_path, data) -> Settings:
    (tmp_path / "settings.json").write_text(json.dumps(data))
    return Settings.load()


def test_settings_round_trip(tmp_path):
    s = Settings(model="spectral_subtraction", attenuation_limit_db=24.0, preset="podcast_voice", loudness_enabled=True, loudness_lufs=-19.0, live_block_size=480, live_sample_rate=44100, bitrate_kbps=96, declip=True, dehum=True, level=True)
    s.save()
    assert Settings.load() == s


@pytest.mark.parametrize(
    "field, value",
    [
        ("model", "a_model_since_removed"),
        ("model", 3),
        ("attenuation_limit_db", "abc"),
        ("attenuation_limit_db", -40),
        ("attenuation_limit_db", float("nan")),
        ("preset", "gone"),
        ("loudness_enabled", 1),
        ("loudness_lufs", 5000),
        ("live_sample_rate", "x"),
        ("live_sample_rate", 12345),
        ("live_block_size", 17),
        ("live_model", "dncnn"),  # offline: it cannot run live
        ("live_model", "nope"),
        ("live_safety_ms", -1),
        ("live_record_dir", ["a"]),
        ("bitrate_kbps", 100),  # not one of the choices
    ],
)
def test_a_value_the_app_cannot_use_falls_back_to_its_default_and_keeps_the_rest(tmp_path, caplog, field, value):
    with caplog.at_level(logging.WARNING, "noisenil.gui"):
        s = stored(tmp_path, {field: value, "last_open_dir": "/recordings", "live_attenuation_limit_db": 20})
    assert getattr(s, field) == getattr(Settings(), field)
    assert (s.last_open_dir, s.live_attenuation_limit_db) == ("/recordings", 20)
    assert f"{field} = {value!r} cannot be used" in caplog.text


def test_usable_values_are_kept(tmp_path):
    s = stored(tmp_path, {"model": "auto", "attenuation_limit_db": 12, "preset": "denoise_only", "live_model": "spectral_subtraction", "live_safety_ms": 25.5})
    assert (s.model, s.attenuation_limit_db, s.preset, s.live_model, s.live_safety_ms) == ("auto", 12, "denoise_only", "spectral_subtraction", 25.5)


@pytest.mark.parametrize("text", ["[1, 2]", "{not json", "null"])
def test_a_settings_file_that_is_not_an_object_gives_the_defaults(tmp_path, text):
    (tmp_path / "settings.json").write_text(text)
    assert Settings.load() == Settings()
