import numpy as np
import pytest

from plugin_host.clipping import CLIP_RUN, ClipCounter


def _clipped_sine(gain: float, seconds: float = 1.0, rate: int = 48000, hz: float = 100.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.clip(gain * np.sin(2 * np.pi * hz * t), -1.0, 1.0).astype(np.float32)[None]


@pytest.mark.parametrize("chunk", [1, 2, 3, 64, 65, 4801, 48000])
def test_clip_counter_counts_flat_tops_once_however_the_file_is_read(chunk):
    x = _clipped_sine(1.5)  # 100 Hz for 1 s: 100 positive and 100 negative flat tops
    counter = ClipCounter(48000)
    for i in range(0, x.shape[1], chunk):
        counter.add(x[:, i : i + chunk])
    counter.finish()
    at_full_scale = int(np.sum(np.abs(x) >= 0.999))
    assert (counter.count, counter.samples) == (200, at_full_scale)
    assert counter.first_seconds == pytest.approx(int(np.argmax(x[0] >= 0.999)) / 48000)
    assert counter.describe() == f"clipped in 200 places (first at 0:00.0, {1000 * at_full_scale / 48000:.0f} ms in all)"
    assert len(counter.positions) == 200 and counter.positions[0] == counter.first_seconds
    assert np.allclose(np.diff(counter.positions), 0.005, atol=1e-3)  # a flat top every half period of 100 Hz


def test_clip_counter_leaves_out_single_loud_samples_and_clean_audio():
    counter = ClipCounter(48000)
    counter.add(_clipped_sine(0.99))  # loud, never at full scale
    x = np.zeros((2, 48000), np.float32)
    x[1, 1000 : 1000 + CLIP_RUN - 1] = -1.0  # two samples: a transient, not a flat top
    x[0, 30000 : 30000 + CLIP_RUN] = 1.0  # three: a clip, 1.625 s into the file
    counter.add(x)
    counter.finish()
    assert (counter.count, counter.samples) == (1, CLIP_RUN)
    assert counter.describe() == "clipped in 1 place (first at 0:01.6, 0 ms in all)"
    assert ClipCounter(48000).finish().describe() is None
