"""The compact corpus copy for a lent GPU machine: the mixer runs on it as on the corpus."""

import csv

import numpy as np
import pytest
import soundfile as sf

from models import data, pack_corpus
from models import mixing
from models.mixing import MixConfig, Mixer
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.skipif(not (SHARED_DATA / "manifest.csv").is_file(), reason=f"corpus not present at {SHARED_DATA}")


def test_pack_is_small_playable_and_mixable(tmp_path):
    n, size = pack_corpus.pack(tmp_path, data_dir=SHARED_DATA, workers=1, limit=3)
    with open(tmp_path / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == n >= 9
    source = {r.path.rsplit(".", 1)[0]: r for r in data.read_manifest(SHARED_DATA)}
    originals = 0
    for row in rows:
        x, rate = sf.read(tmp_path / row["path"], dtype="float32")
        orig = source[row["path"].rsplit(".", 1)[0]]
        originals += (SHARED_DATA / orig.path).stat().st_size
        assert row["split"] == "train" and data.Row(row["path"], row["kind"], "", "", 48000, 0, "", row["licence"], "").shippable
        assert int(row["sample_rate"]) == orig.sample_rate  # the band-limit logic reads the original rate
        if row["kind"] == "rir":
            assert row["path"].endswith(".flac") and len(x) <= rate
        else:
            assert row["path"].endswith(".opus") and rate in (16000, 24000, 48000)
            assert abs(len(x) / rate - orig.seconds) < 0.1  # same length, same pitch
    assert size < 0.6 * originals
    # the training process decodes every drawable file once, before its mixing workers fork
    config = MixConfig(seconds=1.0, data_dir=str(tmp_path), seed=3)
    assert mixing.warm(config, threads=2) == n
    hits = mixing._native.cache_info().hits
    mixer = Mixer(config)
    ex = mixer.example(0)
    assert ex["noisy"].shape == ex["clean"].shape == (48000,) and np.all(np.isfinite(ex["noisy"]))
    assert np.sqrt(np.mean(ex["noisy"] ** 2)) > 1e-4
    assert mixing._native.cache_info().hits > hits  # the example came from the decoded cache
