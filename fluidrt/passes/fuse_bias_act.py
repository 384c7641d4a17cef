"""Conv/matmul + bias + activation fusion into ``fused_conv2d`` / ``fused_matmul``."""

from __future__ import annotations

import logging

from fluidrt.ir.graph import Graph, Node
from fluidrt.ops.infer import infer_node
from fluidrt.passes.patterns import ACTIVATIONS, absorb_channel_bias, only_user
from fluidrt.settings import Settings

log = logging.getLogger(__name__)


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
    fused.meta.update(node.meta)
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
        if absorb_channel_bias(graph, node):
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
            fused.meta.update(node.meta)
            infer_node(fused)
            graph.replace_all_uses(node.outputs[0], fused.outputs[0])
            graph.remove_node(node)
            node = fused
        if _absorb_activation(graph, node):
            acts += 1
    if biases or acts:
        log.debug("bias/activation fusion: %d biases, %d activations", biases, acts)
    return graph
