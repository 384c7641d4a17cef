"""The op teller: which nodes an engine can take, and why not for the rest.

It asks the engine's layer registry (``supports(node) -> (ok, reason)``); there is no second list
of supported ops. User exclusions (op types or value names) are applied on top.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from fluidrt.ir.graph import Graph, Node

SupportFn = Callable[[Node], tuple[bool, str]]


def tell(graph: Graph, supports: SupportFn, disabled: Iterable[str] = ()) -> dict[int, str]:
    """Map id(node) -> reason for every node that must stay native (supported ones absent)."""
    disabled = set(disabled)
    native: dict[int, str] = {}
    for node in graph.nodes:
        if node.op in disabled or node.meta.get("source_type") in disabled:
            native[id(node)] = f"op type {node.op!r} disabled by exp_disable_engine_ops"
            continue
        names = {v.name for v in node.outputs} | {v.name for v in node.inputs if v is not None}
        hit = sorted(names & disabled)
        if hit:
            native[id(node)] = f"variable {hit[0]!r} disabled by exp_disable_engine_ops"
            continue
        ok, reason = supports(node)
        if not ok:
            native[id(node)] = reason
    return native
