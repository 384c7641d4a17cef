#!/usr/bin/env bash
# Install fluidrt with everything its tests, benchmarks and examples need (CPU machine).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# torch is pinned in requirements-dev.txt: an unpinned torch pulls several GB of CUDA wheels.
$PY -m pip install -q -r requirements-dev.txt
# Ray Data batch inference (fluidrt.ray, tests/ray)
$PY -m pip install -q -r requirements-ray.txt
# paddleclas declares old pins that break the install; its backbones need only plain imports.
# paddle2onnx pins onnx<=1.17 (it works with the newer onnx the tests use): its own deps are in
# requirements-dev.txt.
$PY -m pip install -q --no-deps paddleclas==2.6.0 paddle2onnx==2.1.0
# PaddleDetection / PaddleSeg models (tools/export_detection_models.py): both declare old pins
# (numpy<1.24, opencv<=4.6); their plain imports are in requirements-dev.txt. ppdet's
# `import pkg_resources` (gone from setuptools >= 81) is met by a shim inside the export tool.
$PY -m pip install -q --no-deps paddledet==2.6.0 paddleseg==2.8.0
$PY -m pip install -q --no-deps -e .
