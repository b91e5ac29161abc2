import pickle

import numpy as np
import pytest
from conftest import speechlike

from plugin_host import Denoise, ParameterError
from plugin_host.evaluation import si_sdr
from plugin_host.processor import DCBlocker
from scipy.signal import butter, sosfilt

RATE = 48000
BUFFER_SIZES = [1, 64, 65, 480, 8192, 8193]
MODELS = ["wiener", "spectral_subtraction"]


def white(seconds, rate=RATE, level=0.03, seed=1):
    return (level * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32)


@pytest.fixture(scope="module")
def noisy():
    return speechlike(1.5) + white(1.5)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("buffer_size", BUFFER_SIZES)
def test_chunked_streaming_equals_whole(model, buffer_size, noisy):
    x = noisy if buffer_size > 1 else noisy[: RATE // 4]  # sample by sample: a quarter second
    whole = Denoise(model).process(x, RATE, reset=False)
    effect = Denoise(model)
    chunks = [effect.process(x[i : i + buffer_size], RATE, reset=False) for i in range(0, len(x), buffer_size)]
    assert np.array_equal(np.concatenate(chunks), whole)


@pytest.mark.parametrize("buffer_size", BUFFER_SIZES)
def test_offline_output_does_not_depend_on_buffer_size(buffer_size, noisy):
    x = noisy[: RATE // 4]
    reference = Denoise().process(x, RATE, buffer_size=8192)
    assert np.array_equal(Denoise().process(x, RATE, buffer_size=buffer_size), reference)


def test_streaming_is_offline_delayed_by_the_reported_latency(noisy):
    effect = Denoise()
    latency = effect.streaming_latency_samples(RATE)
    assert latency == 960  # 10 ms STFT overlap + 10 ms hop buffering at 48 kHz
    streamed = effect.process(noisy, RATE, reset=False)
    offline = Denoise().process(noisy, RATE)
    assert np.max(np.abs(streamed[latency:] - offline[:-latency])) < 1e-6


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000, 96000, 192000])
def test_offline_impulse_lines_up_sample_exactly(rate):
    x = np.zeros(rate // 2, np.float32)
    x[rate // 5] = 1.0
    y = Denoise(mix=0.0, remove_dc=False).process(x, rate)  # the whole path, resampling included, without the mask
    assert y.shape == x.shape
    p = rate // 5
    assert int(np.argmax(np.abs(y))) == p
    expected_peak = min(1.0, 48000 / rate)  # above 48 kHz the model rate halves the band
    assert y[p] > 0.9 * expected_peak
    assert abs(y[p - 1] - y[p + 1]) < 0.02 * y[p]  # symmetric: no fractional offset either


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 96000, 192000])
def test_resampled_rates_pass_band_limited_audio(rate):
    t = np.arange(rate) / rate
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1234 * t)).astype(np.float32)
    y = Denoise(mix=0.0, remove_dc=False).process(x, rate)
    inner = slice(rate // 10, -rate // 10)
    assert np.max(np.abs(y[inner] - x[inner])) < 2e-3


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 192000])
@pytest.mark.parametrize("buffer_size", [1, 65, 8193])
def test_streaming_with_resampling_never_underflows_and_is_chunk_invariant(rate, buffer_size):
    x = speechlike(0.3, rate) + white(0.3, rate)
    n = len(x) if buffer_size > 1 else rate // 20
    whole = Denoise().process(x[:n], rate, reset=False)
    effect = Denoise()
    chunks = [effect.process(x[i : min(i + buffer_size, n)], rate, reset=False) for i in range(0, n, buffer_size)]
    assert np.array_equal(np.concatenate(chunks), whole)


def test_streaming_latency_with_resampling_is_reported(noisy):
    effect = Denoise(mix=0.0)
    rate = 44100
    latency = effect.streaming_latency_samples(rate)
    x = np.zeros(rate, np.float32)
    x[1000] = 1.0
    y = effect.process(x, rate, reset=False)
    assert abs(int(np.argmax(np.abs(y))) - (1000 + latency)) <= 1


@pytest.mark.parametrize("model,at_least_db", [("wiener", 12.0), ("spectral_subtraction", 8.0)])
def test_stationary_noise_is_reduced(model, at_least_db):
    noise = white(3.0)
    y = Denoise(model).process(noise, RATE)
    reduction = 10 * np.log10(np.mean(noise[RATE:] ** 2) / np.mean(y[RATE:] ** 2))
    assert reduction >= at_least_db, reduction


