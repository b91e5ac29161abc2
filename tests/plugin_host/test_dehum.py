import pickle

import numpy as np
import pytest
from conftest import read_audio, write_audio

from plugin_host import Chain, Dehum, Denoise, ParameterError
from plugin_host.cli import main
from plugin_host.dehum import find_hum

RATE = 48000


def snr_db(reference, estimate):
    return 10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2))


def hum(n, base=50.03, harmonics=(1, 2, 3, 5), rms_dbfs=-40.0, seed=0):
    t = np.arange(n) / RATE
    phases = np.random.default_rng(seed).uniform(0, 2 * np.pi, 40)
    h = sum(np.sin(2 * np.pi * base * k * t + phases[k]) / k for k in harmonics)
    return h / np.sqrt(np.mean(h**2)) * 10 ** (rms_dbfs / 20)


@pytest.fixture(scope="module")
def voice(clean_speech):
    return np.concatenate([clean_speech, clean_speech[::-1]]).astype(np.float64)  # ~28 s: a few segments


def test_hum_under_a_voice_is_found_with_its_frequency_and_level(voice):
    h = hum(len(voice))
    found = find_hum([(voice + h)[None].astype(np.float32)], RATE)
    assert found is not None and found.mains_hz == 50.0
    assert found.frequency_hz == pytest.approx(50.03, abs=0.01)
    numbers = [k for k, _, _ in found.harmonics]
    assert numbers[:3] == [1, 2, 3] and 5 in numbers
    for k, hz, level in found.harmonics:
        assert hz == pytest.approx(50.03 * k, abs=0.02 * k)
    truth = 10 * np.log10(np.mean(h**2))
    assert found.level_dbfs == pytest.approx(truth, abs=1.5)
    assert found.describe().startswith("mains hum at 50.0 Hz, -40 dBFS (")
    buzz = hum(len(voice), base=60.0, harmonics=range(1, 16))
    assert find_hum([(voice + buzz)[None]], RATE).mains_hz == 60.0


def test_a_voice_without_hum_has_none_and_passes_unchanged(voice):
    assert find_hum([voice[None]], RATE) is None
    effect = Dehum()
    x = voice.astype(np.float32)
    np.testing.assert_array_equal(effect(x, RATE), x)
    assert effect.found is None and effect.notches(RATE) == []
    assert find_hum([hum(RATE)[None]], RATE) is None  # under 2 s: not enough to tell a line from a note


def test_dehum_takes_the_hum_out_and_little_of_the_voice(voice):
    h = hum(len(voice))
    noisy = (voice + h).astype(np.float32)
    effect = Dehum()
    y = effect(noisy, RATE).astype(np.float64)
    settled = slice(RATE, None)  # the notches settle in a fraction of a second
    gain = np.dot(y[settled] - voice[settled], h[settled]) / np.dot(h[settled], h[settled])
    assert abs(gain) < 0.1  # measured 0.03: the hum 30 dB down
    assert snr_db(voice, noisy) < 10.0 and snr_db(voice[settled], y[settled]) > 20.0  # measured 7.5 -> 24 dB
    # a denoiser alone leaves much of it under the voice; after Dehum it hears a cleaner input
    plain = Denoise("noisenil_fb")(noisy, RATE).astype(np.float64)
    both = Chain([Dehum(), Denoise("noisenil_fb")])(noisy, RATE).astype(np.float64)
    left = lambda out: np.dot(out[settled] - voice[settled], h[settled]) / np.dot(h[settled], h[settled])
    assert left(plain) > 0.15 and abs(left(both)) < 0.1


