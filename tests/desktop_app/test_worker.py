"""desktop_app/worker.py and the drawing helpers it feeds: what the app holds per recording."""

import os

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6", reason="GUI tests need the gui extra")
from desktop_app import worker  # noqa: E402
from desktop_app.views import envelope  # noqa: E402
from desktop_app.worker import Filling, audio_buffer  # noqa: E402


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


def test_long_audio_is_file_backed_and_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setenv("NOISENIL_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setattr(worker, "SPILL_BYTES", 4 * 2 * 1000)  # 1000 stereo frames: anything longer spills
    monkeypatch.setattr(worker, "SPILL_MARGIN_BYTES", 0)
    assert type(audio_buffer(2, 1000)) is np.ndarray
    rng = np.random.default_rng(3)
    chunks = [rng.standard_normal((2, n)).astype(np.float32) for n in (1500, 800, 3000)]
    f = Filling(2, 2000)  # spilled, and grown past its estimate (into a new map)
    for c in chunks:
        f.add(c)
    assert isinstance(f.data, np.memmap) and f.data.shape[1] >= 5300
    np.testing.assert_array_equal(f.array(), np.concatenate(chunks, axis=1))
    assert list((tmp_path / "config" / "cache").iterdir()) == []  # unlinked at once: a crash leaves nothing
    with open("/proc/self/maps") as listing:
        maps = [line for line in listing if str(tmp_path / "config" / "cache") in line]
    assert maps and all("(deleted)" in line for line in maps)
    # no room on the disk: memory, as before
    monkeypatch.setattr(worker, "SPILL_MARGIN_BYTES", 1 << 62)
    assert type(audio_buffer(2, 2000)) is np.ndarray
