"""The flagship's torch code: streaming step == whole-clip training graph, STFT == the engine's,
strict export, resumable deterministic training (needs torch: the `train` extra)."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training tests need torch (pip install -e '.[train]')")

from models import fullband, train  # noqa: E402
from plugin_host.stft import StreamingSTFT  # noqa: E402
from tests.conftest import SHARED_DATA  # noqa: E402

TINY = {"channels": 16, "dilations": [1, 2, 4], "kernel": 3, "bands": 32, "df_bins": 96, "df_order": 3}


def _net(seed=0, df=True, lookahead=0, logmag=0, bins=0, hidden=0, conv=0, floor=False, gru=0, pitch=False):
    torch.manual_seed(seed)
    net = fullband.FullBandNet(**TINY, lookahead=lookahead, logmag_bins=logmag, bin_gains=bins, bin_hidden=hidden, bin_conv=conv, noise_floor=floor, gru=gru, pitch=pitch)
    if df:  # the deep filter head starts at zero; give it something to do
        torch.nn.init.normal_(net.df_head.weight, std=0.05)
    if bins:  # so does the bin head
        torch.nn.init.normal_(net.bin_head[-1].weight, std=0.3)
    if conv:  # and the convolution along frequency
        torch.nn.init.normal_(net.bin_freq[-1].weight, std=0.3)
    if gru:  # and the recurrent layer's projection
        torch.nn.init.normal_(net.gru_proj.weight, std=0.3)
    return net.eval()


def test_erb_layout_covers_every_bin():
    widths = fullband.erb_widths()
    assert len(widths) == 32 and sum(widths) == fullband.N_BINS and min(widths) >= 2
    assert widths == sorted(widths) or widths[-1] >= widths[0]  # wider towards the top


def test_stft_matches_the_engine_and_inverts():
    x = torch.from_numpy(np.random.default_rng(0).standard_normal(48000).astype(np.float32) * 0.1)
    spec = fullband.stft(x[None])[0].numpy()
    engine = StreamingSTFT(960, 480, "sqrt_hann")
    frames = np.array([engine.analyze(x.numpy()[i : i + 480].astype(np.float64)) for i in range(0, 48000, 480)])
    np.testing.assert_allclose(spec, frames, atol=1e-4)
    y = fullband.istft(fullband.stft(x[None]))[0]
    np.testing.assert_allclose(y[480:48000].numpy(), x[: 48000 - 480].numpy(), atol=1e-5)


def _step_and_graph(net, seed):
    """A random half-second clip's spectrum through the streaming step frame by frame (T, 2, F)
    and through the whole-clip graph (re, im: (1, T, F))."""
    x = torch.from_numpy(np.random.default_rng(seed).standard_normal((1, 24000)).astype(np.float32) * 0.05)
    spec = fullband.stft(x)
    re, im = spec.real.contiguous(), spec.imag.contiguous()
    with torch.no_grad():
        o_re, o_im, _ = net.forward_sequence(re, im)
        step = fullband.FullBandStep(net)
        states = step.initial_states()
        outs = []
        for t in range(re.shape[1]):
            y, *states = step(torch.stack([re[:, t], im[:, t]], 1), *states)
            outs.append(y[0])
    return torch.stack(outs), o_re, o_im


@pytest.mark.parametrize(
    ("logmag", "bins", "hidden", "conv", "floor", "gru", "pitch"),
    [
        (0, 0, 0, 0, False, 0, False),
        (40, 0, 0, 0, False, 0, False),
        (40, 24, 0, 0, False, 0, False),
        (40, 24, 32, 0, False, 0, False),
        (40, 24, 32, 8, False, 0, False),
        (0, 0, 0, 0, True, 0, False),
        (40, 24, 32, 8, True, 0, False),
        (0, 0, 0, 0, False, 12, False),
        (40, 24, 32, 8, True, 12, False),
        (0, 0, 0, 0, False, 0, True),
        (40, 24, 32, 8, True, 12, True),
    ],
)
@pytest.mark.parametrize("lookahead", [0, 1, 2])
@pytest.mark.parametrize("df", [True, False])
def test_streaming_step_equals_the_training_graph(lookahead, df, logmag, bins, hidden, conv, floor, gru, pitch):
    """Frame by frame with explicit states, the step gives the whole-clip graph's output; with
    lookahead L, L frames later (the first L outputs are silence: no frame is ready yet); with
    per-bin log magnitudes as extra inputs, per-bin gains on the lowest bins, a convolution
    along frequency over them, the noise-floor inputs, a recurrent layer and the harmonicity
    inputs, too."""
    net = _net(df=df, lookahead=lookahead, logmag=logmag, bins=bins, hidden=hidden, conv=conv, floor=floor, gru=gru, pitch=pitch)
    if df:
        net.deep_filter = True
    else:
        net.switch_off_deep_filter()
    assert len(net.state_specs()) == 3 + len(TINY["dilations"]) + (2 if lookahead else 0) + (2 if floor else 0) + (1 if gru else 0) + (2 if pitch else 0)
    y, o_re, o_im = _step_and_graph(net, seed=1)
    assert lookahead == 0 or float(y[:lookahead].abs().max()) == 0.0
    y = y[lookahead:]
    o_re, o_im = o_re[:, : len(y)], o_im[:, : len(y)]
    scale = float(o_re.abs().max())
    assert float((y[:, 0] - o_re[0]).abs().max()) < 1e-5 * scale
    assert float((y[:, 1] - o_im[0]).abs().max()) < 1e-5 * scale


def test_gains_alone_can_only_attenuate():
    """With the deep filter at zero (as initialised) every bin's magnitude is at most the input's."""
    net = _net(df=False)
    x = torch.randn(2, 24000) * 0.1
    spec = fullband.stft(x)
    with torch.no_grad():
        o_re, o_im, gains = net.forward_sequence(spec.real.contiguous(), spec.imag.contiguous())
    assert float(gains.min()) >= 0.0 and float(gains.max()) <= 1.0
    assert torch.all((o_re**2 + o_im**2) <= spec.abs() ** 2 * (1 + 1e-5) + 1e-12)


@pytest.mark.parametrize("bins", [0, 24])
def test_gains_only_training_skips_the_zero_filter_with_the_same_output_and_gradients(bins):
    """With the deep filter off the training graph leaves the frozen zero filter out: its output
    and every parameter's gradient equal the graph that runs the zero filter."""
    net = _net(df=False, logmag=40 if bins else 0, bins=bins, gru=12)
    net.switch_off_deep_filter()
    spec = fullband.stft(torch.from_numpy(np.random.default_rng(3).standard_normal((2, 24000)).astype(np.float32) * 0.05))
    re, im = spec.real.contiguous(), spec.imag.contiguous()
    outs, grads = [], []
    for filter_on in (False, True):
        net.zero_grad()
        net.deep_filter = filter_on  # the head stays zero and frozen: the graph with the filter's arithmetic
        o_re, o_im, gains = net.forward_sequence(re, im)
        (o_re.square().mean() + o_im.abs().mean() + gains.mean()).backward()
        outs.append((o_re.detach(), o_im.detach()))
        grads.append({k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None})
    assert float(net.df_head.weight.abs().max()) == 0.0 and "df_head.weight" not in grads[0]
    for a, b in zip(outs[0], outs[1]):
        assert float((a - b).abs().max()) <= 1e-6 * float(b.abs().max())
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for k in grads[0]:
        assert float((grads[0][k] - grads[1][k]).abs().max()) <= 1e-5 * (float(grads[1][k].abs().max()) + 1e-12), k


