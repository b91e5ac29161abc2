"""A podcaster's batch script: pedalboard's own plugins and NoiseNil's denoiser in one chain.

    python examples/batch_with_pedalboard.py IN_FOLDER OUT_FOLDER

Reads every WAV/FLAC in IN_FOLDER with pedalboard's usual chunked loop (``reset=False``), so
memory stays flat for long episodes, and writes the result with the same name to OUT_FOLDER.
The chain delays its output by ``streaming_latency_samples``; the loop drops that many samples
at the start and flushes the same amount of silence at the end, so outputs line up with inputs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from pedalboard import Compressor, HighpassFilter, Limiter
from pedalboard.io import AudioFile

from plugin_host import Chain, Denoise


def make_chain() -> Chain:
    return Chain(
        [
            HighpassFilter(cutoff_frequency_hz=80),
            Denoise(attenuation_limit_db=30),  # never push noise down by more than 30 dB
            Compressor(threshold_db=-24, ratio=3),
            Limiter(threshold_db=-1),
        ]
    )


def process_file(chain: Chain, src: Path, dst: Path) -> None:
    chain.reset()
    with AudioFile(str(src)) as f:
        rate, channels = f.samplerate, f.num_channels
        to_skip = chain.streaming_latency_samples(rate)
        flush = np.zeros((channels, to_skip), np.float32)
        with AudioFile(str(dst), "w", rate, channels) as out:
            while f.tell() < f.frames:
                y = chain(f.read(int(rate)), rate, reset=False)
                cut = min(to_skip, y.shape[1])
                out.write(y[:, cut:])
                to_skip -= cut
            out.write(chain(flush, rate, reset=False)[:, to_skip:])


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    src_dir, dst_dir = Path(argv[0]), Path(argv[1])
    dst_dir.mkdir(parents=True, exist_ok=True)
    chain = make_chain()
    for src in sorted(src_dir.glob("*")):
        if src.suffix.lower() in (".wav", ".flac"):
            process_file(chain, src, dst_dir / src.name)
            print(f"{src} -> {dst_dir / src.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
