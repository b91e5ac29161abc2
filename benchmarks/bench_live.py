"""Live monitoring costs: audio-callback time per block size on a real stream, the engine worker's
time per block, and memory over a long session.

    python benchmarks/bench_live.py                 # callback/worker table on the JACK dummy server
    python benchmarks/bench_live.py --hours 1       # + RSS over an hour of audio (virtual device, faster than real time)
    python benchmarks/bench_live.py --out benchmarks/results/live.md

The stream part needs a running JACK server (e.g. `jackd --no-realtime -d dummy -r 48000 -p 480`);
block sizes other than the server's period go through PortAudio's block adaptation. Figures are
per block and per 10 ms of audio, not pass/fail.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plugin_host.live import LiveConfig, LiveEngine, VirtualDevice  # noqa: E402


def stream_row(block: int, seconds: float, model: str | None) -> str:
    engine = LiveEngine(LiveConfig(input_device="system", output_device="system", block_size=block, model=model))
    worker_ns = []
    original = engine.process_block

    def timed(x):
        t = time.perf_counter_ns()
        original(x)
        worker_ns.append(time.perf_counter_ns() - t)

    engine.process_block = timed
    engine.start()
    time.sleep(1.0)
    before = engine.stats()
    skip = before.callbacks
    time.sleep(seconds)
    after = engine.stats()
    engine.stop()
    cb = engine.callback_times_us()[skip : after.callbacks] if after.callbacks <= len(engine.cb_times_ns) else engine.callback_times_us()
    w = np.array(worker_ns[len(worker_ns) // 10 :]) / 1000.0
    per10 = 480 / block
    return (
        f"| {block} | {1000 * block / 48000:.1f} | {np.percentile(cb, 50):.0f} | {np.percentile(cb, 99):.0f} | {cb.max():.0f} "
        f"| {np.percentile(w, 50):.0f} | {np.percentile(w, 99):.0f} | {np.percentile(w, 50) * per10:.0f} "
        f"| {after.late_blocks - before.late_blocks} | {after.device_xruns - before.device_xruns} | {engine.latency.total_ms:.1f} |"
    )


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_rows(hours: float, model: str | None) -> list[str]:
    engine = LiveEngine(LiveConfig(classify=False, model=model))
    dev = VirtualDevice(engine, 48000)
    x = (0.02 * np.random.default_rng(0).standard_normal(60 * 48000)).astype(np.float32)
    rows = []
    minutes = int(round(hours * 60))
    t0 = time.perf_counter()
    for m in range(1, minutes + 1):
        dev.run(x)
        engine.read_spectrogram()
        if m in (1, 10) or m % 30 == 0 or m == minutes:
            rows.append(f"| {m} | {rss_mb():.1f} | {(time.perf_counter() - t0) / (60 * m):.4f} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blocks", type=int, nargs="+", default=[64, 128, 256, 480, 512, 1024, 2048])
    ap.add_argument("--seconds", type=float, default=10.0, help="streaming time per block size")
    ap.add_argument("--model", default=None)
    ap.add_argument("--hours", type=float, default=0.0, help="also run this many hours of audio for memory")
    ap.add_argument("--out")
    args = ap.parse_args()
    lines = [
        "# Live monitoring benchmark",
        "",
        f"`python benchmarks/bench_live.py {' '.join(sys.argv[1:])}` on {platform.machine()}, "
        f"Python {platform.python_version()}, JACK dummy server at 48 kHz / 480-frame periods.",
        "",
        "Callback: the audio callback itself (copy in, copy out, counters). Worker: the engine thread's",
        "time per block (denoiser, bypass fade, meters). Late: blocks the worker was not ready for.",
        "",
        "| block (frames) | block (ms) | callback p50 (us) | callback p99 (us) | callback max (us) "
        "| worker p50 (us) | worker p99 (us) | worker per 10 ms (us) | late | device xruns | latency (ms) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for b in args.blocks:
        lines.append(stream_row(b, args.seconds, args.model))
        print(lines[-1], flush=True)
    if args.hours > 0:
        lines += ["", f"Memory over {args.hours:g} h of audio (virtual device, whole engine path):", ""]
        lines += ["| minutes of audio | peak RSS (MB) | real-time factor |", "|---|---|---|"]
        for row in memory_rows(args.hours, args.model):
            lines.append(row)
            print(row, flush=True)
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