def test_forced_mains_frequency_and_parameters(voice):
    with pytest.raises(ParameterError, match=r"frequency_hz must be 50, 60 or None \(find it\), got 55"):
        Dehum(frequency_hz=55)
    with pytest.raises(ParameterError, match=r"bandwidth_hz must be in \[0.1, 10\], got 0"):
        Dehum(bandwidth_hz=0)
    forced = Dehum(frequency_hz=60, max_harmonics=8)
    assert forced.notches(RATE) == [(k, 60.0 * k) for k in range(1, 9)]
    copy = pickle.loads(pickle.dumps(forced))
    assert repr(copy) == "<plugin_host.Dehum frequency_hz=60 bandwidth_hz=1 max_harmonics=8>"
    assert repr(Dehum()) == "<plugin_host.Dehum frequency_hz=auto bandwidth_hz=1 max_harmonics=20>"
    x = (voice + hum(len(voice), base=60.0, harmonics=(1, 2, 3))).astype(np.float32)
    y = forced(x, RATE)
    assert forced.found is None and snr_db(voice[RATE:], y[RATE:].astype(np.float64)) > 15.0


@pytest.mark.parametrize("buffer_size", [1, 64, 65, 8192, 8193])
def test_streaming_is_chunk_invariant(voice, buffer_size):
    x = (voice + hum(len(voice))).astype(np.float32)
    n = len(x) if buffer_size > 1 else RATE // 2
    reference = Dehum()
    reference.find_hum([x[None]], RATE)
    whole = reference.process(x[:n], RATE, reset=False)
    effect = Dehum()
    effect.find_hum([x[None]], RATE)
    parts = [effect.process(x[i : min(i + buffer_size, n)], RATE, reset=False) for i in range(0, n, buffer_size)]
    assert np.array_equal(np.concatenate(parts), whole)
    latency = effect.streaming_latency_samples(RATE)
    offline = effect.process(x, RATE)  # the whole input: it finds the same hum (a causal filter: its start is the same)
    np.testing.assert_allclose(whole[latency:], offline[: n - latency], atol=1e-6)


def test_render_dehum_and_info(tmp_path, capsys, voice):
    src = write_audio(tmp_path / "ground_loop.wav", voice + hum(len(voice), rms_dbfs=-35.0), bit_depth=16)
    assert main(["info", str(src)]) == 0
    assert "  mains hum at 50.0 Hz, -35 dBFS (" in capsys.readouterr().out
    out = tmp_path / "clean.wav"
    assert main(["render", str(src), "-o", str(out), "--model", "wiener", "--dehum"]) == 0
    err = capsys.readouterr().err
    assert "dehummed: mains hum at 50.0 Hz, -35 dBFS (" in err and "), notched" in err
    assert main(["info", str(out)]) == 0
    assert "mains hum" not in capsys.readouterr().out
    calm = write_audio(tmp_path / "calm.wav", voice, bit_depth=16)
    assert main(["render", str(calm), "-o", str(tmp_path / "calm_out.wav"), "--model", "wiener", "--dehum"]) == 0
    assert "dehum: no mains hum found, nothing notched" in capsys.readouterr().err
    short = write_audio(tmp_path / "short.wav", voice[: RATE], bit_depth=16)
    assert main(["render", str(short), "-o", str(tmp_path / "short_out.wav"), "--model", "wiener", "--dehum"]) == 0
    assert "dehum: too short to look for hum in (it takes 2 s), nothing notched" in capsys.readouterr().err
    y = read_audio(out)[0][0].astype(np.float64)
    assert y.shape == voice.shape


def test_the_example_hum_is_found_line_by_line_at_its_levels():
    """examples/make_example.py adds 0.01 * sum(sin(2 pi 50 k t + k) / k) for k = 1, 2, 3, 5, 7 under
    speech, hiss and a fan: every line, and only those, at its level (RMS 0.01 / k / sqrt 2)."""
    from pathlib import Path

    x, rate = read_audio(Path(__file__).parents[2] / "examples" / "noisy_podcast.flac")
    found = find_hum([x], rate)
    assert [k for k, _, _ in found.harmonics] == [1, 2, 3, 5, 7]
    for k, hz, level in found.harmonics:
        assert hz == pytest.approx(50.0 * k, abs=0.02)
        assert level == pytest.approx(20 * np.log10(0.01 / k / np.sqrt(2)), abs=1.0)
