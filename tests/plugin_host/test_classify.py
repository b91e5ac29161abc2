import json

import numpy as np
import pedalboard
import pytest
from conftest import run_cli, speechlike, write_audio

from plugin_host import CLASSIFIERS, Chain, ClassifyNoise, Denoise
from plugin_host.classify import NoiseClassifierStream, classify_file
from plugin_host.registry import shipped_models_dir

RATE = 48000
LABELS = ["babble", "music_tv", "traffic", "appliance", "office", "nature", "animal", "construction", "hum_hiss", "quiet"]


def hum(seconds, rate=RATE, level=0.05):
    t = np.arange(int(seconds * rate)) / rate
    return (level * sum(np.sin(2 * np.pi * 50 * k * t) / k for k in (1, 2, 3, 5, 7))).astype(np.float32)


def hiss(seconds, rate=RATE, level=0.02, seed=0):
    return (level * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32)


def test_classifier_is_registered_with_its_taxonomy():
    assert "noise_classifier" in CLASSIFIERS.names()
    m = CLASSIFIERS.get("noise_classifier")
    assert list(m.labels) == LABELS and m.sample_rate == 16000
    assert 0.0 < m.metrics["macro_f1"] <= 1.0  # from `python -m models.noise_classifier evaluate`


def test_golden_pair_matches_onnxruntime():
    model = CLASSIFIERS.load("noise_classifier")
    m = model.manifest
    golden = np.load(shipped_models_dir() / m.raw["golden"])
    outs = [model.session.run([m.output.name], {m.input.name: f.reshape(m.input.shape)})[0][0] for f in golden["input"]]
    assert len(outs) >= 20
    assert np.max(np.abs(np.asarray(outs) - golden["output"].reshape(len(outs), -1))) < 1e-4


def test_timeline_shape_and_timing():
    stream = NoiseClassifierStream(sample_rate=RATE)
    x = hiss(5.0)[None]
    for i in range(0, x.shape[1], 4097):
        stream.push(x[:, i : i + 4097])
    stream.finish()
    ends = [e.end for e in stream.timeline]
    window = stream.window / stream.rate  # ~0.995 s
    assert len(ends) == int((5.0 - window) / 0.5) + 1
    assert ends[0] == pytest.approx(window, abs=1e-3)
    assert np.allclose(np.diff(ends), 0.5)
    assert all(e.end - e.start == pytest.approx(window, abs=1e-3) for e in stream.timeline)
    assert all(abs(e.probabilities.sum() - 1) < 1e-4 for e in stream.timeline)


@pytest.mark.parametrize("buffer_size", [1, 64, 8193])
def test_classify_effect_passes_audio_through_exactly(buffer_size):
    x = np.stack([speechlike(1.2) + hum(1.2), hiss(1.2)])
    effect = ClassifyNoise()
    chunks = [effect.process(x[:, i : i + 4800], RATE, buffer_size=buffer_size, reset=False) for i in range(0, x.shape[1], 4800)]
    assert np.array_equal(np.concatenate(chunks, axis=1), x)
    assert effect.latest is not None and set(effect.smoothed) == set(LABELS)
    assert np.array_equal(effect(x, RATE), x) and np.array_equal(effect(x[0], RATE), x[0])


def test_streaming_after_a_whole_file_call_starts_afresh():
    # process(reset=True) flushes its stream; a later reset=False call raised soxr's "Input after last input"
    x = np.stack([hum(3.0), hiss(3.0)])
    effect = ClassifyNoise()
    effect(x, 44100)
    assert len(effect.timeline) > 0
    for i in range(0, x.shape[1], 4410):
        assert np.array_equal(effect.process(x[:, i : i + 4410], 44100, reset=False), x[:, i : i + 4410])
    fresh = ClassifyNoise()
    for i in range(0, x.shape[1], 4410):
        fresh.process(x[:, i : i + 4410], 44100, reset=False)
    assert [e.end for e in effect.timeline] == [e.end for e in fresh.timeline]  # a new stream, not the old one continued
    assert np.allclose(effect.timeline[-1].probabilities, fresh.timeline[-1].probabilities, atol=1e-6)
    chain = Chain([ClassifyNoise(), pedalboard.Gain(gain_db=-6)])
    chain(x, 44100)
    np.testing.assert_allclose(chain(x, 44100, reset=False), x * 10 ** (-6 / 20), atol=1e-6)