def _engine_and_graph(manifest, net, seed):
    """A random clip rendered by the engine (no torch) from ``manifest``, and the training graph's
    output for it, cut to the engine's alignment: (engine, reference)."""
    from plugin_host.effects import Denoise

    x = (np.random.default_rng(seed).standard_normal(24000) * 0.05).astype(np.float32)
    y = Denoise(str(manifest), remove_dc=False)(x[None], 48000)[0]  # the graph alone: no DC blocker
    spec = fullband.stft(torch.from_numpy(x)[None])
    with torch.no_grad():
        o_re, o_im, _ = net.forward_sequence(spec.real.contiguous(), spec.imag.contiguous())
    ref = fullband.istft(torch.complex(o_re, o_im))[0].numpy()[480 : 480 + len(x)]
    return y, ref


def test_export_is_strict_and_runs_in_the_engine(tmp_path, monkeypatch):
    from models import export as export_mod
    from models.export_fullband import export

    cfg = {"name": "fb_test", "net": TINY, "mix": {"seconds": 1.0}, "batch_size": 2}
    net = _net()
    torch.save({"model": net.state_dict(), "step": 3, "seconds": 1.0}, tmp_path / "ck.pt")
    path = export(cfg, tmp_path / "ck.pt", tmp_path)
    manifest = json.loads((tmp_path / "fb_test.json").read_text())
    assert path.is_file() and manifest["export"]["parity_max_abs_error"] < 1e-3
    assert manifest["input"]["shape"] == [1, 2, 481] and manifest["output"]["kind"] == "complex"
    assert len(manifest["states"]) == 3 + len(TINY["dilations"])

    # the engine (no torch) gives the training graph's output, sample for sample aligned
    y, ref = _engine_and_graph(tmp_path / "fb_test.json", net, seed=2)
    n = len(ref) - 480
    np.testing.assert_allclose(y[:n], ref[:n], atol=1e-5)

    # a mismatch between torch and ONNX writes nothing
    real = export_mod._run_onnx
    monkeypatch.setattr(export_mod, "_run_onnx", lambda *a: real(*a) + 1.0)
    with pytest.raises(export_mod.ExportMismatch):
        export({**cfg, "name": "fb_bad"}, tmp_path / "ck.pt", tmp_path)
    assert not (tmp_path / "fb_bad.onnx").exists() and not (tmp_path / "fb_bad.json").exists()


@pytest.mark.skipif(not (SHARED_DATA / "manifest.csv").is_file(), reason=f"corpus not present at {SHARED_DATA}")
def test_training_resumes_exactly(tmp_path, monkeypatch):
    """Two steps, stop, two more from the checkpoint == four steps in one go (same examples, same weights)."""
    monkeypatch.setattr(train, "CHECKPOINTS", tmp_path / "a")
    cfg = {
        "name": "tiny", "net": TINY, "mix": {"seconds": 0.5, "data_dir": str(SHARED_DATA)}, "batch_size": 2, "steps": 4,
        "learning_rate": 1e-3, "warmup_steps": 1, "threads": 1, "workers": 0, "log_every": 1, "dev_every": 1, "dev_examples": 1,
    }
    lines = []
    train.train(cfg, log=lines.append, steps_now=2)
    train.train(cfg, log=lines.append)
    assert any(line.startswith("resumed at step 2") for line in lines)
    resumed = torch.load(tmp_path / "a" / "tiny.pt", weights_only=False)
    monkeypatch.setattr(train, "CHECKPOINTS", tmp_path / "b")
    train.train(cfg, log=lines.append)
    straight = torch.load(tmp_path / "b" / "tiny.pt", weights_only=False)
    assert resumed["step"] == straight["step"] == 4
    for k, v in straight["model"].items():
        torch.testing.assert_close(resumed["model"][k], v, rtol=0, atol=1e-6)
    losses = [float(line.split("total ")[1].split()[0]) for line in lines if line.startswith("step")]
    assert all(np.isfinite(losses)) and len(losses) == 8
    assert sum(line.startswith("dev ") for line in lines) == 8  # a dev line after every step here


def test_learning_rate_schedule_by_steps_or_by_time():
    """A recipe with ``schedule_minutes`` decays by wall-clock time (a sitting on a machine of unknown
    speed still ends at lr_min); without it, by steps. Runtime keys do not block a resume."""
    cfg = {"learning_rate": 1e-3, "lr_min": 1e-5, "warmup_steps": 10, "steps": 1000}
    assert train.lr_at(0, cfg) == pytest.approx(1e-4) and train.lr_at(10, cfg) == pytest.approx(1e-3)
    assert train.lr_at(1000, cfg) == pytest.approx(1e-5) and train.progress(505, cfg) == pytest.approx(0.5)
    timed = {**cfg, "steps": 10**6, "schedule_minutes": 8.0}
    assert train.progress(20, timed, minutes=4.0) == pytest.approx(0.5)
    assert train.lr_at(20, timed, minutes=8.0) == pytest.approx(1e-5) and train.progress(20, timed, minutes=9.0) == 1.0
    assert train._training_keys({**cfg, "workers": 14, "threads": 8}) == train._training_keys(cfg)


