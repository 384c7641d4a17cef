"""Detection-family Paddle layers exported as PIR and ProgramDesc programs, run through
``fluidrt.create_predictor`` and compared with Paddle Inference on CPU (Paddle's own kernels,
oneDNN off: several detection ops have no oneDNN kernel).

Dense outputs: relative L2 <= 1e-5; outputs listed in ``DETECTION_OUTPUTS`` are compared as
detection sets (rows sorted, boxes within 1e-4, same labels and counts).
"""

from __future__ import annotations

import os
import zlib

import numpy as np
import pytest

import fluidrt
from tests.support.paddle_ref import FORMATS, assert_close, export_layers, model_files, paddle_infer

paddle = pytest.importorskip("paddle")

from tests.frontends import layers_detection  # noqa: E402  (needs paddle)
from tests.ops.test_detection_ops import assert_same_detections  # noqa: E402

MODULE = "tests.frontends.layers_detection"
NAMES = sorted(layers_detection.INPUTS)


@pytest.fixture(scope="module")
def exported() -> dict[str, dict[str, str | None]]:
    return {fmt: export_layers([f"{MODULE}:{n}" for n in NAMES], fmt) for fmt in FORMATS}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", NAMES)
def test_detection_layer(name: str, fmt: str, exported) -> None:
    prefix = exported[fmt][f"{MODULE}:{name}"]
    if prefix is None:
        pytest.skip(f"Paddle cannot export {name} in {fmt} format")
    model, params = model_files(prefix, fmt)
    params = params if os.path.exists(params) else None
    inputs = layers_detection.INPUTS[name](np.random.default_rng(zlib.crc32(name.encode())))
    predictor = fluidrt.create_predictor(fluidrt.Config(model, params))
    got = predictor.run([x.copy() for x in inputs])
    want = paddle_infer(model, params or "", inputs, onednn=False)
    assert len(got) == len(want)
    sets = layers_detection.DETECTION_OUTPUTS.get(name, ())
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        if i in sets:
            assert_same_detections(g, w, f"{name} ({fmt}) output {i}")
        else:
            assert_close(g, w, what=f"{name} ({fmt}) output {i}")
