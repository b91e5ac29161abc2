"""models/swap.py: one denoiser's output with part of another's spectrum (no torch)."""

import numpy as np
import pytest

from models.swap import main, parse_range, swap
from plugin_host.errors import ParameterError

RATE = 48000


def tone(hz, seconds=1.0, amplitude=0.5):
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def rms_db(x, skip=960):  # the edges hold half a frame of taper
    x = x[skip:-skip]
    return 10 * np.log10(np.mean(x**2) + 1e-20)


def test_swap_takes_the_donor_only_inside_the_range():
    a, b = tone(200.0), tone(3000.0)
    assert np.max(np.abs(swap(a, b, RATE, 30000, 40000) - a)) < 1e-5  # no bins in range: the output itself
    assert np.max(np.abs(swap(a, b, RATE, 0, 24001) - b)) < 1e-5  # every bin: the donor
    assert np.max(np.abs(swap(a, a, RATE, 0, 1000, "magnitude") - a)) < 1e-5  # its own magnitude: unchanged
    # 0-1 kHz from the donor, which has nothing there; above from the output, which has nothing there
    assert rms_db(swap(a, b, RATE, 0, 1000)) < rms_db(a) - 60
    both = swap(a, b, RATE, 2000, 4000)
    assert np.max(np.abs(both - (a + b))[960:-960]) < 1e-4
    # the donor's magnitude on the output's phase: the donor's level, the output's timing
    delayed = 0.1 * np.roll(a, 60)  # 60 samples at 200 Hz: a quarter of a period, 90 degrees
    y = swap(a, delayed, RATE, 0, 1000, "magnitude")
    assert rms_db(y) == pytest.approx(rms_db(a) - 20.0, abs=0.1)
    assert np.max(np.abs(y - 0.1 * a)[960:-960]) < 1e-3 and np.max(np.abs(y - delayed)[960:-960]) > 0.05
    # ranges are half-open in Hz, bin by bin: a 1050 Hz tone (bin 21; its Hann main lobe bins 20-22)
    # keeps all of itself when bins below 1000 Hz (0-19) are swapped for silence
    c = tone(1050.0)
    assert np.max(np.abs(swap(c, np.zeros_like(c), RATE, 0, 1000) - c)[960:-960]) < 1e-4
    assert rms_db(swap(c, np.zeros_like(c), RATE, 0, 1001)) < rms_db(c) - 1  # bin 20 (1000 Hz, half the lobe) now swapped too


def test_bad_ranges_and_kinds_are_one_line_errors():
    assert parse_range("300-600") == (300.0, 600.0)
    for bad, why in (("300", "expected LOW-HIGH"), ("a-b", "expected LOW-HIGH"), ("600-300", "LOW < HIGH"), ("-5-10", "expected LOW-HIGH")):
        with pytest.raises(ParameterError, match=why):
            parse_range(bad)
    with pytest.raises(ParameterError, match="must be one of spectrum, magnitude"):
        swap(tone(100.0), tone(100.0), RATE, 0, 100, "phase")