@pytest.mark.parametrize("model", MODELS)
def test_noisy_speech_gets_cleaner(model, clean_speech):
    noise = white(len(clean_speech) / RATE, level=0.02, seed=3)
    x = clean_speech + noise
    y = Denoise(model).process(x, RATE)
    assert si_sdr(clean_speech, y) > si_sdr(clean_speech, x) + 3.0


@pytest.mark.parametrize("model", MODELS)
def test_clean_speech_is_barely_changed(model, clean_speech):
    y = Denoise(model).process(clean_speech, RATE)
    assert si_sdr(clean_speech, y) > 20.0  # residual at least 20 dB below the speech
    level_change = 10 * np.log10(np.sum(y**2) / np.sum(clean_speech**2))
    assert abs(level_change) < 0.5


@pytest.mark.parametrize("limit_db", [3.0, 6.0, 12.0])
def test_attenuation_limit_bounds_the_noise_reduction(limit_db):
    noise = white(2.0)
    y = Denoise(attenuation_limit_db=limit_db).process(noise, RATE)
    reduction = 10 * np.log10(np.mean(noise[RATE // 2 :] ** 2) / np.mean(y[RATE // 2 :] ** 2))
    assert limit_db - 3.0 < reduction <= limit_db + 0.3


def test_mix_zero_is_transparent_and_half_mix_is_between(noisy):
    dry = Denoise(mix=0.0, remove_dc=False).process(noisy, RATE)
    assert np.max(np.abs(dry - noisy)) < 1e-5
    wet = Denoise(mix=1.0, remove_dc=False).process(noisy, RATE)
    half = Denoise(mix=0.5, remove_dc=False).process(noisy, RATE)
    assert np.max(np.abs(half - 0.5 * (wet + noisy))) < 1e-5  # the mix is linear in the spectrum
    # the DC blocker comes before the mix: the dry share is the input without its offset
    offset = noisy + 0.05
    blocked = DCBlocker(1, RATE)(offset[None])[0]
    dry = Denoise(mix=0.0).process(offset, RATE)
    assert np.max(np.abs(dry - blocked)) < 1e-5
    assert abs(dry[RATE // 2 :].mean()) < 1e-3 < 0.05 - 1e-3 < abs(Denoise(mix=0.0, remove_dc=False).process(offset, RATE).mean())


def _window_means(y, rate=RATE, seconds=0.1):
    n = int(rate * seconds)
    return y[: len(y) // n * n].reshape(-1, n).mean(axis=1)


def _below_20_hz_db(y, start):
    low = sosfilt(butter(4, 20, "low", fs=RATE, output="sos"), y - y.mean())[start:]
    return 10 * np.log10(np.mean(low**2))


@pytest.mark.parametrize("model", ["noisenil_fb", "wiener"])
def test_a_dc_offset_is_removed_not_pumped_by_the_gains(model):
    """A mic's offset: without the blocker the model's gains rise and fall with the voice and so
    does the offset (a thump at each phrase); with it the output has no offset, and the default
    model's output has no more below 20 Hz than without an offset."""
    x = speechlike(4.0, seed=4) + white(4.0, level=0.01, seed=5)
    x[: RATE // 2] = white(0.5, level=0.01, seed=6)  # a pause first
    with_offset = x + 0.03  # -30 dBFS, a cheap USB interface
    y = Denoise(model).process(with_offset, RATE)
    settled = RATE // 2  # the blocker starts from rest, as the recording did: 0.16 s time constant
    assert abs(y[settled:].mean()) < 5e-4
    kept = Denoise(model, remove_dc=False).process(with_offset, RATE)
    assert abs(kept[settled:].mean()) > 5e-3
    if model == "noisenil_fb":  # its gains follow the voice: unblocked, the offset wanders
        means = _window_means(kept[settled:])
        assert means.max() - means.min() > 5e-3
        without_offset = _below_20_hz_db(Denoise(model).process(x, RATE), settled)
        assert abs(_below_20_hz_db(y, settled) - without_offset) < 1.5  # measured 0.7 dB
        assert _below_20_hz_db(kept, settled) > without_offset + 6.0  # measured 9.9 dB


def test_remove_dc_switches_while_streaming_and_travels_with_the_effect():
    x = speechlike(1.0, seed=7) + 0.05
    effect = Denoise(remove_dc=False)
    first = effect.process(x[: RATE // 2], RATE, reset=False)
    effect.remove_dc = True  # from the next hop, starting from rest
    second = effect.process(x[RATE // 2 :], RATE, reset=False)
    assert abs(first[RATE // 4 :].mean()) > 0.01 > abs(second[RATE // 4 :].mean())
    copy = pickle.loads(pickle.dumps(Denoise(remove_dc=False)))
    assert copy.remove_dc is False and "remove_dc=False" in repr(copy)
    assert Denoise().remove_dc is True and "remove_dc" not in repr(Denoise())
    with pytest.raises(ParameterError, match="remove_dc must be True or False, got 'yes'"):
        Denoise(remove_dc="yes")


def test_channels_are_independent_and_layouts_kept(noisy):
    other = speechlike(1.5, seed=2) + white(1.5, seed=9)
    stereo = np.stack([noisy, other])
    y = Denoise().process(stereo, RATE)
    assert y.shape == stereo.shape and y.dtype == np.float32
    assert np.array_equal(y[0], Denoise().process(noisy, RATE))
    assert np.array_equal(y[1], Denoise().process(other, RATE))
    assert np.array_equal(Denoise().process(stereo.T, RATE), y.T)  # (samples, channels) in, same out
    assert Denoise().process(noisy, RATE).ndim == 1
    six = np.tile(noisy, (6, 1))
    assert Denoise().process(six, RATE).shape == (6, len(noisy))


def test_call_alias_and_reset(noisy):
    effect = Denoise()
    a = effect(noisy[:4800], RATE, reset=False)
    effect.reset()
    b = effect(noisy[:4800], RATE, reset=False)
    assert np.array_equal(a, b)


def test_settings_change_while_streaming_without_clicks(noisy):
    effect = Denoise(attenuation_limit_db=100)
    first = effect.process(noisy[:RATE], RATE, reset=False)
    effect.attenuation_limit_db = 6.0
    effect.mix = 0.5
    second = effect.process(noisy[RATE:], RATE, reset=False)
    y = np.concatenate([first, second])
    jumps = np.abs(np.diff(y))
    assert jumps.max() < 4 * np.abs(np.diff(noisy)).max()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"attenuation_limit_db": -1}, r"attenuation_limit_db must be in \[0, 100\], got -1"),
        ({"attenuation_limit_db": float("nan")}, "attenuation_limit_db"),
        ({"mix": 1.5}, r"mix must be in \[0, 1\], got 1.5"),
    ],
)
def test_bad_parameters_quote_the_value(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        Denoise(**kwargs)


@pytest.mark.parametrize(
    "args,match",
    [
        ((np.zeros(100, np.float32), 4000), "sample_rate must be in"),
        ((np.zeros(100, np.float32), 44100.5), "whole number"),
        ((np.array([0.0, np.nan], np.float32), 48000), "NaN or Inf"),
        ((np.zeros((2, 2, 2), np.float32), 48000), "1-D or 2-D"),
    ],
)
def test_bad_process_arguments(args, match):
    with pytest.raises(ParameterError, match=match):
        Denoise().process(*args)


def test_bad_buffer_size():
    with pytest.raises(ParameterError, match="buffer_size must be a positive integer, got 0"):
        Denoise().process(np.zeros(10, np.float32), RATE, buffer_size=0)


def _render_in_worker(effect, x):
    return effect(x, RATE)


def test_an_effect_pickles_and_copies_with_its_settings(noisy):
    import copy
    import multiprocessing
    import pickle
    from concurrent.futures import ProcessPoolExecutor

    effect = Denoise("spectral_subtraction", attenuation_limit_db=12, mix=0.8)
    effect.process(noisy[:1000], RATE, reset=False)  # a stream in progress is not carried
    expected = Denoise("spectral_subtraction", attenuation_limit_db=12, mix=0.8)(noisy, RATE)
    for twin in (pickle.loads(pickle.dumps(effect)), copy.deepcopy(effect)):
        assert (twin.model, twin.attenuation_limit_db, twin.mix) == ("spectral_subtraction", 12, 0.8)
        assert np.array_equal(twin.process(noisy, RATE, reset=False), Denoise("spectral_subtraction", 12, 0.8).process(noisy, RATE, reset=False))
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:  # a batch script's worker
        assert np.array_equal(pool.submit(_render_in_worker, effect, noisy).result(timeout=120), expected)
