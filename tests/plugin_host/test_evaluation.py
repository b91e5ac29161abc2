import numpy as np
import pytest

from plugin_host.cli import main
from plugin_host.evaluation import SNRS_DB, build_dev_set, si_sdr


def test_si_sdr_values():
    rng = np.random.default_rng(0)
    s = rng.standard_normal(48000)
    assert si_sdr(s, 3.0 * s) > 100  # scale-invariant
    n = rng.standard_normal(48000)
    n *= np.sqrt(np.sum(s**2) / np.sum(n**2)) / 10 ** (10 / 20)
    assert si_sdr(s, s + n) == pytest.approx(10.0, abs=0.2)


def test_dev_set_is_deterministic_and_uses_the_dev_split(shared_data):
    a = build_dev_set(shared_data, n_speech=2)
    b = build_dev_set(shared_data, n_speech=2)
    assert len(a) == 2 * len(SNRS_DB)
    assert [p.noise for p in a] == [p.noise for p in b]
    assert all(np.array_equal(p.noisy, q.noisy) for p, q in zip(a, b))
    import csv

    rows = {r["path"]: r for r in csv.DictReader(open(shared_data / "manifest.csv"))}
    assert all(rows[p.speech]["split"] == "dev" and rows[p.noise]["split"] == "dev" for p in a)
    for p in a:
        measured = 10 * np.log10(np.sum(p.clean**2) / np.sum((p.noisy - p.clean) ** 2))
        assert measured == pytest.approx(p.snr_db, abs=0.01)


def test_eval_command_writes_a_table(shared_data, tmp_path, capsys):
    out = tmp_path / "table.md"
    assert main(["eval", "--model", "wiener", "--n-speech", "1", "--data", str(shared_data), "--out", str(out)]) == 0
    table = out.read_text()
    assert "| noisy (input) |" in table and "| wiener |" in table
    assert table.count("\n|") >= 3
