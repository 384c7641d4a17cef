#!/usr/bin/env bash
# Set up, lint, and run the whole test suite (fast tests, then the slow model sweep once).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=${PYTHON:-python3}
$PY -m ruff check .
$PY -m pytest -q -p no:cacheprovider "$@"