def test_classify_effect_in_a_chain_changes_nothing():
    x = speechlike(2.0) + hiss(2.0)
    classify = ClassifyNoise()
    chain = Chain([pedalboard.Gain(gain_db=0.0), classify, Denoise()])
    y = chain(x, RATE)
    assert np.max(np.abs(y - Denoise()(x, RATE))) < 1e-6
    assert classify.latest[0] in LABELS and len(classify.timeline) >= 2


@pytest.mark.parametrize(
    "make,expected",
    [
        (lambda: hum(4.0), "hum_hiss"),
        (lambda: hiss(4.0), "hum_hiss"),
        (lambda: speechlike(4.0) + hum(4.0, level=0.02), "hum_hiss"),
        (lambda: np.zeros(4 * RATE, np.float32) + hiss(4.0, level=1e-5), "quiet"),
        (lambda: np.zeros(4 * RATE, np.float32), "quiet"),
        (lambda: speechlike(4.0), "quiet"),
    ],
)
def test_clearly_separable_cases(make, expected, tmp_path):
    path = write_audio(tmp_path / "case.wav", make(), bit_depth=32)
    summary = classify_file(path)
    assert summary.label == expected, summary.shares
    assert summary.shares[expected] >= 0.6


def test_classify_cli_text_and_json(tmp_path):
    a = write_audio(tmp_path / "hum.wav", hum(3.0))
    r = run_cli("classify", a, tmp_path / "missing.wav")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stdout.startswith(f"{a}: hum_hiss (of 5 half-second steps: hum_hiss")
    assert "missing.wav: no such file" in r.stderr
    r = run_cli("classify", "--json", a)
    data = json.loads(r.stdout.strip().splitlines()[0])
    assert data["label"] == "hum_hiss" and data["labels"] == LABELS
    assert set(data["shares"]) == set(LABELS) and abs(sum(data["shares"].values()) - 1) < 1e-6
    assert all(abs(s["end"] - s["start"] - 0.995) < 0.01 for s in data["timeline"])
    assert [s["end"] for s in data["timeline"]] == pytest.approx([0.995, 1.495, 1.995, 2.495, 2.995], abs=0.01)


def test_classify_cli_takes_folders_and_globs(tmp_path):
    show = tmp_path / "show"
    (show / "ep1").mkdir(parents=True)
    a = write_audio(show / "hum.wav", hum(3.0))
    b = write_audio(show / "ep1" / "hum2.flac", hum(2.0))
    (show / "notes.txt").write_text("not audio")
    r = run_cli("classify", show)
    assert r.returncode == 0 and r.stderr == ""
    lines = r.stdout.strip().splitlines()
    assert [line.split(": ")[0] for line in lines] == [str(b), str(a)]  # sorted, recursive, the text file left out
    assert all(": hum_hiss (of " in line for line in lines)
    r = run_cli("classify", "--json", str(show / "*.wav"), tmp_path / "empty_glob_*.wav")
    assert r.returncode == 1 and [json.loads(line)["file"] for line in r.stdout.strip().splitlines()] == [str(a)]
    assert r.stderr.strip() == f"error: {tmp_path / 'empty_glob_*.wav'}: no file matches this pattern"


def test_a_recording_too_short_to_hear_gets_no_label(tmp_path):
    """Under MIN_SECONDS there is too little to repeat into a patch (10 samples repeated are a buzz):
    no estimate, said so in one line; from MIN_SECONDS up, one estimate of the repeated audio."""
    from plugin_host.classify import MIN_SECONDS

    tiny = write_audio(tmp_path / "tiny.wav", hum(0.2))
    short = write_audio(tmp_path / "short.wav", hum(MIN_SECONDS + 0.05))
    assert classify_file(tiny).label is None and classify_file(tiny).timeline == []
    assert classify_file(short).label == "hum_hiss" and len(classify_file(short).timeline) == 1
    r = run_cli("classify", tiny, short)
    assert r.returncode == 0 and r.stdout.splitlines() == [f"{tiny}: too short to classify (it needs at least 0.25 s)", f"{short}: hum_hiss (of 1 half-second steps: hum_hiss 100%)"]
    assert json.loads(run_cli("classify", "--json", tiny).stdout)["label"] is None
