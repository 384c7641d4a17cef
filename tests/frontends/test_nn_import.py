"""NN-family Paddle ops imported from both program formats, checked against Paddle Inference.

Every factory in ``tests.frontends.layers_nn`` is exported once per format (module-scoped
fixture) and run through ``fluidrt.create_predictor``. The reference is Paddle Inference on CPU
(``paddle_infer``, oneDNN kernels). Where that cannot run the program (PIR interp and
multi-axis layer_norm on its oneDNN path) or where its oneDNN kernel computes something other
than Paddle's op definition (nearest resampling), the reference is Paddle Inference with oneDNN
disabled, i.e. Paddle's own kernels on the same program.
"""

from __future__ import annotations

import os
import zlib

import numpy as np
import pytest

import fluidrt
from tests.support.paddle_ref import FORMATS, assert_close, export_layers, model_files, paddle_infer

paddle = pytest.importorskip("paddle")

from tests.frontends import layers_nn  # noqa: E402  (needs paddle)

MODULE = "tests.frontends.layers_nn"
NAMES = sorted(layers_nn.INPUTS)

# Where Paddle Inference's oneDNN kernels compute something other than Paddle's op definition:
_NEAREST = (
    "oneDNN nearest resampling rounds a half-pixel source coordinate; Paddle's interp kernels "
    "floor ratio * k, so non-integer ratios pick other pixels"
)
ONEDNN_DEVIATES = {
    "interp_nearest_scale_frac": _NEAREST,
    "interp_nearest_size": _NEAREST,
    "interp_nearest_down": _NEAREST,
    "interp_v2_nearest_align": _NEAREST,
    "adaptive_avg_pool_nhwc": "oneDNN's adaptive pooling gives wrong windows on NHWC input",
}


@pytest.fixture(scope="module")
def exported() -> dict[str, dict[str, str | None]]:
    return {fmt: export_layers([f"{MODULE}:{n}" for n in NAMES], fmt) for fmt in FORMATS}


def make_inputs(name: str) -> list[np.ndarray]:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    return [rng.standard_normal(s).astype("float32") for s in layers_nn.INPUTS[name]]


def reference(name: str, model: str, params: str | None, inputs: list[np.ndarray]):
    if name in ONEDNN_DEVIATES:
        return paddle_infer(model, params or "", inputs, onednn=False)
    try:
        return paddle_infer(model, params or "", inputs)
    except Exception:  # Paddle Inference's oneDNN path cannot run the program
        return paddle_infer(model, params or "", inputs, onednn=False)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", NAMES)
def test_nn_layer(name: str, fmt: str, exported) -> None:
    prefix = exported[fmt][f"{MODULE}:{name}"]
    if prefix is None:
        pytest.skip(f"Paddle cannot export {name} in {fmt} format")
    model, params = model_files(prefix, fmt)
    params = params if os.path.exists(params) else None
    inputs = make_inputs(name)
    predictor = fluidrt.create_predictor(fluidrt.Config(model, params))
    got = predictor.run([x.copy() for x in inputs])
    want = reference(name, model, params, inputs)
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert_close(g, w, what=f"{name} ({fmt}) output {i}")
