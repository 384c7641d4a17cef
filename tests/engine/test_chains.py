"""Whole-engine PDL chain variants: which layers each slack switches to their Triton kernel."""

from __future__ import annotations

import torch

from fluidrt.engine import chains
from fluidrt.engine.runtime import Engine
from fluidrt.ir.text import parse_graph
from fluidrt.ops.infer import infer_node

_CONV = '{"activation": "relu", "act_attrs": {}, "pads": [1, 1, 1, 1]}'
TEXT = f"""
graph g(%x: float32[1,8,6,6]) {{
  %w: float32[8,8,3,3] = const
  %a = fused_conv2d(%x, %w) {_CONV}
  %b = fused_conv2d(%a, %w) {_CONV}
  %c = fused_conv2d(%b, %w) {_CONV}
  %d = fused_conv2d(%c, %w) {_CONV}
  return %d
}}"""

# per layer: the chosen tactic and every candidate's time alone (ms)
TIMINGS = [
    ("cudnn_fused", {"cudnn_fused": 0.010, "triton_conv:a": 0.011}),  # +1 us
    ("cudnn_fused", {"cudnn_fused": 0.010, "triton_conv:a": 0.015, "triton_conv:b": 0.014}),
    ("triton_conv:a", {"cudnn_fused": 0.012, "triton_conv:a": 0.010}),  # already Triton
    ("cudnn_fused", {"cudnn_fused": 0.010, "torch": 0.05}),  # no Triton candidate
]


def _engine() -> Engine:
    g = parse_graph(TEXT, infer=infer_node)
    for node, (tactic, timings) in zip(g.nodes, TIMINGS, strict=True):
        node.meta["tactic"], node.meta["timings_ms"] = tactic, timings
    return Engine(g, torch.device("cpu"))


def test_each_slack_switches_the_layers_within_it() -> None:
    engine = _engine()
    variants = chains.chain_variants(engine)
    # slack 2 us: the first layer only; 6 us: the second too (its faster Triton variant);
    # infinite slack switches nothing more, so it is not a separate variant
    assert [count for _, count in variants.values()] == [1, 2]
    tactics = [[n.meta["tactic"] for n in e.graph.nodes] for e, _ in variants.values()]
    assert tactics[0] == ["triton_conv:a", "cudnn_fused", "triton_conv:a", "cudnn_fused"]
    assert tactics[1] == ["triton_conv:a", "triton_conv:b", "triton_conv:a", "cudnn_fused"]
    # separate engines over the same device weights
    assert all(e.device_constants() is engine.device_constants() for e, _ in variants.values())


def test_the_built_engine_is_left_alone() -> None:
    engine = _engine()
    chains.chain_variants(engine)
    assert [n.meta["tactic"] for n in engine.graph.nodes] == [t for t, _ in TIMINGS]
