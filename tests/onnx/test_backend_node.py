"""The official ONNX backend node tests (shipped in the ``onnx`` package) against fluidrt.

Every node test runs through ``fluidrt.onnx.backend`` (import, passes, engines on). A test is
skipped only with a reason:

* the model uses an op, opset or element type fluidrt does not import: the reason is the
  ``UnsupportedOpError`` fluidrt raises for it (computed per test at collection);
* the test is in ``EXCLUDE`` below: a known limitation of a supported op, with its reason.

The counts (passed / excluded as unsupported / excluded as known limitations / failed) are
printed at the end of the run (``tests/onnx/conftest.py``).
"""

from __future__ import annotations

import logging
import re
import unittest
import warnings

import pytest

pytest.importorskip("onnx")

import onnx  # noqa: E402
import onnx.backend.test  # noqa: E402

import fluidrt.onnx.backend as backend  # noqa: E402
from fluidrt.errors import FluidrtError, UnsupportedOpError  # noqa: E402
from fluidrt.frontends.onnx import import_onnx_model  # noqa: E402

# pattern -> why it is excluded; searched in the test name without the _cpu/_cuda suffix, and
# with it (for patterns that end in _cuda: known failures of one device)
EXCLUDE: dict[str, str] = {
    r"^test_(attention_.*_bf16|celu_bfloat16)_expanded$": (
        "bfloat16: the constant-folding pass (passes/constant_fold.py) materialises folded "
        "values as NumPy arrays, and NumPy has no bfloat16"
    ),
    r"^test_attention_4d_causal_fp16_expanded$": (
        "float16 rounding: the expanded graph runs softmax and matmuls in float16 on the CPU; "
        "2 of 192 outputs differ from the float32-accumulated reference by 1 ulp (> rtol 1e-3)"
    ),
    r"^test_reduce_(max|min)_empty_set(_bool)?$": (
        "reducing an empty dim: the canonical reduce_max/reduce_min (torch.amax/amin) reject "
        "empty reductions; ONNX defines them as -inf/+inf (or False/True)"
    ),
    r"^test_resize_(up|down)sample_sizes_nearest$": (
        "nearest ties: the canonical resize maps dst -> src by multiplying with in/out in "
        "float32 (Paddle's kernels); ONNX divides by out/in, so a source coordinate of exactly "
        ".5 comes out as .50000001 and rounds the other way"
    ),
    r"^test_resize_downsample_scales_(linear|cubic)_align_corners$": (
        "align_corners with a fractional output size: ONNX uses (in - 1) / (in * scale - 1), "
        "the canonical resize (in - 1) / (out - 1) with the integer output size"
    ),
    r"^test_rotary_embedding.*_expanded$": (
        "partitioner bug: engine clusters of this graph form a cycle ('engine clusters form a "
        "cycle; this is a partitioner bug' in engine/model.py); reported to the integrator"
    ),
    r"^test_averagepool_2d_(ceil|pads|same_lower|same_upper)_cuda$": (
        "CUDA engines: the canonical pool2d builds its count_include_pad=0 divisor on the host "
        "(torch.from_numpy(...).to(device)), which CUDA-graph capture rejects; reported"
    ),
    r"^test_(training_dropout|dropout_random|bernoulli|randomnormal|randomuniform)": (
        "random outputs: training-mode dropout and random generators cannot match the "
        "reference values"
    ),
}

_DEVICE_SUFFIX = re.compile(r"_(cpu|cuda)$")
STATS: dict[str, int] = {}
REASONS: dict[str, str] = {}  # test name (with device suffix) -> reason for the skip


def _unsupported_reason(model: onnx.ModelProto) -> str | None:
    """Why fluidrt cannot import ``model`` (None: it can)."""
    try:
        import_onnx_model(model, "<node test>")
    except UnsupportedOpError as exc:
        return "unsupported by fluidrt: " + str(exc).replace("<node test>: ", "")[:300]
    except FluidrtError:
        return None  # a real import bug: let the test run and fail
    return None


def _build() -> dict[str, type[unittest.TestCase]]:
    logging.getLogger("fluidrt").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner = onnx.backend.test.BackendTest(backend.FluidrtBackend, __name__)
        from onnx.backend.test.loader import load_model_tests

        models = {c.name: c.model for c in load_model_tests(kind="node")}
    cls = runner.test_cases["OnnxBackendNodeModelTest"]
    unsupported = known = 0
    for attr in dir(cls):
        if not attr.startswith("test_"):
            continue
        base = _DEVICE_SUFFIX.sub("", attr)
        reason = next(
            (why for pat, why in EXCLUDE.items() if re.search(pat, base) or re.search(pat, attr)),
            None,
        )
        if reason is not None:
            known += 1
        elif base in models:
            reason = _unsupported_reason(models[base])
            unsupported += reason is not None
        if reason is not None:
            REASONS[attr] = reason
            setattr(cls, attr, unittest.skip(reason)(getattr(cls, attr)))
    STATS.update(unsupported=unsupported, known=known)
    return {"OnnxBackendNodeModelTest": cls}


globals().update(_build())
