import json

import numpy as np
import pedalboard
import pytest
from conftest import speechlike

from plugin_host import DENOISERS, Chain, Denoise, ParameterError, UnknownNameError, load_preset, preset_names

RATE = 48000


@pytest.fixture(scope="module")
def noisy():
    rng = np.random.default_rng(5)
    x = speechlike(1.0) + 0.03 * rng.standard_normal(RATE).astype(np.float32)
    return np.stack([x, np.roll(x, 1000)]).astype(np.float32)


def test_list_operations():
    hp, d, comp = pedalboard.HighpassFilter(80), Denoise(), pedalboard.Compressor()
    chain = Chain([hp, d])
    chain.append(comp)
    assert len(chain) == 3 and chain[1] is d and chain.index(comp) == 2
    chain.insert(0, pedalboard.Gain(gain_db=-3))
    assert [type(p).__name__ for p in chain] == ["Gain", "HighpassFilter", "Denoise", "Compressor"]
    del chain[0]
    assert list(chain) == [hp, d, comp]
    chain[2] = pedalboard.Limiter()
    assert isinstance(chain[-1], pedalboard.Limiter)
    assert isinstance(chain[1:], Chain) and len(chain[1:]) == 2
    with pytest.raises(ParameterError, match="holds pedalboard plugins or NoiseNil effects"):
        chain.append("not a plugin")


def test_a_chain_cannot_hold_itself(noisy):
    inner = Chain([pedalboard.Gain(gain_db=-6)])
    outer = Chain([inner])
    for add in (lambda: inner.append(inner), lambda: inner.insert(0, outer), lambda: inner.__setitem__(0, outer), lambda: inner.__setitem__(slice(0, 1), [outer])):
        with pytest.raises(ParameterError, match="cannot hold itself"):
            add()
    assert len(inner) == 1 and len(outer) == 1
    outer.append(Chain([pedalboard.Gain(gain_db=-6)]))  # a chain within a chain is fine
    np.testing.assert_allclose(outer(noisy, RATE), noisy * 10 ** (-12 / 20), atol=1e-6)


def test_consecutive_native_plugins_run_as_one_pedalboard():
    chain = Chain([pedalboard.HighpassFilter(80), pedalboard.NoiseGate(), Denoise(), pedalboard.Compressor(), pedalboard.Limiter()])
    kinds = [type(s).__name__ for s in chain.segments]
    assert kinds == ["Pedalboard", "Denoise", "Pedalboard"]
    assert len(chain.segments[0]) == 2 and len(chain.segments[2]) == 2


def test_chain_equals_steps_applied_one_after_another(noisy):
    hp, comp = pedalboard.HighpassFilter(100), pedalboard.Compressor(threshold_db=-20, ratio=3)
    chain = Chain([hp, Denoise(), comp])
    y = chain(noisy, RATE)
    expected = pedalboard.Pedalboard([comp])(Denoise()(pedalboard.Pedalboard([hp])(noisy, RATE), RATE), RATE)
    assert y.shape == noisy.shape and y.dtype == np.float32
    assert np.max(np.abs(y - expected)) < 1e-5


@pytest.mark.parametrize("buffer_size", [1, 64, 65, 8192, 8193])
def test_chain_streaming_is_chunk_invariant(noisy, buffer_size):
    make = lambda: Chain([pedalboard.HighpassFilter(100), Denoise(), pedalboard.Gain(gain_db=2)])
    x = noisy if buffer_size > 1 else noisy[:, :4800]
    whole = make().process(x, RATE, reset=False)
    chain = make()
    parts = [chain.process(x[:, i : i + buffer_size], RATE, reset=False) for i in range(0, x.shape[1], buffer_size)]
    assert np.max(np.abs(np.concatenate(parts, axis=1) - whole)) < 1e-6


