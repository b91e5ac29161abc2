"""The context head trained alone (models/bin_context.py): the cache holds what the frozen net
computes, training moves only the head and towards the teacher, and the command names bad input in
one line."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs torch (pip install -e '.[train]')")

from models import bin_context, fullband
from models.export_fullband import export
from models.train import _sqrt_mse

CTX_NET = {"channels": 16, "dilations": [1, 2, 4], "kernel": 3, "bands": 32, "df_bins": 96, "df_order": 3, "logmag_bins": 40, "bin_gains": 24, "bin_hidden": 32, "bin_conv": 8, "gru": 12}


@pytest.mark.parametrize("train_from_bin", [None, 0])
def test_the_context_head_trains_alone_on_a_cache_of_the_frozen_net(tmp_path, monkeypatch, train_from_bin):
    """``models.bin_context``: the cache holds the frozen net's own low-bin logits (its gains, as
    its graph computes them) and the ideal per-bin gains; training moves the head towards the
    teacher's per-bin gains (its teacher term below the frozen net's), leaves the rest of the net
    as it was and the bins below ``from_bin`` at the frozen net's gains (also when it trained on
    them, ``train_from_bin`` 0), and writes a checkpoint that export takes."""
    monkeypatch.setattr(bin_context, "REPO", tmp_path)
    (tmp_path / "models" / "checkpoints").mkdir(parents=True)
    torch.manual_seed(0)
    small = fullband.FullBandNet(**CTX_NET, deep_filter=False).eval()
    torch.nn.init.normal_(small.bin_head[-1].weight, std=0.3)
    torch.save({"model": small.state_dict(), "step": 7, "seconds": 60.0}, tmp_path / "frozen.pt")
    rng = np.random.default_rng(0)
    ring = tmp_path / "ring"
    ring.mkdir()
    clean = (rng.standard_normal((12, 24000)) * 0.05).astype(np.float16)
    noisy = (clean + rng.standard_normal((12, 24000)) * 0.02).astype(np.float16)
    teacher = np.tile(np.linspace(0.1, 0.9, 24, dtype=np.float16), (12, 50, 1))  # a pattern along frequency to learn
    for name, a in (("noisy", noisy), ("clean", clean), ("teacher_bins", teacher)):
        np.save(ring / f"{name}.npy", a)
    recipe = {
        "name": "fb_ctx",
        "model": "fullband",
        "seed": 1,
        "init_from": "frozen.pt",
        "batch_size": 2,
        "threads": 1,
        "net": {**CTX_NET, "deep_filter": False, "bin_context": 3, "bin_context_hidden": 16},
        "mix": {"seconds": 0.5},
        "export_deep_filter": False,
        "context_training": {"steps": 150, "batch_size": 4, "learning_rate": 3e-3, "ideal": 0.2, "from_bin": 2, "val_examples": 4, "log_every": 1000},
    }
    if train_from_bin is not None:
        recipe["context_training"]["train_from_bin"] = train_from_bin
    bin_context.cache(recipe, ring, tmp_path / "c", examples=8, log=lambda *a: None)
    bin_context.cache(recipe, ring, tmp_path / "v", examples=4, first=8, log=lambda *a: None)
    logits = np.load(tmp_path / "c" / "logits.npy").astype(np.float32)
    spec = fullband.stft(torch.from_numpy(noisy[:1].astype(np.float32)))
    with torch.no_grad():
        g = small.forward_sequence(spec.real.contiguous(), spec.imag.contiguous(), with_bins=True)[3][0, :50, :24]
    np.testing.assert_allclose(logits[0], torch.logit(g.clamp(1e-6, 1 - 1e-6)).numpy(), atol=0.02)
    ideal = np.load(tmp_path / "c" / "ideal_bins.npy").astype(np.float32)
    assert 0.0 <= ideal.min() and ideal.max() <= 1.0 and ideal.mean() > 0.5  # SNR about +8 dB: mostly speech
    path = bin_context.train(recipe, tmp_path / "c", tmp_path / "v", log=lambda *a: None)
    ck = torch.load(path, weights_only=False)
    assert ck["context_steps"] == 150 and ck["step"] == 7
    net = fullband.FullBandNet(**recipe["net"])
    net.load_state_dict(ck["model"])
    for k, v in small.state_dict().items():
        torch.testing.assert_close(net.state_dict()[k], v, rtol=0, atol=0)
    assert float(net.ctx_out.weight[:2].abs().max()) == 0.0 and float(net.ctx_out.bias[:2].abs().max()) == 0.0
    arrays = [torch.from_numpy(a[:8].astype(np.float32)) for a in bin_context._load(tmp_path / "c")]
    with torch.no_grad():
        _, after, _ = bin_context.head_loss(net, *arrays, ideal=0.2, from_bin=2)
    before = _sqrt_mse(torch.sigmoid(arrays[1]), arrays[3])
    assert float(after) < 0.7 * float(before)
    export(recipe, path, tmp_path)
    manifest = json.loads((tmp_path / "fb_ctx.json").read_text())
    assert manifest["training"]["context_head"]["steps"] == 150 and manifest["training"]["steps"] == 7


def test_the_command_names_a_recipe_without_a_context_head_in_one_line(tmp_path, capsys):
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"name": "x", "net": {"bin_gains": 24}}))
    assert bin_context.main(["cache", str(recipe), str(tmp_path / "ring"), str(tmp_path / "out"), "--examples", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {recipe}: the recipe's net has no bin_context"
    assert bin_context.main(["train", str(tmp_path / "missing.json"), str(tmp_path / "c"), "--val", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "missing.json" in err and "\n" not in err


def test_the_l1_criterion_is_the_median_where_mse_is_the_mean():
    """``context_training.loss``: "mse" (the default) and "l1" on square-rooted gains. For a target
    that is 1 (a kept bin) two times in three and 0 (a removed one) once, MSE is least at the mean
    of the square roots (2/3) and L1 at their median (1): L1 picks a side instead of hedging."""
    target = torch.tensor([1.0, 1.0, 0.0])
    grid = torch.linspace(0.0, 1.0, 101)

    def best(kind):
        loss = bin_context.criterion(kind)
        values = torch.stack([loss((g**2).expand(3), target) for g in grid])
        return grid[int(values.argmin())].item()

    assert best("mse") == pytest.approx(2 / 3, abs=0.01) and best("l1") == pytest.approx(1.0, abs=0.01)
    assert bin_context.criterion("mse") is _sqrt_mse
    with pytest.raises(ValueError, match="context_training loss 'huber': must be one of mse, l1"):
        bin_context.criterion("huber")
