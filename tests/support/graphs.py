"""Graphs from the IR text form with seeded random constants, for engine tests."""

from __future__ import annotations

import numpy as np

from fluidrt.ir.graph import Graph
from fluidrt.ir.text import parse_graph
from fluidrt.ops.infer import infer_node


def seeded_graph(text: str, seed: int = 0) -> Graph:
    """Parse ``text`` and fill every constant with N(0, 0.3^2) values from ``seed``."""
    g = parse_graph(text, infer=infer_node)
    rng = np.random.default_rng(seed)
    for v in g.consts():
        v.data = (rng.standard_normal(v.data.shape) * 0.3).astype(np.float32)
    return g
