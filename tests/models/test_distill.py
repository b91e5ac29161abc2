"""The DeepFilterNet3 teacher (models/distill.py): the batch teacher equals the engine's streaming
DeepFilterNet3, its projected gains behave as gains, and a built cache is deterministic.
Needs ../shared (the corpus and the third-party models); the training path also needs torch."""

import json

import numpy as np
import pytest
from conftest import ROOT, SHARED_DATA

from models import distill

THIRD = ROOT.parent / "shared" / "models-thirdparty"
pytestmark = pytest.mark.skipif(not distill.ARCHIVE.is_file(), reason=f"DeepFilterNet3 not present at {distill.ARCHIVE}")


@pytest.fixture(scope="module")
def teacher():
    return distill.Teacher()


@pytest.fixture(scope="module")
def noisy():
    from conftest import EXAMPLES, read_audio

    return read_audio(EXAMPLES / "noisy_podcast.flac")[0][0][: 48000 * 3].astype(np.float32)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    from plugin_host.thirdparty import add_model

    mp = pytest.MonkeyPatch()
    mp.setenv("NOISENIL_HOME", str(tmp_path_factory.mktemp("noisenil_home")))
    add_model(distill.ARCHIVE)
    yield
    mp.undo()


def test_batch_teacher_equals_the_engines_streaming_deepfilternet(teacher, noisy, home):
    """Same output spectrum, frame for frame, as DeepFilterNetProcessor (graphs edited for
    streaming, one 10 ms frame per call): the whole-clip teacher does what the engine does."""
    from plugin_host import DENOISERS
    from plugin_host.deepfilternet import DeepFilterNetProcessor

    proc = DeepFilterNetProcessor(DENOISERS.load("deepfilternet3"))
    seen = []
    proc.stft.synthesize = lambda spectrum: seen.append(spectrum) or np.zeros(480)
    for i in range(0, len(noisy), 480):
        proc.process_frame(noisy[i : i + 480].astype(np.float64))
    engine = np.array(seen)[2:] * teacher.wnorm  # the engine's output k belongs to frame k - 2
    _, batch = teacher.enhanced_spectrum(noisy)
    batch = batch[: len(engine)]
    err = np.abs(batch - engine).max() / np.abs(engine).max()
    assert err < 1e-4, err
    assert np.abs(engine).max() > 0  # it did produce speech


def test_projected_gains_are_bounded_and_follow_the_noise(teacher, noisy):
    g = teacher.band_gains(noisy)
    assert g.shape == (len(noisy) // 480, 32) and g.dtype == np.float32
    assert g.min() >= 0.0 and g.max() <= 1.0
    # louder noise, lower gains: the same clip with white noise added 20 dB above its level
    rng = np.random.default_rng(0)
    louder = noisy + rng.standard_normal(len(noisy)).astype(np.float32) * np.sqrt(np.mean(noisy**2)) * 10
    assert teacher.band_gains(louder).mean() < g.mean() - 0.1
    # on the example podcast (speech over hum and hiss) it neither passes nor mutes everything
    assert 0.05 < g.mean() < 0.95


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"corpus not present at {SHARED_DATA}")
def test_cache_is_deterministic_and_matches_the_mixer(tmp_path):
    from models.mixing import MixConfig, Mixer

    mix = {"seconds": 1.0, "seed": 3}
    a = distill.build(tmp_path / "a", mix, 3, workers=1, log=lambda *_: None)
    b = distill.build(tmp_path / "b", mix, 3, workers=1, log=lambda *_: None)
    for name in ("noisy", "clean", "teacher"):
        np.testing.assert_array_equal(np.load(a / f"{name}.npy"), np.load(b / f"{name}.npy"))
    ex = Mixer(MixConfig.from_dict(mix)).example(2)
    np.testing.assert_allclose(np.load(a / "noisy.npy")[2], ex["noisy"], atol=2e-3 * max(1e-3, np.abs(ex["noisy"]).max()))
    assert json.loads((a / "cache.json").read_text())["examples"] == 3
    cached = distill.CachedSet(a, seed=0)
    order = [cached.index(i) for i in range(6)]
    assert sorted(order[:3]) == [0, 1, 2] and sorted(order[3:]) == [0, 1, 2]  # each epoch once through
    assert order == [distill.CachedSet(a, seed=0).index(i) for i in range(6)]
    noisy, clean, gains = cached[4]
    assert noisy.dtype == np.float32 and gains.shape == (100, 32)


def test_score_names_a_missing_checkpoint_in_one_line(tmp_path, capsys):
    missing = tmp_path / "nope.pt"
    assert distill.main(["score", str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {missing}: no such checkpoint"]


def test_losses_names_a_missing_checkpoint_and_reports_the_recipe_terms(tmp_path, capsys):
    missing = tmp_path / "nope.pt"
    assert distill.main(["losses", str(missing)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {missing}: no such checkpoint"]
    torch = pytest.importorskip("torch", reason="the recipe terms need torch")
    from models import fullband
    if not (SHARED_DATA / "manifest.csv").is_file():
        pytest.skip(f"corpus not present at {SHARED_DATA}")
    tiny = {"channels": 8, "dilations": [1, 2], "kernel": 3, "bands": 32, "df_bins": 96, "df_order": 3}
    torch.manual_seed(0)
    torch.save({"model": fullband.FullBandNet(**tiny).state_dict(), "config": {"net": tiny}, "step": 1}, tmp_path / "t.pt")
    (parts,) = distill.recipe_losses([tmp_path / "t.pt"], examples=2, log=lambda *_: None).values()
    assert all(np.isfinite(v) and v >= 0 for v in parts.values())
    assert parts["total"] == pytest.approx(parts["mag"] + parts["cplx"] + 0.2 * parts["gain"], rel=1e-5)
