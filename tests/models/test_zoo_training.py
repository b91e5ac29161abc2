"""Seed zoo training code (needs torch): export parity through the engine, strict export, training smoke."""

import copy
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the seed zoo's training code needs torch (pip install -e .[train])")

from models.export import ExportMismatch, export_oneshot, parity_signal  # noqa: E402
from models.zoo import export as zoo_export  # noqa: E402
from models.zoo import nets  # noqa: E402
from models.zoo import train as zoo_train  # noqa: E402
from plugin_host import Denoise  # noqa: E402


def _checkpoint(name, tmp_path, seed=0, **net):
    cfg = zoo_export._config(name)
    cfg = {**cfg, "net": {**cfg.get("net", {}), **net}}
    torch.manual_seed(seed)
    net = zoo_train.build(cfg)
    with torch.no_grad():  # away from the identity start, so the test compares real work
        for p in net.parameters():
            p.add_(0.02 * torch.randn_like(p))
        if name == "dncnn":
            net.body[-1].bias.fill_(0.3)  # a residual of 0.3 (normalised log) everywhere: gains well below 1
        if name == "fcn_dfl":
            net.out.weight.mul_(50.0)  # a correction large enough to see
    path = tmp_path / f"zoo_{name}.pt"
    torch.save({"model": net.state_dict(), "config": cfg, "step": 1000, "dev_si_sdr_gain_db": 0.0}, path)
    return path, net.eval()


@pytest.mark.parametrize("name", ["ddae", "dncnn", "resunet", "fcn_dfl"])
def test_engine_output_equals_torch_whole_signal(name, tmp_path):
    """Exported graph + engine adapter (streaming frames, or half-overlapping patches, or chunks with
    context) reproduce the torch model run over the whole signal."""
    ck, net = _checkpoint(name, tmp_path)
    zoo_export.export(name, ck, tmp_path)
    x = parity_signal(nets.SAMPLE_RATE, 3.0).astype(np.float32)
    y = Denoise(str(tmp_path / f"{name}.json"), remove_dc=False).process(x[None], nets.SAMPLE_RATE)[0]
    with torch.no_grad():
        if name == "fcn_dfl":
            ref = net(torch.from_numpy(x)[None])[0].numpy()
        else:
            ref = net.enhance(torch.from_numpy(x)[None])[0].numpy()[nets.N_FFT - nets.HOP :]
    # Away from the file's ends: torch's inverse STFT stops before the engine's flushed tail (a
    # whole patch, for patch models), and torch pads each convolution layer with zeros where the
    # engine feeds silent samples through the network (the FCN's first receptive radius).
    a, b = 1024, len(ref) - (17000 if name in ("dncnn", "resunet") else 1024)
    assert np.max(np.abs(y[a:b] - ref[a:b])) < 2e-4 * max(1.0, np.max(np.abs(ref)))
    assert np.sqrt(np.mean((y[a:b] - x[a:b]) ** 2)) > 1e-3  # and the model does something


@pytest.mark.parametrize("target", ["mel", "log_gain"])
def test_diffusion_export_matches_torch_for_the_same_noise(target, tmp_path):
    ck, net = _checkpoint("mel_diffusion", tmp_path, target=target)
    assert net.target == target
    zoo_export.export("mel_diffusion", ck, tmp_path)  # built from the checkpoint's own recipe
    golden = np.load(tmp_path / "golden" / "mel_diffusion.npz")
    manifest = json.loads((tmp_path / "mel_diffusion.json").read_text())
    assert manifest["params"]["sample_steps"] == 6 and manifest["params"]["noise_input"] == "noise"
    with torch.no_grad():
        ref = net.export_module()(torch.from_numpy(golden["in_magnitude"][0]), torch.from_numpy(golden["in_noise"][0])).numpy()
    assert np.max(np.abs(ref - golden["output"][0])) < 2e-3
    assert 0.0 <= golden["output"].min() and golden["output"].max() <= 1.0


