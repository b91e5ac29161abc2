import pickle

import numpy as np
import pytest
from conftest import read_audio, speechlike, write_audio

from plugin_host import Chain, Denoise, Level, ParameterError, load_preset
from plugin_host.cli import main

RATE = 48000


def voice(seconds, level_db, seed):
    x = speechlike(seconds, seed=seed).astype(np.float64)
    return x / np.sqrt(np.mean(x**2)) * 10 ** (level_db / 20)


def rms_db(x):
    return 10 * np.log10(np.mean(np.square(x, dtype=np.float64)))


@pytest.fixture(scope="module")
def conversation():
    """Four turns, 5 s each, at -32, -16, -30 and -18 dBFS, over -65 dBFS room tone."""
    turns = [voice(5.0, level, seed) for seed, level in enumerate((-32, -16, -30, -18))]
    tone = 10 ** (-65 / 20) * np.random.default_rng(0).standard_normal(20 * RATE)
    return (np.concatenate(turns) + tone).astype(np.float32)


def turn_levels(x):
    return np.array([rms_db(x[k * 5 * RATE + RATE : (k + 1) * 5 * RATE]) for k in range(4)])  # each turn after its first second


def test_voices_at_different_levels_come_out_even(conversation):
    effect = Level()
    y = effect(conversation, RATE)
    assert y.shape == conversation.shape and y.dtype == np.float32
    before, after = turn_levels(conversation), turn_levels(y)
    assert np.ptp(before) == pytest.approx(16.0, abs=0.2)
    assert np.ptp(after) < 4.0  # measured 3.1 dB
    gains = effect.gains_db
    assert len(gains) == len(conversation) // 480
    assert gains.max() <= 15.0 and gains.min() >= -15.0


def test_limits_and_long_pauses_hold_the_gain():
    quiet = voice(4.0, -45.0, seed=5)
    pause = 10 ** (-70 / 20) * np.random.default_rng(1).standard_normal(6 * RATE)
    x = np.concatenate([quiet, pause]).astype(np.float32)
    effect = Level(max_gain_db=6.0)
    y = effect(x, RATE)
    gains = effect.gains_db
    assert gains.max() == pytest.approx(6.0, abs=1e-4)  # wanted about +20: held to the limit
    # deep in the pause no speech is within the window: the gain stays where the voice left it
    deep = slice(int(7.0 / 0.01), int(9.5 / 0.01))
    assert np.ptp(gains[deep]) < 1e-6
    assert rms_db(y[8 * RATE :]) == pytest.approx(rms_db(x[8 * RATE :]) + 6.0, abs=0.1)  # room tone: no more than the voice got


def test_room_tone_alone_is_left_alone():
    x = (10 ** (-60 / 20) * np.random.default_rng(2).standard_normal(5 * RATE)).astype(np.float32)
    effect = Level()
    np.testing.assert_array_equal(effect(x, RATE), x)
    assert not np.any(effect.gains_db)


def test_stereo_shares_one_gain(conversation):
    stereo = np.stack([conversation, 0.5 * conversation])
    y = Level()(stereo, RATE)
    inner = slice(RATE, -RATE)
    np.testing.assert_allclose(y[1, inner], 0.5 * y[0, inner], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("buffer_size", [1, 64, 65, 8192, 8193])
def test_streaming_is_chunk_invariant_and_late_by_its_lookahead(conversation, buffer_size):
    x = conversation[: 3 * RATE] if buffer_size > 1 else conversation[: RATE // 2]
    whole = Level().process(x, RATE, reset=False)
    effect = Level()
    parts = [effect.process(x[i : i + buffer_size], RATE, reset=False) for i in range(0, len(x), buffer_size)]
    assert np.array_equal(np.concatenate(parts), whole)
    latency = Level().streaming_latency_samples(RATE)
    assert latency == int(1.5 * RATE) + 480  # the lookahead, and one hop of buffering
    offline = Level().process(x, RATE)
    np.testing.assert_array_equal(whole[latency:], offline[: len(x) - latency])


def test_parameters_pickling_and_chains(tmp_path, conversation):
    with pytest.raises(ParameterError, match=r"target_db must be in \[-50, -6\], got 0"):
        Level(target_db=0)
    with pytest.raises(ParameterError, match=r"max_gain_db must be in \[0, 30\], got -1"):
        Level(max_gain_db=-1)
    copy = pickle.loads(pickle.dumps(Level(target_db=-25.0, max_gain_db=9.0, max_cut_db=3.0)))
    assert repr(copy) == "<plugin_host.Level target_db=-25 max_gain_db=9 max_cut_db=3>"
    chain = Chain([Denoise("wiener"), Level()])
    assert chain.streaming_latency_samples(RATE) == Denoise("wiener").streaming_latency_samples(RATE) + Level().streaming_latency_samples(RATE)
    assert chain(conversation[: 2 * RATE], RATE).shape == (2 * RATE,)
    path = tmp_path / "even.json"
    path.write_text('{"steps": [{"plugin": "Denoise"}, {"plugin": "Level", "target_db": -26}]}')
    assert [type(s).__name__ for s in load_preset(str(path)).chain] == ["Denoise", "Level"]


def test_render_level_evens_out_a_take_and_says_what_it_did(tmp_path, capsys, conversation):
    src = write_audio(tmp_path / "talk.wav", conversation, bit_depth=24)
    out = tmp_path / "even.wav"
    assert main(["render", str(src), "-o", str(out), "--model", "wiener", "--level"]) == 0
    err = capsys.readouterr().err
    assert "levelled: voices turned " in err
    y = read_audio(out)[0][0]
    assert np.ptp(turn_levels(y)) < 5.0 < np.ptp(turn_levels(conversation))
    assert np.max(np.abs(y)) <= 1.0


def test_the_interview_preset_evens_out_voices_and_lands_on_its_loudness(tmp_path, capsys, conversation):
    preset = load_preset("podcast_interview")
    assert [type(s).__name__ for s in preset.chain] == ["Declip", "Dehum", "HighpassFilter", "Denoise", "Level", "Compressor"]
    assert preset.loudness_lufs == -16.0
    src = write_audio(tmp_path / "interview.wav", conversation, bit_depth=24)
    out = tmp_path / "done.wav"
    assert main(["render", str(src), "-o", str(out), "--preset", "podcast_interview", "--model", "wiener"]) == 0
    err = capsys.readouterr().err
    assert "levelled: voices turned " in err and "dehum" not in err  # no hum: the preset's Dehum says nothing
    y = read_audio(out)[0]
    assert np.ptp(turn_levels(conversation)) == pytest.approx(16.0, abs=0.2)
    assert np.ptp(turn_levels(y[0])) < 4.0
    assert main(["info", str(out)]) == 0
    assert "loudness -16.0 LUFS" in capsys.readouterr().out
