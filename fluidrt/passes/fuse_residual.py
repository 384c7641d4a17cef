"""Residual add (+ activation) fusion into the producing conv or matmul."""

from __future__ import annotations

import logging

from fluidrt.ir.graph import Graph, Node, Value
from fluidrt.ops.infer import infer_node
from fluidrt.passes.patterns import ACTIVATIONS, only_user, same_shape
from fluidrt.settings import Settings

log = logging.getLogger(__name__)

_PRODUCERS = {
    "conv2d": "fused_conv2d",
    "fused_conv2d": "fused_conv2d",
    "fused_matmul": "fused_matmul",
    "matmul": "fused_matmul",
}


def _candidate(graph: Graph, add: Node, value: Value, other: Value) -> Node | None:
    node = value.producer
    if node is None or node.op not in _PRODUCERS or only_user(graph, value) is not add:
        return None
    if node.attrs.get("activation", "none") != "none" or len(node.inputs) > 3:
        return None
    if other.is_const or not same_shape(value, other) or other is value:
        return None
    if node.op in ("matmul", "fused_matmul") and not (node.inputs[1] and node.inputs[1].is_const):
        return None
    return node


def _depths(graph: Graph) -> dict[int, int]:
    """Each node's longest chain of producers back to the graph's inputs (by node id)."""
    depth: dict[int, int] = {}
    for node in graph.nodes:  # topological order
        depth[id(node)] = 1 + max(
            (depth.get(id(v.producer), 0) for v in node.inputs if v is not None and v.producer),
            default=0,
        )
    return depth


def _ranker(graph: Graph):
    """Sort key for (fused operand, residual) pairs: deeper producer first, then later one."""
    depth = _depths(graph)
    order = {id(n): i for i, n in enumerate(graph.nodes)}

    def rank(pair: tuple[Value, Value]) -> tuple[int, int]:
        p = pair[0].producer
        return (-depth.get(id(p), -1), -order.get(id(p), -1)) if p is not None else (1, 0)

    return rank


def fuse_residual(graph: Graph, settings: Settings) -> Graph:
    """add(conv(x), r) [-> act]  ==>  fused_conv2d(x, w, b, r, activation=act)."""
    fused_count = 0
    for add in list(graph.nodes):
        if add not in graph.nodes or add.op != "add" or len(add.inputs) != 2:
            continue
        a, b = add.inputs
        if a is None or b is None:
            continue
        # prefer fusing into the producer on the longer path: the other operand (a projection
        # shortcut) is then a residual input that can be computed beside the main path (on
        # another CUDA stream, fluidrt.engine.streams); on a tie, the later producer
        pairs = sorted([(a, b), (b, a)], key=_ranker(graph))
        for value, other in pairs:
            node = _candidate(graph, add, value, other)
            if node is not None:
                break
        else:
            continue
        last = add
        act = only_user(graph, add.outputs[0])
        attrs = {k: v for k, v in node.attrs.items() if k not in ("activation", "act_attrs")}
        if act is not None and act.op in ACTIVATIONS and len(act.inputs) == 1:
            attrs.update(activation=act.op, act_attrs=dict(act.attrs))
            last = act
        inputs = list(node.inputs) + [None] * (3 - len(node.inputs)) + [other]
        fused = graph.add_node(
            _PRODUCERS[node.op],
            inputs,
            attrs,
            outputs=[last.outputs[0].name + ".r"],
            name=node.name,
            index=graph.nodes.index(last) + 1,
        )
        fused.meta.update(node.meta)
        infer_node(fused)
        graph.replace_all_uses(last.outputs[0], fused.outputs[0])
        if last is not add:
            graph.remove_node(last)
        graph.remove_node(add)
        graph.remove_node(node)
        fused_count += 1
    if fused_count:
        log.debug("residual fusion: fused %d adds", fused_count)
    return graph
