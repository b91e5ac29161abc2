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


def test_merge_fills_a_third_party_models_columns_from_the_catalogue(tmp_path, monkeypatch):
    """A third-party row from an old table, with the model not installed here: its latency and mode
    come from the catalogue ``noisenil models add`` installs by (GTCRN: 512-sample frames, hop 256,
    at 16 kHz: 16 ms; DeepFilterNet3: 960/480 at 48 kHz with 2 frames of lookahead: 30 ms)."""
    monkeypatch.setenv("NOISENIL_HOME", str(tmp_path / "home"))  # nothing installed
    a = tmp_path / "a.md"
    a.write_text(table([NOISY + " |", "| gtcrn | 1.96 | 0.882 | 12.75 | +6.74 | 3.20 | 3.76 | 2.82 | 21.6 | 0.1115 |",
                        "| deepfilternet3 | 2.22 | 0.891 | 13.65 | +7.64 | 3.33 | 3.93 | 3.01 | 30.7 | 0.1581 |", "| rnnoise | 1.71 | 0.861 | 9.22 | +3.22 | 3.26 | 3.80 | 2.88 | 29.5 | 0.0398 |"],
                       ["| noisy (input) | 0.02 / 1.17 |", "| gtcrn | 8.94 / 1.65 |", "| deepfilternet3 | 10.29 / 2.04 |", "| rnnoise | 6.48 / 1.42 |"], new=False))
    rows = {r.split(" | ")[0][2:]: r.strip(" |").split(" | ") for r in merge([a]).splitlines() if r.startswith("| ") and "model" not in r and " / " not in r}
    assert rows["gtcrn"][-3:] == ["-", "16", "streaming"]
    assert rows["deepfilternet3"][-3:] == ["-", "30", "streaming"]
    assert rows["rnnoise"][-3:] == ["-", "-", "-"]  # not a catalogued model


def test_merge_refuses_tables_of_different_pairs(tmp_path):
    a, b = tmp_path / "a.md", tmp_path / "b.md"
    a.write_text(table([NOISY + " | - | - | - |"], ["| noisy (input) | 0.02 / 1.17 |"]))
    b.write_text(table([NOISY.replace("1.46", "1.50") + " | - | - | - |"], ["| noisy (input) | 0.02 / 1.17 |"]))
    with pytest.raises(SystemExit, match="not the same dev pairs"):
        merge([a, b])
