"""Lane (auxiliary stream) plans for parallel branches: who runs where and who waits for whom."""

from __future__ import annotations

import pytest

import fluidrt
from fluidrt.engine.inplace import DONATE
from fluidrt.engine.streams import plan_lanes
from fluidrt.errors import ConfigError
from fluidrt.ir.text import parse_graph
from fluidrt.ops.infer import infer_node

_C = '{"activation": "relu", "act_attrs": {}, "pads": [1, 1, 1, 1]}'
_P = '{"activation": "relu", "act_attrs": {}}'

# an Inception-like block: three branches of the stem's output, concatenated
BLOCK = f"""
graph g(%x: float32[1,8,6,6]) {{
  %w: float32[8,8,3,3] = const
  %w1: float32[8,8,1,1] = const
  %s = fused_conv2d(%x, %w) {_C}
  %a = fused_conv2d(%s, %w1) {_P}
  %b1 = fused_conv2d(%s, %w) {_C}
  %b2 = fused_conv2d(%b1, %w) {_C}
  %c = fused_conv2d(%s, %w1) {_P}
  %y = concat(%a, %b2, %c) {{"axis": 1}}
  return %y
}}"""

# a bottleneck with a projection shortcut: the projection reads the block input too
RESIDUAL = f"""
graph g(%x: float32[1,8,6,6]) {{
  %w: float32[8,8,3,3] = const
  %w1: float32[8,8,1,1] = const
  %s = fused_conv2d(%x, %w) {_C}
  %h = fused_conv2d(%s, %w) {_C}
  %p = fused_conv2d(%s, %w1) {_P}
  %y = fused_conv2d(%h, %w, _, %p) {_C}
  return %y
}}"""


def _plan(text: str, lanes: int):
    g = parse_graph(text, infer=infer_node)
    return g, plan_lanes(g, lanes)


def test_branches_spread_over_lanes_and_the_join_waits_for_them() -> None:
    g, plan = _plan(BLOCK, 4)
    lane = dict(zip((n.outputs[0].name for n in g.nodes), plan.lane_of, strict=True))
    # the first reader of the stem continues its lane; the other two take auxiliary lanes;
    # a branch's second layer stays on its branch's lane
    assert lane["s"] == lane["a"] == lane["y"] == 0
    assert {lane["b1"], lane["c"]} == {1, 2} and lane["b2"] == lane["b1"]
    order = [n.outputs[0].name for n in g.nodes]
    concat = order.index("y")
    assert sorted(order[j] for j in plan.waits[concat]) == ["b2", "c"]
    assert plan.lanes == 3 and plan.shared["s"] == {1, 2}
    assert {order[j] for j in plan.signal} == {"s", "b2", "c"}


def test_one_lane_keeps_everything_on_the_callers_stream() -> None:
    _, plan = _plan(BLOCK, 1)
    assert plan.lanes == 1 and set(plan.lane_of) == {0}
    assert not any(plan.waits) and not plan.shared and not plan.signal


def test_projection_shortcut_runs_beside_the_main_path() -> None:
    g, plan = _plan(RESIDUAL, 2)
    order = [n.outputs[0].name for n in g.nodes]
    lane = dict(zip(order, plan.lane_of, strict=True))
    assert lane["h"] == 0 and lane["p"] == 1 and lane["y"] == 0
    assert [order[j] for j in plan.waits[order.index("y")]] == ["p"]


def test_in_place_layer_waits_for_every_other_reader_of_its_residual() -> None:
    text = f"""
graph g(%x: float32[1,8,6,6]) {{
  %w: float32[8,8,3,3] = const
  %s = fused_conv2d(%x, %w) {_C}
  %h = fused_conv2d(%s, %w) {_C}
  %k = fused_conv2d(%s, %w) {_C}
  %y = fused_conv2d(%h, %w, _, %s) {_C}
  %z = add(%y, %k)
  return %z
}}"""
    g = parse_graph(text, infer=infer_node)
    order = [n.outputs[0].name for n in g.nodes]
    g.nodes[order.index("y")].meta[DONATE] = True
    plan = plan_lanes(g, 2)
    lane = dict(zip(order, plan.lane_of, strict=True))
    assert lane["k"] != lane["y"]  # %k reads %s on another lane
    assert order.index("k") in plan.waits[order.index("y")]


def test_config_max_aux_streams() -> None:
    cfg = fluidrt.Config("m.onnx")
    assert cfg.settings.max_aux_streams == -1
    cfg.set_max_aux_streams(0)
    assert cfg.settings.max_aux_streams == 0
    with pytest.raises(ConfigError, match="set_max_aux_streams"):
        cfg.set_max_aux_streams(-2)
