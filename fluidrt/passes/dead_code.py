"""Dead-code elimination: drop nodes whose outputs nobody reads."""

from __future__ import annotations

import logging

from fluidrt.ir.graph import Graph
from fluidrt.settings import Settings

log = logging.getLogger(__name__)


def eliminate_dead_code(graph: Graph, settings: Settings) -> Graph:
    """Remove nodes none of whose outputs are used or graph outputs; then unused constants."""
    removed = 0
    outputs = {id(v) for v in graph.outputs}
    for node in reversed(list(graph.nodes)):
        if all(not o.users and id(o) not in outputs for o in node.outputs):
            graph.remove_node(node)
            removed += 1
    consts = graph.remove_unused_values()
    if removed or consts:
        log.debug("dead code: removed %d nodes, %d values", removed, consts)
    return graph