def test_diffusion_log_gain_target_maps_to_bounded_gains(tmp_path):
    """log_gain: x0 = 1 keeps every band, x0 = -1 cuts it by floor_db; the training target stays in
    [-1, 1] and is 1 where the clean band is at least as loud as the noisy one."""
    net = nets.MelDiffusion(target="log_gain", floor_db=30.0)
    mag = torch.rand(1, nets.N_BINS, 64) + 0.1
    covered = net.to_bins.sum(0) > 0.5  # bins inside the mel filters
    for x0, want in ((1.0, 1.0), (-1.0, 10 ** (-30 / 20)), (0.0, 10 ** (-15 / 20))):
        net.sample = lambda cond, z, v=x0: torch.full_like(cond, v)
        g = net.gains(mag, torch.zeros(1, net.n_mels, 64))[0]
        assert torch.allclose(g[covered], torch.tensor(want), rtol=1e-4), (x0, g[covered].min(), g[covered].max())
    clean = mag * torch.linspace(0.0, 1.2, nets.N_BINS)[:, None]  # silent at the bottom, louder at the top
    x0, _ = net.training_target(mag, clean)
    assert x0.min() >= -1.0 and x0.max() <= 1.0
    assert torch.allclose(x0[0, :3], torch.tensor(-1.0)) and torch.allclose(x0[0, -3:], torch.tensor(1.0))
    with pytest.raises(ValueError, match="log_gain"):
        nets.MelDiffusion(target="wave")
    with pytest.raises(ValueError, match="sample_start"):
        nets.MelDiffusion(target="mel", sample_start=0.5)


class _ZeroEps(torch.nn.Module):
    def forward(self, x, cond, t):
        return torch.zeros_like(x)


def test_diffusion_warm_start_begins_at_keep_everything():
    """sample_start < 1: the sampler starts from x = 1 (keep) noised to that step, so an untrained
    (zero) noise predictor with zero noise returns gain 1; from pure noise it would return x0 = 0."""
    zero = torch.zeros(1, 64, 64)
    for start, want in ((0.4, 1.0), (1.0, 10 ** (-15 / 20))):
        net = nets.MelDiffusion(target="log_gain", sample_start=start)
        net.eps = _ZeroEps()
        assert torch.allclose(net.sample(zero, zero), torch.tensor(1.0 if start < 1 else 0.0))
        g = net.gains(torch.rand(1, nets.N_BINS, 64) + 0.1, zero)[0]
        assert torch.allclose(g[net.to_bins.sum(0) > 0.5], torch.tensor(want), rtol=1e-4)


def test_sdw_loss_is_minimised_by_the_weighted_wiener_gain():
    """Descending the speech-distortion-weighted loss on free gains lands on alpha S^2 / (alpha S^2 + (1 - alpha) N^2)."""
    g = torch.Generator().manual_seed(0)
    clean = torch.complex(torch.randn(2, 5, 7, generator=g), torch.randn(2, 5, 7, generator=g))
    noise = torch.complex(torch.randn(2, 5, 7, generator=g), torch.randn(2, 5, 7, generator=g)) * 0.8
    for alpha in (0.5, 0.7):
        logit = torch.zeros(2, 5, 7, requires_grad=True)
        opt = torch.optim.Adam([logit], lr=0.1)
        for _ in range(1500):
            loss = nets.sdw_loss(torch.sigmoid(logit), clean + noise, clean, alpha)
            opt.zero_grad()
            loss.backward()
            opt.step()
        s2, n2 = clean.abs() ** 2, noise.abs() ** 2
        want = alpha * s2 / (alpha * s2 + (1 - alpha) * n2)
        assert torch.allclose(torch.sigmoid(logit), want, atol=0.02)
    # a higher alpha keeps more: every gain at alpha 0.7 is at least the one at 0.5
    assert torch.all(0.7 * s2 / (0.7 * s2 + 0.3 * n2) >= 0.5 * s2 / (0.5 * s2 + 0.5 * n2))


def test_ddae_int8_export(tmp_path):
    ck, _ = _checkpoint("ddae", tmp_path)
    paths = zoo_export.export("ddae", ck, tmp_path)
    assert [p.name for p in paths] == ["ddae.onnx", "ddae_int8.onnx"]
    q = json.loads((tmp_path / "ddae_int8.json").read_text())["quantization"]
    assert q["bytes"] < 0.3 * q["float_bytes"] and q["max_gain_difference_on_parity_frames"] < 0.2


