"""desktop_app/worker.py and the drawing helpers it feeds: what the app holds per recording."""

import os

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6", reason="GUI tests need the gui extra")
from desktop_app.views import envelope  # noqa: E402
from desktop_app.worker import Filling  # noqa: E402


def test_filling_holds_the_chunks_in_one_array_and_grows_past_a_short_estimate():
    rng = np.random.default_rng(1)
    chunks = [rng.standard_normal((2, n)).astype(np.float32) for n in (1000, 7, 4000, 0, 2500)]
    whole = np.concatenate(chunks, axis=1)
    for expected in (whole.shape[1], 3000, 0, 10**5):  # exact, short (an MP3's estimate), none, long
        f = Filling(2, expected)
        for c in chunks:
            f.add(c)
        np.testing.assert_array_equal(f.array(), whole)
    f = Filling(2, whole.shape[1])
    first = f.data
    for c in chunks:
        f.add(c)
    assert f.data is first  # allocated once when the estimate holds


def test_envelope_is_the_peak_of_every_block_over_all_channels():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 100_003)).astype(np.float32)
    t, env = envelope(x, 48000, points=2000)
    step = 100_003 // 2000
    n = 100_003 // step * step
    peaks = np.abs(x[:, :n]).max(axis=0).reshape(-1, step).max(axis=1)
    np.testing.assert_array_equal(env[0::2], peaks)
    np.testing.assert_array_equal(env[1::2], -peaks)
    np.testing.assert_allclose(t[0::2], np.arange(len(peaks)) * step / 48000)
    short = rng.standard_normal((1, 5)).astype(np.float32)
    assert np.array_equal(envelope(short, 48000, points=2000)[1][0::2], np.abs(short[0]))
