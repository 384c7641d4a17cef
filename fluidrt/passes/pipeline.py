"""The ordered list of graph passes, and the runner that checks the graph after each one."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from fluidrt.errors import GraphError
from fluidrt.ir.graph import Graph
from fluidrt.passes.constant_fold import fold_constants
from fluidrt.passes.dead_code import eliminate_dead_code
from fluidrt.passes.fold_conv_bn import fold_conv_bn
from fluidrt.passes.fuse_bias_act import fuse_bias_act
from fluidrt.passes.fuse_elementwise import fuse_elementwise_chains
from fluidrt.passes.fuse_residual import fuse_residual
from fluidrt.passes.remove_identity import remove_identities
from fluidrt.passes.simplify_shapes import simplify_shapes
from fluidrt.settings import Settings

log = logging.getLogger(__name__)

Pass = Callable[[Graph, Settings], Graph]

# cleanup first, then algebraic folds, then fusions from the most to the least specific
PASSES: list[Pass] = [
    eliminate_dead_code,
    fold_constants,
    remove_identities,
    simplify_shapes,
    fold_conv_bn,
    fuse_bias_act,
    fuse_residual,
    fuse_elementwise_chains,
    eliminate_dead_code,
]


def run_passes(
    graph: Graph,
    settings: Settings,
    passes: Sequence[Pass] | None = None,
    verify: bool = False,
) -> Graph:
    """Run ``passes`` (default: ``PASSES``) in order; with ``verify``, check after each."""
    for p in PASSES if passes is None else passes:
        before = len(graph.nodes)
        graph = p(graph, settings)
        if verify:
            try:
                graph.verify()
            except GraphError as exc:
                raise GraphError(f"graph invalid after pass {p.__name__}: {exc}") from exc
        log.debug("%s: %d -> %d nodes", p.__name__, before, len(graph.nodes))
    return graph
