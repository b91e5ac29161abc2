#!/usr/bin/env bash
# One training sitting on a lent GPU machine (the device tool), as run for the noisenil_fb_gpu*
# recipes. That machine sees only the repository (64 MiB with what is carried) and no network, so:
#
#   here, once (the folder .gpu/ is git-ignored through .git/info/exclude):
#     python -m models.pack_corpus .gpu/data        # ~45 MB Opus/FLAC copy of the shippable train split
#     python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .gpu/whl soundfile soxr cffi pycparser pedalboard==0.9.26
#   for a recipe with a 'live' key (DeepFilterNet3 labels mixtures while the model trains):
#     cp ../shared/models-thirdparty/deepfilternet3/DeepFilterNet3_onnx.tar.gz .gpu/
#   a checkpoint the recipe starts from (init_from) may travel xz-compressed, to keep under 64 MiB:
#     mkdir -p .gpu/ckpt && xz -9e -c models/checkpoints/X.pt > .gpu/ckpt/X.pt.xz   # (X.pt can then stay behind)
#   each time, around the device call: bash models/lent_gpu_slim.sh out ... bash models/lent_gpu_slim.sh back
#   (tracked files over 40 KB stay behind: with .gpu the tree must stay under 64 MiB)
#   then the device call, carrying .gpu:
#     bash models/lent_gpu_sitting.sh models/configs/noisenil_fb_gpu.json 7.5
#     LIVE_WORKERS=14 bash models/lent_gpu_sitting.sh models/configs/noisenil_fb_gpu_live.json 8
#     LIVE_WORKERS=14 bash models/lent_gpu_sitting.sh models/configs/noisenil_fb_gpu_bins.json 8   # per-bin head; its ring labels per-bin gains too
#     LIVE_WORKERS=14 bash models/lent_gpu_sitting.sh models/configs/noisenil_fb_gpu_gru2.json 8   # the shipped GRU net (start: .gpu/ckpt/noisenil_fb_gpu_gru_soup.pt.xz)
#
# The live labelling runs in its own process session, so it outlives the call: a second call of
# the same line on the still-warm machine (its ignored files persist between calls) resumes the
# training checkpoint and keeps drawing from the same, still-growing ring. The machine stays warm
# only about 30 s after a call returns, so make the next call at once. If it went cold anyway (the
# reply says warm: false; a fresh machine would start the recipe again from init_from), carry the
# returned weights first: xz -1 -c FILES_AT/NAME.pt > .gpu/ckpt/NAME.pt.xz (dropping the init_from
# one if space is short); the sitting then resumes from them with a fresh Adam, and its new ring
# labels mixtures from step x batch on, none of which the earlier rings held.
# The training checkpoint with its Adam state outgrows the 16 MiB a returned file may have, so the
# weights alone go to $OUT (enough for init_from or export).
set -euo pipefail
recipe=$1
minutes=${2:-7.5}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl
export PYTHONPATH=/tmp/site:$PWD NOISENIL_DATA=$PWD/.gpu/data PYTHONUNBUFFERED=1 OPENBLAS_NUM_THREADS=2 OMP_NUM_THREADS=2
mkdir -p models/checkpoints
python3 - <<'PY'
import lzma, pathlib
for f in sorted(pathlib.Path(".gpu/ckpt").glob("*.xz")):
    target = pathlib.Path("models/checkpoints") / f.name[:-3]
    if not target.exists():
        target.write_bytes(lzma.decompress(f.read_bytes()))
        print(f"unpacked {target}")
PY
name=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['name'])" "$recipe")
if [ "${LIVE_WORKERS:-0}" -gt 0 ]; then
  ring=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['live']['dir'])" "$recipe")
  if [ -f /tmp/live_labeller.pid ] && kill -0 "$(cat /tmp/live_labeller.pid)" 2>/dev/null; then
    echo "live labelling already running (pid $(cat /tmp/live_labeller.pid))"
  else
    # the ring takes about 0.6 MB a slot (0.6 kB more per bin of per-bin gains, 58 kB for 96, for a
    # recipe whose loss has teacher_bins): at most half the free disk
    free_kb=$(df -k --output=avail "$(dirname "$ring")" | tail -1)
    capacity=$(python3 -c "
import json, sys
from models.distill import live_bins
r = json.load(open(sys.argv[1]))
print(min(r['live']['capacity'], int(sys.argv[2]) // 2 // (600 + 6 * live_bins(r) // 10)))" "$recipe" "$free_kb")
    # a sitting resumed on a fresh machine (its weights carried in .gpu/ckpt/NAME.pt.xz) labels
    # from mixture step x batch on: past every mixture the earlier rings can have held
    first=0
    if [ -f "models/checkpoints/$name.pt" ]; then
      first=$(python3 -c "
import json, sys, torch
ck = torch.load(sys.argv[1], weights_only=False, map_location='cpu')
print(ck['step'] * json.load(open(sys.argv[2]))['batch_size'])" "models/checkpoints/$name.pt" "$recipe")
    fi
    # one BLAS/OpenMP thread per labelling process: 14 processes with 16 threads each crawled
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 setsid python3 -m models.distill live "$ring" --config "$recipe" --workers "$LIVE_WORKERS" --capacity "$capacity" \
      --first "$first" --archive .gpu/DeepFilterNet3_onnx.tar.gz > /tmp/live_labeller.log 2>&1 < /dev/null &
    echo $! > /tmp/live_labeller.pid
    echo "live labelling started: $LIVE_WORKERS workers, $capacity slots, mixtures from $first on (free disk ${free_kb} kB)"
  fi
fi
status=0
timeout $(( ${minutes%.*} * 60 + 90 )) python3 -m models.train "$recipe" --minutes "$minutes" --no-export || status=$?
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
[ -f /tmp/live_labeller.log ] && tail -3 /tmp/live_labeller.log
exit $status
