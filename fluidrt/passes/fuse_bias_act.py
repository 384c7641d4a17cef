"""Conv/matmul + bias + activation fusion into ``fused_conv2d`` / ``fused_matmul``."""

from __future__ import annotations

import logging

import numpy as np

from fluidrt.ir.graph import Graph, Node
from fluidrt.ops.infer import infer_node
from fluidrt.passes.patterns import ACTIVATIONS, channel_vector, const_data, only_user
from fluidrt.settings import Settings

log = logging.getLogger(__name__)


def _absorb_bias(graph: Graph, node: Node) -> bool:
    """Fold a following ``add(y, const)`` that is a per-output-channel bias into ``node``."""
    y = node.outputs[0]
    add = only_user(graph, y)
    if add is None or add.op != "add" or y.rank is None:
        return False
    other = add.inputs[1] if add.inputs[0] is y else add.inputs[0]
    data = const_data(other)
    if data is None or add.inputs[0] is add.inputs[1]:
        return False
    if node.op in ("conv2d", "fused_conv2d"):
        channels, axis = node.inputs[1].shape[0], 1
    else:
        w = node.inputs[1]
        channels = w.shape[-2] if node.attrs.get("trans_b") else w.shape[-1]
        axis = y.rank - 1
    vec = channel_vector(data, y.rank, int(channels), axis)
    if vec is None or add.outputs[0].shape != y.shape:
        return False
    old = const_data(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else 0
    if len(node.inputs) > 2 and node.inputs[2] is not None and not node.inputs[2].is_const:
        return False
    bias = graph.add_const(node.name + ".bias", (np.asarray(old) + vec).astype(vec.dtype))
    while len(node.inputs) < 3:
        node.inputs.append(None)
    graph.set_input(node, 2, bias)
    graph.replace_all_uses(add.outputs[0], y)
    graph.remove_node(add)
    return True


def _absorb_activation(graph: Graph, node: Node) -> bool:
    y = node.outputs[0]
    act = only_user(graph, y)
    if act is None or act.op not in ACTIVATIONS or len(act.inputs) != 1:
        return False
    fused_op = "fused_conv2d" if node.op in ("conv2d", "fused_conv2d") else "fused_matmul"
    attrs = {k: v for k, v in node.attrs.items() if k not in ("activation", "act_attrs")}
    attrs.update(activation=act.op, act_attrs=dict(act.attrs))
    index = graph.nodes.index(act)
    fused = graph.add_node(
        fused_op,
        node.inputs,
        attrs,
        outputs=[act.outputs[0].name + ".f"],
        name=node.name,
        index=index,
    )
    infer_node(fused)
    graph.replace_all_uses(act.outputs[0], fused.outputs[0])
    graph.remove_node(act)
    graph.remove_node(node)
    return True


def fuse_bias_act(graph: Graph, settings: Settings) -> Graph:
    """conv2d/matmul -> add(bias) -> activation  ==>  one fused node."""
    biases = acts = 0
    for node in list(graph.nodes):
        if node not in graph.nodes or node.op not in ("conv2d", "matmul"):
            continue
        if node.op == "matmul" and (node.inputs[1] is None or not node.inputs[1].is_const):
            continue  # only weight GEMMs take a channel bias
        if _absorb_bias(graph, node):
            biases += 1
        if node.op == "matmul" and len(node.inputs) > 2:
            fused = graph.add_node(
                "fused_matmul",
                node.inputs,
                dict(node.attrs),
                outputs=[node.outputs[0].name + ".f"],
                name=node.name,
                index=graph.nodes.index(node) + 1,
            )
            infer_node(fused)
            graph.replace_all_uses(node.outputs[0], fused.outputs[0])
            graph.remove_node(node)
            node = fused
        if _absorb_activation(graph, node):
            acts += 1
    if biases or acts:
        log.debug("bias/activation fusion: %d biases, %d activations", biases, acts)
    return graph
