"""Subgraph detection: cycle-free clusters of engine-supported nodes.

Nodes are visited in topological order. A supported node joins the cluster of one of its
producers unless that would close a cycle — a path leaving the cluster and coming back to the
node through a native node (or another cluster). Each node carries the set of clusters it depends
on, so the check is a set lookup. Clusters smaller than ``min_subgraph_size`` stay native.
"""

from __future__ import annotations

from fluidrt.ir.graph import Graph, Node


def find_clusters(graph: Graph, supported: set[int], min_size: int) -> list[list[Node]]:
    """Return the engine clusters, each a list of nodes in topological order."""
    cluster_of: dict[int, int] = {}  # id(node) -> cluster index
    depends: dict[int, frozenset[int]] = {}  # id(node) -> clusters it (transitively) reads from
    clusters: list[list[Node]] = []
    for node in graph.nodes:
        producers = [v.producer for v in node.inputs if v is not None and v.producer is not None]
        deps: set[int] = set()
        for p in producers:
            deps |= depends[id(p)]
            if id(p) in cluster_of:
                deps.add(cluster_of[id(p)])
        depends[id(node)] = frozenset(deps)
        if id(node) not in supported:
            continue
        chosen = None
        for p in producers:
            c = cluster_of.get(id(p))
            if c is None:
                continue
            # joining c is safe when no input arrives from outside c by a path that left c
            if all(cluster_of.get(id(q)) == c or c not in depends[id(q)] for q in producers):
                chosen = c
                break
        if chosen is None:
            chosen = len(clusters)
            clusters.append([])
        clusters[chosen].append(node)
        cluster_of[id(node)] = chosen
    return [c for c in clusters if len(c) >= max(min_size, 1)]
