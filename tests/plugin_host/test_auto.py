import numpy as np
from conftest import speechlike, write_audio

from plugin_host.auto import AutoDenoise, choice_for, load_policy
from plugin_host.cli import main

RATE = 48000


def hum(seconds, level=0.03):
    t = np.arange(int(seconds * RATE)) / RATE
    return (level * sum(np.sin(2 * np.pi * 50 * k * t) / k for k in (1, 2, 3, 5))).astype(np.float32)


def test_policy_covers_every_class():
    policy = load_policy()
    from plugin_host import CLASSIFIERS

    assert set(policy["classes"]) == set(CLASSIFIERS.get("noise_classifier").labels)
    for label in policy["classes"]:
        model, limit = choice_for(label, policy)
        assert 0 < limit <= 100


def test_auto_follows_the_classifier_per_recording():
    auto = AutoDenoise()
    x = speechlike(3.0) + hum(3.0)
    y = auto(x, RATE)
    assert auto.last_label == "hum_hiss" and auto.last_choice == ("noisenil_fb", 100.0)  # the shipped learned model
    assert y.shape == x.shape
    quiet = speechlike(3.0)
    auto(quiet, RATE)
    assert auto.last_label == "quiet" and auto.last_choice == ("wiener", 6.0)


def test_auto_streams_with_adaptive_strength():
    auto = AutoDenoise()
    x = speechlike(3.0)  # no noise at all: the strength should drop to the 'quiet' limit
    for i in range(0, len(x), 4800):
        auto.process(x[i : i + 4800], RATE, reset=False)
    assert auto.last_label == "quiet"
    assert auto._stream_effect.attenuation_limit_db == 6.0 and auto._stream_effect.model == "noisenil_fb"


def test_render_with_model_auto(tmp_path, capsys):
    src = write_audio(tmp_path / "hummy.wav", speechlike(3.0) + hum(3.0))
    assert main(["render", str(src), "-o", str(tmp_path / "out.wav"), "--model", "auto"]) == 0
    err = capsys.readouterr().err
    assert "auto: mostly hum_hiss -> noisenil_fb, attenuation limit 100 dB" in err
    assert "dehummed: mains hum at 50.0 Hz" in err  # auto notches the hum it finds too
    calm = write_audio(tmp_path / "calm.wav", speechlike(3.0) + 0.003 * np.random.default_rng(0).standard_normal(3 * RATE))
    assert main(["render", str(calm), "-o", str(tmp_path / "calm_out.wav"), "--model", "auto"]) == 0
    assert "dehum" not in capsys.readouterr().err  # and says nothing where there is none


def test_eval_auto_runs(shared_data, tmp_path):
    assert main(["eval", "--model", "auto", "wiener", "--n-speech", "1", "--data", str(shared_data), "--out", str(tmp_path / "t.md")]) == 0
    assert "| auto |" in (tmp_path / "t.md").read_text()


def test_dominant_label_of_a_long_recording_is_that_of_one_push():
    # the app classifies a whole loaded episode: ten seconds at a time, the same answer as all at once
    from plugin_host.auto import dominant_label
    from plugin_host.classify import NoiseClassifierStream

    rng = np.random.default_rng(4)
    x = np.stack([speechlike(25.0) + hum(25.0), speechlike(25.0, seed=2) + 0.01 * rng.standard_normal(25 * RATE).astype(np.float32)])
    whole = NoiseClassifierStream(None, RATE, 2)
    whole.push(x)
    whole.finish()
    winners = [e.label(whole.labels) for e in whole.timeline]
    assert len(winners) > 40 and dominant_label(x, RATE) == max(dict.fromkeys(winners), key=winners.count)


def test_a_clip_too_short_to_classify_gets_the_default_not_quiet():
    auto = AutoDenoise()
    x = (speechlike(0.1) + hum(0.1)).astype(np.float32)
    y = auto(x, RATE)
    policy = load_policy()
    assert auto.last_label is None  # was "quiet", a label the classifier never gave
    assert auto.last_choice == choice_for(None, policy) == choice_for("no such class", policy)
    assert y.shape == x.shape
    assert auto(speechlike(1.0) + hum(1.0), RATE) is not None and auto.last_label == "hum_hiss"
