import pickle

import numpy as np
import pytest
from conftest import read_audio, speechlike, write_audio

from plugin_host import Chain, Declip, Denoise, ParameterError, load_preset
from plugin_host.cli import main
from plugin_host.declip import fill_gap
from plugin_host.clipping import ClipCounter

RATE = 48000


def snr_db(reference, estimate):
    return 10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2))


@pytest.fixture(scope="module")
def voice():
    x = speechlike(4.0, seed=3).astype(np.float64)
    return x / np.max(np.abs(x))


def clip(x, over_db):
    reference = x * 10 ** (over_db / 20)
    return reference, np.clip(reference, -1.0, 1.0).astype(np.float32)


def test_fill_gap_restores_a_predictable_peak():
    t = np.arange(400) / RATE
    x = 1.3 * np.sin(2 * np.pi * 180 * t + 0.3) + 0.4 * np.sin(2 * np.pi * 530 * t + 1.0)
    unknown = np.zeros(400, bool)
    peak = 150 + int(np.argmax(x[150:250]))
    unknown[peak - 5 : peak + 6] = True
    y = fill_gap(np.where(unknown, 1.0, x), unknown)
    assert np.max(np.abs(y - x[unknown])) < 1e-4


def test_a_lightly_clipped_voice_comes_back(voice):
    reference, clipped = clip(voice, 1.0)
    effect = Declip()
    y = effect(clipped, RATE)
    assert y.shape == clipped.shape and y.dtype == np.float32
    assert snr_db(reference, clipped) == pytest.approx(32.5, abs=0.5)
    assert snr_db(reference, y) > snr_db(reference, clipped) + 20.0  # measured 32.5 -> 60.6 dB
    assert effect.repaired == 430 and effect.left == 0
    assert np.max(np.abs(y)) > 1.05  # the peaks over full scale are back
    untouched = np.abs(clipped) < 0.999
    np.testing.assert_array_equal(y[untouched], clipped[untouched])  # only the flat tops change


@pytest.mark.parametrize("over_db", [3.0, 6.0, 10.0])
def test_heavier_clipping_is_never_made_worse(voice, over_db):
    """This synthetic voice clips on nearly every peak at 3 dB and more (flat tops side by side):
    little is left to predict from, and a fill that runs away is left as it came."""
    reference, clipped = clip(voice, over_db)
    effect = Declip()
    y = effect(clipped, RATE)
    assert snr_db(reference, y) >= snr_db(reference, clipped) - 0.01
    assert np.max(np.abs(y)) < 4.0


def test_audio_that_never_clipped_passes_unchanged(voice):
    x = (0.9 * voice).astype(np.float32)
    effect = Declip()
    np.testing.assert_array_equal(effect(x, RATE), x)
    assert effect.repaired == 0
    single = x.copy()
    single[1000] = 1.0  # one sample at full scale: a transient, not a flat top
    np.testing.assert_array_equal(Declip()(single, RATE), single)


def test_long_flat_tops_are_left_as_they_came():
    x = np.zeros(RATE, np.float32)
    x[20000:20480] = 1.0  # 10 ms at full scale: a square wave's worth, nothing to predict from
    effect = Declip(max_gap_ms=5.0)
    np.testing.assert_array_equal(effect(x, RATE), x)
    assert (effect.repaired, effect.left) == (0, 1)


@pytest.mark.parametrize("buffer_size", [1, 64, 65, 8192, 8193])
def test_streaming_is_chunk_invariant_and_reports_its_latency(voice, buffer_size):
    _, clipped = clip(voice, 3.0)
    n = len(clipped) if buffer_size > 1 else RATE // 4
    whole = Declip().process(clipped[:n], RATE, reset=False)
    effect = Declip()
    parts = [effect.process(clipped[i : min(i + buffer_size, n)], RATE, reset=False) for i in range(0, n, buffer_size)]
    assert np.array_equal(np.concatenate(parts), whole)
    latency = Declip().streaming_latency_samples(RATE)
    assert latency == 240 + 192 + 240  # 5 ms gap + 4 ms context of lookahead, + one hop of buffering
    offline = Declip().process(clipped[:n], RATE)
    np.testing.assert_array_equal(whole[latency:], offline[: n - latency])


@pytest.mark.parametrize("rate", [44100])  # at 16 kHz a light clip is one or two samples long; dev voices: benchmarks/results/declip.md
def test_other_rates(voice, rate):
    import soxr

    x = soxr.resample(voice, RATE, rate)
    x = x / np.max(np.abs(x))
    reference, clipped = clip(x, 1.0)
    assert snr_db(reference, Declip()(clipped, rate)) > snr_db(reference, clipped) + 10.0