def test_oneshot_export_fails_and_writes_nothing_on_mismatch(tmp_path):
    class Flaky(torch.nn.Module):
        """Exports as x * 2, but answers x * 2 + 1 when torch runs it."""

        def forward(self, x):
            return x * 2 + (0.0 if torch.onnx.is_in_onnx_export() else 1.0)

    with pytest.raises(ExportMismatch, match="differ"):
        export_oneshot(Flaky(), "flaky", {}, {"x": np.ones((3, 1, 4), np.float32)}, "y", out_dir=tmp_path)
    assert not list(tmp_path.glob("flaky*")) and not (tmp_path / "golden" / "flaky.npz").exists()


@pytest.mark.parametrize("name", ["crced", "resunet", "mel_diffusion", "fcn_dfl"])
def test_training_runs_and_keeps_the_best_checkpoint(name, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    t = np.arange(8000) / nets.SAMPLE_RATE
    clean = (0.1 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0))[None].repeat(6, 0)
    pairs = np.stack([clean + 0.02 * rng.standard_normal(clean.shape), clean], axis=1).astype(np.float16)
    np.save(tmp_path / "pairs.npy", pairs)
    monkeypatch.setenv("NOISENIL_ZOO_DATA", str(tmp_path))
    monkeypatch.setattr(zoo_train, "CHECKPOINTS", tmp_path)
    cfg = {**zoo_export._config(name), "name": f"t_{name}", "data": ["pairs.npy"], "dev": "pairs.npy", "seconds": 0.4, "batch_size": 2, "dev_every": 2, "minutes": 0.05, "lossnet_minutes": 0.02}
    if name in ("crced", "resunet"):  # with the speech-distortion-weighted term (streaming and patch paths)
        cfg = {**cfg, "sdw_loss": 2.0, "sdw_alpha": 0.8}
        net = zoo_train.build(cfg)
        assert (net.sdw_weight, net.sdw_alpha) == (2.0, 0.8)
        plain = copy.deepcopy(net)
        plain.sdw_weight = 0.0
        noisy, clean = (torch.from_numpy(pairs[:2, k, :6400].astype(np.float32)) for k in (0, 1))
        losses = []
        for m in (net, plain):
            torch.manual_seed(1)  # the same frames / patch for both
            losses.append(float(m.loss(noisy, clean)))
        assert losses[0] > losses[1] + 1e-4  # the term is there (the untrained gains are far from ideal)
    lines = []
    best = zoo_train.train(cfg, lines.append)
    ck = torch.load(best, weights_only=False)
    assert ck["step"] >= 2 and np.isfinite(ck["dev_si_sdr_gain_db"])
    assert any(line.startswith("dev") and "(best)" in line for line in lines) and lines[-1].startswith("done:")


def test_a_further_sitting_starts_from_the_kept_checkpoint(tmp_path, monkeypatch):
    """``init_from``: the new sitting starts at the old dev score (kept unless beaten) and the checkpoint
    counts the steps, minutes and recipes of both."""
    rng = np.random.default_rng(1)
    t = np.arange(8000) / nets.SAMPLE_RATE
    clean = (0.1 * np.sin(2 * np.pi * 300 * t))[None].repeat(4, 0)
    np.save(tmp_path / "pairs.npy", np.stack([clean + 0.02 * rng.standard_normal(clean.shape), clean], axis=1).astype(np.float16))
    monkeypatch.setenv("NOISENIL_ZOO_DATA", str(tmp_path))
    monkeypatch.setattr(zoo_train, "CHECKPOINTS", tmp_path)
    cfg = {**zoo_export._config("ddae"), "name": "t_ddae", "data": ["pairs.npy"], "dev": "pairs.npy", "seconds": 0.4, "batch_size": 2, "dev_every": 3, "minutes": 0.03}
    first = torch.load(zoo_train.train(cfg, lambda line: None, recipe="one.json"), weights_only=False)
    lines = []
    second = torch.load(zoo_train.train({**cfg, "init_from": str(tmp_path / "zoo_t_ddae.pt")}, lines.append, recipe="two.json"), weights_only=False)
    assert any("(start)" in line for line in lines)
    assert second["dev_si_sdr_gain_db"] >= first["dev_si_sdr_gain_db"] - 1e-6
    if second["recipes"] == ["one.json", "two.json"]:  # the second sitting improved on the first
        assert second["total_steps"] == first["total_steps"] + second["step"]
    else:  # or it did not, and the first sitting's checkpoint is still the best
        assert second["recipes"] == ["one.json"] and second["total_steps"] == first["total_steps"]
