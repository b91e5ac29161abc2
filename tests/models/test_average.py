"""Averaging checkpoints of one net (how the shipped noisenil_fb weights were made)."""

import pytest

torch = pytest.importorskip("torch", reason="needs torch (pip install -e '.[train]')")

from models import average


def _save(path, weights, step=7, **extra):
    torch.save({"model": weights, "optimizer": {"state": 1}, "step": step, "config": {"name": "x"}, **extra}, path)
    return path


def test_the_average_is_the_mean_of_the_float_weights_and_keeps_the_first_ones_counters(tmp_path):
    a = _save(tmp_path / "a.pt", {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}, step=7)
    b = _save(tmp_path / "b.pt", {"w": torch.tensor([3.0, -2.0]), "n": torch.tensor(5)}, step=9)
    c = _save(tmp_path / "c.pt", {"w": torch.tensor([2.0, 3.0]), "n": torch.tensor(1)}, step=1)
    out = tmp_path / "soup.pt"
    assert average.main([str(out), str(a), str(b), str(c)]) == 0
    ck = torch.load(out, weights_only=False)
    torch.testing.assert_close(ck["model"]["w"], torch.tensor([2.0, 1.0]), atol=1e-7, rtol=0)
    assert ck["model"]["n"].item() == 3 and ck["step"] == 7 and ck["config"] == {"name": "x"}
    assert ck["optimizer"] is None and ck["averaged_from"] == [str(a), str(b), str(c)]
    assert not (tmp_path / "soup.pt.tmp").exists()


def test_checkpoints_of_another_net_or_too_few_are_refused_in_one_line(tmp_path, capsys):
    a = _save(tmp_path / "a.pt", {"w": torch.zeros(2)})
    b = _save(tmp_path / "b.pt", {"w": torch.zeros(3)})
    c = _save(tmp_path / "c.pt", {"v": torch.zeros(2)})
    out = tmp_path / "out.pt"
    assert average.main([str(out), str(a), str(b)]) == 2
    assert capsys.readouterr().err == f"error: {b}: another net than {a} (w: (3,) against (2,))\n"
    assert average.main([str(out), str(a), str(c)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {c}: another net than {a} (tensors ")
    assert average.main([str(out), str(a)]) == 2
    assert "averaging needs at least 2" in capsys.readouterr().err
    assert average.main([str(a), str(a), str(b)]) == 2  # never overwrites an input
    assert "is one of the inputs" in capsys.readouterr().err
    assert average.main([str(out), str(a), str(tmp_path / "none.pt")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'none.pt'}: cannot read a checkpoint")
    assert not out.exists()


def test_an_exported_average_counts_the_training_of_every_run_it_came_from(tmp_path):
    """The manifest of averaged weights lists each run (checkpoint, steps, minutes) and counts
    their steps, examples and minutes together."""
    from models import fullband
    from models.export_fullband import fields_for

    net = fullband.FullBandNet(channels=16, dilations=[1, 2], kernel=3, bands=32, df_bins=96, df_order=3)
    a = _save(tmp_path / "a.pt", {"w": torch.zeros(1)}, step=100, seconds=600.0)
    b = _save(tmp_path / "b.pt", {"w": torch.ones(1)}, step=40, seconds=240.0)
    ck = average.average([a, b])
    cfg = {"name": "fb", "mix": {"seconds": 3.0}, "batch_size": 8}
    t = fields_for(cfg, net, ck)["training"]
    assert t["averaged_from"] == [{"checkpoint": str(a), "steps": 100, "minutes": 10.0}, {"checkpoint": str(b), "steps": 40, "minutes": 4.0}]
    assert (t["steps"], t["examples"], t["minutes"]) == (140, 1120, 14.0)
    assert t["hours_of_audio"] == round(1120 * 3.0 / 3600, 1)
    assert "averaged_from" not in fields_for(cfg, net, torch.load(a, weights_only=False))["training"]
