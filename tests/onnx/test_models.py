"""Paddle vision models through the real paddle2onnx, run by fluidrt against onnxruntime.

For each model of ``models.SWEEP`` (and of ``models.EXTRA``, PaddleClas models with ViT, when
paddleclas is installed; exported with random weights, converted and cached under
``.cache/onnx-models/``): ``fluidrt.Config("model.onnx")`` with the engine on must match
onnxruntime (CPU) within relative L2 1e-5 at batch 1, and with engines off at batch 2 (the
symbolic batch flowing through the model's Shape/Slice/Concat/Reshape chains at run time).
Results are written to ``.cache/onnx-models/<name>/result.json``.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

import fluidrt  # noqa: E402
from tests.onnx.models import (  # noqa: E402
    EXTRA,
    ONNX_CACHE,
    SWEEP,
    ensure_onnx_model,
    reference_input,
)

TOLERANCE = 1e-5


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def _ort(path: str, x: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SWEEP) + list(EXTRA))
def test_paddle2onnx_model_matches_onnxruntime(name: str) -> None:
    status = ensure_onnx_model(name)
    if "paddle2onnx is not installed" in status.get("error", ""):
        pytest.skip(status["error"])
    if name in EXTRA and "Paddle export failed" in status.get("error", ""):
        pytest.skip(f"{name} needs paddleclas: {status['error'][:200]}")
    assert status["ok"], status.get("error")
    path = status["path"]
    result: dict = {"model": name, "opset": status.get("opset")}

    x1 = reference_input(name, 1)
    ref1 = _ort(path, x1)
    cfg = fluidrt.Config(path)
    cfg.enable_engine()
    t0 = time.perf_counter()
    predictor = fluidrt.create_predictor(cfg)
    result["build_s"] = round(time.perf_counter() - t0, 2)
    predictor.run([x1])
    t0 = time.perf_counter()
    outs = predictor.run([x1])
    result["run_ms"] = round((time.perf_counter() - t0) * 1e3, 1)
    runner = predictor._runner
    result["engine_nodes"] = sum(len(e.graph.nodes) for e in runner.engines)
    result["native_nodes"] = len(runner.native_reasons)
    result["rel_l2"] = [rel_l2(o, r) for o, r in zip(outs, ref1, strict=True)]
    assert [o.shape for o in outs] == [r.shape for r in ref1]

    x2 = reference_input(name, 2)
    ref2 = _ort(path, x2)
    native = fluidrt.Config(path)  # engines off: the symbolic batch at run time
    outs2 = fluidrt.create_predictor(native).run([x2])
    result["rel_l2_batch2_native"] = [rel_l2(o, r) for o, r in zip(outs2, ref2, strict=True)]
    (ONNX_CACHE / name / "result.json").write_text(json.dumps(result, indent=1))

    assert max(result["rel_l2"]) <= TOLERANCE, result
    assert max(result["rel_l2_batch2_native"]) <= TOLERANCE, result
    assert result["engine_nodes"] > 0, predictor.summary()
