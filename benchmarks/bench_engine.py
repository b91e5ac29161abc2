"""Real-time factor per model and host buffer size, plus time per model frame.

    python benchmarks/bench_engine.py [--seconds 20] [--repeat 1] [--model NAME ...] [--out benchmarks/results/engine.md]

RTF = processing time / audio duration (lower is faster; 0.05 means 20x faster than real time).
One thread for onnxruntime, one channel, 48 kHz input (no resampling) and 44.1 kHz (resampled).
``--repeat N`` keeps the best of N runs per cell: on a shared machine whose speed drifts, the
fastest run is the one least disturbed by its neighbours.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from plugin_host import DENOISERS, Denoise

BUFFER_SIZES = [64, 480, 512, 8192]


def cpu_name() -> str:
    """The CPU's model name (Linux), else what ``platform`` knows: the shared machines this runs on
    change CPU from day to day, and the figures with them."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def rtf(effect: Denoise, x: np.ndarray, rate: int, buffer_size: int, streaming: bool) -> float:
    effect.reset()
    t0 = time.perf_counter()
    if streaming:
        for i in range(0, len(x), buffer_size):
            effect.process(x[i : i + buffer_size], rate, reset=False)
    else:
        effect.process(x, rate, buffer_size=buffer_size)
    return (time.perf_counter() - t0) / (len(x) / rate)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=1, help="best of this many runs per cell")
    parser.add_argument("--out")
    parser.add_argument("--model", nargs="+", help="only these models (default: every registered denoiser)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    lines = [
        f"Machine: {cpu_name()} ({platform.machine()}), {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{args.seconds:g} s of mono audio per run" + (f", best of {args.repeat} runs per cell." if args.repeat > 1 else "."),
        "",
        "| model | input rate | mode | " + " | ".join(f"buffer {b}" for b in BUFFER_SIZES) + " | per 10 ms frame |",
        "|---|---|---|" + "---|" * len(BUFFER_SIZES) + "---|",
    ]
    for name in args.model or DENOISERS.names():
        effect = Denoise(name)
        hop_s = effect.manifest.hop_length / effect.manifest.sample_rate
        for rate in (48000, 44100):
            x = (0.05 * rng.standard_normal(int(args.seconds * rate))).astype(np.float32)
            for streaming in (True, False):
                values = [min(rtf(effect, x, rate, b, streaming) for _ in range(max(1, args.repeat))) for b in BUFFER_SIZES]
                per_frame_us = values[1] * hop_s * 1e6
                cells = " | ".join(f"{v:.4f}" for v in values)
                mode = "streaming (reset=False)" if streaming else "offline (reset=True)"
                lines.append(f"| {name} | {rate} | {mode} | {cells} | {per_frame_us:.0f} us |")
                print(lines[-1], flush=True)
    text = "\n".join(lines)
    print("\n" + text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
