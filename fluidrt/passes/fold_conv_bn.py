"""Conv + batch-norm folding: scale the conv weights and shift its bias, drop the batch norm."""

from __future__ import annotations

import logging

import numpy as np

from fluidrt.ir.graph import Graph
from fluidrt.passes.patterns import absorb_channel_bias, const_data, only_user
from fluidrt.settings import Settings

log = logging.getLogger(__name__)


def fold_conv_bn(graph: Graph, settings: Settings) -> Graph:
    """conv2d(x, w, b) -> batch_norm(scale, bias, mean, var)  ==>  conv2d(x, w', b')."""
    folded = 0
    for conv in list(graph.nodes):
        if conv.op != "conv2d" or conv not in graph.nodes:
            continue
        bn = only_user(graph, conv.outputs[0])
        if bn is not None and bn.op == "add" and absorb_channel_bias(graph, conv):
            bn = only_user(graph, conv.outputs[0])  # conv -> bias add -> bn: bias folded first
        if bn is None or bn.op != "batch_norm" or bn.inputs[0] is not conv.outputs[0]:
            continue
        w = const_data(conv.inputs[1])
        b = const_data(conv.inputs[2]) if len(conv.inputs) > 2 else None
        params = [const_data(v) for v in bn.inputs[1:5]]
        if w is None or any(p is None for p in params):
            continue
        if len(conv.inputs) > 2 and conv.inputs[2] is not None and b is None:
            continue  # a run-time bias cannot be folded
        scale, shift, mean, var = (p.astype(np.float64).reshape(-1) for p in params)
        s = scale / np.sqrt(var + float(bn.attrs.get("epsilon", 1e-5)))
        w_new = (w.astype(np.float64) * s.reshape(-1, *([1] * (w.ndim - 1)))).astype(w.dtype)
        b_old = np.zeros_like(s) if b is None else b.astype(np.float64).reshape(-1)
        b_new = ((b_old - mean) * s + shift).astype(w.dtype)
        graph.set_input(conv, 1, graph.add_const(conv.inputs[1].name + ".bn", w_new))
        bias = graph.add_const(conv.name + ".bias", b_new)
        if len(conv.inputs) > 2:
            graph.set_input(conv, 2, bias)
        else:
            conv.inputs.append(bias)
            bias.users.append(conv)
        graph.replace_all_uses(bn.outputs[0], conv.outputs[0])
        for extra in bn.outputs[1:]:  # running-stat outputs: never read at inference
            if extra.users:
                break
        else:
            graph.remove_node(bn)
            folded += 1
    if folded:
        graph.remove_unused_values()
        log.debug("conv+bn folding: folded %d batch norms", folded)
    return graph
