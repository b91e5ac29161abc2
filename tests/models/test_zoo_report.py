"""Merging eval outputs into the zoo's one comparison table (no torch)."""

import pytest

from models.zoo.report import merge

HEAD = "| model | PESQ-WB | STOI | SI-SDR out (dB) | SI-SDR gain (dB) | DNSMOS SIG | DNSMOS BAK | DNSMOS OVRL | noise cut in pauses (dB) | RTF |"


def table(rows, snr_rows, new=True):
    head = HEAD + (" parameters | latency (ms) | mode |" if new else "")
    cols = 13 if new else 10
    out = [head, "|" + "---|" * cols, *rows, "", "Per input SNR (SI-SDR out in dB / PESQ-WB):", "", "| model | @0 dB in |", "|---|---|", *snr_rows]
    return "\n".join(out + ["", "dev: 2 pairs, test"]) + "\n"


NOISY = "| noisy (input) | 1.46 | 0.837 | 6.01 | +0.00 | 3.12 | 2.39 | 2.25 | 0.0 | 0.0000"


def test_merge_keeps_first_rows_and_fills_new_columns(tmp_path):
    a = tmp_path / "a.md"
    a.write_text(table([NOISY + " | - | - | - |", "| dncnn | 1.59 | 0.815 | 6.48 | +0.48 | 3.10 | 3.08 | 2.49 | 9.8 | 0.0548 | 26,617 | 1024 | offline |"], ["| noisy (input) | 0.02 / 1.17 |", "| dncnn | 2.92 / 1.25 |"]))
    b = tmp_path / "b.md"
    b.write_text(table([NOISY + " |", "| wiener | 1.49 | 0.807 | 5.71 | -0.29 | 3.04 | 2.90 | 2.40 | 6.2 | 0.0255 |", "| dncnn | 9.99 | 0.1 | 1 | +1 | 1 | 1 | 1 | 1 | 1 |"], ["| noisy (input) | 0.02 / 1.17 |", "| wiener | 1.21 / 1.21 |", "| dncnn | 9 / 9 |"], new=False))
    text = merge([a, b])
    rows = [line for line in text.splitlines() if line.startswith("| ") and "model" not in line]
    names = [r.split(" | ")[0][2:] for r in rows]
    assert names == ["noisy (input)", "dncnn", "wiener", "noisy (input)", "dncnn", "wiener"]
    assert "9.99" not in text  # the first file's dncnn row wins
    wiener = rows[2].strip(" |").split(" | ")
    assert len(wiener) == 13 and wiener[-2:] == ["10", "streaming"]  # filled from its manifest
    assert "dev: 2 pairs, test" in text


def test_merge_refuses_tables_of_different_pairs(tmp_path):
    a, b = tmp_path / "a.md", tmp_path / "b.md"
    a.write_text(table([NOISY + " | - | - | - |"], ["| noisy (input) | 0.02 / 1.17 |"]))
    b.write_text(table([NOISY.replace("1.46", "1.50") + " | - | - | - |"], ["| noisy (input) | 0.02 / 1.17 |"]))
    with pytest.raises(SystemExit, match="not the same dev pairs"):
        merge([a, b])
