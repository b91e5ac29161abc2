"""The DeepFilterNet3 teacher (models/distill.py): the batch teacher equals the engine's streaming
DeepFilterNet3, its projected gains behave as gains, and a built cache is deterministic.
Needs ../shared (the corpus and the third-party models); the training path also needs torch."""

import json

import numpy as np
import pytest
from conftest import ROOT, SHARED_DATA

from models import distill

THIRD = ROOT.parent / "shared" / "models-thirdparty"
needs_teacher = pytest.mark.skipif(not distill.ARCHIVE.is_file(), reason=f"DeepFilterNet3 not present at {distill.ARCHIVE}")
needs_corpus = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"corpus not present at {SHARED_DATA}")


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


@needs_teacher
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


@needs_teacher
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


@needs_teacher
@needs_corpus
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
    noisy, _clean, gains = cached[4]
    assert noisy.dtype == np.float32 and gains.shape == (100, 32)


def test_score_names_a_missing_checkpoint_in_one_line(tmp_path, capsys):
    missing = tmp_path / "nope.pt"
    assert distill.main(["score", str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {missing}: no such checkpoint"]
    (tmp_path / "there.pt").write_bytes(b"")
    assert distill.main(["score", str(tmp_path / "there.pt"), "--gain-exponent", "1", "9"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["error: --gain-exponent [1.0, 9.0]: each must lie in [0.1, 4]"]
    assert distill.main(["score", str(tmp_path / "there.pt"), "--post-filter", "0.02", "-1"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["error: --post-filter [0.02, -1.0]: each must lie in [0, 1]"]
    assert distill.main(["score", str(tmp_path / "there.pt"), "--release", "0.6", "1"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["error: --release [0.6, 1.0]: each must lie in [0, 1)"]


def test_post_filter_keeps_high_gains_and_pushes_low_ones_down():
    torch = pytest.importorskip("torch", reason="needs torch")
    from models import fullband

    g = torch.linspace(0.01, 1.0, 100)
    out = fullband.post_filter(g, 0.02)
    assert float(out[-1]) == pytest.approx(1.0, abs=1e-6) and bool(torch.all(out <= g + 1e-7))
    assert bool(torch.all(torch.diff(out) > 0))  # monotone: the order of the gains is kept
    ratio_db = 20 * torch.log10(out / g)
    assert float(ratio_db[g.sub(0.9).abs().argmin()]) > -0.1  # speech-dominated bands barely change
    assert float(ratio_db[g.sub(0.1).abs().argmin()]) == pytest.approx(-5.1, abs=0.3)  # noise: about 5 dB more cut
    assert bool(torch.equal(distill._reshaped(g, 1.0, 0.0), g))
    assert torch.allclose(distill._reshaped(g, 0.5, 0.02), fullband.post_filter(g.sqrt(), 0.02))


def test_release_limit_lets_gains_rise_at_once_and_fall_no_faster_than_alpha_per_frame():
    torch = pytest.importorskip("torch", reason="needs torch")
    from models import fullband

    g = torch.tensor([0.2, 1.0, 0.0, 0.0, 0.0, 0.9, 0.1, 0.5])[None, :, None].repeat(2, 1, 3)
    out = fullband.release_limit(g, 0.6)
    want = torch.tensor([0.2, 1.0, 0.6, 0.36, 0.216, 0.9, 0.54, 0.5])
    torch.testing.assert_close(out[1, :, 2], want, rtol=0, atol=1e-6)
    assert bool(torch.all(out >= g)) and bool(torch.all(out <= 1.0))  # it only ever keeps a gain up
    assert bool(torch.equal(fullband.release_limit(g, 0.0), g))
    torch.testing.assert_close(distill._reshaped(g, 1.0, 0.0, 0.6), out)


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


# ---------------------------------------------------------------------------------- the live ring
def _set_done(folder, counts):
    done = np.load(folder / "done.npy", mmap_mode="r+")
    done[:] = counts
    done.flush()


@needs_teacher
@needs_corpus
def test_live_worker_labels_its_own_slots_as_the_mixer_and_teacher_say(tmp_path, teacher):
    """Worker w of W labels mixtures w, w + W, ... into slot i % capacity and counts each only
    once it is written; the other worker's slots stay untouched."""
    from models.mixing import MixConfig, Mixer

    mix = {"seconds": 1.0, "seed": 3}
    info = distill.live_create(tmp_path, mix, capacity=5, workers=2)
    assert info["capacity"] == 4  # rounded down to a multiple of the workers
    distill._live_worker(tmp_path, 1, stop=3)
    assert np.load(tmp_path / "done.npy").tolist() == [0, 3]
    noisy, gains = np.load(tmp_path / "noisy.npy"), np.load(tmp_path / "teacher.npy")
    mixer = Mixer(MixConfig.from_dict(mix))
    for slot, i in ((3, 3), (1, 5)):  # mixtures 1, 3, 5: slot 1 was written twice (the ring wrapped)
        ex = mixer.example(i)["noisy"]
        np.testing.assert_allclose(noisy[slot], ex, atol=2e-3 * max(1e-3, np.abs(ex).max()))
        np.testing.assert_allclose(gains[slot], teacher.band_gains(ex), atol=2e-3)
    assert not noisy[0].any() and not noisy[2].any()  # worker 0's slots


@needs_teacher
@needs_corpus
def test_a_live_ring_started_at_first_labels_mixtures_from_there_into_the_same_slots(tmp_path, teacher):
    """A sitting resumed on a fresh machine starts its ring past the mixtures it has drawn: with
    ``first`` F, worker w labels mixtures F + w, F + w + W, ... into slots w, w + W, ..."""
    from models.mixing import MixConfig, Mixer

    mix = {"seconds": 0.5, "seed": 3}
    info = distill.live_create(tmp_path, mix, capacity=4, workers=2, first=10)
    assert info["first"] == 10 and json.loads((tmp_path / "live.json").read_text())["first"] == 10
    distill._live_worker(tmp_path, 1, stop=2)
    noisy = np.load(tmp_path / "noisy.npy")
    mixer = Mixer(MixConfig.from_dict(mix))
    for slot, i in ((1, 11), (3, 13)):
        ex = mixer.example(i)["noisy"]
        np.testing.assert_allclose(noisy[slot], ex, atol=2e-3 * max(1e-3, np.abs(ex).max()))
    assert np.abs(noisy[1] - mixer.example(1)["noisy"]).max() > 1e-2  # not the ring's mixture 1
    with pytest.raises(ValueError, match="first -1"):
        distill.live_create(tmp_path / "other", mix, capacity=4, workers=2, first=-1)


@needs_teacher
@needs_corpus
def test_a_live_ring_for_per_bin_gains_labels_them_with_the_band_gains_from_one_teacher_run(tmp_path, teacher):
    """A recipe whose loss has ``teacher_bins`` gets a ring whose slots also hold the teacher's
    per-bin gains on the net's ``bin_gains`` lowest bins, as ``bin_gains`` gives them; its live set
    yields them as a fourth array; a ring without them says so."""
    pytest.importorskip("torch", reason="per-bin gains are measured in our STFT (torch), as training reads them")
    from models.mixing import MixConfig, Mixer

    recipe = {"net": {"bin_gains": 40}, "loss": {"teacher_bins": 8.0}}
    assert distill.live_bins(recipe) == 40
    assert distill.live_bins({"net": {}, "loss": {"teacher_bins": 8.0}}) == distill.NB_DF
    assert distill.live_bins({"net": {"bin_gains": 40}, "loss": {"teacher": 8.0}}) == 0
    assert distill.live_bins(json.loads((ROOT / "models" / "configs" / "noisenil_fb_gpu_bins.json").read_text())) == 96  # the lent-GPU recipe's ring
    mix = {"seconds": 1.0, "seed": 3}
    info = distill.live_create(tmp_path, mix, capacity=4, workers=2, bins=distill.live_bins(recipe))
    assert info["teacher_bins"] == 40 and json.loads((tmp_path / "live.json").read_text())["teacher_bins"] == 40
    distill._live_worker(tmp_path, 0, stop=1)
    ex = Mixer(MixConfig.from_dict(mix)).example(0)["noisy"]
    per_bin = np.load(tmp_path / "teacher_bins.npy")
    assert per_bin.shape == (4, 100, 40) and not per_bin[1:].any()
    np.testing.assert_allclose(per_bin[0], distill.bin_gains(teacher, ex, 40), atol=2e-3)
    np.testing.assert_allclose(np.load(tmp_path / "teacher.npy")[0], teacher.band_gains(ex), atol=2e-3)
    assert 0.05 < float(per_bin[0].mean()) < 0.95  # it cuts some bins and keeps others
    gains, none = teacher.labels(ex)
    assert none is None and np.array_equal(gains, teacher.band_gains(ex))
    items = distill.LiveSet(tmp_path, bins=True)[0]
    assert len(items) == 4 and items[3].shape == (100, 40)
    with pytest.raises(ValueError, match="bins 97 not in"):
        distill.live_create(tmp_path / "other", mix, capacity=4, workers=2, bins=97)


def test_live_set_draws_only_finished_slots_and_never_one_being_rewritten(tmp_path):
    """Nothing is drawn before a slot is done; once the ring wraps, each worker's next slot
    (which it may be rewriting now) is left out; the draws depend only on (seed, k) and the counts."""
    distill.live_create(tmp_path, {"seconds": 0.1, "seed": 1}, capacity=8, workers=2)
    ring = distill.LiveSet(tmp_path, seed=0)
    assert ring.ready() == 0
    with pytest.raises(RuntimeError, match="no labelled mixtures yet"):
        ring.slot(0)
    _set_done(tmp_path, [2, 0])  # worker 0 finished mixtures 0 and 2
    assert ring.ready() == 2
    assert {ring.slot(k) for k in range(200)} == {0, 2}
    # wrapped: worker 0 finished 0..10 step 2 (slots 0 2 4 6 0 2) and writes mixture 12 into slot 4;
    # worker 1 finished 1..9 (slots 1 3 5 7 1) and writes mixture 11 into slot 3
    _set_done(tmp_path, [6, 5])
    assert ring.ready() == 6
    drawn = [ring.slot(k) for k in range(400)]
    assert set(drawn) == {6, 0, 2, 5, 7, 1}
    counts = np.bincount(drawn, minlength=8)[[0, 1, 2, 5, 6, 7]]
    assert counts.min() > 400 / 6 * 0.6  # roughly uniform
    assert drawn == [distill.LiveSet(tmp_path, seed=0).slot(k) for k in range(400)]
    assert drawn != [distill.LiveSet(tmp_path, seed=1).slot(k) for k in range(400)]
    noisy, _, gains = ring[0]
    assert noisy.dtype == np.float32 and noisy.shape == (4800,) and gains.shape == (10, 32)
    with pytest.raises(ValueError, match="the ring holds no per-bin teacher gains"):
        distill.LiveSet(tmp_path, bins=True)


def test_train_names_a_missing_or_foreign_live_ring_in_one_line(tmp_path, capsys):
    pytest.importorskip("torch", reason="models.train needs torch")
    from models import train

    ring = tmp_path / "ring"
    recipe = json.loads((ROOT / "models" / "configs" / "noisenil_fb_gpu_live.json").read_text())
    recipe.pop("init_from")
    recipe["live"] = {**recipe["live"], "dir": str(ring), "seed": 4, "min_ready": 3, "wait_minutes": 0}
    monkey = pytest.MonkeyPatch()
    monkey.delenv("NOISENIL_FB_LIVE", raising=False)
    with pytest.raises(train.RecipeError, match="no live teacher ring; start the labelling first"):
        train.live_folder(recipe)
    distill.live_create(ring, {"seconds": 0.1, "seed": 3}, capacity=8, workers=2)
    with pytest.raises(train.RecipeError, match="labels mixtures of seed 3; the recipe wants seed 4"):
        train.live_folder(recipe)
    recipe["live"]["seed"] = 3
    _set_done(ring, [1, 1])
    with pytest.raises(train.RecipeError, match="2 mixtures ready after 0 min, 3 wanted"):
        train.live_folder(recipe, poll_seconds=0.01)
    _set_done(ring, [2, 1])
    assert train.live_folder(recipe, log=lambda *_: None) == ring
    # the command line says it in one line, without a traceback
    recipe["name"] = "test_live_ring_missing"
    recipe["live"]["dir"] = str(tmp_path / "none")
    (tmp_path / "r.json").write_text(json.dumps(recipe))
    monkey.setattr(train, "MODELS_DIR", tmp_path)
    monkey.setattr(train, "CHECKPOINTS", tmp_path / "checkpoints")
    try:
        assert train.main([str(tmp_path / "r.json"), "--no-export", "--device", "cpu"]) == 2
    finally:
        monkey.undo()
    err = capsys.readouterr().err.strip().splitlines()
    none = tmp_path / "none"
    hint = f"start the labelling first: python -m models.distill live {none} --config RECIPE --workers N"
    assert err == [f"error: {tmp_path / 'r.json'}: {none}: no live teacher ring; {hint}"]
    # a recipe with the per-bin term needs a ring labelled with per-bin gains on the net's bins
    recipe["live"]["dir"] = str(ring)
    recipe["loss"] = {**recipe.get("loss", {}), "teacher_bins": 8.0}
    recipe["net"] = {**recipe["net"], "logmag_bins": 96, "bin_gains": 96}
    with pytest.raises(train.RecipeError, match=f"{ring}: the ring labels per-bin gains on 0 bins; the loss 'teacher_bins' wants 96; start the ring again"):
        train.live_folder(recipe)
    binned = tmp_path / "binned"
    distill.live_create(binned, {"seconds": 0.1, "seed": 3}, capacity=8, workers=2, bins=96)
    _set_done(binned, [2, 1])
    recipe["live"]["dir"] = str(binned)
    assert train.live_folder(recipe, log=lambda *_: None) == binned


def test_gain_scores_with_dnsmos_measure_the_gained_audio(monkeypatch):
    """``_score_gains(dnsmos=True)`` (what ``bounds --dnsmos`` and ``score --dnsmos`` run): unit gains
    score the noisy input itself, zero gains cut the pauses by far more, and the CLI passes the flag."""
    torch = pytest.importorskip("torch", reason="needs torch")
    pytest.importorskip("speechmos", reason="needs the eval extra")
    from models import fullband
    from plugin_host import evaluation

    rng = np.random.default_rng(0)
    t = np.arange(48000 * 2) / 48000
    clean = (0.1 * np.sin(2 * np.pi * 220 * t) * (t > 0.5)).astype(np.float32)
    noisy = (clean + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    pair = evaluation.Pair(clean=clean, noisy=noisy, snr_db=20.0, speech="tone", noise="white")
    monkeypatch.setattr(evaluation, "build_dev_set", lambda **kw: [pair])
    out = distill._score_gains(
        {"unit": lambda p, spec, c: torch.ones(spec.shape, dtype=torch.float32), "zero": lambda p, spec, c: torch.full(spec.shape, 1e-3)},
        log=lambda *a: None,
        dnsmos=True,
    )
    # unit gains give back the input but for the last frame, which the harness's STFT does not rebuild
    y = fullband.istft(fullband.stft(torch.from_numpy(noisy)[None]))[0].numpy()[fullband.HOP : fullband.HOP + len(noisy)]
    assert np.abs(y - noisy)[: -2 * fullband.HOP].max() < 1e-5
    y = np.pad(y, (0, len(noisy) - len(y)))
    direct = evaluation.quality(clean, y)
    for key in ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "pesq_wb"):
        assert out["unit"][key] == pytest.approx(direct[key], abs=0.006)
    assert out["unit"]["si_sdr_db"] == pytest.approx(evaluation.si_sdr(clean, y), abs=0.006)
    assert abs(out["unit"]["pause_db"]) < 0.1 and out["zero"]["pause_db"] == pytest.approx(60.0, abs=0.5)

    seen = {}
    monkeypatch.setattr(distill, "bounds", lambda dnsmos=False: seen.setdefault("dnsmos", dnsmos))
    assert distill.main(["bounds", "--dnsmos"]) == 0 and seen == {"dnsmos": True}


def test_band_gap_puts_the_teachers_bands_into_the_students_and_checks_its_arguments(tmp_path, monkeypatch, capsys):
    torch = pytest.importorskip("torch", reason="needs torch")
    from models import fullband

    _, expand = fullband.erb_matrices(fullband.erb_widths())
    student = torch.full((1, 4, 481), 0.2)  # per-bin gains
    teacher = torch.full((1, 4, 32), 0.9)  # band gains
    g = distill.with_teacher_bands(student, teacher, expand, 0, 13)
    assert torch.equal(g[..., :26], torch.full((1, 4, 26), 0.9)) and torch.equal(g[..., 26:], student[..., 26:])  # bands 0-12: bins 0-25
    assert float(student.max()) == pytest.approx(0.2)  # the student's gains are left alone
    assert distill.main(["gap", str(tmp_path / "none.pt")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'none.pt'}: no such checkpoint"
    (tmp_path / "c.pt").write_bytes(b"x")
    for bad in ("12-3", "0-32", "low-high"):
        assert distill.main(["gap", str(tmp_path / "c.pt"), "--bands", bad]) == 2
        assert capsys.readouterr().err.strip() == f"error: --bands {bad!r}: want FIRST-LAST with 0 <= FIRST <= LAST <= 31, e.g. 0-12"
    seen = {}
    for bad in ("0-481", "95-0"):
        assert distill.main(["gap", str(tmp_path / "c.pt"), "--output-bins", bad]) == 2
        assert capsys.readouterr().err.strip() == f"error: --output-bins {bad!r}: want FIRST-LAST with 0 <= FIRST <= LAST <= 480, e.g. 0-95"
    assert distill.main(["gap", str(tmp_path / "c.pt"), "--gain-bins", "0-481"]) == 2
    assert capsys.readouterr().err.strip() == "error: --gain-bins '0-481': want FIRST-LAST with 0 <= FIRST <= LAST <= 480, e.g. 0-95"
    monkeypatch.setattr(
        distill,
        "band_gap",
        lambda path, ranges, split, dnsmos, bin_ranges, gain_bin_ranges: seen.update(ranges=ranges, split=split, dnsmos=dnsmos, bins=bin_ranges, gain_bins=gain_bin_ranges),
    )
    assert distill.main(["gap", str(tmp_path / "c.pt"), "--bands", "0-12", "25-31", "--split", "train", "--dnsmos", "--output-bins", "0-95", "--gain-bins", "0-25"]) == 0
    assert seen == {"ranges": [(0, 13), (25, 32)], "split": "train", "dnsmos": True, "bins": [(0, 96)], "gain_bins": [(0, 26)]}


def test_teacher_output_goes_into_the_asked_bins_only():
    """The spliced gains give the teacher's spectrum in bins lo..hi-1 and the student's gains times
    the noisy spectrum elsewhere; a bin where the input is exactly zero stays zero."""
    torch = pytest.importorskip("torch", reason="needs torch")
    gen = torch.Generator().manual_seed(0)
    spec = torch.complex(torch.randn(1, 5, 481, generator=gen), torch.randn(1, 5, 481, generator=gen))
    spec[0, 2, 3] = 0
    teacher_spec = torch.complex(torch.randn(1, 5, 481, generator=gen), torch.randn(1, 5, 481, generator=gen))
    student = torch.rand(1, 5, 481, generator=gen)
    out = spec * distill.with_teacher_bins(student, spec, teacher_spec, 0, 96)
    lows = [(t, f) for t in range(5) for f in range(96) if (t, f) != (2, 3)]
    torch.testing.assert_close(out[0, [t for t, _ in lows], [f for _, f in lows]], teacher_spec[0, [t for t, _ in lows], [f for _, f in lows]], rtol=1e-5, atol=1e-5)
    assert out[0, 2, 3] == 0
    torch.testing.assert_close(out[..., 96:], spec[..., 96:] * student[..., 96:])
    # the real per-bin gains: the teacher's magnitude in the asked bins, the noisy phase, at most the input's level
    g = distill.with_teacher_bin_gains(student, spec, teacher_spec, 0, 96)
    torch.testing.assert_close(g[..., 96:], student[..., 96:], rtol=0, atol=0)
    ratio = (teacher_spec[..., :96].abs() / spec[..., :96].abs().clamp(min=1e-8)).clamp(max=1.0)
    torch.testing.assert_close(g[..., :96], ratio)
    assert float(g.max()) <= 1.0 and float(ratio.min()) < 0.9 and (spec * g)[0, 2, 3] == 0  # a zero input bin stays zero


@needs_teacher
def test_teacher_resynthesis_gives_the_input_back_and_its_output_aligned(teacher, noisy):
    """Vorbis overlap-add of the unprocessed spectrum is the input (to float rounding); the
    enhanced waveform is aligned with the input: it correlates best at lag 0."""
    n = len(noisy) // 480
    back = teacher.synthesise(teacher._spectra(noisy)[:n], len(noisy))
    assert np.abs(back[:-480] - noisy[:-480]).max() < 1e-5 * np.abs(noisy).max()
    y = teacher.enhanced(noisy)
    assert y.shape == noisy.shape and y.dtype == np.float32
    lags = range(-960, 961, 120)
    corr = [np.dot(np.roll(y, lag), noisy) for lag in lags]
    assert list(lags)[int(np.argmax(corr))] == 0


@needs_teacher
def test_bins_adds_the_teachers_per_bin_gains_to_a_cache_and_training_reads_them(tmp_path, teacher, noisy, capsys):
    """``python -m models.distill bins`` writes |teacher output| / |input| per low bin, in [0, 1],
    as ``bin_gains`` gives it; the cached set then yields it as a fourth array, and a recipe with a
    ``teacher_bins`` weight names a cache without it in one line."""
    torch = pytest.importorskip("torch", reason="needs torch")
    from models import fullband, train

    cache = tmp_path / "cache"
    cache.mkdir()
    x = np.stack([noisy[:48000], noisy[48000:96000] * 0.1]).astype(np.float16)
    for name, arr in (("noisy", x), ("clean", x), ("teacher", np.zeros((2, 100, 32), np.float16))):
        np.save(cache / f"{name}.npy", arr)
    (cache / "cache.json").write_text(json.dumps({"mix": {"seed": 3}, "examples": 2}))
    recipe = {"cache": {"dir": str(cache), "examples": 2, "seed": 3}}
    with pytest.raises(train.RecipeError, match=f"no per-bin teacher gains for the loss 'teacher_bins'; run: python -m models.distill bins {cache}"):
        train.cache_folder(recipe, bins=True)
    assert distill.main(["bins", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'none'}: no built cache (cache.json missing); run python -m models.distill build first"
    assert distill.main(["bins", str(cache), "--bins", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --bins 0: must lie in [1, 481]"
    assert distill.main(["bins", str(cache), "--bins", "40", "--workers", "1"]) == 0
    got = np.load(cache / distill.BINS_FILE)
    assert got.shape == (2, 100, 40) and got.dtype == np.float16 and 0.0 <= got.min() and got.max() <= 1.0
    direct = distill.bin_gains(teacher, np.asarray(x[1], np.float32), 40)
    np.testing.assert_allclose(got[1], direct, atol=1e-3)
    # the teacher's output magnitude over the input's, in our STFT
    spec = fullband.stft(torch.from_numpy(np.asarray(x[1], np.float32))[None])[0, :100, :40].abs()
    out = distill.teacher_output_spectrum(teacher, np.asarray(x[1], np.float32))[0, :100, :40].abs()
    np.testing.assert_allclose(direct, (out / spec.clamp(min=1e-8)).clamp(0, 1).numpy(), atol=1e-6)
    assert 0.05 < float(direct.mean()) < 0.95  # it cuts some bins and keeps others
    assert json.loads((cache / "cache.json").read_text())["teacher_bins"] == 40
    assert train.cache_folder(recipe, bins=True) == cache
    items = distill.CachedSet(cache, bins=True)[0]
    assert len(items) == 4 and items[3].shape == (100, 40)
    assert len(distill.CachedSet(cache)[0]) == 3


def test_score_without_the_bin_head_scores_the_band_gains_alone(tmp_path, monkeypatch):
    """``score --without-bin-head`` adds, for a checkpoint with per-bin gains, a row whose gains are
    its band gains expanded (the head's output at zero), beside the row with the head."""
    torch = pytest.importorskip("torch", reason="needs torch")
    from models import fullband

    torch.manual_seed(0)
    net = fullband.FullBandNet(channels=16, dilations=[1, 2], bin_gains=24, bin_hidden=8, deep_filter=False)
    torch.nn.init.normal_(net.bin_head[-1].weight, std=0.5)
    cfg = {"net": {"channels": 16, "dilations": [1, 2], "bin_gains": 24, "bin_hidden": 8, "deep_filter": False}}
    torch.save({"model": net.state_dict(), "config": cfg, "step": 3}, tmp_path / "c.pt")
    seen = {}
    monkeypatch.setattr(distill, "_score_gains", lambda fns, log, split, dnsmos: seen.update(fns))
    distill.score_checkpoints([tmp_path / "c.pt"], without_bin_head=True)
    assert sorted(seen) == ["c.pt (step 3)", "c.pt (step 3) without its bin head"]
    spec = fullband.stft(torch.randn(1, 9600) * 0.1)
    with torch.no_grad():
        bands = net.forward_sequence(spec.real.contiguous(), spec.imag.contiguous())[2] @ net.erb_expand
        off, on = seen["c.pt (step 3) without its bin head"](None, spec, None), seen["c.pt (step 3)"](None, spec, None)
    torch.testing.assert_close(off, bands, rtol=0, atol=1e-6)
    assert float((on[..., :24] - off[..., :24]).abs().max()) > 0.01  # the head moves the lowest bins
    torch.testing.assert_close(on[..., 24:], off[..., 24:], rtol=0, atol=1e-6)
    seen.clear()
    distill.score_checkpoints([tmp_path / "c.pt"], without_bin_head=False)
    assert sorted(seen) == ["c.pt (step 3)"]  # the row without the head only when asked


def test_score_without_pitch_scores_the_net_with_its_harmonicity_inputs_at_zero(tmp_path, monkeypatch):
    """``score --without-pitch`` adds, for a checkpoint with harmonicity inputs, a row from the same
    net with the weights that read them at zero: the function of the net it was grown from."""
    torch = pytest.importorskip("torch", reason="needs torch")
    from models import fullband

    net_cfg = {"channels": 16, "dilations": [1, 2], "bin_gains": 24, "bin_hidden": 8, "deep_filter": False}
    torch.manual_seed(0)
    base = fullband.FullBandNet(**net_cfg)
    torch.nn.init.normal_(base.bin_head[-1].weight, std=0.5)
    net = fullband.FullBandNet(**net_cfg, pitch=True)
    net.load_state_dict(fullband.grow_state_dict(net, base.state_dict()))
    with torch.no_grad():  # as if trained: both readers of the new inputs moved
        net.inp.weight[:, -fullband.PITCH_LAGS :].normal_(std=0.5)
        net.bin_head[0].weight[:, -fullband.PITCH_LAGS :].normal_(std=0.5)
    torch.save({"model": net.state_dict(), "config": {"net": {**net_cfg, "pitch": True}}, "step": 5}, tmp_path / "p.pt")
    seen = {}
    monkeypatch.setattr(distill, "_score_gains", lambda fns, log, split, dnsmos: seen.update(fns))
    distill.score_checkpoints([tmp_path / "p.pt"], without_pitch=True)
    assert sorted(seen) == ["p.pt (step 5)", "p.pt (step 5) without its harmonicity inputs"]
    t = torch.arange(24000) / 48000
    spec = fullband.stft((0.05 * torch.sign(torch.sin(2 * torch.pi * 150 * t)) + 0.01 * torch.randn(24000))[None])
    with torch.no_grad():
        want = base.forward_sequence(spec.real.contiguous(), spec.imag.contiguous(), with_bins=True)[3]
        off, on = seen["p.pt (step 5) without its harmonicity inputs"](None, spec, None), seen["p.pt (step 5)"](None, spec, None)
    torch.testing.assert_close(off, want, rtol=0, atol=1e-6)
    assert float((on - off).abs().max()) > 0.01
    seen.clear()
    distill.score_checkpoints([tmp_path / "p.pt"])
    assert sorted(seen) == ["p.pt (step 5)"]


def test_score_with_input_and_teacher_rows_and_dnsmos_per_input_snr(tmp_path, monkeypatch):
    """``score --with-input --with-teacher``: a row of unit gains (the noisy input) and one of
    DeepFilterNet3's projected band gains beside the checkpoint's; with DNSMOS each row also carries
    SIG / BAK / OVRL per input SNR, the means of that SNR's pairs."""
    torch = pytest.importorskip("torch", reason="needs torch")
    pytest.importorskip("speechmos", reason="needs the eval extra")
    from models import fullband
    from plugin_host import evaluation

    net_cfg = {"channels": 16, "dilations": [1, 2], "deep_filter": False}
    torch.manual_seed(0)
    torch.save({"model": fullband.FullBandNet(**net_cfg).state_dict(), "config": {"net": net_cfg}, "step": 2}, tmp_path / "s.pt")
    rng = np.random.default_rng(1)
    t = np.arange(48000) / 48000
    clean = (0.1 * np.sin(2 * np.pi * 180 * t) * (t > 0.3)).astype(np.float32)
    pairs = [
        evaluation.Pair(clean=clean, noisy=(clean + a * rng.standard_normal(len(t))).astype(np.float32), snr_db=snr, speech="tone", noise="white")
        for a, snr in ((0.05, 0.0), (0.005, 20.0), (0.004, 20.0))
    ]
    monkeypatch.setattr(evaluation, "build_dev_set", lambda **kw: pairs)
    seen = {}
    real = distill._score_gains

    def spy(fns, log, split, dnsmos):
        seen.update(fns)
        return real(fns, log=lambda *a: None, split=split, dnsmos=dnsmos)

    monkeypatch.setattr(distill, "_score_gains", spy)
    out = distill.score_checkpoints([tmp_path / "s.pt"], dnsmos=True, with_input=True, with_teacher=True)
    assert sorted(seen) == sorted([distill.INPUT_ROW, distill.TEACHER_ROW, "s.pt (step 2)"])
    spec = fullband.stft(torch.from_numpy(pairs[0].noisy)[None])
    assert float((seen[distill.INPUT_ROW](pairs[0], spec, None) - 1).abs().max()) == 0.0
    g = seen[distill.TEACHER_ROW](pairs[0], spec, None)
    assert g.shape == spec.shape and 0.0 <= float(g.min()) and float(g.max()) <= 1.0 + 1e-6
    assert float(g.std()) > 0.01  # the teacher's gains vary over time and bands
    row = out[distill.INPUT_ROW]
    assert sorted(row["per_snr_dnsmos"]) == [0.0, 20.0]
    for key in ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"):
        per = row["per_snr_dnsmos"]
        assert row[key] == pytest.approx((per[0.0][key] + 2 * per[20.0][key]) / 3, abs=0.011)  # pair-weighted, rounded to 0.01
    assert row["per_snr_dnsmos"][20.0]["dnsmos_bak"] > row["per_snr_dnsmos"][0.0]["dnsmos_bak"]  # less noise, higher BAK
    assert distill.main(["score", str(tmp_path / "nope.pt"), "--with-input"]) == 2
    flags = {}
    monkeypatch.setattr(distill, "score_checkpoints", lambda paths, **kw: flags.update(kw))
    assert distill.main(["score", str(tmp_path / "s.pt"), "--with-input", "--with-teacher", "--dnsmos"]) == 0
    assert flags["with_input"] and flags["with_teacher"] and flags["dnsmos"]


def test_a_labelling_worker_computes_on_one_thread():
    """Each labelling worker pins torch's OpenMP pool and the BLAS pools to one thread: with their
    defaults (a thread per core in every worker) 2 workers on 2 cores labelled 2.5 times slower."""
    pytest.importorskip("torch")
    import subprocess
    import sys

    code = (
        "import json, torch\n"
        "from threadpoolctl import threadpool_info\n"
        "from models import distill\n"
        "torch.set_num_threads(2); before = torch.get_num_threads()\n"
        "distill._one_thread()\n"
        "print(json.dumps([before, torch.get_num_threads(), sorted({p['num_threads'] for p in threadpool_info()})]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    before, after, pools = json.loads(out.stdout.strip().splitlines()[-1])
    assert (before, after, pools) == (2, 1, [1])