def test_command_scores_the_swaps(shared_data, tmp_path, capsys):
    out = tmp_path / "swap.md"
    args = ["--model", "wiener", "--donor", "spectral_subtraction", "--n-speech", "1", "--fast", "--data", str(shared_data)]
    assert main([*args, "--ranges", "0-24001", "30000-40000", "--kinds", "spectrum", "--out", str(out)]) == 0
    rows = {line.split(" | ")[0][2:]: float(line.split(" | ")[1].strip(" |")) for line in out.read_text().splitlines() if line.startswith("| ") and "---" not in line and "SI-SDR" not in line}
    assert rows["everything (the donor as it is)"] != pytest.approx(rows["nothing (the model as it is)"], abs=0.05)
    assert rows["spectrum in 0-24001 Hz"] == pytest.approx(rows["everything (the donor as it is)"], abs=0.01)
    assert rows["spectrum in 30000-40000 Hz"] == pytest.approx(rows["nothing (the model as it is)"], abs=0.01)
    assert "5 pairs" in out.read_text() and out.read_text() in capsys.readouterr().out
    assert main([*args, "--ranges", "0-1000", "--kinds", "magnitude", "--onsets", "--out", str(out)]) == 0
    onsets = [line for line in out.read_text().splitlines() if line.startswith(("| wiener, 0-1000 Hz", "| spectral_subtraction, 0-1000 Hz"))]
    assert len(onsets) == 2 and all(len(line.split(" | ")) == 6 for line in onsets)
    capsys.readouterr()
    assert main([*args, "--ranges", "1000-300"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == "error: range '1000-300': needs 0 <= LOW < HIGH"


def test_gain_curve_bins_the_gains_by_local_snr():
    from models.swap import SNR_EDGES_DB, gain_curve, gain_samples

    snr = np.array([-30.0, -30.0, -25.0, 3.0, 4.0, 30.0])
    gain = np.array([0.1, 0.3, 0.2, 0.5, 0.7, 0.9])
    curve = gain_curve(snr, gain)
    assert len(curve) == len(SNR_EDGES_DB) - 1
    assert curve[0] == pytest.approx(0.2) and curve[4] == pytest.approx(0.6) and curve[-1] == pytest.approx(0.9)
    assert np.isnan(curve[1]) and np.isnan(curve[5])  # no bins there
    rng = np.random.default_rng(3)
    clean = tone(300.0, 2.0) + tone(2500.0, 2.0, 0.05)
    noisy = clean + 0.02 * rng.standard_normal(len(clean)).astype(np.float32)
    for output, expected in ((noisy, 1.0), (0.5 * noisy, 0.5)):
        s, g = gain_samples(noisy, clean, output, RATE, 0, 4000)
        assert len(s) > 1000 and np.allclose(g, expected, atol=1e-4)
    # the clean speech itself as the output: bins the speech dominates keep it all, noise bins lose most
    s, g = gain_samples(noisy, clean, clean, RATE, 0, 4000)
    oracle = gain_curve(s, g)
    assert oracle[-1] == pytest.approx(1.0, abs=0.1) and oracle[0] < 0.05 and oracle[1] < 0.35


def test_onsets_count_frames_since_the_speech_took_the_lead():
    from models.swap import onset_curve, onset_samples, onset_table, speech_runs

    snr = np.array([[-5.0, 3.0, 12.0, 15.0, -1.0, 20.0], [30.0, 30.0, 30.0, 30.0, 30.0, 30.0]])
    assert speech_runs(snr).tolist() == [[0, 1, 2, 3, 0, 1], [1, 2, 3, 4, 5, 6]]
    assert speech_runs(snr, 12.5).tolist() == [[0, 0, 0, 1, 0, 1], [1, 2, 3, 4, 5, 6]]
    runs = np.array([1, 1, 2, 3, 4, 7, 12, 40])
    gain = np.array([0.1, 0.3, 0.4, 0.5, 0.7, 0.8, 0.9, 1.0])
    medians, shares = onset_curve(runs, gain)
    assert medians == pytest.approx([0.2, 0.4, 0.6, 0.8, 0.95]) and shares == pytest.approx([0.25, 0.125, 0.25, 0.125, 0.25])
    assert "| frame 1 | frame 2 | frame 3-4 | frame 5-10 | frame 11+ |" in onset_table([("x", (medians, shares))])
    # a tone that starts at 0.5 s in faint noise; an output that opens one frame late loses only the onset frames
    rng = np.random.default_rng(5)
    clean = tone(500.0, 1.5)
    clean[: RATE // 2] = 0.0
    noisy = clean + 0.001 * rng.standard_normal(len(clean)).astype(np.float32)
    r, g = onset_samples(noisy, clean, noisy, RATE, 0, 1000)
    assert len(r) > 50 and np.allclose(g, 1.0, atol=1e-4) and r.max() > 90  # the output is the input: gain 1 throughout
    late = noisy.copy()
    late[: RATE // 2 + 2 * 480] = 0.0  # silent until two hops after the onset
    r, g = onset_samples(noisy, clean, late, RATE, 0, 1000)
    medians, _ = onset_curve(r, g)
    assert medians[0] < 0.5 and medians[-1] == pytest.approx(1.0, abs=1e-3)
