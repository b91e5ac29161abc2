#!/usr/bin/env bash
# Fresh machine -> whole test suite (installs what it needs first). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
NOISENIL_EXTRAS=dev,eval,gui bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
