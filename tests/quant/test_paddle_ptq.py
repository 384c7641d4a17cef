"""A Paddle post-training-quantized model (``quantize_linear``/``dequantize_linear``, PaddleSlim's
format) runs as INT8 from its own scales and agrees with Paddle Inference's output of it.

Tolerance: fluidrt folds each Q/DQ pair into its INT8 layer with the model's scales and int8
weights, so it computes the same quantized arithmetic as Paddle's fake-quant kernels (measured
rel L2 ~1e-7). Differences can only come from an activation landing within float rounding of a
quantization step boundary (one step of one input value) and from float summation order, so rel
L2 <= 2e-3 and top-1 agreement >= 95% over 64 inputs — while the quantization error itself (the
quantized model vs the float one) is an order of magnitude larger, which the test also checks.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fluidrt
from tests.support.paddle_ref import CACHE, REPO, paddle_infer, rel_l2

pytest.importorskip("paddle")

WORKER = Path(__file__).with_name("ptq_worker.py")
FILES = {"pdmodel": "int8/model.pdmodel", "pir": "pir/model.json"}


@pytest.fixture(scope="module")
def ptq_dir() -> Path:
    key = hashlib.sha1(WORKER.read_bytes()).hexdigest()[:10]
    out = CACHE / f"paddle-ptq-{key}"
    if not (out / "pir" / "model.json").exists():
        env = dict(os.environ, FLAGS_enable_pir_api="0")
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        for step in ("legacy", "pir"):
            subprocess.run(
                [sys.executable, "-m", "tests.quant.ptq_worker", step, str(out)],
                env=env,
                check=True,
                capture_output=True,
                cwd=REPO,
            )
    return out


@pytest.mark.parametrize("fmt", sorted(FILES))
def test_paddle_ptq_model_runs_int8(ptq_dir: Path, fmt: str) -> None:
    model = str(ptq_dir / FILES[fmt])
    params = str(ptq_dir / "int8" / "model.pdiparams")
    x = np.random.default_rng(1).standard_normal((64, 3, 32, 32)).astype(np.float32)
    ref = paddle_infer(str(ptq_dir / "int8" / "model.pdmodel"), params, [x])[0]
    fp32 = paddle_infer(
        str(ptq_dir / "fp32" / "model.pdmodel"), str(ptq_dir / "fp32" / "model.pdiparams"), [x]
    )[0]
    assert rel_l2(ref, fp32) > 5e-3  # the model really is quantized

    cfg = fluidrt.Config(model, params)
    cfg.disable_gpu()
    cfg.enable_tensorrt_engine(
        max_batch_size=64,
        min_subgraph_size=1,
        precision_mode=fluidrt.PrecisionType.Int8,
        use_calib_mode=False,
    )
    pred = fluidrt.create_predictor(cfg)
    out = pred.run([x])[0]
    assert rel_l2(out, ref) <= 2e-3
    assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.95
    summary = pred.summary()
    assert "INT8: 4 of 4 conv/GEMM layer(s) in int8" in summary, summary
    assert "qconv2d x3" in summary and "qmatmul x1" in summary, summary
