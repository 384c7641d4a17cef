"""Redundant transpose/reshape elimination: compose back-to-back transposes and reshapes."""

from __future__ import annotations

import logging

from fluidrt.ir.graph import Graph, Node
from fluidrt.ops.infer import infer_node
from fluidrt.passes.patterns import only_user
from fluidrt.settings import Settings

log = logging.getLogger(__name__)


def _merge_transposes(graph: Graph, first: Node, second: Node) -> None:
    p1, p2 = list(first.attrs["perm"]), list(second.attrs["perm"])
    perm = [p1[i] for i in p2]
    x = first.inputs[0]
    if perm == list(range(len(perm))):
        graph.replace_all_uses(second.outputs[0], x)
    else:
        graph.set_input(second, 0, x)
        second.attrs["perm"] = perm
        infer_node(second)
    out2 = second.outputs[0]
    if not out2.users and out2 not in graph.outputs:
        graph.remove_node(second)
    if not first.outputs[0].users and first.outputs[0] not in graph.outputs:
        graph.remove_node(first)


def simplify_shapes(graph: Graph, settings: Settings) -> Graph:
    """transpose∘transpose -> one transpose (or nothing); reshape∘reshape -> one reshape."""
    changed = 0
    for node in list(graph.nodes):
        if node not in graph.nodes:
            continue
        nxt = only_user(graph, node.outputs[0]) if node.outputs else None
        if nxt is None:
            continue
        if node.op == "transpose" and nxt.op == "transpose":
            _merge_transposes(graph, node, nxt)
            changed += 1
        elif (
            node.op in ("reshape", "flatten", "squeeze", "unsqueeze")
            and nxt.op == "reshape"
            and len(nxt.inputs) == 1
            and 0 not in nxt.attrs.get("shape", [0])
            and node.inputs[0] is not None
        ):
            graph.set_input(nxt, 0, node.inputs[0])
            infer_node(nxt)
            graph.remove_node(node)
            changed += 1
    if changed:
        log.debug("shape simplification: %d rewrites", changed)
    return graph
