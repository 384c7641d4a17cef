#!/usr/bin/env bash
# Set up, then import a real Paddle model, run it with fluidrt and Paddle Inference, and compare.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
${PYTHON:-python3} examples/quickstart.py "$@"
