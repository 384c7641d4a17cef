"""GPU: engines built over dynamic H/W ranges run every size in range, CUDA graphs bounded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fluidrt.engine.model import partition_and_build
from fluidrt.engine.shape_range import ShapeRangeError
from fluidrt.ir.text import parse_graph
from fluidrt.ops.executor import NativeExecutor
from fluidrt.ops.infer import infer_node
from fluidrt.passes import run_passes
from fluidrt.settings import PrecisionType, Settings
from tests.support.paddle_ref import rel_l2

pytestmark = pytest.mark.gpu

NET = """
graph net(%x: float32[N,8,H,W]) {
  %w1: float32[16,8,3,3] = const
  %c1 = conv2d(%x, %w1) {"pads": [1, 1, 1, 1]}
  %r1 = relu(%c1)
  %p = pool2d(%r1) {"mode": "max", "kernel": [2, 2], "strides": [2, 2]}
  %w2: float32[16,16,3,3] = const
  %c2 = conv2d(%p, %w2) {"pads": [1, 1, 1, 1]}
  %o = sigmoid(%c2)
  return %o
}
"""
SIZES = [(1, 8, 16, 16), (2, 8, 32, 24), (1, 8, 64, 64), (2, 8, 48, 16), (1, 8, 24, 40)]


def _settings(precision: PrecisionType, max_graphs: int) -> Settings:
    return Settings(
        device="cuda",
        use_engine=True,
        max_batch_size=2,
        precision=precision,
        min_input_shape={"x": [1, 8, 16, 16]},
        opt_input_shape={"x": [1, 8, 32, 32]},
        max_input_shape={"x": [2, 8, 64, 64]},
        max_cuda_graphs=max_graphs,
    )


@pytest.mark.parametrize(
    ("precision", "tol"), [(PrecisionType.Float32, 1e-5), (PrecisionType.Half, 1e-2)]
)
def test_dynamic_hw_engine_on_gpu(precision: PrecisionType, tol: float) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    graph = parse_graph(NET, infer=infer_node)
    s = _settings(precision, max_graphs=3)
    model = partition_and_build(run_passes(graph.clone(), s), s, torch.device("cuda"))
    (engine,) = model.engines
    assert engine.ranges["x"].max == (2, 8, 64, 64) and engine.max_cuda_graphs == 3
    reference = NativeExecutor(graph)  # the CPU native path, itself checked against Paddle
    for i, shape in enumerate(SIZES + SIZES[:2]):
        x = torch.from_numpy(np.random.default_rng(i).standard_normal(shape).astype(np.float32))
        (got,) = model.run([x.cuda()])
        (want,) = reference.run([x])
        assert tuple(got.shape) == tuple(want.shape)
        assert rel_l2(got.float().cpu().numpy(), want.numpy()) <= tol, shape
        assert len(model._runners[0]._graphs) <= 3  # one capture per shape, LRU-bounded
    with pytest.raises(ShapeRangeError, match="dim 2 is 80, range 16..64"):
        model.run([torch.zeros(1, 8, 80, 16, device="cuda")])