@pytest.mark.skipif(not (SHARED_DATA / "manifest.csv").is_file(), reason=f"corpus not present at {SHARED_DATA}")
def test_distillation_recipe_trains_gains_only_from_a_teacher_cache(tmp_path, monkeypatch):
    """``cache`` + ``teacher`` weight: the DeepFilterNet3 term joins the loss; ``deep_filter: false``
    keeps the deep-filter head at zero through init_from and training (what trains is what ships);
    a missing cache is one line that says how to build it."""
    from models import distill

    if not distill.ARCHIVE.is_file():
        pytest.skip(f"DeepFilterNet3 not present at {distill.ARCHIVE}")
    monkeypatch.setattr(train, "CHECKPOINTS", tmp_path / "ck")
    mix = {"seconds": 0.5, "data_dir": str(SHARED_DATA)}
    distill.build(tmp_path / "cache", {**mix, "seed": 4}, 4, workers=1, log=lambda *_: None)
    donor = _net()  # a deep filter that is not zero, as in a checkpoint trained with it
    torch.save({"model": donor.state_dict()}, tmp_path / "donor.pt")
    monkeypatch.setattr(train, "MODELS_DIR", tmp_path / "models")
    (tmp_path / "models").mkdir()
    cfg = {
        "name": "tiny_kd", "net": {**TINY, "deep_filter": False}, "mix": mix, "batch_size": 2, "steps": 3,
        "cache": {"dir": str(tmp_path / "cache"), "examples": 4, "seed": 4}, "init_from": "donor.pt",
        "learning_rate": 1e-2, "warmup_steps": 1, "threads": 1, "log_every": 1, "dev_every": 3, "dev_examples": 1,
        "loss": {"teacher": 1.0},
    }
    lines = []
    train.train(cfg, log=lines.append)
    steps = [line for line in lines if line.startswith("step")]
    assert len(steps) == 3 and all(" teacher " in line for line in steps)
    assert all(np.isfinite(float(line.split("teacher ")[1].split()[0])) for line in steps)
    trained = torch.load(tmp_path / "ck" / "tiny_kd.pt", weights_only=False)["model"]
    assert float(trained["df_head.weight"].abs().max()) == 0.0 and float(trained["df_head.bias"].abs().max()) == 0.0
    assert float(donor.df_head.weight.detach().abs().max()) > 0.0
    assert not torch.equal(trained["gain_head.weight"], donor.gain_head.weight)  # the gains did train
    with pytest.raises(RuntimeError, match="python -m models.distill build"):
        train.cache_folder({"cache": {"dir": str(tmp_path / "nothing"), "examples": 4, "seed": 4}})


@pytest.mark.skipif(not (SHARED_DATA / "manifest.csv").is_file(), reason=f"corpus not present at {SHARED_DATA}")
def test_a_live_ring_recipe_trains_the_per_bin_head_towards_the_teachers_per_bin_gains(tmp_path, monkeypatch):
    """``live`` + ``teacher_bins``, as a lent-GPU sitting runs it: a ring labelled with per-bin gains
    on the net's bins feeds the per-bin term, and the bin head and the convolution along frequency train."""
    from models import distill

    if not distill.ARCHIVE.is_file():
        pytest.skip(f"DeepFilterNet3 not present at {distill.ARCHIVE}")
    monkeypatch.setattr(train, "CHECKPOINTS", tmp_path / "ck")
    monkeypatch.delenv("NOISENIL_FB_LIVE", raising=False)
    net = {**TINY, "deep_filter": False, "logmag_bins": 24, "bin_gains": 24, "bin_hidden": 16, "bin_conv": 4}
    cfg = {
        "name": "tiny_live_bins", "net": net, "mix": {"seconds": 0.5, "data_dir": str(SHARED_DATA)}, "batch_size": 2, "steps": 3,
        "live": {"dir": str(tmp_path / "ring"), "seed": 4, "min_ready": 2, "wait_minutes": 0},
        "learning_rate": 1e-2, "warmup_steps": 1, "threads": 1, "log_every": 1, "dev_examples": 0,
        "loss": {"teacher": 1.0, "teacher_bins": 1.0},
    }
    distill.live_create(tmp_path / "ring", {**cfg["mix"], "seed": 4}, capacity=4, workers=1, bins=distill.live_bins(cfg))
    distill._live_worker(tmp_path / "ring", 0, stop=3)
    lines = []
    train.train(cfg, log=lines.append)
    steps = [line for line in lines if line.startswith("step")]
    assert len(steps) == 3 and all(np.isfinite(float(line.split("teacher_bins ")[1].split()[0])) for line in steps)
    trained = torch.load(tmp_path / "ck" / "tiny_live_bins.pt", weights_only=False)["model"]
    assert float(trained["bin_head.2.weight"].abs().max()) > 0.0 and float(trained["bin_freq.4.weight"].abs().max()) > 0.0  # both started at zero


def test_causal_ema_equals_the_streaming_recursion():
    """The block-matrix running mean of the training graph == the step's frame-by-frame recursion,
    across block boundaries and for a length that is no multiple of the block."""
    x, init = torch.randn(2, 301, 7, dtype=torch.float64), torch.randn(2, 7, dtype=torch.float64)
    m, ref = init, []
    for t in range(x.shape[1]):
        m = x[:, t] * (1 - fullband.NORM_ALPHA) + m * fullband.NORM_ALPHA
        ref.append(m)
    for block in (1, 64, 128, 400):
        torch.testing.assert_close(fullband.causal_ema(x, init, fullband.NORM_ALPHA, block), torch.stack(ref, 1), rtol=0, atol=1e-10)


def test_running_floor_equals_the_streaming_recursion():
    """The training graph's cumulative-minimum floor == the step's ``f = min(db, f + rise)``, from
    a start far above the signal (the first frame sets it) and from one below it."""
    db = torch.randn(2, 301, 5, dtype=torch.float64) * 10.0
    for start in (fullband.FLOOR_INIT_DB, -50.0):
        init = torch.full((2, 5), start, dtype=torch.float64)
        f, ref = init, []
        for t in range(db.shape[1]):
            f = torch.minimum(db[:, t], f + fullband.FLOOR_RISE_DB)
            ref.append(f)
        torch.testing.assert_close(fullband.running_floor(db, init), torch.stack(ref, 1), rtol=0, atol=1e-9)


