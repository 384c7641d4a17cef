"""The fp16 range guard keeps layers whose activations fp16 cannot hold in fp32."""

from __future__ import annotations

import numpy as np
import torch

from fluidrt.engine.builder import build_engine
from fluidrt.ir.text import parse_graph
from fluidrt.ops.infer import infer_node
from fluidrt.settings import PrecisionType, Settings

# %big overflows fp16 (x * 1e5), %tiny underflows it (x * 1e-9); %ok is in range
GRAPH = """
graph g(%x: float32[N,8]) {
  %w: float32[8,8] = const
  %ok = matmul(%x, %w)
  %big = scale(%ok) {"scale": 100000.0}
  %tiny = scale(%ok) {"scale": 1e-9}
  %r = relu(%big)
  %s = relu(%tiny)
  return %r, %s
}"""


def _graph():
    g = parse_graph(GRAPH, infer=infer_node)
    g.values["w"].data = np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32)
    return g


def test_out_of_range_layers_stay_fp32() -> None:
    settings = Settings(use_engine=True, precision=PrecisionType.Half, max_batch_size=4)
    engine = build_engine(_graph(), settings, torch.device("cpu"))
    prec = {n.outputs[0].name: n.meta.get("precision") for n in engine.graph.nodes}
    assert prec["ok"] == "float16"
    assert prec["big"] == "float32" and prec["r"] == "float32"
    assert prec["tiny"] == "float32" and prec["s"] == "float32"
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((4, 8)).astype(np.float32))
    r, s = engine.create_execution_context().run([x])
    ref = torch.relu(x @ torch.from_numpy(_graph().values["w"].data))
    assert torch.isfinite(r).all()
    assert torch.allclose(r, ref * 1e5, rtol=1e-2, atol=1.0)
    assert torch.allclose(s, ref * 1e-9, rtol=1e-2, atol=1e-11)


def test_user_override_wins() -> None:
    settings = Settings(
        use_engine=True,
        precision=PrecisionType.Half,
        max_batch_size=4,
        precision_overrides={"scale": "float16"},
    )
    engine = build_engine(_graph(), settings, torch.device("cpu"))
    prec = {n.outputs[0].name: n.meta.get("precision") for n in engine.graph.nodes}
    assert prec["big"] == "float16"
