"""Identity removal: identity, scale 1/0, cast to the same dtype, no-op reshapes and concats."""

from __future__ import annotations

import logging

from fluidrt.ir.graph import Graph, Node, Value
from fluidrt.settings import Settings

log = logging.getLogger(__name__)

_SHAPE_OPS = {"reshape", "flatten", "squeeze", "unsqueeze", "expand"}


def _is_identity(node: Node) -> Value | None:
    """The input ``node`` merely passes through, or None."""
    x = node.inputs[0] if node.inputs else None
    if x is None or len(node.outputs) != 1:
        return None
    out = node.outputs[0]
    a = node.attrs
    if node.op == "identity":
        return x
    if node.op == "scale" and a.get("scale", 1.0) == 1.0 and a.get("bias", 0.0) == 0.0:
        return x
    if node.op == "cast" and a.get("dtype") == x.dtype:
        return x
    if node.op in _SHAPE_OPS and x.static_shape is not None and x.static_shape == out.static_shape:
        return x
    if (
        node.op in _SHAPE_OPS
        and x.shape is not None
        and x.shape == out.shape
        and "?" not in str(x.shape)
    ):
        return x
    if node.op == "concat" and len(node.inputs) == 1:
        return x
    if node.op == "transpose" and list(a.get("perm", [])) == list(range(len(a.get("perm", [])))):
        return x
    return None


def remove_identities(graph: Graph, settings: Settings) -> Graph:
    """Bypass and delete nodes that do not change their input."""
    removed = 0
    for node in list(graph.nodes):
        src = _is_identity(node)
        if src is None:
            continue
        out = node.outputs[0]
        if out in graph.outputs and (src.producer is None or src in graph.outputs):
            continue  # keep graph outputs distinct from inputs, constants and each other
        graph.replace_all_uses(out, src)
        graph.remove_node(node)
        removed += 1
    if removed:
        log.debug("identity removal: removed %d nodes", removed)
    return graph
