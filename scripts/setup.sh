#!/usr/bin/env bash
# Set up NoiseNil on a fresh Debian/Ubuntu machine: system packages, then a virtual environment
# in .venv with NoiseNil and the extras named in $NOISENIL_EXTRAS (default: dev,eval).
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  need=()
  # libportaudio2: live audio; espeak-ng: the example recording; jackd2 + jack-tools: the virtual
  # sound card the live tests start (JACK's dummy backend), procps for pgrep
  for pkg in libportaudio2 espeak-ng jackd2 jack-tools procps; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing system packages: ${need[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[${NOISENIL_EXTRAS:-dev,eval}]"
