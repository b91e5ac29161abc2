"""Seed zoo training code (needs torch): export parity through the engine, strict export, training smoke."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the seed zoo's training code needs torch (pip install -e .[train])")

from models.export import ExportMismatch, export_oneshot, parity_signal  # noqa: E402
from models.zoo import export as zoo_export  # noqa: E402
from models.zoo import nets  # noqa: E402
from models.zoo import train as zoo_train  # noqa: E402
from plugin_host import Denoise  # noqa: E402


def _checkpoint(name, tmp_path, seed=0):
    cfg = zoo_export._config(name)
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
    y = Denoise(str(tmp_path / f"{name}.json")).process(x[None], nets.SAMPLE_RATE)[0]
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


def test_diffusion_export_matches_torch_for_the_same_noise(tmp_path):
    ck, net = _checkpoint("mel_diffusion", tmp_path)
    zoo_export.export("mel_diffusion", ck, tmp_path)
    golden = np.load(tmp_path / "golden" / "mel_diffusion.npz")
    manifest = json.loads((tmp_path / "mel_diffusion.json").read_text())
    assert manifest["params"]["sample_steps"] == 6 and manifest["params"]["noise_input"] == "noise"
    with torch.no_grad():
        ref = net.export_module()(torch.from_numpy(golden["in_magnitude"][0]), torch.from_numpy(golden["in_noise"][0])).numpy()
    assert np.max(np.abs(ref - golden["output"][0])) < 2e-3
    assert 0.0 <= golden["output"].min() and golden["output"].max() <= 1.0


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


@pytest.mark.parametrize("name", ["crced", "mel_diffusion", "fcn_dfl"])
def test_training_runs_and_keeps_the_best_checkpoint(name, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    t = np.arange(8000) / nets.SAMPLE_RATE
    clean = (0.1 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0))[None].repeat(6, 0)
    pairs = np.stack([clean + 0.02 * rng.standard_normal(clean.shape), clean], axis=1).astype(np.float16)
    np.save(tmp_path / "pairs.npy", pairs)
    monkeypatch.setenv("NOISENIL_ZOO_DATA", str(tmp_path))
    monkeypatch.setattr(zoo_train, "CHECKPOINTS", tmp_path)
    cfg = {**zoo_export._config(name), "name": f"t_{name}", "data": ["pairs.npy"], "dev": "pairs.npy", "seconds": 0.4, "batch_size": 2, "dev_every": 2, "minutes": 0.05, "lossnet_minutes": 0.02}
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
