#!/usr/bin/env bash
# One training sitting on a lent GPU machine (the device tool), as run for the noisenil_fb_gpu*
# recipes. That machine sees only the repository (64 MiB with what is carried) and no network, so:
#
#   here, once (the folder .gpu/ is git-ignored through .git/info/exclude):
#     python -m models.pack_corpus .gpu/data        # ~45 MB Opus/FLAC copy of the shippable train split
#     python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .gpu/whl soundfile soxr cffi pycparser pedalboard==0.9.26
#   then the device call, carrying .gpu (and an init_from checkpoint that git ignores, if any):
#     bash models/lent_gpu_sitting.sh models/configs/noisenil_fb_gpu.json 7.5
#
# The training checkpoint with its Adam state outgrows the 16 MiB a returned file may have, so the
# weights alone go to $OUT (enough for init_from or export; a resumed sitting must run on the same,
# still-warm machine, whose ignored files persist between calls).
set -euo pipefail
recipe=$1
minutes=${2:-7.5}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl
export PYTHONPATH=/tmp/site:$PWD NOISENIL_DATA=$PWD/.gpu/data PYTHONUNBUFFERED=1
name=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['name'])" "$recipe")
timeout $(( ${minutes%.*} * 60 + 90 )) python3 -m models.train "$recipe" --minutes "$minutes" --no-export
out=${OUT:-/tmp/out}
mkdir -p "$out"
python3 - "$name" "$out" <<'PY'
import sys, torch
name, out = sys.argv[1], sys.argv[2]
ck = torch.load(f"models/checkpoints/{name}.pt", weights_only=False, map_location="cpu")
ck["optimizer"] = None
torch.save(ck, f"{out}/{name}.pt")
PY
cp "models/$name.train.log" "$out/"
