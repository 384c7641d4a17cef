"""Liveness of values: computed once per graph, used by the executor and the memory planner."""

from __future__ import annotations

from fluidrt.ir.graph import Graph, Value


def last_uses(graph: Graph) -> dict[int, list[Value]]:
    """Map node index -> values (non-constant, non-output) whose last reader is that node."""
    keep = {id(v) for v in graph.outputs}
    last: dict[int, tuple[int, Value]] = {}
    for idx, node in enumerate(graph.nodes):
        for v in node.inputs:
            if v is not None and not v.is_const and id(v) not in keep:
                last[id(v)] = (idx, v)
        for out in node.outputs:  # outputs nobody reads die right after their producer
            if id(out) not in keep and id(out) not in last:
                last[id(out)] = (idx, out)
    frees: dict[int, list[Value]] = {}
    for idx, v in last.values():
        frees.setdefault(idx, []).append(v)
    return frees


def live_ranges(graph: Graph) -> dict[str, tuple[int, int]]:
    """Map value name -> (first node index that writes it, last node index that reads it)."""
    ranges: dict[str, tuple[int, int]] = {}
    end = len(graph.nodes)
    outputs = {id(v) for v in graph.outputs}
    for idx, node in enumerate(graph.nodes):
        for out in node.outputs:
            ranges[out.name] = (idx, end if id(out) in outputs else idx)
        for v in node.inputs:
            if v is not None and v.name in ranges and id(v) not in outputs:
                start, _ = ranges[v.name]
                ranges[v.name] = (start, idx)
    return ranges