def test_parameters_pickling_and_chains(tmp_path, voice):
    with pytest.raises(ParameterError, match=r"threshold_db must be in \[-40, 0\], got 3"):
        Declip(threshold_db=3)
    with pytest.raises(ParameterError, match=r"max_gap_ms must be in \[0.1, 20\], got 0"):
        Declip(max_gap_ms=0)
    effect = Declip(threshold_db=-6.0, max_gap_ms=2.0)
    copy = pickle.loads(pickle.dumps(effect))
    assert (copy.threshold_db, copy.max_gap_ms) == (-6.0, 2.0) and repr(copy) == "<plugin_host.Declip threshold_db=-6 max_gap_ms=2>"
    # clipped at -6 dBFS and turned down: a threshold of its own finds it
    reference, clipped = clip(voice, 1.0)
    quieter = (clipped * 10 ** (-6.0 / 20)).astype(np.float32)
    assert snr_db(reference * 10 ** (-6.0 / 20), Declip(threshold_db=-6.02)(quieter, RATE)) > snr_db(reference, clipped) + 20.0
    assert repr(Declip()) == "<plugin_host.Declip threshold_db=auto max_gap_ms=5>" and pickle.loads(pickle.dumps(Declip())).threshold_db is None
    # in a chain, and in a preset file
    chain = Chain([Declip(), Denoise("wiener")])
    assert chain.streaming_latency_samples(RATE) == Declip().streaming_latency_samples(RATE) + Denoise("wiener").streaming_latency_samples(RATE)
    assert chain(clipped, RATE).shape == clipped.shape
    path = tmp_path / "repair.json"
    path.write_text('{"steps": [{"plugin": "Declip", "max_gap_ms": 3}, {"plugin": "Denoise"}]}')
    assert [type(s).__name__ for s in load_preset(str(path)).chain] == ["Declip", "Denoise"]


def test_render_declip_fills_in_and_turns_the_file_down_to_fit(tmp_path, capsys):
    x = np.clip(1.12 * speechlike(3.0, seed=5) / np.max(np.abs(speechlike(3.0, seed=5))), -1.0, 1.0)
    src = write_audio(tmp_path / "hot.wav", x, bit_depth=24)
    before = ClipCounter(RATE)
    before.add(read_audio(src)[0])
    assert before.finish().count > 50
    out = tmp_path / "fixed.wav"
    assert main(["render", str(src), "-o", str(out), "--model", "wiener", "--declip"]) == 0
    err = capsys.readouterr().err
    assert "declipped: " in err and "flat tops filled in" in err and "turned down " in err
    assert "clipped at full scale" not in err  # the restored peaks fit
    y = read_audio(out)[0]
    assert 0.99 < np.max(np.abs(y)) <= 1.0
    after = ClipCounter(RATE)
    after.add(y)
    assert after.finish().count == 0
    # without --declip the note says it clipped and what would help
    assert main(["render", str(src), "-o", str(tmp_path / "plain.wav"), "--model", "wiener"]) == 0
    assert "(--declip fills in short flat tops)" in capsys.readouterr().err


def test_a_take_clipped_and_then_turned_down_is_found_and_filled_in(voice):
    reference, clipped = clip(voice, 1.0)
    step = 2.0**-15
    quieter = (np.round(clipped * 10 ** (-6.0 / 20) / step) * step).astype(np.float32)  # normalised in an editor, 16-bit
    at_full_scale = Declip()
    restored_full = at_full_scale(clipped, RATE)
    effect = Declip()  # threshold_db=None: found in the input
    y = effect(quieter, RATE)
    assert effect.clip_level_db == pytest.approx(-6.0, abs=0.01) and at_full_scale.clip_level_db == -0.01
    assert effect.repaired == pytest.approx(at_full_scale.repaired, abs=3) and effect.repaired > 400
    gain = 10 ** (6.0 / 20)
    assert snr_db(reference, gain * y) > snr_db(reference, clipped) + 20.0  # measured 32.5 -> 60 dB, as at full scale
    assert snr_db(restored_full, gain * y) > 50.0
    assert Declip(threshold_db=-0.01)(quieter, RATE).tolist() == quieter.tolist()  # a fixed full-scale level finds nothing
    chain = Chain([Declip(), Denoise("wiener", mix=0.0, remove_dc=False)])  # first in a chain: the chain shows it the input
    np.testing.assert_allclose(chain(quieter, RATE), y, atol=1e-6)
    assert chain[0].clip_level_db == pytest.approx(-6.0, abs=0.01)
    streamed = Declip()  # streaming cannot look ahead: full scale, until a level is found
    np.testing.assert_array_equal(streamed.process(quieter, RATE, reset=False)[672:], quieter[:-672])
    streamed.find_level([quieter[None]], RATE)
    assert streamed.clip_level_db == pytest.approx(-6.0, abs=0.01)


def test_render_declips_at_the_input_rate_and_at_the_level_found(tmp_path, capsys):
    """Resampling before declipping ripples the flat tops away: a 44.1 kHz take rendered at 48 kHz
    is declipped at 44.1 kHz first, and one clipped and turned down is declipped at its level."""
    import soxr

    x = soxr.resample(speechlike(3.0, seed=5), RATE, 44100)
    clipped = np.clip(1.12 * x / np.max(np.abs(x)), -1.0, 1.0)
    src = write_audio(tmp_path / "hot44.wav", clipped, sample_rate=44100, bit_depth=16)
    counts = []
    for name, extra in (("same.wav", []), ("up.wav", ["--sample-rate", "48000"]), ("stereo.flac", ["--channels", "2"])):
        assert main(["render", str(src), "-o", str(tmp_path / name), "--model", "wiener", "--declip", *extra]) == 0
        err = capsys.readouterr().err
        counts.append(int(err.split("declipped: ")[1].split(" flat top")[0]))
    assert counts[0] > 50 and counts == [counts[0]] * 3
    quieter = write_audio(tmp_path / "normalised.wav", clipped * 10 ** (-3.0 / 20), sample_rate=44100, bit_depth=16)
    assert main(["render", str(quieter), "-o", str(tmp_path / "q.wav"), "--model", "wiener", "--declip"]) == 0
    err = capsys.readouterr().err
    assert f"declipped at -3.0 dBFS: {counts[0]} flat tops filled in" in err
    assert main(["info", str(quieter)]) == 0
    assert " places at -3.0 dBFS (first at 0:00." in capsys.readouterr().out
