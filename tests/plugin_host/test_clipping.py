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


def _turned_down(x: np.ndarray, gain_db: float, bits: int = 16) -> np.ndarray:
    """A take clipped at full scale, then turned down in an editor and written at ``bits``."""
    step = 2.0 ** (1 - bits)
    return (np.round(x * 10 ** (gain_db / 20) / step) * step).astype(np.float32)


@pytest.mark.parametrize("chunk", [1, 64, 65, 4801, 48000])
def test_a_take_clipped_and_then_turned_down_is_found_at_its_level_however_it_is_read(chunk):
    from conftest import speechlike

    voice = speechlike(1.0, seed=4)
    clipped = np.clip(2.0 * voice / np.max(np.abs(voice)), -1.0, 1.0)[None]
    x = _turned_down(np.repeat(clipped, 2, axis=0), -4.0)  # both channels alike: counted once
    edges = np.diff(np.concatenate(([0], (np.abs(clipped[0]) == 1.0).astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    flat = ends - starts >= CLIP_RUN  # the flat tops, exactly at the clip
    counter = ClipCounter(48000)
    for i in range(0, x.shape[1], chunk):
        counter.add(x[:, i : i + chunk])
    counter.finish()
    assert np.sum(flat) > 100
    assert counter.count == np.sum(flat)
    # a crest's neighbour that rounds to the flat top's 16-bit value joins it
    assert 0 <= counter.samples - np.sum((ends - starts)[flat]) <= 5
    np.testing.assert_allclose(counter.positions, starts[flat] / 48000, atol=1.5 / 48000)
    assert counter.level_db == pytest.approx(-4.0, abs=0.01)
    assert counter.describe().startswith(f"clipped in {np.sum(flat)} places at -4.0 dBFS (first at ")
    full = ClipCounter(48000)  # at full scale, a flat top is 0.01 dB wide: close to the same places
    full.add(clipped.astype(np.float32))
    full.finish()
    assert full.count == pytest.approx(np.sum(flat), rel=0.1)
    assert full.level_db == pytest.approx(20 * np.log10(0.999)) and "dBFS" not in full.describe()


def test_flat_tops_below_full_scale_need_to_be_at_the_peak_and_more_than_two():
    x = np.zeros((1, 48000), np.float32)
    x[0, 1000:1004] = 0.5  # two flat tops at the peak: could be crests that happened to be flat
    x[0, 9000:9005] = -0.5
    assert ClipCounter(48000).finish().describe() is None
    counter = ClipCounter(48000)
    counter.add(x)
    assert counter.finish().count == 0
    x[0, 20000:20003] = 0.5  # a third one
    x[0, 30000:30003] = 0.25  # and one well under the peak, which is not a clip
    counter = ClipCounter(48000)
    counter.add(x)
    assert (counter.finish().count, counter.samples, counter.level) == (3, 12, 0.5)
    x[0, 40000] = 0.6  # a louder sample elsewhere: the flat tops are no longer at the peak
    counter = ClipCounter(48000)
    counter.add(x)
    assert counter.finish().count == 0
    counter = ClipCounter(48000, level=0.25)  # a level given is used as it is
    counter.add(x)
    assert (counter.finish().count, counter.level) == (4, 0.25)


def test_a_voice_normalised_at_16_bits_is_not_taken_for_clipped():
    """Normalising to -1 dBFS puts one crest exactly at the peak; a voice's crests are not flat for three 16-bit samples."""
    from conftest import read_audio
    from pathlib import Path

    x = read_audio(Path(__file__).parents[2] / "examples" / "noisy_podcast.flac")[0]
    counter = ClipCounter(48000)
    counter.add(_turned_down(x / np.max(np.abs(x)), -1.0))
    assert counter.finish().count == 0


def test_dev_voices_normalised_at_16_bits_are_not_taken_for_clipped():
    import csv
    from pathlib import Path

    import soundfile as sf

    data = Path(__file__).parents[3] / "shared" / "data"
    if not (data / "manifest.csv").exists():
        pytest.skip(f"the corpus is not at {data}")
    rows = [r for r in csv.DictReader(open(data / "manifest.csv")) if r["kind"] == "speech" and r["split"] == "dev"]
    found = []
    for row in rows:
        x, rate = sf.read(data / row["path"], dtype="float32", always_2d=True)
        counter = ClipCounter(rate)
        counter.add(_turned_down(x.T / np.max(np.abs(x)), -1.0))
        if counter.finish().count:
            found.append(row["path"])
    assert len(rows) > 40 and found == []
