"""Where one denoiser loses to another: swap part of its output spectrum for the other's and score.

``python -m models.swap --model noisenil_fb --donor rnnoise --ranges 0-1000 300-600`` runs both
through the engine on the dev pairs (``--split train``: the train-split tuning set), takes each
output's STFT (960-sample Hann frames, 480 hop: the flagship's framing; the round trip is exact),
and for each frequency range scores the model's output with the donor's spectrum in that range,
and with the donor's magnitude there on the model's own phase. A range whose swap lifts a score
is where the model's output is worse than the donor's; the magnitude-only row tells the gains (what
a gains-only model can change) from the phase. ``--gain-curve`` adds why: the median gain each side
gives the STFT bins of each range, by the bin's local SNR (how much the clean speech outweighs the
noise there). ``--onsets`` adds when: the median gain of the bins the speech clearly leads, by how
many frames they have led so far (a causal model cannot know the first frame of a syllable is
speech; a model that is low there but not later lacks lookahead, one that stays low hedges). No torch: the models run from their ONNX files, so
any registered denoiser or baseline (``rnnoise``, third-party models added with ``noisenil models
add``) can be either side.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
from scipy.signal import istft, stft

FRAME = 960
HOP = 480
KINDS = ("spectrum", "magnitude")


def parse_range(text: str) -> tuple[float, float]:
    """``"300-600"`` -> (300.0, 600.0) in Hz; a one-line error for anything else."""
    from plugin_host.errors import ParameterError

    try:
        lo, hi = (float(v) for v in text.split("-"))
    except ValueError:
        raise ParameterError(f"range {text!r}: expected LOW-HIGH in Hz, e.g. 0-1000") from None
    if not 0 <= lo < hi:
        raise ParameterError(f"range {text!r}: needs 0 <= LOW < HIGH")
    return lo, hi


def swap(output: np.ndarray, donor: np.ndarray, sample_rate: int, lo_hz: float, hi_hz: float, kind: str = "spectrum") -> np.ndarray:
    """``output`` with the STFT bins in [lo_hz, hi_hz) taken from ``donor`` (``kind`` "spectrum":
    the donor's complex values; "magnitude": the donor's magnitude on ``output``'s phase)."""
    if kind not in KINDS:
        from plugin_host.errors import ParameterError

        raise ParameterError(f"swap kind {kind!r}: must be one of {', '.join(KINDS)}")
    n = len(output)
    _, _, a = stft(output, sample_rate, nperseg=FRAME, noverlap=FRAME - HOP)
    _, _, b = stft(donor[:n], sample_rate, nperseg=FRAME, noverlap=FRAME - HOP)
    freqs = np.fft.rfftfreq(FRAME, 1.0 / sample_rate)
    inside = ((freqs >= lo_hz) & (freqs < hi_hz))[:, None]
    part = b if kind == "spectrum" else np.abs(b) * np.exp(1j * np.angle(a))
    y = istft(np.where(inside, part, a), sample_rate, nperseg=FRAME, noverlap=FRAME - HOP)[1][:n]
    return np.pad(y, (0, n - len(y))).astype(np.float32)


SNR_EDGES_DB = (-40.0, -20.0, -10.0, -5.0, 0.0, 5.0, 10.0, 20.0, 40.0)


def _bin_snr_gain(noisy: np.ndarray, clean: np.ndarray, output: np.ndarray, sample_rate: int, lo_hz: float, hi_hz: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bins, frames) arrays for the STFT bins in [lo_hz, hi_hz): local SNR in dB, effective gain,
    and which bins hold any signal."""
    n = len(output)
    spec = [stft(x[:n], sample_rate, nperseg=FRAME, noverlap=FRAME - HOP)[2] for x in (noisy, clean, output)]
    freqs = np.fft.rfftfreq(FRAME, 1.0 / sample_rate)
    inside = (freqs >= lo_hz) & (freqs < hi_hz)
    x, c, y = (s[inside] for s in spec)
    snr = 10 * np.log10((np.abs(c) ** 2 + 1e-12) / (np.abs(x - c) ** 2 + 1e-12))
    gain = np.abs(y) / (np.abs(x) + 1e-12)
    return snr, gain, np.abs(x) ** 2 > 1e-9


def gain_samples(noisy: np.ndarray, clean: np.ndarray, output: np.ndarray, sample_rate: int, lo_hz: float, hi_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Each STFT bin's local SNR (clean against noise = noisy - clean, dB) and its effective gain
    ``|output| / |noisy|``, for the bins in [lo_hz, hi_hz) that hold any signal."""
    snr, gain, live = _bin_snr_gain(noisy, clean, output, sample_rate, lo_hz, hi_hz)
    return snr[live], gain[live]


RUN_EDGES = (1, 2, 3, 5, 11)  # frames: 1, 2, 3-4, 5-10, 11 and more
SPEECH_LED_DB = 10.0


def speech_runs(snr: np.ndarray, threshold_db: float = 0.0) -> np.ndarray:
    """For a (bins, frames) local-SNR array: how many frames in a row, up to and including each
    one, the bin has been above ``threshold_db`` (0 where it is not)."""
    run = np.zeros(snr.shape, dtype=np.int64)
    above = snr > threshold_db
    for t in range(snr.shape[1]):
        run[:, t] = np.where(above[:, t], (run[:, t - 1] if t else 0) + 1, 0)
    return run


def onset_samples(noisy: np.ndarray, clean: np.ndarray, output: np.ndarray, sample_rate: int, lo_hz: float, hi_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """The speech-led bins in [lo_hz, hi_hz) (local SNR above ``SPEECH_LED_DB``): how many frames
    each has been speech-led (local SNR above 0 dB) so far, and its effective gain."""
    snr, gain, live = _bin_snr_gain(noisy, clean, output, sample_rate, lo_hz, hi_hz)
    led = live & (snr > SPEECH_LED_DB)
    return speech_runs(snr)[led], gain[led]


def onset_curve(runs: np.ndarray, gain: np.ndarray, edges=RUN_EDGES) -> tuple[list[float], list[float]]:
    """The median gain in each run-length interval [edges[k], edges[k + 1]) (the last open), and
    each interval's share of the bins."""
    idx = np.digitize(runs, edges) - 1
    return _medians(idx, gain, len(edges)), [float(np.mean(idx == k)) for k in range(len(edges))]


def onset_table(curves: list[tuple[str, tuple[list[float], list[float]]]], edges=RUN_EDGES) -> str:
    heads = [f"{a}" if b == a + 1 else f"{a}-{b - 1}" for a, b in itertools.pairwise(edges)] + [f"{edges[-1]}+"]
    lines = [
        f"Median gain |output| / |noisy| of the speech-led STFT bins (local SNR above {SPEECH_LED_DB:g} dB) by how many frames (10 ms)",
        "the bin has been speech-led (local SNR above 0 dB) so far; in brackets, the share of those bins:",
        "",
        "| denoiser, range | " + " | ".join(f"frame {h}" for h in heads) + " |",
        "|" + "---|" * (len(edges) + 1),
    ]
    for label, (values, shares) in curves:
        lines.append(f"| {label} | " + " | ".join(f"{v:.2f} ({s:.2f})" for v, s in zip(values, shares)) + " |")
    return "\n".join(lines)


def gain_curve(snr: np.ndarray, gain: np.ndarray, edges=SNR_EDGES_DB) -> list[float]:
    """The median gain of the bins in each local-SNR interval [edges[k], edges[k + 1]) (nan if none)."""
    return _medians(np.digitize(snr, edges) - 1, gain, len(edges) - 1)


def _medians(idx: np.ndarray, gain: np.ndarray, count: int) -> list[float]:
    """The median of ``gain`` where ``idx == k``, for k in 0..count-1 (nan where there is none)."""
    return [float(np.median(gain[idx == k])) if np.any(idx == k) else float("nan") for k in range(count)]


def gain_curve_table(curves: list[tuple[str, list[float]]], edges=SNR_EDGES_DB) -> str:
    lines = [
        "Median gain |output| / |noisy| of the STFT bins by their local SNR (clean against noise, dB):",
        "",
        "| denoiser, range | " + " | ".join(f"{a:g} to {b:g}" for a, b in itertools.pairwise(edges)) + " |",
        "|" + "---|" * len(edges),
    ]
    for label, values in curves:
        lines.append(f"| {label} | " + " | ".join(f"{v:.2f}" for v in values) + " |")
    return "\n".join(lines)


def _outputs(name: str, pairs) -> list[np.ndarray]:
    from plugin_host.cli import _effect_factory
    from plugin_host.evaluation import EVAL_RATE

    factory = _effect_factory(name)
    return [np.asarray(factory()(p.noisy, EVAL_RATE), np.float32).reshape(-1)[: len(p.clean)] for p in pairs]


def _scores(pairs, ys: list[np.ndarray], metrics: bool) -> dict[str, float]:
    from plugin_host.evaluation import quality, si_sdr

    rows = [{"si_sdr": si_sdr(p.clean, y), **(quality(p.clean, y) if metrics else {})} for p, y in zip(pairs, ys)]
    return {k: float(np.mean([r[k] for r in rows if np.isfinite(r[k])])) for k in rows[0]}


COLUMNS = (("pesq_wb", "PESQ-WB", ".3f"), ("si_sdr", "SI-SDR (dB)", ".2f"), ("stoi", "STOI", ".3f"), ("dnsmos_sig", "SIG", ".3f"), ("dnsmos_bak", "BAK", ".3f"), ("dnsmos_ovrl", "OVRL", ".3f"))


def table(model: str, donor: str, rows: list[tuple[str, dict]], description: str) -> str:
    keys = [c for c in COLUMNS if c[0] in rows[0][1]]
    lines = [f"| {model} with {donor}'s ... | " + " | ".join(label for _, label, _ in keys) + " |", "|" + "---|" * (1 + len(keys))]
    for label, scores in rows:
        lines.append(f"| {label} | " + " | ".join(format(scores[k], spec) for k, _, spec in keys) + " |")
    return "\n".join(lines) + f"\n\n{description}\n"


def _per_range(ranges, named_outputs, pairs, samples_fn, curve_fn) -> list[tuple[str, object]]:
    """``curve_fn`` over the ``samples_fn`` pairs of arrays of all pairs, per range and per denoiser."""
    from plugin_host.evaluation import EVAL_RATE

    rows = []
    for text, (lo, hi) in ranges:
        for name, outs in named_outputs:
            samples = [samples_fn(p.noisy, p.clean, y, EVAL_RATE, lo, hi) for p, y in zip(pairs, outs)]
            rows.append((f"{name}, {text} Hz", curve_fn(np.concatenate([a for a, _ in samples]), np.concatenate([b for _, b in samples]))))
    return rows


def main(argv: list[str] | None = None) -> int:
    from plugin_host.errors import NoiseNilError

    ap = argparse.ArgumentParser(prog="python -m models.swap", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="noisenil_fb", help="the denoiser to look into (default: noisenil_fb)")
    ap.add_argument("--donor", default="rnnoise", help="the denoiser whose spectrum goes in (default: rnnoise)")
    ap.add_argument("--ranges", nargs="+", default=["0-1000"], help="frequency ranges LOW-HIGH in Hz, one swap each")
    ap.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS), help="swap the donor's complex spectrum, its magnitude on the model's phase, or both")
    ap.add_argument("--split", choices=("dev", "train"), default="dev", help="dev pairs, or the same recipe from the train split (the tuning set)")
    ap.add_argument("--n-speech", type=int, default=10, help="utterances (x 5 SNRs)")
    ap.add_argument("--every", type=int, default=1, help="score every N-th pair only (2: half the set, about half the time)")
    ap.add_argument("--data", help="corpus folder (default: $NOISENIL_DATA or ../shared/data)")
    ap.add_argument("--fast", action="store_true", help="SI-SDR only (no PESQ, STOI, DNSMOS)")
    ap.add_argument("--gain-curve", action="store_true", help="also the median gain of the model's and the donor's STFT bins by local SNR, in each range")
    ap.add_argument("--onsets", action="store_true", help="also the median gain of the speech-led bins by how long they have been speech-led (1, 2, 3-4, 5-10, 11+ frames), in each range")
    ap.add_argument("--out", type=Path, help="also write the table to this file")
    args = ap.parse_args(argv)
    try:
        from plugin_host.evaluation import EVAL_RATE, SNRS_DB, build_dev_set

        ranges = [(text, parse_range(text)) for text in args.ranges]
        if args.out and not args.out.parent.is_dir():
            raise NoiseNilError(f"--out {args.out}: the folder {args.out.parent} does not exist")
        pairs = build_dev_set(args.data, n_speech=args.n_speech, split=args.split)[:: max(1, args.every)]
        ys, donor_ys = _outputs(args.model, pairs), _outputs(args.donor, pairs)
        metrics = not args.fast
        rows = [("nothing (the model as it is)", _scores(pairs, ys, metrics)), ("everything (the donor as it is)", _scores(pairs, donor_ys, metrics))]
        for text, (lo, hi) in ranges:
            for kind in args.kinds:
                swapped = [swap(y, d, EVAL_RATE, lo, hi, kind) for y, d in zip(ys, donor_ys)]
                rows.append((f"{kind} in {text} Hz" + (" (on the model's phase)" if kind == "magnitude" else ""), _scores(pairs, swapped, metrics)))
                print(f"{rows[-1][0]}: done", file=sys.stderr, flush=True)
        named = ((args.model, ys), (args.donor, donor_ys))
        curves = _per_range(ranges, named, pairs, gain_samples, gain_curve) if args.gain_curve else []
        onsets = _per_range(ranges, named, pairs, onset_samples, onset_curve) if args.onsets else []
    except NoiseNilError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    split = "the train-split tuning set" if args.split == "train" else "the dev set"
    every = f", every {args.every}th pair" if args.every > 1 else ""
    description = f"{split} (`noisenil eval`'s recipe, {args.n_speech} LibriSpeech utterances x SNR {list(SNRS_DB)} dB{every}): {len(pairs)} pairs, 48 kHz; STFT {FRAME}/{HOP} Hann"
    text = table(args.model, args.donor, rows, description)
    if curves:
        text = text + "\n" + gain_curve_table(curves) + "\n"
    if onsets:
        text = text + "\n" + onset_table(onsets) + "\n"
    print(text, end="")
    if args.out:
        from plugin_host.cli import _write_text_atomically

        _write_text_atomically(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
