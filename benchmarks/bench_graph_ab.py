"""Per-frame time of two or more versions of a streaming ONNX graph, interleaved.

    python benchmarks/bench_graph_ab.py OLD.onnx NEW.onnx [--frames 3000] [--rounds 5] [--out FILE]

On a shared machine whose speed drifts from minute to minute (seen here: the same graph at 390
to 560 us per frame within ten minutes), a figure from one run says little. This one runs the
graphs in turn, round after round, on the same input (one onnxruntime thread, states carried
frame to frame as in the engine) and reports the best and median per-frame time of each and its
ratio to the first. Only the ONNX call is timed: the engine's STFT and Python around it are
the same for every version. An older version of a shipped model comes from git, e.g.
``git show COMMIT:models/noisenil_fb.onnx > /tmp/old.onnx``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

from plugin_host.errors import ModelError
from plugin_host.registry import open_session  # the engine's own session settings


def per_frame_us(sess, frames: np.ndarray) -> float:
    """Mean time of one call over ``frames`` (the first input), the other inputs carried as states
    (output k + 1 feeds input k + 1, as the exported streaming graphs name them)."""
    ins = sess.get_inputs()
    outs = [o.name for o in sess.get_outputs()]
    feeds = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32) for i in ins}
    t0 = time.perf_counter()
    for frame in frames:
        feeds[ins[0].name] = frame
        result = sess.run(outs, feeds)
        for i, value in zip(ins[1:], result[1:]):
            feeds[i.name] = value
    return (time.perf_counter() - t0) / len(frames) * 1e6


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("graphs", type=Path, nargs="+")
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    for g in args.graphs:
        if not g.is_file():
            print(f"error: {g}: no such file", file=sys.stderr)
            return 2
    try:
        sessions = [open_session(g, str(g)) for g in args.graphs]
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    shapes = {tuple(d if isinstance(d, int) else 1 for d in s.get_inputs()[0].shape) for s in sessions}
    if len(shapes) != 1:
        print(f"error: the graphs take different inputs: {sorted(shapes)}", file=sys.stderr)
        return 2
    (shape,) = shapes
    frames = (np.random.default_rng(0).standard_normal((args.frames, *shape)) * 0.01).astype(np.float32)
    times = [[] for _ in sessions]
    for _ in range(args.rounds):
        for s, t in zip(sessions, times):
            t.append(per_frame_us(s, frames))
    best0 = min(times[0])
    lines = [
        "`python benchmarks/bench_graph_ab.py " + " ".join(str(g) for g in args.graphs) + "`",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}; {args.frames} frames x {args.rounds} interleaved rounds, one onnxruntime thread.",
        "",
        "| graph | best (us per frame) | median (us per frame) | best / first's best |",
        "|---|---|---|---|",
    ]
    for g, t in zip(args.graphs, times):
        lines.append(f"| {g} | {min(t):.0f} | {np.median(t):.0f} | {min(t) / best0:.2f} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
