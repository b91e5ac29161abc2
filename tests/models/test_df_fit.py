"""The least-squares deep filter (models/df_fit.py): the normal equations and the head's layout
recover a head that produced the target, and the command names bad input in one line."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs torch (pip install -e '.[train]')")

from models import df_fit, fullband

TINY = {"channels": 8, "dilations": [1, 2], "kernel": 3, "bands": 32, "df_bins": 96, "df_order": 3}


@pytest.mark.parametrize("bins", [0, 24])
def test_the_fit_recovers_a_head_that_made_the_target(bins):
    """Target = a random head's output: the fitted head reproduces it (nothing left unexplained);
    a target the filter cannot make is left unexplained. With a per-bin gain head the residual
    is taken after the gains the net applies, not its band gains."""
    torch.manual_seed(0)
    truth = fullband.FullBandNet(**TINY, bin_gains=bins).eval()
    if bins:
        torch.nn.init.normal_(truth.bin_head[-1].weight, std=0.3)
    torch.nn.init.normal_(truth.df_head.weight, std=0.1)
    torch.nn.init.normal_(truth.df_head.bias, std=0.1)
    rng = np.random.default_rng(0)
    noisy = (rng.standard_normal((6, 9600)) * 0.05).astype(np.float32)
    spec = fullband.stft(torch.from_numpy(noisy))
    with torch.no_grad():
        o_re, o_im, _ = truth.forward_sequence(spec.real.contiguous(), spec.imag.contiguous())
    target = torch.complex(o_re, o_im)[..., :96].numpy()

    fitted = fullband.FullBandNet(**TINY, bin_gains=bins).eval()
    fitted.load_state_dict(truth.state_dict())
    fitted.switch_off_deep_filter()
    W, left = df_fit.solve(df_fit.accumulate(fitted, noisy, target, batch=4), ridge=0.0)
    assert W.shape == (96, 3 * 9) and float(left.max()) < 1e-3
    df_fit.set_head(fitted, W)
    with torch.no_grad():
        f_re, f_im, _ = fitted.forward_sequence(spec.real.contiguous(), spec.imag.contiguous())
    err = torch.complex(f_re, f_im) - torch.complex(o_re, o_im)
    assert float(err.abs().max()) < 1e-3 * float(torch.complex(o_re, o_im).abs().max())
    assert fitted.deep_filter and fitted.df_head.weight.requires_grad

    # the gains' output plus noise unrelated to the input: the residual is that noise, which no
    # filter of the input explains (up to what 27 unknowns can fit in 20 frames per bin and clip)
    fitted.switch_off_deep_filter()
    more = (rng.standard_normal((24, 9600)) * 0.05).astype(np.float32)
    spec = fullband.stft(torch.from_numpy(more))
    with torch.no_grad():
        g_re, g_im, _ = fitted.forward_sequence(spec.real.contiguous(), spec.imag.contiguous())
    unrelated = fullband.stft(torch.from_numpy((rng.standard_normal((24, 9600)) * 0.05).astype(np.float32)))
    target = (torch.complex(g_re, g_im) + unrelated)[..., :96].numpy()
    _, left = df_fit.solve(df_fit.accumulate(fitted, more, target, batch=8), ridge=1e-3)
    assert float(left.min()) > 0.85 and float(left.max()) <= 1.0


def test_the_command_names_bad_input_in_one_line(tmp_path, capsys):
    assert df_fit.main([str(tmp_path / "none.pt"), "--cache", str(tmp_path), "--out", str(tmp_path / "o.pt")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'none.pt'}: no such checkpoint"
    (tmp_path / "c.pt").write_bytes(b"x")
    assert df_fit.main([str(tmp_path / "c.pt"), "--cache", str(tmp_path), "--out", str(tmp_path / "o.pt")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'noisy.npy'}: no teacher cache here (python -m models.distill build)"
    assert not (tmp_path / "o.pt").exists()
