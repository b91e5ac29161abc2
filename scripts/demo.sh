#!/usr/bin/env bash
# Fresh machine -> cleaned example: set up, then render the bundled noisy recording with the
# podcast preset (dehum, high-pass, denoise, compression, -16 LUFS) and print where the result is.
set -euo pipefail
cd "$(dirname "$0")/.."
NOISENIL_EXTRAS=eval bash scripts/setup.sh
mkdir -p out
.venv/bin/noisenil render examples/noisy_podcast.flac -o out/noisy_podcast_clean.flac --preset podcast_voice --overwrite
.venv/bin/noisenil info examples/noisy_podcast.flac out/noisy_podcast_clean.flac
echo "cleaned file: $(pwd)/out/noisy_podcast_clean.flac"
