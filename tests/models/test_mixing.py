"""The training data layer: splits, the licence rule, seeded mixtures (no torch needed)."""

import numpy as np
import pytest

from models import data
from tests.conftest import SHARED_DATA
from models.mixing import SAMPLE_RATE, MixConfig, Mixer, _active_rms, _rms, band_hz


@pytest.fixture(scope="module")
def mixer():
    if not (SHARED_DATA / "manifest.csv").is_file():
        pytest.skip(f"corpus not present at {SHARED_DATA} (CI has it beside the checkout)")
    return Mixer(MixConfig(seconds=2.0, data_dir=str(SHARED_DATA)))


def test_training_draws_only_from_shippable_train_rows(mixer):
    pools = {"speech": mixer.speech_narrow + mixer.speech_fullband, "noise": mixer.noises, "rir": mixer.rirs}
    for kind, rows in pools.items():
        assert rows, kind
        for r in rows:
            assert r.kind == kind and r.split == "train", r.path
            assert r.shippable and not r.licence.startswith(("CC-BY-NC", "unstated")), (r.path, r.licence)
    everything = data.read_manifest(mixer.config.data_dir)
    excluded = [r for r in everything if r.split == "train" and r.kind == "noise" and not r.shippable]
    assert excluded, "the corpus has noise a shipped model may not learn from"
    assert not {r.path for r in excluded} & {r.path for r in mixer.noises}
    assert all(r.sample_rate >= 44100 for r in mixer.speech_fullband) and len(mixer.speech_fullband) > 100


def test_dev_mixer_uses_the_dev_split_only(shared_data):
    dev = Mixer(MixConfig(seconds=1.0, split="dev", data_dir=str(shared_data)))
    train_paths = {r.path for r in data.read_manifest(shared_data) if r.split == "train"}
    assert not {r.path for r in dev.speech_narrow + dev.speech_fullband + dev.noises + dev.rirs} & train_paths


def test_examples_are_deterministic_per_seed_and_index(mixer, shared_data):
    again = Mixer(MixConfig(seconds=2.0, data_dir=str(shared_data)))
    for i in (0, 7):
        a, b = mixer.example(i), again.example(i)
        np.testing.assert_array_equal(a["noisy"], b["noisy"])
        np.testing.assert_array_equal(a["clean"], b["clean"])
    assert not np.array_equal(mixer.example(0)["noisy"], mixer.example(1)["noisy"])
    other_seed = Mixer(MixConfig(seconds=2.0, seed=1, data_dir=str(shared_data)))
    assert not np.array_equal(mixer.example(0)["noisy"], other_seed.example(0)["noisy"])


def test_mixtures_hit_their_snr_and_level(mixer):
    checked = 0
    for i in range(60):
        ex = mixer.example(i)
        noisy, clean, noise = ex["noisy"], ex["clean"], ex["noise"]
        assert noisy.dtype == np.float32 and len(noisy) == len(clean) == 2 * SAMPLE_RATE
        assert np.all(np.isfinite(noisy)) and np.all(np.isfinite(clean))
        if ex["clipped"] or not np.isfinite(ex["snr_db"]) or not np.any(clean) or ex["lowpass_hz"]:
            continue
        speech = noisy - noise  # what was mixed in (reverberant when reverb was drawn)
        measured = 20 * np.log10(_active_rms(speech) / _rms(noise))
        assert measured == pytest.approx(ex["snr_db"], abs=0.05)
        assert -5.0 <= ex["snr_db"] <= 25.0
        level = 20 * np.log10(_active_rms(noisy))
        assert -38.5 <= level <= -11.5
        checked += 1
    assert checked >= 30


def test_band_limited_speech_leaves_the_target_empty_above_its_band(mixer):
    """A 16 kHz utterance is not asked to grow content above 8 kHz, while the noise there stays in the input."""
    seen = 0
    for i in range(40):
        ex = mixer.example(i)
        if ex["speech_nyquist_hz"] > 8000 or ex["reverb"] or not np.any(ex["clean"]) or ex["lowpass_hz"]:
            continue
        spec_clean = np.abs(np.fft.rfft(ex["clean"])) ** 2
        spec_noise = np.abs(np.fft.rfft(ex["noise"])) ** 2
        f = np.fft.rfftfreq(len(ex["clean"]), 1 / SAMPLE_RATE)
        high = f > 8500
        clean_high_db = 10 * np.log10(spec_clean[high].sum() / spec_clean.sum())
        assert clean_high_db < -50.0, clean_high_db
        if spec_noise.sum() > 0:
            noise_high_db = 10 * np.log10(spec_noise[high].sum() / spec_noise.sum() + 1e-30)
            assert noise_high_db > clean_high_db + 20
        seen += 1
    assert seen >= 5


def test_band_note_parsing():
    row = data.Row("x.flac", "speech", "", "s", 16000, 1.0, "train", "CC0-1.0", "gender=F; bw~7kHz; est_snr=30")
    assert band_hz(row) == 7000.0
    assert band_hz(data.Row("y.flac", "speech", "", "s", 44100, 1.0, "train", "CC0-1.0", "")) == 22050.0


def test_synthetic_noises_are_seeded_and_unit_level():
    for make in (data.hum, data.hiss, data.clicks, data.hum_hiss):
        a = make(SAMPLE_RATE, SAMPLE_RATE, np.random.default_rng(3))
        b = make(SAMPLE_RATE, SAMPLE_RATE, np.random.default_rng(3))
        np.testing.assert_array_equal(a, b)
        assert np.std(a) == pytest.approx(1.0, rel=0.05)
    hum = data.hum(SAMPLE_RATE, SAMPLE_RATE, np.random.default_rng(0))
    spectrum = np.abs(np.fft.rfft(hum))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / len(hum)
    assert any(abs(peak_hz / f0 - round(peak_hz / f0)) < 0.05 and round(peak_hz / f0) >= 1 for f0 in (50.0, 60.0)), peak_hz
