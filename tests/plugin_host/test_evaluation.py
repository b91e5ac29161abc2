import json

import numpy as np
import pytest

from plugin_host.cli import main
from plugin_host.errors import NoiseNilError
from plugin_host.evaluation import (
    SNRS_DB,
    build_clean_fullband_set,
    build_dev_set,
    clean_speech_check,
    si_sdr,
)


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


def test_train_split_tuning_set_shares_nothing_with_the_dev_set(shared_data):
    import csv

    with open(shared_data / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = {r["path"]: r for r in csv.DictReader(f)}
    dev, train = build_dev_set(shared_data, n_speech=2), build_dev_set(shared_data, n_speech=2, split="train")
    assert len(train) == len(dev) and all(rows[p.speech]["split"] == "train" and rows[p.noise]["split"] == "train" for p in train)
    assert not {p.speech for p in train} & {p.speech for p in dev} and not {p.noise for p in train} & {p.noise for p in dev}
    assert not {rows[p.speech]["speaker"] for p in train} & {rows[p.speech]["speaker"] for p in dev}
    with pytest.raises(NoiseNilError, match="split 'test': must be one of 'dev', 'train'"):
        build_dev_set(shared_data, split="test")


def test_clean_fullband_check_sees_a_dull_voice_and_spares_a_transparent_one(shared_data):
    clips = build_clean_fullband_set(shared_data, n_speech=3)
    assert len(clips) == 3 and all(np.max(np.abs(c)) == pytest.approx(0.316, abs=1e-3) for c in clips)

    def dull(x, rate, cutoff_hz=6000.0):  # a brick-wall low-pass: what a muffling denoiser does
        spec = np.fft.rfft(x)
        spec[np.fft.rfftfreq(len(x), 1 / rate) > cutoff_hz] = 0
        return np.fft.irfft(spec, n=len(x)).astype(np.float32)

    same = clean_speech_check(lambda: None, clips)
    assert set(same["band_change_db"].values()) == {0.0} and same["si_sdr_db"] > 100
    lowpassed = clean_speech_check(lambda: dull, clips)["band_change_db"]
    assert abs(lowpassed["0-4 kHz"]) < 0.2 and lowpassed["8-12 kHz"] < -30 and lowpassed["12-20 kHz"] < -30
    halved = clean_speech_check(lambda: lambda x, rate: 0.5 * x, clips)
    assert all(v == pytest.approx(-6.0, abs=0.1) for v in halved["band_change_db"].values())
    assert halved["si_sdr_db"] > 100  # SI-SDR ignores the scale


def test_eval_clean_fullband_writes_its_table(shared_data, tmp_path, capsys):
    out = tmp_path / "clean.md"
    assert main(["eval", "--set", "clean-fullband", "--model", "wiener", "--n-speech", "2", "--data", str(shared_data), "--out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ")]
    assert rows[0] == "| model | SI-SDR out (dB) | 0-4 kHz (dB) | 4-8 kHz (dB) | 8-12 kHz (dB) | 12-20 kHz (dB) |"
    assert [r.split(" | ")[0] for r in rows[1:]] == ["| the voices' own share of energy", "| clean (input)", "| wiener"]
    wiener = [float(v) for v in rows[-1].strip("| ").split(" | ")[1:]]
    # the classical filter leaves clean speech alone where the voice is (above 12 kHz these voices
    # hold only their recording's floor, -74 dB of their energy, which it may take for noise)
    assert wiener[0] > 20 and all(abs(v) < 1.0 for v in wiener[1:4])
    assert "2 dev-split voices" in out.read_text() and out.read_text() in capsys.readouterr().out
    assert main(["eval", "--set", "clean-fullband", "--model", "wiener", "--chart", str(tmp_path / "c.png")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["error: --chart: not for --set clean-fullband, which reports level changes per band only"]
    assert not (tmp_path / "c.png").exists()


def test_eval_command_writes_a_table_and_a_chart(shared_data, tmp_path, capsys):
    pytest.importorskip("pesq", reason="PESQ/STOI/DNSMOS need the eval extra")
    out, png = tmp_path / "table.md", tmp_path / "chart.png"
    args = ["eval", "--model", "wiener", "rnnoise", "--n-speech", "1", "--data", str(shared_data), "--out", str(out), "--chart", str(png)]
    assert main(args) == 0
    table = out.read_text()
    head, *rows = [line for line in table.splitlines() if line.startswith("| ")][:4]
    assert head.split(" | ")[1:4] == ["PESQ-WB", "STOI", "SI-SDR out (dB)"] and "DNSMOS OVRL" in head and "| RTF |" in head and head.endswith("| mode |")
    figures = {r.split(" | ")[0][2:]: [float(c) for c in r.strip(" |").split(" | ")[1:10]] for r in rows}
    extra = {r.split(" | ")[0][2:]: r.strip(" |").split(" | ")[10:] for r in rows}
    assert extra["wiener"][1:] == ["10", "streaming"] and extra["noisy (input)"] == ["-", "-", "-"]
    assert set(figures) == {"noisy (input)", "wiener", "rnnoise"}
    for pesq_wb, stoi, _si_out, _gain, _sig, bak, ovrl, _pauses, _rtf in figures.values():
        assert 1.0 <= pesq_wb <= 4.65 and 0.0 < stoi <= 1.0 and 1.0 <= ovrl <= 5.0 and 1.0 <= bak <= 5.0
    # the figures mean something: both denoisers cut the noise, and RNNoise beats the input on every score
    assert figures["noisy (input)"][3] == 0.0 and figures["wiener"][7] > 3.0 and figures["rnnoise"][7] > 10.0
    assert figures["rnnoise"][0] > figures["noisy (input)"][0] and figures["rnnoise"][5] > figures["noisy (input)"][5] + 0.5
    assert "@20 dB in" in table  # per-SNR table
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_quality_metrics_rank_clean_above_noisy(clean_speech):
    pytest.importorskip("speechmos", reason="DNSMOS needs the eval extra")
    from plugin_host.evaluation import quality

    clean = clean_speech[: 6 * 48000]
    noisy = clean + 0.03 * np.random.default_rng(0).standard_normal(len(clean)).astype(np.float32)
    q_clean, q_noisy = quality(clean, clean), quality(clean, noisy)
    assert q_clean["pesq_wb"] > 4.4 and q_clean["stoi"] > 0.99
    assert q_noisy["pesq_wb"] < q_clean["pesq_wb"] - 2.0 and q_noisy["stoi"] < q_clean["stoi"]
    assert q_noisy["dnsmos_bak"] < q_clean["dnsmos_bak"] - 1.0


def test_rnnoise_baseline_is_aligned_with_its_input(clean_speech):
    pytest.importorskip("pyrnnoise", reason="the RNNoise baseline needs the eval extra")
    from plugin_host.evaluation import RNNoiseBaseline

    x = clean_speech[: 4 * 48000]
    y = RNNoiseBaseline()(x, 48000)
    assert y.shape == x.shape
    assert si_sdr(x, y) > 10.0  # clean speech passes, in time with the input (a 1-frame slip would be < 0 dB)


def _write_pair_set(folder, snrs_db, rate: int, seed: int) -> None:
    """clean/ and noisy/ takes: a gated 220 Hz tone, white noise at each SNR, 2 s each."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    t = np.arange(2 * rate) / rate
    for i, snr in enumerate(snrs_db):
        clean = (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32)
        noise = rng.standard_normal(len(t))
        noise *= np.sqrt(np.sum(clean**2) / np.sum(noise**2) / 10 ** (snr / 10))
        for sub, x in (("clean", clean), ("noisy", clean + noise)):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            sf.write(folder / sub / f"take{i}.wav", x.astype(np.float32), rate)


def test_eval_on_a_set_of_your_own(tmp_path, capsys):
    """``--set PATH``: clean/ and noisy/ files of the same names, any rate; SNR measured per pair."""
    _write_pair_set(tmp_path / "set", (0.0, 10.0), rate=16000, seed=5)
    out = tmp_path / "table.md"
    assert main(["eval", "--set", str(tmp_path / "set"), "--model", "wiener", "--fast", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| wiener" in text and "noisy (input)" in text
    assert "2 pairs (clean/ + noisy/), measured SNR 0 to 10 dB" in text
    assert not list(tmp_path.glob(".*.tmp"))  # written beside its place, then renamed there
    # an --out or --chart into a folder that does not exist: one line before any scoring, exit 2
    capsys.readouterr()
    for flag in ("--out", "--chart"):
        bad = tmp_path / "none" / "x.md"
        assert main(["eval", "--set", str(tmp_path / "set"), "--model", "wiener", "--fast", flag, str(bad)]) == 2
        assert capsys.readouterr().err == f"error: {flag} {bad}: the folder {bad.parent} does not exist\n"
    assert out.read_text() == text
    # a clean file without its noisy twin: one line naming it, exit 2
    (tmp_path / "set" / "noisy" / "take1.wav").unlink()
    capsys.readouterr()
    assert main(["eval", "--set", str(tmp_path / "set"), "--model", "wiener", "--fast"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "take1.wav" in err and "missing" in err
    # a noisy file that is not audio: the line names that file (noisy/, not the set folder)
    (tmp_path / "set" / "noisy" / "take1.wav").write_bytes(b"not audio")
    assert main(["eval", "--set", str(tmp_path / "set"), "--model", "wiener", "--fast"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {tmp_path / 'set' / 'noisy' / 'take1.wav'}: cannot read")


def test_eval_scores_what_users_get_and_keep_dc_scores_without_the_dc_blocker(tmp_path):
    """The engine takes a DC offset out before any model; ``--keep-dc`` scores the models as the
    tables dated before that did. On takes recorded with an offset the difference shows."""
    import soundfile as sf

    _write_pair_set(tmp_path / "set", (10.0, 20.0), rate=48000, seed=6)
    for path in (tmp_path / "set" / "noisy").iterdir():
        x, rate = sf.read(path, dtype="float32")
        sf.write(path, x + 0.1, rate)
    si_sdr_out = {}
    for flags in ((), ("--keep-dc",)):
        out = tmp_path / f"table{len(flags)}.md"
        assert main(["eval", "--set", str(tmp_path / "set"), "--model", "noisenil_fb", "auto", "--fast", "--out", str(out), *flags]) == 0
        rows = {}
        for line in out.read_text().splitlines():  # the first table: one row per model
            if line.startswith("| "):
                rows.setdefault(line.split("|")[1].strip(), line.split("|"))
        si_sdr_out[flags] = {name: float(rows[name][4]) for name in ("noisenil_fb", "auto")}
    for name in ("noisenil_fb", "auto"):
        assert si_sdr_out[()][name] > si_sdr_out[("--keep-dc",)][name] + 2.0, si_sdr_out  # measured 19.93 against 16.66 dB


def test_band_limit_baseline_keeps_the_band_below_8k_and_removes_the_rest(tmp_path):
    """``noisy_at_16k``: the input through 16 kHz and back, the row a 16 kHz model's gain is read against."""
    from plugin_host.evaluation import BandLimitBaseline

    rate = 48000
    t = np.arange(rate) / rate
    low = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 6000 * t)).astype(np.float32)
    high = (0.2 * np.sin(2 * np.pi * 12000 * t)).astype(np.float32)
    y = BandLimitBaseline()(low + high, rate)
    assert y.shape == low.shape and y.dtype == np.float32
    inner = slice(rate // 10, -rate // 10)
    assert si_sdr(low[inner], y[inner]) > 40.0  # unchanged below 8 kHz, with no delay
    left = y[inner] - low[inner]
    assert 10 * np.log10(np.mean(high[inner] ** 2) / np.mean(left**2)) > 40.0  # the 12 kHz tone is gone


def test_eval_scores_the_band_limit_baseline(tmp_path, capsys):
    import soundfile as sf

    rng = np.random.default_rng(6)
    rate = 48000
    t = np.arange(rate) / rate
    clean = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    for sub, x in (("clean", clean), ("noisy", clean + 0.05 * rng.standard_normal(rate).astype(np.float32))):
        (tmp_path / "set" / sub).mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / "set" / sub / "take.wav", x, rate)
    out = tmp_path / "table.md"
    assert main(["eval", "--set", str(tmp_path / "set"), "--model", "noisy_at_16k", "--fast", "--out", str(out)]) == 0
    row = next(line for line in out.read_text().splitlines() if line.startswith("| noisy_at_16k"))
    gain = float(row.split("|")[5])
    # white noise over 0-24 kHz loses the two thirds above 8 kHz: about +4.8 dB SI-SDR
    assert gain == pytest.approx(10 * np.log10(3.0), abs=0.3)


def test_paired_differences_give_the_mean_and_a_student_t_interval(tmp_path):
    from plugin_host.evaluation import paired_differences, write_metrics

    ref = [{"pesq_wb": 1.0, "si_sdr_out": 5.0}] * 4
    other = [{"pesq_wb": 1.0 + d, "si_sdr_out": 5.0} for d in (1.0, 2.0, 3.0, 4.0)]
    mean, half, n = paired_differences(ref, other, "pesq_wb")
    # d = 1..4: mean 2.5, sd 1.291, t(0.975, 3 dof) = 3.182 -> 3.182 * 1.291 / 2
    assert (mean, n) == (2.5, 4) and half == pytest.approx(3.182 * np.std([1, 2, 3, 4], ddof=1) / 2, rel=1e-3)
    assert paired_differences(ref, other, "si_sdr_out")[:2] == (0.0, 0.0)
    assert paired_differences(ref, other, "stoi") is None  # a score neither has
    # the per-pair rows stay out of a manifest's metrics
    manifest = tmp_path / "m.json"
    manifest.write_text("{}")
    write_metrics(manifest, {"pesq_wb": 2.0, "pairs": other})
    assert json.loads(manifest.read_text())["metrics"] == {"pesq_wb": 2.0}


def test_eval_paired_compares_models_on_the_same_pairs(tmp_path, capsys):
    """``--paired noisy``: each model's SI-SDR minus the input's, pair by pair: its mean is the
    table's SI-SDR gain; an unknown reference is refused before anything is scored."""
    _write_pair_set(tmp_path / "set", (0.0, 5.0, 10.0), rate=48000, seed=8)
    out = tmp_path / "table.md"
    args = ["eval", "--set", str(tmp_path / "set"), "--model", "wiener", "noisy_at_16k", "--fast", "--out", str(out)]
    assert main([*args, "--paired", "noisy"]) == 0
    lines = out.read_text().splitlines()
    assert any(line.startswith("Paired against noisy (input)") for line in lines)
    header = next(line for line in lines if line.startswith("| model | SI-SDR out (dB)"))
    assert "PESQ-WB" not in header  # --fast: only the scores it computed
    for name in ("wiener", "noisy_at_16k"):
        gain = float(next(line for line in lines if line.startswith(f"| {name} |") and "+-" not in line).split("|")[5])
        paired = next(line for line in lines if line.startswith(f"| {name} |") and "+-" in line).split("|")[2]
        mean, half = (float(v.strip(" *")) for v in paired.split("+-"))
        assert mean == pytest.approx(gain, abs=0.011) and half > 0
    assert gain == pytest.approx(10 * np.log10(3.0), abs=0.3)  # noisy_at_16k: white noise above 8 kHz gone
    capsys.readouterr()
    assert main([*args, "--paired", "rnnoise"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'rnnoise'" in err and "wiener" in err


def test_eval_by_noise_label(shared_data, tmp_path, capsys):
    """``--by-noise``: one column per noise label of the dev pairs, each the mean over that label's
    pairs (checked against the pairs themselves); refused up front for a set without labels."""
    import csv

    from plugin_host.evaluation import noise_label_table

    pairs = build_dev_set(shared_data, n_speech=2)
    with open(shared_data / "manifest.csv", newline="", encoding="utf-8") as f:
        labels = {r["path"]: r["label"] for r in csv.DictReader(f)}
    assert [p.noise_label for p in pairs] == [labels[p.noise] for p in pairs] and all(p.noise_label not in ("", "other") for p in pairs)
    out = tmp_path / "t.md"
    assert main(["eval", "--model", "wiener", "--n-speech", "2", "--data", str(shared_data), "--fast", "--by-noise", "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    start = lines.index("Per noise label (SI-SDR out in dB / PESQ-WB / DNSMOS OVRL; pairs per label in brackets):")
    head, _, *rows = lines[start + 2 : start + 6]
    counts = {lab: sum(p.noise_label == lab for p in pairs) for lab in sorted({p.noise_label for p in pairs})}
    assert head == "| model | " + " | ".join(f"{lab} ({n})" for lab, n in counts.items()) + " |"
    noisy = rows[0].strip("| ").split(" | ")
    assert noisy[0] == "noisy (input)"
    for lab, cell in zip(counts, noisy[1:]):
        si, pesq, ovrl = cell.split(" / ")
        expected = np.mean([si_sdr(p.clean, p.noisy) for p in pairs if p.noise_label == lab])
        assert float(si) == pytest.approx(expected, abs=0.006) and pesq == ovrl == "-"  # --fast: SI-SDR only
    assert rows[1].startswith("| wiener | ")
    with pytest.raises(NoiseNilError, match="--by-noise: the pairs carry no noise labels"):
        noise_label_table({"x": {"pairs": [{"si_sdr_out": 1.0, "noise_label": ""}]}})
    capsys.readouterr()
    _write_pair_set(tmp_path / "set", (0.0,), rate=48000, seed=1)
    assert main(["eval", "--set", str(tmp_path / "set"), "--model", "wiener", "--by-noise"]) == 2
    assert capsys.readouterr().err.strip() == f"error: --by-noise: needs the noise labels of --set dev, not '{tmp_path / 'set'}'"