def test_chain_latency_is_compensated_offline_and_reported_streaming():
    chain = Chain([Denoise(mix=0.0), pedalboard.Gain(gain_db=0.0), Denoise(mix=0.0)])
    x = np.zeros(RATE // 2, np.float32)
    x[7000] = 1.0
    assert int(np.argmax(np.abs(chain(x, RATE)))) == 7000
    latency = chain.streaming_latency_samples(RATE)
    assert latency == 2 * 960
    chain.reset()
    assert int(np.argmax(np.abs(chain(x, RATE, reset=False)))) == 7000 + latency


def test_pedalboard_audiofile_chunk_loop(tmp_path, noisy):
    """The usual pedalboard read loop with reset=False, then the latency trimmed."""
    from pedalboard.io import AudioFile

    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    with AudioFile(str(src), "w", RATE, 2, bit_depth=32) as f:
        f.write(noisy)
    chain = Chain([pedalboard.HighpassFilter(100), Denoise()])
    with AudioFile(str(src)) as f, AudioFile(str(dst), "w", f.samplerate, f.num_channels, bit_depth=32) as o:
        while f.tell() < f.frames:
            o.write(chain(f.read(4000), f.samplerate, reset=False))
    with AudioFile(str(dst)) as f:
        streamed = f.read(f.frames)
    offline = Chain([pedalboard.HighpassFilter(100), Denoise()])(noisy, RATE)
    lat = chain.streaming_latency_samples(RATE)
    assert np.max(np.abs(streamed[:, lat:] - offline[:, :-lat])) < 1e-5


def test_bundled_presets_load():
    assert {"podcast_voice", "denoise_only"} <= set(preset_names())
    preset = load_preset("podcast_voice")
    assert [type(p).__name__ for p in preset.chain] == ["Dehum", "HighpassFilter", "Denoise", "Compressor"]
    assert preset.loudness_lufs == -16.0 and preset.true_peak_dbtp == -1.0
    assert preset.chain[2].attenuation_limit_db == 30.0
    assert load_preset("podcast_voice", model="spectral_subtraction").chain[2].model == "spectral_subtraction"


def test_preset_from_path_and_errors(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"steps": [{"plugin": "Gain", "gain_db": -6}, {"plugin": "Denoise", "mix": 0.5}]}))
    preset = load_preset(str(path))
    assert preset.name == "mine" and preset.chain[1].mix == 0.5
    with pytest.raises(UnknownNameError, match="unknown preset 'nope'; valid: .*podcast_voice"):
        load_preset("nope")
    path.write_text(json.dumps({"steps": [{"plugin": "Reverbz"}]}))
    with pytest.raises(UnknownNameError, match=f"^{path}: unknown plugin 'Reverbz'; valid: ClassifyNoise, Declip, Dehum, Denoise, .*Compressor"):
        load_preset(str(path))
    assert "PluginContainer" not in str(_unknown_plugin_message(path)) and "_klass" not in str(_unknown_plugin_message(path))
    # every other mistake is one line that names the file, the step and what would be right
    for text, message in (
        (json.dumps({"steps": [{"plugin": "Gain", "gain": 3}]}), f"{path}: Gain has no parameter gain; valid: gain_db"),
        (json.dumps({"steps": [{"plugin": "Compressor", "threshold_db": "x"}]}), f"{path}: Compressor: bad value in threshold_db='x'; expected threshold_db: float = 0, ratio: float = 1, attack_ms: float = 1.0, release_ms: float = 100"),
        (json.dumps({"steps": [{"plugin": "Denoise", "attenuation_limit_db": -4}]}), f"{path}: Denoise: attenuation_limit_db must be in [0, 100], got -4"),
        (json.dumps({"steps": [{"plugin": "Denoise", "nope_db": 1}]}), f"{path}: Denoise has no parameter nope_db; valid: model, attenuation_limit_db, mix, remove_dc"),
        (json.dumps({"steps": [{"plugin": "Denoise", "model": "gone"}]}), f"{path}: Denoise: unknown denoiser 'gone'; valid: {', '.join(DENOISERS.names())}"),
        (json.dumps({"steps": [{"plugin": "Invert", "mix": 1}]}), f"{path}: Invert has no parameter mix; valid: (none)"),
        (json.dumps({"steps": [{"plugin": "LadderFilter", "LPF12": 1}]}), f"{path}: LadderFilter has no parameter LPF12; valid: mode, cutoff_hz, resonance, drive"),
        (json.dumps({"steps": [], "loudness_lufs": "loud"}), f"{path}: loudness_lufs must be a number in [-70, 0], got 'loud'"),
        (json.dumps({"steps": [], "loudness_lufs": 10}), f"{path}: loudness_lufs must be in [-70, 0], got 10"),
        (json.dumps({"steps": [], "true_peak_dbtp": 3}), f"{path}: true_peak_dbtp must be in [-20, 0], got 3"),
        (json.dumps([{"plugin": "Gain"}]), f"{path}: a preset is a JSON object with a list of 'steps', e.g. {{\"steps\": [{{\"plugin\": \"Denoise\"}}]}}"),
        ("{bad", f"{path}: not valid JSON (Expecting property name enclosed in double quotes at line 1, column 2)"),
    ):
        path.write_text(text)
        with pytest.raises(ParameterError) as info:
            load_preset(str(path))
        assert str(info.value) == message
    path.write_text(json.dumps({"steps": [{"plugin": "Denoise"}]}))
    with pytest.raises(UnknownNameError) as info:  # a bad override is the caller's (--model), not the file's
        load_preset(str(path), model="gone")
    assert str(info.value).startswith("unknown denoiser 'gone'; valid: ")
    path.write_text(json.dumps({"steps": [], "loudness_lufs": -20, "true_peak_dbtp": -2}))
    assert (load_preset(str(path)).loudness_lufs, load_preset(str(path)).true_peak_dbtp) == (-20.0, -2.0)


def _unknown_plugin_message(path):
    path.write_text(json.dumps({"steps": [{"plugin": "Reverbz"}]}))
    with pytest.raises(UnknownNameError) as info:
        load_preset(str(path))
    return info.value
