"""Deterministic dev-set evaluation: build noisy/clean pairs from ``../shared/data`` and score models.

Metrics here need only numpy: SI-SDR (dB) and its improvement over the noisy input, and the
segmental noise reduction in speech pauses. Reading the corpus (FLAC + Ogg/Opus) needs the
``eval`` extra (soundfile). ``noisenil eval`` prints the table and can write the figures into
the model's manifest (``--write-manifest``), which is where ``noisenil models`` reads them.
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


def _load(path: Path) -> np.ndarray:
    import soundfile as sf  # eval extra

    x, rate = sf.read(str(path), dtype="float32", always_2d=False)
    if x.ndim > 1:
        x = x.mean(axis=1)
    return soxr.resample(x, rate, EVAL_RATE).astype(np.float32) if rate != EVAL_RATE else x


def build_dev_set(data_dir: Path | None = None, n_speech: int = 10, seed: int = 2026) -> list[Pair]:
    """n_speech dev utterances x len(SNRS_DB) SNRs, each with a different dev noise; deterministic."""
    data_dir = Path(data_dir or default_data_dir())
    manifest = data_dir / "manifest.csv"
    if not manifest.is_file():
        raise NoiseNilError(f"{manifest}: corpus manifest not found (set NOISENIL_DATA or pass --data)")
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    speech = sorted(r["path"] for r in rows if r["kind"] == "speech" and r["split"] == "dev" and "librispeech" in r["path"])
    noises = sorted(
        r["path"] for r in rows if r["kind"] == "noise" and r["split"] == "dev" and r["label"] not in ("other", "")
    )
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
            pairs.append(Pair((s * scale).astype(np.float32), (noisy * scale).astype(np.float32), snr, sp, nz_path))
    return pairs


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


def evaluate(effect_factory, pairs: list[Pair]) -> dict:
    """Score one effect (a callable ``effect(x, sample_rate)``) on the pairs; per-SNR and overall figures."""
    per_snr: dict[float, list[tuple[float, float]]] = {}
    seconds = 0.0
    elapsed = 0.0
    for p in pairs:
        effect = effect_factory()
        t0 = time.perf_counter()
        y = effect(p.noisy, EVAL_RATE) if effect is not None else p.noisy
        elapsed += time.perf_counter() - t0
        seconds += len(p.noisy) / EVAL_RATE
        per_snr.setdefault(p.snr_db, []).append((si_sdr(p.clean, p.noisy), si_sdr(p.clean, y), pause_reduction_db(p, y)))
    rows = {}
    for snr, vals in sorted(per_snr.items()):
        a = np.asarray(vals)
        rows[f"{snr:g}"] = {"si_sdr_in_db": round(float(a[:, 0].mean()), 2), "si_sdr_out_db": round(float(a[:, 1].mean()), 2)}
    allv = np.asarray([v for vals in per_snr.values() for v in vals])
    return {
        "si_sdr_in_db": round(float(allv[:, 0].mean()), 2),
        "si_sdr_out_db": round(float(allv[:, 1].mean()), 2),
        "si_sdr_improvement_db": round(float((allv[:, 1] - allv[:, 0]).mean()), 2),
        "pause_noise_reduction_db": round(float(allv[:, 2].mean()), 2),
        "real_time_factor": round(elapsed / seconds, 4),
        "per_snr_db": rows,
        "set": f"dev: {len(pairs)} pairs, LibriSpeech dev speakers x dev noises, SNR {list(SNRS_DB)} dB, 48 kHz",
    }


def markdown_table(results: dict[str, dict]) -> str:
    snrs = [f"{s:g}" for s in SNRS_DB]
    head = "| model | SI-SDR out (dB) | SI-SDR gain (dB) | noise cut in pauses (dB) | " + " | ".join(f"@{s} dB in" for s in snrs) + " | RTF |"
    sep = "|" + "---|" * (5 + len(snrs))
    lines = [head, sep]
    for name, r in results.items():
        cells = [f"{r['per_snr_db'][s]['si_sdr_out_db']:.2f}" for s in snrs]
        lines.append(
            f"| {name} | {r['si_sdr_out_db']:.2f} | {r['si_sdr_improvement_db']:+.2f} | {r['pause_noise_reduction_db']:.1f} | " + " | ".join(cells) + f" | {r['real_time_factor']:.4f} |"
        )
    return "\n".join(lines)


def write_metrics(manifest_path: Path, metrics: dict) -> None:
    data = json.loads(manifest_path.read_text(encoding="utf-8"))
    data["metrics"] = metrics
    tmp = manifest_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(manifest_path)