def test_a_noise_floor_export_runs_in_the_engine(tmp_path):
    """A gains-only model with the noise-floor inputs, per-bin gains and the convolution along
    frequency: the manifest lists its two floor states with their start values, and the engine's
    render equals the training graph."""
    from models.export_fullband import export

    net_cfg = {**TINY, "deep_filter": False, "logmag_bins": 40, "bin_gains": 24, "bin_hidden": 16, "bin_conv": 4, "noise_floor": True}
    cfg = {"name": "fb_floor", "net": net_cfg, "mix": {"seconds": 1.0}, "batch_size": 2, "export_deep_filter": False}
    net = _net(df=False, logmag=40, bins=24, hidden=16, conv=4, floor=True)
    net.switch_off_deep_filter()
    torch.nn.init.normal_(net.inp.weight, std=0.1)  # the floor inputs do something
    torch.nn.init.normal_(net.bin_freq[0].weight, std=0.3)
    torch.save({"model": net.state_dict(), "step": 3, "seconds": 1.0}, tmp_path / "ck.pt")
    export(cfg, tmp_path / "ck.pt", tmp_path)
    manifest = json.loads((tmp_path / "fb_floor.json").read_text())
    floors = {s["input"]: s for s in manifest["states"] if s["input"].startswith("floor")}
    assert floors["floor_smooth_in"]["init"] == fullband.FLOOR_SMOOTH_INIT and floors["floor_db_in"]["init"] == fullband.FLOOR_INIT_DB
    assert floors["floor_db_in"]["shape"] == [1, 32 + 96] and manifest["architecture"]["noise_floor"] is True
    y, ref = _engine_and_graph(tmp_path / "fb_floor.json", net, seed=3)
    n = len(ref) - 960
    np.testing.assert_allclose(y[:n], ref[:n], atol=1e-5)
    assert float(np.abs(ref[:n]).max()) > 1e-3


def test_a_lookahead_export_runs_aligned_in_the_engine(tmp_path):
    """A one-frame lookahead model: the manifest says so, its latency grows by a hop, and the
    engine's render lines up with the training graph sample for sample."""
    from models.export_fullband import export
    from plugin_host.effects import Denoise

    cfg = {"name": "fb_look", "net": {**TINY, "lookahead": 1}, "mix": {"seconds": 1.0}, "batch_size": 2}
    net = _net(lookahead=1)
    torch.nn.init.normal_(net.inp.weight, std=0.1)  # the lookahead tap does something
    torch.save({"model": net.state_dict(), "step": 3, "seconds": 1.0}, tmp_path / "ck.pt")
    export(cfg, tmp_path / "ck.pt", tmp_path)
    manifest = json.loads((tmp_path / "fb_look.json").read_text())
    assert manifest["lookahead_frames"] == 1 and "20 ms latency (1 frame of lookahead)" in manifest["description"]
    assert Denoise(str(tmp_path / "fb_look.json")).latency_samples == 480 + 480
    y, ref = _engine_and_graph(tmp_path / "fb_look.json", net, seed=2)
    n = len(ref) - 960
    assert len(y) == 24000  # the clip's length
    np.testing.assert_allclose(y[:n], ref[:n], atol=1e-5)
    assert float(np.abs(ref[:n]).max()) > 1e-3


def test_a_grown_net_gains_a_lookahead_as_the_same_function():
    """The lookahead tap starts at zero: the same function once the trunk's receptive field has
    passed the clip's start (before it, the frame ahead of the first one, which holds only the
    input layer's bias, is in view)."""
    small = _net(df=False)
    look = fullband.FullBandNet(**TINY, lookahead=1)
    look.load_state_dict(fullband.grow_state_dict(look, small.state_dict()))
    look.switch_off_deep_filter()
    spec = fullband.stft(torch.randn(2, 24000) * 0.05)
    re, im = spec.real.contiguous(), spec.imag.contiguous()
    field = 1 + (TINY["kernel"] - 1) * sum(TINY["dilations"])  # frames
    with torch.no_grad():
        for a, b in zip(small.forward_sequence(re, im), look.forward_sequence(re, im)):
            torch.testing.assert_close(a[:, field:], b[:, field:], rtol=0, atol=1e-6)
            assert float((a[:, :field] - b[:, :field]).abs().max()) > 0  # the start does differ
    with pytest.raises(ValueError, match="cannot shrink the lookahead"):
        fullband.grow_state_dict(small, look.state_dict())
    with pytest.raises(ValueError, match=r"lookahead 3 not in \[0, 1, 2\]"):
        fullband.FullBandNet(**TINY, lookahead=3)


