"""Constant folding: evaluate nodes whose inputs are all constants once, at build time."""

from __future__ import annotations

import logging

import torch

from fluidrt.ir.graph import Graph
from fluidrt.ops.registry import get_op
from fluidrt.settings import Settings

log = logging.getLogger(__name__)

_MAX_BYTES = 1 << 28  # never materialise a folded constant larger than 256 MiB


def fold_constants(graph: Graph, settings: Settings) -> Graph:
    """Replace every node with only-constant inputs by the constants it computes."""
    folded = 0
    outputs = {id(v) for v in graph.outputs}
    for node in list(graph.nodes):
        ins = [v for v in node.inputs if v is not None]
        if (
            not ins
            or not all(v.is_const for v in ins)
            or get_op(node.op).tags & {"fused", "control"}
        ):
            continue
        if any(id(o) in outputs for o in node.outputs):
            continue  # runners produce outputs from nodes; a constant output keeps its node
        opdef = get_op(node.op)
        args = [None if v is None else torch.from_numpy(v.data.copy()) for v in node.inputs]
        try:
            with torch.inference_mode():
                out = opdef.impl(*args, **opdef.resolve_attrs(node.attrs))
        except Exception as exc:  # leave it for run time, where errors carry full context
            log.debug("constant fold skipped %s (%s): %s", node.name, node.op, exc)
            continue
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        if sum(t.numel() * t.element_size() for t in outs) > _MAX_BYTES:
            continue
        for value, t in zip(node.outputs, outs, strict=True):
            const = graph.add_const(value.name + ".c", t.contiguous().numpy())
            graph.replace_all_uses(value, const)
        graph.remove_node(node)
        folded += 1
    if folded:
        graph.remove_unused_values()
        log.debug("constant folding: folded %d nodes", folded)
    return graph
