"""INT8 with ``use_static`` on CUDA: the calibrated INT8 engines (Triton / cuBLASLt tactics) are
written to the optim cache and the next predictor loads them with no calibration and no build."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.gpu


def test_int8_plan_round_trips_through_the_optim_cache(tmp_path: Path) -> None:
    import fluidrt
    from fluidrt.engine.model import PartitionedModel
    from tests.quant.test_int8 import _Net

    torch.manual_seed(0)
    model = str(tmp_path / "net.onnx")
    torch.onnx.export(
        _Net().eval(),
        torch.randn(1, 3, 16, 16),
        model,
        input_names=["x"],
        dynamic_axes={"x": {0: "N"}},
        dynamo=False,
    )
    cache = str(tmp_path / "cache")

    def config() -> fluidrt.Config:
        cfg = fluidrt.Config(model)
        cfg.enable_use_gpu(256, 0)
        cfg.enable_tensorrt_engine(
            max_batch_size=4,
            min_subgraph_size=1,
            precision_mode=fluidrt.PrecisionType.Int8,
            use_static=True,
            use_calib_mode=True,
        )
        cfg.set_optim_cache_dir(cache)
        cfg.set_calibration(num_inputs=8, min_inputs=8, algorithm="minmax", sensitivity_threshold=0)
        return cfg

    rng = np.random.default_rng(0)
    first = fluidrt.create_predictor(config())
    for _ in range(2):
        first.run([rng.standard_normal((4, 3, 16, 16)).astype(np.float32)])
    assert len([f for f in os.listdir(cache) if f.endswith(".plan")]) == 1
    x = rng.standard_normal((4, 3, 16, 16)).astype(np.float32)
    want = first.run([x])[0]
    second = fluidrt.create_predictor(config())
    assert isinstance(second._runner, PartitionedModel)
    assert "qconv2d" in second.summary()
    np.testing.assert_allclose(second.run([x])[0], want, rtol=1e-6, atol=1e-6)
