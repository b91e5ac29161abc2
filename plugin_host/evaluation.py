"""Deterministic dev-set evaluation: build noisy/clean pairs from ``../shared/data`` and score models.

Metrics: SI-SDR (dB) and its improvement over the noisy input, the noise reduction in speech
pauses (numpy only), and, with the ``eval`` extra, PESQ wide-band (``pesq``), STOI (``pystoi``)
and DNSMOS P.835 SIG/BAK/OVRL (``speechmos``, whose ONNX models ship inside the package; no
network), all three computed at 16 kHz as they are defined. RNNoise (``pyrnnoise``) is scored as
a baseline under the name ``rnnoise``. Reading the corpus (FLAC + Ogg/Opus) needs soundfile.
``noisenil eval`` prints the tables, can write them and a quality-vs-speed chart to files, and can
write the figures into the model's manifest (``--write-manifest``), where ``noisenil models`` reads them.
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from .errors import NoiseNilError

EVAL_RATE = 48000
METRIC_RATE = 16000  # PESQ-WB, STOI and DNSMOS are defined at 16 kHz
RNNOISE = "rnnoise"
NOISY = "noisy (input)"  # the row of the unprocessed input in every table (and --paired noisy)
BANDLIMIT = "noisy_at_16k"  # baseline: the input through 16 kHz and back (what 16 kHz models get for free)
SNRS_DB = (-5.0, 0.0, 5.0, 10.0, 20.0)
CLIP_SECONDS = 6.0


def default_data_dir() -> Path:
    env = os.environ.get("NOISENIL_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@dataclass
class Pair:
    clean: np.ndarray
    noisy: np.ndarray
    snr_db: float
    speech: str
    noise: str
    noise_label: str = ""  # the corpus manifest's label of the noise ('' for a set of your own)


def _load(path: Path) -> np.ndarray:
    import soundfile as sf  # eval extra

    x, rate = sf.read(str(path), dtype="float32", always_2d=False)
    if x.ndim > 1:
        x = x.mean(axis=1)
    return soxr.resample(x, rate, EVAL_RATE).astype(np.float32) if rate != EVAL_RATE else x


def _corpus(data_dir: Path | None) -> tuple[Path, list[dict]]:
    """The corpus folder and its manifest rows; a missing manifest is a one-line error."""
    data_dir = Path(data_dir or default_data_dir())
    manifest = data_dir / "manifest.csv"
    if not manifest.is_file():
        raise NoiseNilError(f"{manifest}: corpus manifest not found (set NOISENIL_DATA or pass --data)")
    with open(manifest, newline="", encoding="utf-8") as f:
        return data_dir, list(csv.DictReader(f))


def build_dev_set(data_dir: Path | None = None, n_speech: int = 10, seed: int = 2026, split: str = "dev") -> list[Pair]:
    """n_speech dev utterances x len(SNRS_DB) SNRs, each with a different dev noise; deterministic.

    ``split="train"`` builds the same recipe from the train split: a tuning set for settings chosen
    after training (post-filters), so that the dev split stays for the reported figures only."""
    if split not in ("dev", "train"):
        raise NoiseNilError(f"split {split!r}: must be one of 'dev', 'train'")
    data_dir, rows = _corpus(data_dir)
    speech = sorted(r["path"] for r in rows if r["kind"] == "speech" and r["split"] == split and "librispeech" in r["path"])
    noises = sorted(
        r["path"] for r in rows if r["kind"] == "noise" and r["split"] == split and r["label"] not in ("other", "")
    )
    labels = {r["path"]: r["label"] for r in rows if r["kind"] == "noise"}
    rng = np.random.default_rng(seed)
    speech = [speech[i] for i in rng.permutation(len(speech))[:n_speech]]
    pairs = []
    n = int(CLIP_SECONDS * EVAL_RATE)
    for i, sp in enumerate(speech):
        s = _load(data_dir / sp)
        start = int(rng.integers(0, max(1, len(s) - n)))
        s = np.pad(s[start : start + n], (0, max(0, n - len(s[start : start + n]))))
        s = s / (np.max(np.abs(s)) + 1e-9) * 0.5
        for j, snr in enumerate(SNRS_DB):
            nz_path = noises[(i * len(SNRS_DB) + j) % len(noises)]
            nz = _load(data_dir / nz_path)
            if len(nz) < n:
                nz = np.tile(nz, int(np.ceil(n / len(nz))))
            off = int(rng.integers(0, len(nz) - n + 1))
            nz = nz[off : off + n]
            gain = np.sqrt(np.sum(s**2) / (np.sum(nz**2) + 1e-12) / 10 ** (snr / 10))
            noisy = s + gain * nz
            peak = np.max(np.abs(noisy))
            scale = 0.9 / peak if peak > 0.9 else 1.0
            pairs.append(Pair((s * scale).astype(np.float32), (noisy * scale).astype(np.float32), snr, sp, nz_path, labels[nz_path]))
    return pairs


AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


def _load_or_say(path: Path) -> np.ndarray:
    try:
        return _load(path)
    except Exception as exc:  # soundfile's errors vary by format
        raise NoiseNilError(f"{path}: cannot read ({exc})") from None


def load_pair_set(folder: Path) -> list[Pair]:
    """A set of your own: ``folder/clean/NAME`` and ``folder/noisy/NAME`` with the same file names
    (the VoiceBank-DEMAND layout). Each pair is resampled to 48 kHz; its input SNR is measured from
    the pair (noisy minus clean) and rounded to the dB for the per-SNR columns."""
    folder = Path(folder)
    clean_dir, noisy_dir = folder / "clean", folder / "noisy"
    for d in (clean_dir, noisy_dir):
        if not d.is_dir():
            raise NoiseNilError(f"{d}: not a folder (an evaluation set holds clean/ and noisy/ with the same file names)")
    names = sorted(p.name for p in clean_dir.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
    if not names:
        raise NoiseNilError(f"{clean_dir}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
    missing = [n for n in names if not (noisy_dir / n).is_file()]
    if missing:
        raise NoiseNilError(f"{noisy_dir / missing[0]}: missing (every clean file needs a noisy file of the same name)")
    pairs = []
    for name in names:
        clean, noisy = _load_or_say(clean_dir / name), _load_or_say(noisy_dir / name)
        if abs(len(clean) - len(noisy)) > 0.01 * max(len(clean), 1) + EVAL_RATE // 100:
            raise NoiseNilError(f"{noisy_dir / name}: {len(noisy) / EVAL_RATE:.2f} s long, its clean file {len(clean) / EVAL_RATE:.2f} s")
        n = min(len(clean), len(noisy))
        clean, noisy = clean[:n], noisy[:n]
        noise = noisy.astype(np.float64) - clean
        snr = 10 * np.log10((np.sum(clean.astype(np.float64) ** 2) + 1e-12) / (np.sum(noise**2) + 1e-12))
        pairs.append(Pair(clean, noisy, float(np.round(snr)), str(clean_dir / name), str(noisy_dir / name)))
    return pairs


def dev_set_description(pairs: list[Pair]) -> str:
    return f"dev: {len(pairs)} pairs, LibriSpeech dev speakers x dev noises, SNR {list(SNRS_DB)} dB, 48 kHz"


def pair_set_description(folder: Path, pairs: list[Pair]) -> str:
    snrs = [p.snr_db for p in pairs]
    return f"{folder}: {len(pairs)} pairs (clean/ + noisy/), measured SNR {min(snrs):g} to {max(snrs):g} dB, 48 kHz"


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    reference = reference.astype(np.float64) - np.mean(reference)
    estimate = estimate.astype(np.float64) - np.mean(estimate)
    alpha = np.dot(estimate, reference) / (np.dot(reference, reference) + 1e-12)
    target = alpha * reference
    return float(10 * np.log10((np.sum(target**2) + 1e-12) / (np.sum((estimate - target) ** 2) + 1e-12)))


def pause_reduction_db(pair: Pair, output: np.ndarray, frame: int = 480) -> float:
    """How much quieter the output is than the noisy input where the clean speech is silent (< -45 dB re its peak frame)."""
    n = len(pair.clean) // frame * frame
    e_clean = np.mean(pair.clean[:n].reshape(-1, frame) ** 2, axis=1)
    pauses = e_clean < np.max(e_clean) * 10 ** (-45 / 10)
    if not np.any(pauses):
        return 0.0
    e_in = np.sum(pair.noisy[:n].reshape(-1, frame)[pauses] ** 2)
    e_out = np.sum(output[:n].reshape(-1, frame)[pauses] ** 2)
    return float(10 * np.log10((e_in + 1e-12) / (e_out + 1e-12)))


def _at_metric_rate(clean: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return tuple(soxr.resample(x.astype(np.float64), EVAL_RATE, METRIC_RATE) for x in (clean, estimate))


def _pesq_wb(ref: np.ndarray, deg: np.ndarray) -> float:
    from pesq import pesq

    try:
        return float(pesq(METRIC_RATE, ref, deg, "wb"))
    except Exception:  # pesq refuses signals it finds no speech in
        return float("nan")


def pesq_wb(clean: np.ndarray, estimate: np.ndarray) -> float:
    """PESQ-WB of ``estimate`` (48 kHz) against ``clean``, at the metric rate (needs the eval extra)."""
    return _pesq_wb(*_at_metric_rate(clean, estimate))


def quality(clean: np.ndarray, estimate: np.ndarray) -> dict[str, float]:
    """PESQ-WB, STOI and DNSMOS P.835 of ``estimate`` (48 kHz) against ``clean``; empty without the eval extra."""
    try:
        import pesq  # noqa: F401
        from pystoi import stoi
        from speechmos import dnsmos
    except ImportError:
        return {}
    ref, deg = _at_metric_rate(clean, estimate)
    p = _pesq_wb(ref, deg)
    mos = dnsmos.run(np.clip(deg, -1.0, 1.0).astype(np.float32), METRIC_RATE)
    return {
        "pesq_wb": p,
        "stoi": float(stoi(ref, deg, METRIC_RATE, extended=False)),
        "dnsmos_sig": float(mos["sig_mos"]),
        "dnsmos_bak": float(mos["bak_mos"]),
        "dnsmos_ovrl": float(mos["ovrl_mos"]),
    }


class RNNoiseBaseline:
    """RNNoise (the C library through ``pyrnnoise``) as ``effect(x, sample_rate)`` at 48 kHz, delay removed."""

    DELAY = 960  # samples at 48 kHz: one 10 ms frame buffered + 10 ms of look-ahead (measured on speech)

    def __call__(self, x: np.ndarray, sample_rate: int) -> np.ndarray:
        from pyrnnoise import rnnoise

        if sample_rate != 48000:
            raise NoiseNilError(f"rnnoise runs at 48000 Hz, got {sample_rate}")
        state = rnnoise.create()
        try:
            frame = rnnoise.FRAME_SIZE
            padded = np.concatenate([x, np.zeros(self.DELAY + frame, np.float32)])
            n = len(padded) // frame * frame
            pcm = np.clip(padded[:n] * 32768.0, -32768, 32767).astype(np.int16)
            out = [rnnoise.process_mono_frame(state, pcm[i : i + frame])[0] for i in range(0, n, frame)]
        finally:
            rnnoise.destroy(state)
        y = np.concatenate(out).astype(np.float32) / 32768.0
        return y[self.DELAY : self.DELAY + len(x)]


class BandLimitBaseline:
    """The noisy input through ``rate`` and back (soxr HQ, no delay): what a model that runs at
    ``rate`` gets for nothing when the noise reaches above ``rate / 2`` and the speech does not."""

    def __init__(self, rate: int = 16000):
        self.rate = rate

    def __call__(self, x: np.ndarray, sample_rate: int) -> np.ndarray:
        import soxr

        y = soxr.resample(soxr.resample(x, sample_rate, self.rate, quality="HQ"), self.rate, sample_rate, quality="HQ")
        return np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)].astype(np.float32)


def evaluate(effect_factory, pairs: list[Pair], metrics: bool = True, description: str | None = None) -> dict:
    """Score one effect (a callable ``effect(x, sample_rate)``) on the pairs; per-SNR and overall figures."""
    per_snr: dict[float, list[dict]] = {}
    seconds = 0.0
    elapsed = 0.0
    for p in pairs:
        effect = effect_factory()
        t0 = time.perf_counter()
        y = effect(p.noisy, EVAL_RATE) if effect is not None else p.noisy
        elapsed += time.perf_counter() - t0
        seconds += len(p.noisy) / EVAL_RATE
        row = {"si_sdr_in": si_sdr(p.clean, p.noisy), "si_sdr_out": si_sdr(p.clean, y), "pause": pause_reduction_db(p, y), "noise_label": p.noise_label}
        if metrics:
            row.update(quality(p.clean, y))
        per_snr.setdefault(p.snr_db, []).append(row)

    def mean(rows, key):
        vals = [r[key] for r in rows if key in r and np.isfinite(r[key])]
        return round(float(np.mean(vals)), 3) if vals else None

    rows = {}
    for snr, vals in sorted(per_snr.items()):
        rows[f"{snr:g}"] = {
            "si_sdr_in_db": round(mean(vals, "si_sdr_in"), 2),
            "si_sdr_out_db": round(mean(vals, "si_sdr_out"), 2),
            "pesq_wb": mean(vals, "pesq_wb"),
        }
    allv = [v for vals in per_snr.values() for v in vals]
    out = {
        "si_sdr_in_db": round(mean(allv, "si_sdr_in"), 2),
        "si_sdr_out_db": round(mean(allv, "si_sdr_out"), 2),
        "si_sdr_improvement_db": round(float(np.mean([r["si_sdr_out"] - r["si_sdr_in"] for r in allv])), 2),
        "pause_noise_reduction_db": round(mean(allv, "pause"), 2),
        "real_time_factor": round(elapsed / seconds, 4),
        "per_snr_db": rows,
        "set": description or dev_set_description(pairs),
        "pairs": allv,  # each pair's own scores, for paired_table (not written to manifests)
    }
    for key in ("pesq_wb", "stoi", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"):
        value = mean(allv, key)
        if value is not None:
            out[key] = value
    return out


# ----------------------------------------------------------------- clean full-band speech
CLEAN_FULLBAND = "clean-fullband"
BANDS_HZ = ((0, 4000), (4000, 8000), (8000, 12000), (12000, 20000))


def build_clean_fullband_set(data_dir: Path | None = None, n_speech: int = 26) -> list[np.ndarray]:
    """The dev split's full-band voices (KLettres, 44.1 kHz), clean, at 48 kHz and a -10 dBFS peak.

    The noisy dev pairs use 16 kHz LibriSpeech, which is empty above 8 kHz, and PESQ, STOI and
    DNSMOS listen below 8 kHz: neither can see a denoiser dull a full-band voice. This set can."""
    data_dir, rows = _corpus(data_dir)
    paths = sorted(r["path"] for r in rows if r["kind"] == "speech" and r["split"] == "dev" and int(r["sample_rate"]) >= 44100)
    if not paths:
        raise NoiseNilError(f"{data_dir / 'manifest.csv'}: no full-band (44.1 kHz or more) speech in the dev split")
    clips = []
    for path in paths[:n_speech]:
        x = _load(data_dir / path)
        clips.append((0.316 * x / (np.max(np.abs(x)) + 1e-9)).astype(np.float32))
    return clips


def _band_energy(x: np.ndarray, frame: int = 960) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame energy in each of BANDS_HZ (Hann frames, 50 % overlap) and the frame total."""
    frames = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), frame)[:: frame // 2] * np.hanning(frame)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(frame, 1 / EVAL_RATE)
    bands = np.stack([power[:, (freqs >= lo) & (freqs < hi)].sum(axis=1) for lo, hi in BANDS_HZ], axis=1)
    return bands, power.sum(axis=1)


def _voiced_band_energy(clean: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Energy per band of ``y`` and of ``clean``, summed over the frames where the voice is
    (within 30 dB of its loudest frame)."""
    e_in, total = _band_energy(clean)
    e_out, _ = _band_energy(np.asarray(y, dtype=np.float32).reshape(-1)[: len(clean)])
    voiced = total > np.max(total) * 1e-3
    return e_out[voiced].sum(axis=0), e_in[voiced].sum(axis=0)


def clean_speech_check(effect_factory, clips: list[np.ndarray]) -> dict:
    """What an effect does to clean full-band speech: the level change per band over the frames
    where the voice is, and the SI-SDR of the output."""
    kept = np.zeros((2, len(BANDS_HZ)))
    scores = []
    for clean in clips:
        effect = effect_factory()
        y = effect(clean, EVAL_RATE) if effect is not None else clean
        kept += np.stack(_voiced_band_energy(clean, y))
        scores.append(si_sdr(clean, y))
    return {
        "band_change_db": {f"{lo // 1000}-{hi // 1000} kHz": round(float(10 * np.log10((o + 1e-20) / (i + 1e-20))), 1) for (lo, hi), o, i in zip(BANDS_HZ, *kept)},
        "si_sdr_db": round(float(np.mean(scores)), 2),
        "clips": len(clips),
    }


def clean_speech_table(results: dict[str, dict], clips: list[np.ndarray]) -> str:
    e_in = sum(_voiced_band_energy(clip, clip)[1] for clip in clips)
    share = 10 * np.log10(e_in / e_in.sum())
    bands = list(next(iter(results.values()))["band_change_db"])
    lines = [
        "| model | SI-SDR out (dB) | " + " | ".join(f"{b} (dB)" for b in bands) + " |",
        "|" + "---|" * (2 + len(bands)),
        "| the voices' own share of energy | - | " + " | ".join(f"{v:.1f}" for v in share) + " |",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['si_sdr_db']:.2f} | " + " | ".join(f"{r['band_change_db'][b]:+.1f}" for b in bands) + " |")
    return "\n".join(lines)


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def markdown_table(results: dict[str, dict]) -> str:
    """The summary table, then SI-SDR and PESQ per input SNR."""
    snrs = list(next(iter(results.values()))["per_snr_db"]) if results else []  # the set's own SNRs, in order
    lines = [
        "| model | PESQ-WB | STOI | SI-SDR out (dB) | SI-SDR gain (dB) | DNSMOS SIG | DNSMOS BAK | DNSMOS OVRL | noise cut in pauses (dB) | RTF | parameters | latency (ms) | mode |",
        "|" + "---|" * 13,
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {_fmt(r.get('pesq_wb'), '.2f')} | {_fmt(r.get('stoi'), '.3f')} | {r['si_sdr_out_db']:.2f} "
            f"| {r['si_sdr_improvement_db']:+.2f} | {_fmt(r.get('dnsmos_sig'), '.2f')} | {_fmt(r.get('dnsmos_bak'), '.2f')} "
            f"| {_fmt(r.get('dnsmos_ovrl'), '.2f')} | {r['pause_noise_reduction_db']:.1f} | {r['real_time_factor']:.4f} "
            f"| {_fmt(r.get('parameters'), ',d')} | {_fmt(r.get('latency_ms'), '.0f')} | {r.get('mode', '-')} |"
        )
    lines += ["", "Per input SNR (SI-SDR out in dB / PESQ-WB):", ""]
    lines.append("| model | " + " | ".join(f"@{s} dB in" for s in snrs) + " |")
    lines.append("|" + "---|" * (1 + len(snrs)))
    for name, r in results.items():
        cells = [f"{r['per_snr_db'][s]['si_sdr_out_db']:.2f} / {_fmt(r['per_snr_db'][s].get('pesq_wb'), '.2f')}" for s in snrs]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def noise_label_table(results: dict[str, dict]) -> str:
    """SI-SDR out / PESQ-WB / DNSMOS OVRL per noise label of the dev set (the corpus manifest's
    labels), each the mean over that label's pairs; the pair counts are small, so read them as where
    a model wins and loses, not as figures to quote alone."""
    first = next(iter(results.values()))["pairs"] if results else []
    if not first or not all(r.get("noise_label") for r in first):
        raise NoiseNilError("--by-noise: the pairs carry no noise labels (only the dev set built from the corpus has them)")
    labels = sorted({r["noise_label"] for r in first})
    counts = {lab: sum(r["noise_label"] == lab for r in first) for lab in labels}

    def cell(rows: list[dict], key: str, spec: str) -> str:
        vals = [r[key] for r in rows if key in r and np.isfinite(r[key])]
        return format(float(np.mean(vals)), spec) if vals else "-"

    lines = [
        "Per noise label (SI-SDR out in dB / PESQ-WB / DNSMOS OVRL; pairs per label in brackets):",
        "",
        "| model | " + " | ".join(f"{lab} ({counts[lab]})" for lab in labels) + " |",
        "|" + "---|" * (1 + len(labels)),
    ]
    for name, r in results.items():
        cells = []
        for lab in labels:
            rows = [x for x in r["pairs"] if x.get("noise_label") == lab]
            cells.append(" / ".join(cell(rows, key, spec) for key, spec in (("si_sdr_out", ".2f"), ("pesq_wb", ".2f"), ("dnsmos_ovrl", ".2f"))))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


PAIRED_METRICS = (
    ("pesq_wb", "PESQ-WB", ".3f"),
    ("si_sdr_out", "SI-SDR out (dB)", ".2f"),
    ("stoi", "STOI", ".4f"),
    ("dnsmos_sig", "DNSMOS SIG", ".3f"),
    ("dnsmos_bak", "DNSMOS BAK", ".3f"),
    ("dnsmos_ovrl", "DNSMOS OVRL", ".3f"),
    ("pause", "noise cut in pauses (dB)", ".2f"),
)


def paired_differences(reference: list[dict], other: list[dict], key: str) -> tuple[float, float, int] | None:
    """Mean of ``other - reference`` over the pairs both scored, and the half-width of its 95 %
    interval (Student t on the paired differences); None when fewer than two pairs have the score."""
    d = np.array([o[key] - r[key] for r, o in zip(reference, other) if key in r and key in o and np.isfinite(r[key]) and np.isfinite(o[key])])
    if len(d) < 2:
        return None
    try:
        from scipy.stats import t

        q = float(t.ppf(0.975, len(d) - 1))
    except ImportError:  # scipy comes with the eval extra; without it the normal quantile
        q = 1.96
    return float(d.mean()), q * float(d.std(ddof=1)) / np.sqrt(len(d)), len(d)


def paired_table(results: dict[str, dict], reference: str) -> str:
    """Each model's scores minus ``reference``'s, pair by pair on the same pairs: the mean difference
    and its 95 % interval. An interval that holds 0 is a difference the set cannot tell from chance."""
    if reference not in results:
        raise NoiseNilError(f"--paired {reference!r}: not among the scored models {list(results)}")
    ref = results[reference]["pairs"]
    keys = [(k, label, spec) for k, label, spec in PAIRED_METRICS if any(k in r for r in ref)]
    lines = [
        f"Paired against {reference} (mean difference on the same pairs, +- its 95 % interval; * where the interval leaves out 0):",
        "",
        "| model | " + " | ".join(label for _, label, _ in keys) + " |",
        "|" + "---|" * (1 + len(keys)),
    ]
    for name, r in results.items():
        if name == reference:
            continue
        cells = []
        for key, _, spec in keys:
            d = paired_differences(ref, r["pairs"], key)
            if d is None:
                cells.append("-")
            else:
                mean, half, _ = d
                cells.append(f"{mean:+{spec}} +- {half:{spec}}" + (" *" if abs(mean) > half else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chart(results: dict[str, dict], path: Path) -> Path:
    """PNG: quality (PESQ-WB, or SI-SDR without it) against real-time factor, one point per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key, label = ("pesq_wb", "PESQ-WB (dev set mean)") if all("pesq_wb" in r for r in results.values()) else ("si_sdr_out_db", "SI-SDR out (dB)")
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for name, r in results.items():
        rtf = max(r["real_time_factor"], 1e-4)
        ax.scatter(rtf, r[key], s=40)
        ax.annotate(name, (rtf, r[key]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("real-time factor (processing time / audio time, log scale; input row at 1e-4)")
    ax.set_ylabel(label)
    ax.set_title("NoiseNil dev set: quality vs. speed")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path


def write_metrics(manifest_path: Path, metrics: dict) -> None:
    data = json.loads(manifest_path.read_text(encoding="utf-8"))
    data["metrics"] = {k: v for k, v in metrics.items() if k != "pairs"}
    tmp = manifest_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(manifest_path)
