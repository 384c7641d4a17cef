"""Which engines let cuDNN/cuBLAS use TF32 for their fp32 layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fluidrt.engine.builder import build_engine
from fluidrt.ir.text import parse_graph
from fluidrt.ops.infer import infer_node
from fluidrt.settings import PrecisionType, Settings

GRAPH = """
graph g(%x: float32[N,8]) {
  %w: float32[8,8] = const
  %y = matmul(%x, %w)
  %r = relu(%y)
  return %r
}"""


def _engine(settings: Settings):
    g = parse_graph(GRAPH, infer=infer_node)
    g.values["w"].data = np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32)
    return build_engine(g, settings, torch.device("cpu"))


@pytest.mark.parametrize(
    ("precision", "pins", "opt_in", "tf32"),
    [
        (PrecisionType.Float32, {}, False, False),  # fp32 engines: strict
        (PrecisionType.Float32, {}, True, True),
        (PrecisionType.Half, {}, False, True),  # the layers a half engine keeps in fp32
        (PrecisionType.Bfloat16, {}, False, True),
        (PrecisionType.Half, {"matmul": "float32"}, False, False),  # pinned: strict fp32
        (PrecisionType.Half, {"relu": "float16"}, False, True),  # a half pin is no fp32 pin
        (PrecisionType.Half, {"matmul": "float32"}, True, True),  # the user's opt-in wins
    ],
)
def test_tf32(precision: PrecisionType, pins: dict, opt_in: bool, tf32: bool) -> None:
    settings = Settings(use_engine=True, precision=precision, max_batch_size=2)
    settings.precision_overrides = dict(pins)
    settings.allow_tf32 = opt_in
    assert _engine(settings).allow_tf32 is tf32
