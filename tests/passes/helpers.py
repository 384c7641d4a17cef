"""Before/Expected pass testing: structural comparison in the text form plus a numeric check."""

from __future__ import annotations

import numpy as np
import torch

from fluidrt.ir.graph import Graph
from fluidrt.ir.text import parse_graph, print_graph
from fluidrt.ops.executor import NativeExecutor
from fluidrt.ops.infer import infer_node
from fluidrt.ops.registry import get_op
from fluidrt.passes.pipeline import Pass
from fluidrt.settings import Settings


def parse(text: str) -> Graph:
    return parse_graph(text, infer=infer_node)


def _structure(graph: Graph) -> str:
    """Canonical text without constant data (folded weights differ in value, not in shape)
    and with every attribute resolved against the op's schema (defaults written or not)."""
    g = graph.clone()
    for node in g.nodes:
        node.attrs = get_op(node.op).resolve_attrs(node.attrs)
    return print_graph(g, canonical=True, max_data=0)


def run_graph(graph: Graph, seed: int = 0) -> list[np.ndarray]:
    gen = torch.Generator().manual_seed(seed)
    inputs = [
        torch.randn([2 if isinstance(d, str) else d for d in v.shape], generator=gen)
        for v in graph.inputs
    ]
    return [t.numpy() for t in NativeExecutor(graph).run(inputs)]


def check_pass(
    p: Pass, before: str, expected: str, *, numeric: bool = True, tol: float = 1e-5
) -> Graph:
    """Run ``p`` on ``before``; the result must match ``expected`` and compute the same."""
    graph = parse(before)
    reference = run_graph(graph) if numeric else None
    after = p(graph, Settings())
    after.verify()
    assert _structure(after) == _structure(parse(expected)), (
        f"\n--- got ---\n{_structure(after)}\n--- expected ---\n{_structure(parse(expected))}"
    )
    if numeric:
        for got, ref in zip(run_graph(after), reference, strict=True):
            err = np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-30)
            assert err <= tol, f"relative L2 {err:.3g} > {tol}"
    return after
