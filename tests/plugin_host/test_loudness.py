import numpy as np
import pyloudnorm
import pytest

from plugin_host.loudness import LoudnessMeter, normalization_gain_db


@pytest.mark.parametrize("rate,channels", [(48000, 1), (44100, 2), (16000, 1)])
def test_streamed_loudness_equals_pyloudnorm(rate, channels):
    rng = np.random.default_rng(rate)
    n = rate * 6
    envelope = np.abs(np.sin(np.linspace(0, 7, n))) ** 2
    x = (0.1 * rng.standard_normal((channels, n)) * envelope).astype(np.float32)
    meter = LoudnessMeter(rate, channels)
    for i in range(0, n, 12345):
        meter.add(x[:, i : i + 12345])
    assert meter.integrated_lufs() == pytest.approx(pyloudnorm.Meter(rate).integrated_loudness(x.T), abs=0.01)


def test_empty_chunks_change_nothing():
    # a render's pipeline gives empty chunks while it fills its latency; scipy's lfilter turns a
    # filter state into [1, 0] for them, which was a full-scale click in the K-weighting
    rate, n = 48000, 48000 * 3
    x = (0.003 * np.random.default_rng(5).standard_normal((1, n))).astype(np.float32)  # about -50 LUFS
    meter = LoudnessMeter(rate, 1)
    for i in range(0, n, 4800):
        meter.add(np.zeros((1, 0), np.float32))
        meter.add(x[:, i : i + 4800])
    assert meter.integrated_lufs() == pytest.approx(pyloudnorm.Meter(rate).integrated_loudness(x.T), abs=0.01)
    assert meter.measured_seconds == pytest.approx(3.0)


def test_true_peak_sees_intersample_peaks():
    rate = 48000
    t = np.arange(rate) / rate
    x = (0.9 * np.sin(2 * np.pi * rate / 4 * t + np.pi / 4)).astype(np.float32)[None]  # samples at +-0.636
    meter = LoudnessMeter(rate, 1)
    meter.add(x)
    assert meter.sample_peak_dbfs == pytest.approx(20 * np.log10(0.9 * np.sqrt(0.5)), abs=0.05)
    assert meter.true_peak_dbtp == pytest.approx(20 * np.log10(0.9), abs=0.3)


def test_silence_and_gain_rules():
    meter = LoudnessMeter(48000, 1)
    meter.add(np.zeros((1, 48000), np.float32))
    assert meter.integrated_lufs() == -np.inf
    assert normalization_gain_db(-np.inf, -16, -np.inf, -1) == (0.0, False)
    assert normalization_gain_db(-20.0, -16.0, -6.0, -1.0) == (4.0, False)
    assert normalization_gain_db(-20.0, -16.0, -3.0, -1.0) == (2.0, True)