def _grow_and_compare(small, big):
    """Grow ``small``'s weights into ``big`` (gains only) and check both give the same outputs on a
    random clip, which is returned for a training step."""
    big.load_state_dict(fullband.grow_state_dict(big, small.state_dict()))
    big.switch_off_deep_filter()
    x = torch.randn(2, 24000) * 0.05
    spec = fullband.stft(x)
    re, im = spec.real.contiguous(), spec.imag.contiguous()
    with torch.no_grad():
        for a, b in zip(small.forward_sequence(re, im), big.forward_sequence(re, im)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    return x


def test_log_magnitude_features_measure_each_bin_against_its_running_mean():
    """A 500 Hz tone (bin 10) steady for 4 s reads about 0 dB against its own running mean; 20 dB
    louder for two frames it reads about +20 dB (/40: +0.5, less the little the 1 s mean has risen);
    the features are the last ``logmag_bins`` inputs, after the bands and the complex bins."""
    net = fullband.FullBandNet(**TINY, logmag_bins=24)
    assert net.input_channels == 32 + 2 * 96 + 24 and net.inp.weight.shape[1] == net.input_channels
    t = np.arange(4 * 48000 + 2 * 480) / 48000  # 400 steady frames, then two louder ones
    x = np.sin(2 * np.pi * 500 * t) * np.where(t < 4.0, 0.01, 0.1)
    spec = fullband.stft(torch.from_numpy(x.astype(np.float32))[None])
    feat = net.features_sequence(spec.real.contiguous(), spec.imag.contiguous())[0, -24:]  # (24, T)
    steady, jump = feat[10, 398], feat[10, -1]
    assert abs(float(steady)) < 0.02
    assert 0.44 < float(jump) < 0.5
    with pytest.raises(ValueError, match=r"logmag_bins 97 not in \[0, 96\]"):
        fullband.FullBandNet(**TINY, logmag_bins=97)


def test_a_grown_net_gains_log_magnitude_inputs_as_the_same_function_and_they_learn():
    small = _net(df=False)
    wide = fullband.FullBandNet(**TINY, logmag_bins=40)
    x = _grow_and_compare(small, wide)
    assert float(wide.inp.weight[:, -40:].abs().max()) == 0.0
    train.losses(wide, x, x * 0.5, {"mag": 1.0, "cplx": 1.0, "gain": 0.2})["total"].backward()
    assert float(wide.inp.weight.grad[:, -40:].abs().max()) > 0  # the new inputs' weights move
    with pytest.raises(ValueError, match="cannot shrink the inputs"):
        fullband.grow_state_dict(small, wide.state_dict())


def _train_towards_bins(net, part, x, target, lr, steps):
    """Train ``part`` of ``net`` on the per-bin teacher term alone (clip ``x`` in and out, ``target``
    per-bin gains): the term before and after, and the band and per-bin gains after."""
    opt = torch.optim.Adam(part.parameters(), lr=lr)
    before = None
    for _ in range(steps):
        parts = train.losses(net, x, x, {"mag": 0.0, "cplx": 0.0, "gain": 0.0, "teacher_bins": 1.0}, teacher_bins=target)
        before = before if before is not None else float(parts["teacher_bins"])
        opt.zero_grad()
        parts["total"].backward()
        opt.step()
    spec = fullband.stft(x)
    with torch.no_grad():
        _, _, bands, per_bin = net.forward_sequence(spec.real.contiguous(), spec.imag.contiguous(), with_bins=True)
    return before, float(parts["teacher_bins"]), bands, per_bin


def test_per_bin_gains_start_as_the_band_gains_stay_bounded_and_learn_the_teacher_bins():
    """A net grown with a bin head computes the band-gain net's function; its per-bin gains lie in
    [0, 1], move only the lowest ``bin_gains`` bins, and the ``teacher_bins`` term trains the head
    towards a per-bin target (here: bins 0-23 of the input kept, a notch at every other bin)."""
    small = _net(df=False, logmag=40)
    net = fullband.FullBandNet(**TINY, logmag_bins=40, bin_gains=24, bin_hidden=32)
    net.switch_off_deep_filter()
    x = _grow_and_compare(small, net)
    assert float(net.bin_head[-1].weight.detach().abs().max()) == 0.0
    target = torch.ones(2, 50, 96)
    target[..., 1:24:2] = 0.0  # a notch at every other bin below 24
    spec = fullband.stft(x)
    before, after, bands, per_bin = _train_towards_bins(net, net.bin_head, x, target, lr=0.05, steps=60)
    assert after < 0.3 * before
    assert per_bin.shape == (2, spec.shape[1], fullband.N_BINS) and 0.0 <= float(per_bin.min()) and float(per_bin.max()) <= 1.0
    torch.testing.assert_close(per_bin[..., 24:], (bands @ net.erb_expand)[..., 24:], rtol=0, atol=1e-6)  # above the head: the band gains
    assert float(per_bin[..., 1:24:2].mean()) < 0.5 * float(per_bin[..., 0:24:2].mean())  # it learned the notches
    with pytest.raises(ValueError, match=r"bin_gains 97 not in \[0, 96\]"):
        fullband.FullBandNet(**TINY, bin_gains=97)


def test_a_frequency_convolution_starts_at_zero_and_learns_a_pattern_along_frequency():
    """Grown from a bin-head net, a net with ``bin_conv`` computes the same function; training only
    the convolution along frequency, the per-bin term falls towards a target that is a local
    pattern of the input spectrum (keep a bin where its magnitude tops both neighbours', cut the
    rest), which a convolution can express with the same weights at every bin."""
    small = fullband.FullBandNet(**TINY, logmag_bins=40, bin_gains=24, bin_hidden=32)
    net = fullband.FullBandNet(**TINY, logmag_bins=40, bin_gains=24, bin_hidden=32, bin_conv=8)
    small.switch_off_deep_filter()
    x = _grow_and_compare(small, net)
    assert float(net.bin_freq[-1].weight.detach().abs().max()) == 0.0
    mag = fullband.stft(x).abs()[..., :96]
    peak = (mag[..., 1:-1] > mag[..., :-2]) & (mag[..., 1:-1] > mag[..., 2:])
    target = torch.ones_like(mag)
    target[..., 1:24] = peak[..., :23].float()
    before, after, bands, per_bin = _train_towards_bins(net, net.bin_freq, x, target, lr=0.02, steps=150)
    assert after < 0.6 * before
    torch.testing.assert_close(per_bin[..., 24:], (bands @ net.erb_expand)[..., 24:], rtol=0, atol=1e-6)
    low, t = per_bin[..., 1:24], target[..., 1:24]
    assert float(low[t > 0.5].mean()) > float(low[t < 0.5].mean()) + 0.2  # peaks kept more than the rest
    with pytest.raises(ValueError, match="bin_conv 8 needs bin_gains > 0 and logmag_bins >= bin_gains"):
        fullband.FullBandNet(**TINY, logmag_bins=16, bin_gains=24, bin_conv=8)


def test_noise_floor_features_read_each_level_above_its_running_minimum():
    """Steady noise reads a few dB above its floor; a 500 Hz tone (bin 10) that starts 30 dB above
    it reads 45-65 dB above the floor the noise left, and then 5 dB less a second as the floor
    rises (0.05 dB a frame) while a bin beside it stays at the noise's reading. The features are
    the last bands + df_bins inputs and never negative."""
    net = fullband.FullBandNet(**TINY, noise_floor=True)
    assert net.input_channels == 32 + 2 * 96 + 32 + 96
    t = np.arange(6 * 48000) / 48000
    x = np.random.default_rng(0).standard_normal(t.size) * 0.003 + np.where(t >= 2.0, 0.1 * np.sin(2 * np.pi * 500 * t), 0.0)
    spec = fullband.stft(torch.from_numpy(x.astype(np.float32))[None])
    feat = net.features_sequence(spec.real.contiguous(), spec.imag.contiguous())[0, -128:] * 40.0  # dB, (bands + bins, T)
    bins = feat[32:]
    assert float(feat.min()) > -1e-4
    assert float(bins[:, 100:199].mean()) < 6.0 and float(feat[:32, 100:199].mean()) < 6.0
    assert 45.0 < float(bins[10, 210]) < 65.0
    np.testing.assert_allclose(float(bins[10, 300] - bins[10, 500]), 200 * fullband.FLOOR_RISE_DB, atol=0.5)
    assert float(bins[30, 300:500].mean()) < 8.0


def test_a_grown_net_gains_noise_floor_inputs_as_the_same_function_and_they_learn():
    """From a net with a bin head and a convolution along frequency, the noise-floor inputs are
    appended: the input layer's, the bin head's and the convolution's new weights start at zero
    (the same function) and move in the first step."""
    small = _net(df=False, logmag=40, bins=24, hidden=32, conv=8)
    net = fullband.FullBandNet(**TINY, logmag_bins=40, bin_gains=24, bin_hidden=32, bin_conv=8, noise_floor=True)
    x = _grow_and_compare(small, net)
    new = 32 + 96
    assert float(net.inp.weight[:, -new:].abs().max()) == 0.0
    assert float(net.bin_head[0].weight[:, -new:].abs().max()) == 0.0
    assert net.bin_freq[0].weight.shape[1] == 4 and float(net.bin_freq[0].weight[:, 3].abs().max()) == 0.0
    torch.nn.init.normal_(net.bin_freq[-1].weight, std=0.3)  # so that the convolution's inputs see a gradient
    train.losses(net, x, x * 0.5, {"mag": 1.0, "cplx": 1.0, "gain": 0.2})["total"].backward()
    assert float(net.inp.weight.grad[:, -new:].abs().max()) > 0
    assert float(net.bin_head[0].weight.grad[:, -new:].abs().max()) > 0
    assert float(net.bin_freq[0].weight.grad[:, 3].abs().max()) > 0


def test_a_recurrent_layer_export_runs_in_the_engine(tmp_path):
    """A gains-only model with a GRU after the trunk: the manifest lists its hidden state (zeros at
    the start) and its MACs, and the engine's render (ONNX GRU, state carried between frames)
    equals the training graph over a clip long enough for the state to matter."""
    from models.export_fullband import export

    cfg = {"name": "fb_gru", "net": {**TINY, "deep_filter": False, "gru": 12}, "mix": {"seconds": 1.0}, "batch_size": 2, "export_deep_filter": False}
    net = _net(df=False, gru=12)
    net.switch_off_deep_filter()
    torch.save({"model": net.state_dict(), "step": 3, "seconds": 1.0}, tmp_path / "ck.pt")
    export(cfg, tmp_path / "ck.pt", tmp_path)
    manifest = json.loads((tmp_path / "fb_gru.json").read_text())
    state = next(s for s in manifest["states"] if s["input"] == "gru_in")
    assert state["shape"] == [1, 1, 12] and state["init"] == 0.0 and manifest["architecture"]["gru"] == 12
    without = fullband.count_macs_per_frame(fullband.FullBandNet(**TINY))
    assert manifest["architecture"]["macs_per_frame"] - without == 3 * (16 * 12 + 12 * 12) + 12 * 16
    y, ref = _engine_and_graph(tmp_path / "fb_gru.json", net, seed=4)
    n = len(ref) - 960
    np.testing.assert_allclose(y[:n], ref[:n], atol=1e-5)
    assert float(np.abs(ref[:n]).max()) > 1e-3


def test_a_grown_net_gains_a_recurrent_layer_as_the_same_function_and_it_learns():
    """The GRU's projection back into the trunk starts at zero: the same function as the net it
    grew from; the projection moves in the first step, and the GRU's own weights once it has."""
    small = _net(df=False, logmag=40, bins=24, hidden=32, conv=8)
    net = fullband.FullBandNet(**TINY, logmag_bins=40, bin_gains=24, bin_hidden=32, bin_conv=8, gru=12)
    x = _grow_and_compare(small, net)
    assert float(net.gru_proj.weight.abs().max()) == 0.0
    train.losses(net, x, x * 0.5, {"mag": 1.0, "cplx": 1.0, "gain": 0.2})["total"].backward()
    assert float(net.gru_proj.weight.grad.abs().max()) > 0
    assert float(net.gru.weight_ih_l0.grad.abs().max()) == 0.0  # nothing reaches it through a zero projection yet
    with torch.no_grad():
        net.gru_proj.weight.normal_(std=0.1)
    net.zero_grad()
    train.losses(net, x, x * 0.5, {"mag": 1.0, "cplx": 1.0, "gain": 0.2})["total"].backward()
    assert float(net.gru.weight_ih_l0.grad.abs().max()) > 0
    with pytest.raises(ValueError, match="gru -1 must be >= 0"):
        fullband.FullBandNet(**TINY, gru=-1)


def test_a_grown_net_starts_as_the_same_function_and_its_new_parts_learn():
    small = _net(df=False)
    big = fullband.FullBandNet(**{**TINY, "channels": 24, "dilations": TINY["dilations"] + [8, 1]})
    x = _grow_and_compare(small, big)
    parts = train.losses(big, x, x * 0.5, {"mag": 1.0, "cplx": 1.0, "gain": 0.2})
    parts["total"].backward()
    assert float(big.gain_head.weight.grad[:, 16:].abs().max()) > 0  # the zeroed links to new channels move
    assert float(big.convs[3].weight.grad.abs().max()) > 0  # and so does an appended (identity) layer
    with pytest.raises(ValueError, match="cannot shrink"):
        fullband.grow_state_dict(small, big.state_dict())


def test_si_sdr_term_matches_the_evaluation_measure():
    rng = np.random.default_rng(5)
    ref = rng.standard_normal((3, 4800)).astype(np.float32)
    est = ref * 0.7 + 0.2 * rng.standard_normal((3, 4800)).astype(np.float32)
    got = train.si_sdr_torch(torch.from_numpy(est), torch.from_numpy(ref)).numpy()
    np.testing.assert_allclose(got, [train.si_sdr_db(e, r) for e, r in zip(est, ref)], atol=1e-3)
    assert float(train.si_sdr_torch(torch.ones(1, 10), torch.zeros(1, 10))[0]) == 0.0  # a silent reference counts 0
    net = _net(df=False)
    x = torch.randn(2, 24000) * 0.05
    parts = train.losses(net, x + 0.01 * torch.randn(2, 24000), x, {"sisdr": 0.02})
    assert "sisdr" in parts and -40 < float(parts["sisdr"]) < 0  # minus the SI-SDR in dB of a decent estimate


def test_a_gains_only_export_leaves_the_deep_filter_out_of_the_file(tmp_path):
    import onnx

    from models.export_fullband import export

    cfg = {"name": "fb_gains", "net": TINY, "mix": {"seconds": 1.0}, "batch_size": 2, "export_deep_filter": False, "machine": "a test"}
    torch.save({"model": _net().state_dict(), "step": 3, "seconds": 1.0}, tmp_path / "ck.pt")
    export(cfg, tmp_path / "ck.pt", tmp_path)
    weights = {t.name for t in onnx.load(str(tmp_path / "fb_gains.onnx")).graph.initializer}
    assert not any("df_head" in name for name in weights) and any("gain_head" in name for name in weights)
    manifest = json.loads((tmp_path / "fb_gains.json").read_text())
    assert manifest["architecture"]["deep_filter"]["enabled"] is False and manifest["training"]["machine"] == "a test"


def test_export_takes_the_best_checkpoint_else_the_last_and_names_a_missing_one(tmp_path, monkeypatch, capsys):
    from models import export_fullband, train

    monkeypatch.setattr(export_fullband, "MODELS_DIR", tmp_path)
    recipe = {"name": "nothing_trained", "net": {}}
    (tmp_path / "r.json").write_text(json.dumps(recipe))
    assert train.main([str(tmp_path / "r.json"), "--export"]) == 2
    last = tmp_path / "checkpoints" / "nothing_trained.pt"
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {last}: no such checkpoint (train the recipe first, or pass --checkpoint)"]
    last.parent.mkdir()
    last.write_bytes(b"")
    assert export_fullband.default_checkpoint(recipe) == last  # a recipe without a dev set keeps no best
    best = last.with_name("nothing_trained.best.pt")
    best.write_bytes(b"")
    assert export_fullband.default_checkpoint(recipe) == best


def test_energy_weighted_teacher_term_counts_loud_bands_more_and_reduces_to_the_plain_term():
    gains = torch.full((2, 5, 4), 0.25)
    target = torch.full((2, 5, 4), 0.25)
    target[..., 0] = 0.81  # the same sqrt-gain error (0.4) in band 0 ...
    target[..., 3] = 0.01  # ... and in band 3
    power = torch.ones(2, 5, 4)
    power[..., 0] = 1e4  # band 0 is 40 dB louder than the others
    plain = train._sqrt_mse(gains, target)
    torch.testing.assert_close(train._energy_weighted_sqrt_mse(gains, target, power, 0.0), plain, rtol=1e-5, atol=1e-7)
    only_loud, only_quiet = target.clone(), target.clone()
    only_loud[..., 3], only_quiet[..., 0] = 0.25, 0.25
    loud = float(train._energy_weighted_sqrt_mse(gains, only_loud, power, 0.15))
    quiet = float(train._energy_weighted_sqrt_mse(gains, only_quiet, power, 0.15))
    assert loud / quiet == pytest.approx(10 ** (40 * 0.15 / 10), rel=1e-3)  # 40 dB at exponent 0.15: 3.98x
    # a mean weight of 1 per example: the level of the input does not change the term
    scaled = train._energy_weighted_sqrt_mse(gains, target, power * 1e-6, 0.15)
    torch.testing.assert_close(scaled, train._energy_weighted_sqrt_mse(gains, target, power, 0.15), rtol=1e-4, atol=1e-7)
    # and losses() uses it when the recipe says so, as a term named "teacher" that trains the gains
    net = _net(df=False)
    x = torch.randn(2, 24000) * 0.05
    frames = fullband.stft(x).shape[1]
    teacher = torch.full((2, frames, TINY["bands"]), 0.5)
    a = train.losses(net, x, x * 0.5, {"teacher": 1.0}, teacher)["teacher"]
    b = train.losses(net, x, x * 0.5, {"teacher": 1.0, "teacher_energy_exponent": 0.15}, teacher)
    assert set(b) == {"mag", "cplx", "gain", "teacher", "total"} and abs(float(a.detach()) - float(b["teacher"].detach())) > 1e-6
    b["total"].backward()
    assert float(net.gain_head.weight.grad.abs().max()) > 0


def test_a_training_run_exports_over_the_shipped_model_only_when_this_recipe_made_it(tmp_path):
    """The export that closes a training run: into models/ when nothing of that name ships yet or
    the shipped manifest names this recipe; into models/candidates/NAME when another recipe made
    it (an experiment must not replace the shipped model); an unreadable manifest counts as another's."""
    cfg = {"name": "noisenil_fb_cpu_try", "export_name": "noisenil_fb"}
    assert train.export_dir_after_training(cfg, tmp_path) == tmp_path
    shipped = tmp_path / "noisenil_fb.json"
    shipped.write_text(json.dumps({"training": {"config": "models/configs/noisenil_fb_gpu_live3.json"}}))
    assert train.export_dir_after_training(cfg, tmp_path) == tmp_path / "candidates" / "noisenil_fb_cpu_try"
    assert train.export_dir_after_training({**cfg, "name": "noisenil_fb_gpu_live3"}, tmp_path) == tmp_path
    shipped.write_text("{not json")
    assert train.export_dir_after_training(cfg, tmp_path) == tmp_path / "candidates" / "noisenil_fb_cpu_try"
    assert train.export_dir_after_training({"name": "other"}, tmp_path) == tmp_path  # no model of that name ships


def test_harmonicity_inputs_peak_at_the_pitch_period_of_a_voiced_sound_and_stay_low_for_noise():
    """A 150 Hz pulse train (harmonics to 4.75 kHz, as a voiced vowel) reads a correlation near 1
    at its period (80 samples at 12 kHz: lag index 50) and at twice it, and low half a period
    away; white noise reads low at every lag; silence reads 0. They are the last PITCH_LAGS inputs."""
    net = fullband.FullBandNet(**TINY, pitch=True)
    assert net.input_channels == 32 + 2 * 96 + fullband.PITCH_LAGS
    t = np.arange(48000) / 48000
    voiced = sum(np.cos(2 * np.pi * 150 * h * t) for h in range(1, 30)) * 0.01
    noise = np.random.default_rng(0).standard_normal(48000) * 0.05
    feats = []
    for x in (voiced, noise, np.zeros(48000)):
        spec = fullband.stft(torch.from_numpy(x.astype(np.float32))[None])
        with torch.no_grad():
            feats.append(net.features_sequence(spec.real.contiguous(), spec.imag.contiguous())[0, -fullband.PITCH_LAGS :, 20:].numpy())
    v, n, z = feats
    period = 80 - fullband.PITCH_MIN_LAG
    assert float(v[period].min()) > 0.9 and float(v[period + 80].min()) > 0.85
    assert float(v[period - 40].max()) < 0.0  # half a period: out of phase
    assert float(np.abs(n).max()) < 0.5 and float(np.abs(n).mean()) < 0.1
    assert float(np.abs(z).max()) == 0.0


def test_a_grown_net_gains_harmonicity_inputs_as_the_same_function_and_they_learn(tmp_path):
    """Appended to the shipped kind of net (per-bin head, frequency convolution, GRU), the
    harmonicity inputs' weights start at zero (the same function), move in the first step, and a
    gains-only export carries their two states and runs in the engine as the training graph does."""
    from models.export_fullband import export

    small = _net(df=False, logmag=40, bins=24, hidden=32, conv=8, gru=12)
    net = fullband.FullBandNet(**TINY, logmag_bins=40, bin_gains=24, bin_hidden=32, bin_conv=8, gru=12, pitch=True)
    x = _grow_and_compare(small, net)
    new = fullband.PITCH_LAGS
    assert float(net.inp.weight[:, -new:].abs().max()) == 0.0
    assert float(net.bin_head[0].weight[:, -new:].abs().max()) == 0.0
    train.losses(net, x, x * 0.5, {"mag": 1.0, "cplx": 1.0, "gain": 0.2})["total"].backward()
    assert float(net.inp.weight.grad[:, -new:].abs().max()) > 0
    assert float(net.bin_head[0].weight.grad[:, -new:].abs().max()) > 0
    with torch.no_grad():
        net.inp.weight[:, -new:].normal_(std=0.3)  # so that the export's output depends on them
    net.eval()
    cfg = {"name": "fb_pitch", "net": {**TINY, "deep_filter": False, "logmag_bins": 40, "bin_gains": 24, "bin_hidden": 32, "bin_conv": 8, "gru": 12, "pitch": True}, "mix": {"seconds": 1.0}, "batch_size": 2, "export_deep_filter": False}
    torch.save({"model": net.state_dict(), "step": 3, "seconds": 1.0}, tmp_path / "ck.pt")
    export(cfg, tmp_path / "ck.pt", tmp_path)
    manifest = json.loads((tmp_path / "fb_pitch.json").read_text())
    shapes = {s["input"]: s["shape"] for s in manifest["states"]}
    assert shapes["pitch_ola_in"] == [1, 120] and shapes["pitch_hist_in"] == [1, 320] and manifest["architecture"]["pitch"] is True
    y, ref = _engine_and_graph(tmp_path / "fb_pitch.json", net, seed=5)
    n = len(ref) - 960
    np.testing.assert_allclose(y[:n], ref[:n], atol=1e-5)
    assert float(np.abs(ref[:n]).max()) > 1e-3
    with pytest.raises(ValueError, match="cannot shrink the inputs"):
        fullband.grow_state_dict(small, net.state_dict())


CTX_NET = {**TINY, "logmag_bins": 40, "bin_gains": 24, "bin_hidden": 32, "bin_conv": 8, "gru": 12}


@pytest.mark.parametrize("df", [True, False])
def test_a_context_head_streams_as_the_training_graph_and_exports_to_the_engine(df, tmp_path):
    """With ``bin_context`` the step carries the low bins' last log magnitudes as one more state and
    gives the whole-clip graph's output frame by frame; a gains-only export lists that state and
    the head's MACs, and the engine renders what the graph does."""
    from models.export_fullband import export

    torch.manual_seed(3)
    net = fullband.FullBandNet(**CTX_NET, bin_context=4, bin_context_hidden=16)
    for p in net.parameters():  # every head away from its zero start, so that the check means something
        p.data.add_(torch.randn_like(p) * 0.05)
    net.eval()
    if not df:
        net.switch_off_deep_filter()
    assert net.state_specs()[-1] == {"input": "bin_ctx_in", "output": "bin_ctx_out", "shape": [1, 24, 3], "init": 0.0}
    y, o_re, o_im = _step_and_graph(net, seed=2)
    scale = float(o_re.abs().max())
    assert float((y[:, 0] - o_re[0]).abs().max()) < 1e-5 * scale
    assert float((y[:, 1] - o_im[0]).abs().max()) < 1e-5 * scale
    if df:
        return
    cfg = {"name": "fb_ctx", "net": {**CTX_NET, "deep_filter": False, "bin_context": 4, "bin_context_hidden": 16}, "mix": {"seconds": 1.0}, "batch_size": 2, "export_deep_filter": False}
    torch.save({"model": net.state_dict(), "step": 3, "seconds": 1.0}, tmp_path / "ck.pt")
    export(cfg, tmp_path / "ck.pt", tmp_path)
    manifest = json.loads((tmp_path / "fb_ctx.json").read_text())
    assert manifest["architecture"]["bin_context"] == 4 and manifest["architecture"]["bin_context_hidden"] == 16
    without = fullband.count_macs_per_frame(fullband.FullBandNet(**CTX_NET))
    assert manifest["architecture"]["macs_per_frame"] - without == 24 * 4 * 16 + (24 + 16) * 16 + 16 * 16 + 16 * 24
    y, ref = _engine_and_graph(tmp_path / "fb_ctx.json", net, seed=6)
    n = len(ref) - 960
    np.testing.assert_allclose(y[:n], ref[:n], atol=1e-5)
    assert float(np.abs(ref[:n]).max()) > 1e-3


def test_a_context_head_starts_at_zero_sees_exactly_its_frames_and_validates():
    """Grown onto a net without it, the head starts at zero (the same function) and its output
    layer moves in the first step; a gain depends on the log magnitudes of its own frame and the
    ``bin_context - 1`` before it, not on older ones and not on later ones; bad settings are typed
    errors that quote them."""
    small = _net(df=False, logmag=40, bins=24, hidden=32, conv=8, gru=12)
    net = fullband.FullBandNet(**CTX_NET, bin_context=4, bin_context_hidden=16)
    x = _grow_and_compare(small, net)
    train.losses(net, x, x * 0.5, {"mag": 1.0, "cplx": 1.0, "gain": 0.2})["total"].backward()
    assert float(net.ctx_out.weight.grad.abs().max()) > 0
    with torch.no_grad():
        net.ctx_out.weight.normal_(std=0.5)
        net.ctx_time.weight.normal_(std=0.5)
    window = torch.zeros(1, 24, 3 + 10, requires_grad=True)  # 3 frames before, then 10 frames
    h, low = torch.zeros(1, 16, 10), torch.zeros(1, 10, 24)
    z = net.context_logits(h, window, low)
    z[0, 5].sum().backward()  # frame 5: window columns 5 .. 8 (frames 2 .. 5)
    reach = window.grad[0].abs().sum(0) > 0
    assert reach.nonzero().flatten().tolist() == [5, 6, 7, 8]
    for bad, match in (
        ({"bin_context": 1}, "bin_context 1 must be 0"),
        ({"bin_context": 4, "bin_gains": 0}, "needs bin_gains > 0"),
        ({"bin_context": 4, "logmag_bins": 10}, "logmag_bins 10"),
        ({"bin_context": 4, "lookahead": 1}, "lookahead 1"),
    ):
        with pytest.raises(ValueError, match=match):
            fullband.FullBandNet(**{**CTX_NET, "bin_conv": 0, **bad})
