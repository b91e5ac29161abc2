#!/usr/bin/env bash
# The device tool carries at most 64 MiB (working tree + .gpu). Before a lent-GPU call:
#   bash models/lent_gpu_slim.sh out    # tracked data files over 40 KB move to ../noisenil-slim (the sitting needs none)
# and right after it:
#   bash models/lent_gpu_slim.sh back   # and check that git status is clean again
# A checkpoint the recipe starts from travels xz-compressed in .gpu/ckpt (see lent_gpu_sitting.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
aside=${NOISENIL_SLIM_DIR:-../noisenil-slim}
case "${1:-}" in
  out)
    mkdir -p "$aside"
    # code and recipes always travel (models/distill.py outgrew 40 KB and a sitting failed on it)
    git ls-files -z | xargs -0 du -b | awk '$1 > 40000 {print $2}' | grep -v -E '\.(py|sh|json)$' > "$aside/list"
    while read -r f; do mkdir -p "$aside/$(dirname "$f")"; mv "$f" "$aside/$f"; done < "$aside/list"
    echo "moved $(wc -l < "$aside/list") files to $aside; travelling now: $(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1) bytes tracked + $(du -sb .gpu 2>/dev/null | cut -f1) in .gpu"
    ;;
  back)
    [ -f "$aside/list" ] || { echo "error: $aside/list: nothing was moved aside" >&2; exit 2; }
    while read -r f; do [ -f "$aside/$f" ] && { mkdir -p "$(dirname "$f")"; mv "$aside/$f" "$f"; }; done < "$aside/list"
    rm "$aside/list"
    git status --short
    ;;
  *) echo "usage: bash models/lent_gpu_slim.sh out|back" >&2; exit 2 ;;
esac
