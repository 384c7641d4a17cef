"""In-place residual adds (oneDNN's sum post-op) and the oneDNN inner-product tactic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fluidrt.engine.builder import build_engine
from fluidrt.engine.inplace import donatable_residuals
from fluidrt.ops.executor import NativeExecutor
from fluidrt.settings import Settings
from tests.support.graphs import seeded_graph

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="no oneDNN")

_CONV = '"activation": "relu", "act_attrs": {}, "pads": [1, 1, 1, 1]'

# two bottleneck-like blocks: %a is read by a conv and then, last, as %c's residual (donated);
# %c is read as %e's residual while %keep (a pool, a view-free but non-conv reader) still needs it
BLOCKS = f"""
graph g(%x: float32[N,8,6,6]) {{
  %w0: float32[8,8,3,3] = const
  %w1: float32[8,8,3,3] = const
  %w2: float32[8,8,3,3] = const
  %w3: float32[8,8,3,3] = const
  %w4: float32[8,8,3,3] = const
  %b: float32[8] = const
  %a = fused_conv2d(%x, %w0, %b) {{{_CONV}}}
  %h = fused_conv2d(%a, %w1, %b) {{{_CONV}}}
  %c = fused_conv2d(%h, %w2, %b, %a) {{{_CONV}}}
  %d = fused_conv2d(%c, %w3, %b) {{{_CONV}}}
  %e = fused_conv2d(%d, %w4, %b, %c) {{{_CONV}}}
  %keep = relu(%c)
  %f = add(%e, %keep)
  return %f
}}"""


_graph = seeded_graph


def test_only_dead_conv_produced_residuals_are_donated() -> None:
    g = _graph(BLOCKS)
    names = {n.outputs[0].name: n.name for n in g.nodes}
    assert donatable_residuals(g) == {names["c"]}


def test_residual_that_is_an_engine_input_or_output_is_kept() -> None:
    g = _graph(f"""
graph g(%x: float32[N,8,6,6]) {{
  %w0: float32[8,8,3,3] = const
  %w1: float32[8,8,3,3] = const
  %b: float32[8] = const
  %a = fused_conv2d(%x, %w0, %b, %x) {{{_CONV}}}
  %c = fused_conv2d(%a, %w1, %b, %a) {{{_CONV}}}
  return %c, %a
}}""")
    assert donatable_residuals(g) == set()


def _run_both(text: str, x: np.ndarray) -> tuple[list[torch.Tensor], list[torch.Tensor], object]:
    g = _graph(text)
    ref = NativeExecutor(_graph(text)).run([torch.from_numpy(x)])
    engine = build_engine(g, Settings(use_engine=True, max_batch_size=2), torch.device("cpu"))
    ctx = engine.create_execution_context()
    return [ctx.run([torch.from_numpy(x)]) for _ in range(3)], ref, engine


def test_engine_with_in_place_residuals_matches_native_every_run() -> None:
    x = np.random.default_rng(1).standard_normal((2, 8, 6, 6)).astype(np.float32)
    runs, ref, engine = _run_both(BLOCKS, x)
    donated = [n for n in engine.graph.nodes if n.meta.get("donate_residual")]
    assert len(donated) == 1
    for outs in runs:  # no run may see a tensor an earlier run overwrote
        for got, want in zip(outs, ref, strict=True):
            err = (got - want).norm() / want.norm()
            assert err <= 1e-5, err


@pytest.mark.parametrize(
    ("activation", "act_attrs"),
    [
        ("none", {}),
        ("relu", {}),
        ("gelu", {}),
        ("clip", {"min": -0.5, "max": 0.5}),
        ("leaky_relu", {"alpha": 0.2}),
    ],
)
def test_onednn_linear_matches_native(activation: str, act_attrs: dict) -> None:
    import json

    attrs = json.dumps({"activation": activation, "act_attrs": act_attrs})
    text = f"""
graph g(%x: float32[N,5,32]) {{
  %w: float32[32,24] = const
  %b: float32[24] = const
  %y = fused_matmul(%x, %w, %b) {attrs}
  return %y
}}"""
    g = _graph(text)
    node = g.nodes[0]
    from fluidrt.engine.runtime import prepare_layer

    consts = {i: torch.from_numpy(v.data) for i, v in enumerate(node.inputs) if v.is_const}
    run = prepare_layer(node, "onednn_linear", consts, torch.device("cpu"))
    x = torch.from_numpy(np.random.default_rng(2).standard_normal((3, 5, 32)).astype(np.float32))
    (got,) = run([x, None, None])
    (want,) = NativeExecutor(_graph(text)).run([x])
    assert got.shape == want.shape == (3, 5, 24)
    assert ((got - want).norm() / want.norm()).item() <= 1e-5


@pytest.mark.parametrize("activation", ["gelu", "silu", "relu"])
def test_onednn_conv_post_ops_match_native(activation: str) -> None:
    """Every activation the oneDNN conv tactic claims runs through it (exact GELU included)."""
    from fluidrt.engine.runtime import prepare_layer

    attrs = f'{{"activation": "{activation}", "act_attrs": {{}}, "pads": [1, 1, 1, 1]}}'
    text = f"""
graph g(%x: float32[N,8,6,6]) {{
  %w: float32[8,8,3,3] = const
  %b: float32[8] = const
  %y = fused_conv2d(%x, %w, %b) {attrs}
  return %y
}}"""
    g = _graph(text)
    node = g.nodes[0]
    consts = {i: torch.from_numpy(v.data) for i, v in enumerate(node.inputs) if v.is_const}
    run = prepare_layer(node, "onednn_fused", consts, torch.device("cpu"))
    x = torch.from_numpy(np.random.default_rng(3).standard_normal((2, 8, 6, 6)).astype(np.float32))
    (got,) = run([x, None, None])
    (want,) = NativeExecutor(_graph(text)).run([x])
    assert ((got - want).norm() / want.norm()).item() <= 1e-5
