"""Chains of elementwise ops fused into one ``fused_elementwise`` layer."""

from __future__ import annotations

import logging

from fluidrt.ir.graph import Graph, Node, Value
from fluidrt.ops.infer import infer_node
from fluidrt.passes.patterns import ELEMENTWISE, only_user
from fluidrt.settings import Settings

log = logging.getLogger(__name__)


def _chain_from(graph: Graph, start: Node) -> list[Node]:
    chain = [start]
    while True:
        nxt = only_user(graph, chain[-1].outputs[0])
        if nxt is None or nxt.op not in ELEMENTWISE or len(nxt.outputs) != 1:
            return chain
        if sum(v is chain[-1].outputs[0] for v in nxt.inputs) != 1:
            return chain
        chain.append(nxt)


def fuse_elementwise_chains(graph: Graph, settings: Settings) -> Graph:
    """n1 -> n2 -> ... -> nk (single-user elementwise ops, k >= 2)  ==>  one fused node."""
    fused_count = 0
    for node in list(graph.nodes):
        if node not in graph.nodes or node.op not in ELEMENTWISE:
            continue
        prev = node.inputs[0].producer if node.inputs and node.inputs[0] is not None else None
        if prev is not None and prev.op in ELEMENTWISE and only_user(graph, node.inputs[0]) is node:
            continue  # not the head of its chain
        chain = _chain_from(graph, node)
        if len(chain) < 2:
            continue
        inputs: list[Value] = []
        refs: dict[int, str] = {}
        steps = []
        for i, n in enumerate(chain):
            args = []
            for v in n.inputs:
                if i > 0 and v is chain[i - 1].outputs[0]:
                    args.append(f"s{i - 1}")
                    continue
                if id(v) not in refs:
                    refs[id(v)] = f"i{len(inputs)}"
                    inputs.append(v)
                args.append(refs[id(v)])
            steps.append([n.op, args, dict(n.attrs)])
        last = chain[-1]
        fused = graph.add_node(
            "fused_elementwise",
            inputs,
            {"steps": steps},
            outputs=[last.outputs[0].name + ".e"],
            name=node.name,
            index=graph.nodes.index(last) + 1,
        )
        fused.meta.update(node.meta)
        infer_node(fused)
        graph.replace_all_uses(last.outputs[0], fused.outputs[0])
        for n in reversed(chain):
            graph.remove_node(n)
        fused_count += 1
    if fused_count:
        log.debug("elementwise fusion: %d chains", fused_count)
    return graph
