"""IR graph <-> JSON-able dict, with constants kept apart (they go to safetensors).

A graph-valued attribute (a loop body) is a nested graph document ``{"__graph__": doc}``; its
constants join the outer ones under ``<node name>/<attr>/<constant name>``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fluidrt.errors import PlanError
from fluidrt.ir.graph import Graph


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"__float__": repr(obj)}
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _restore(obj: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__float__"}:
            return float(obj["__float__"])
        return {k: _restore(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_restore(v) for v in obj]
    return obj


def _attrs_to_json(node_name: str, attrs: dict[str, Any], consts: dict[str, np.ndarray]) -> dict:
    out = {}
    for key, value in attrs.items():
        if isinstance(value, Graph):
            doc, inner = graph_to_json(value)
            consts.update({f"{node_name}/{key}/{k}": v for k, v in inner.items()})
            out[key] = {"__graph__": doc}
        else:
            out[key] = _clean(value)
    return out


def _attrs_from_json(node_name: str, attrs: dict[str, Any], consts: dict[str, np.ndarray]) -> dict:
    out = {}
    for key, value in attrs.items():
        if isinstance(value, dict) and set(value) == {"__graph__"}:
            prefix = f"{node_name}/{key}/"
            inner = {k[len(prefix) :]: v for k, v in consts.items() if k.startswith(prefix)}
            out[key] = graph_from_json(value["__graph__"], inner)
        else:
            out[key] = _restore(value)
    return out


def graph_to_json(graph: Graph) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Return (structure, constants by name)."""
    consts = {v.name: v.data for v in graph.consts() if v.users or v in graph.outputs}
    nested: dict[str, np.ndarray] = {}
    values = {
        name: [list(v.shape) if v.shape is not None else None, v.dtype]
        for name, v in graph.values.items()
        if v.producer is not None or v in graph.inputs or name in consts
    }
    nodes = [
        {
            "op": n.op,
            "name": n.name,
            "inputs": [v.name if v is not None else None for v in n.inputs],
            "outputs": [v.name for v in n.outputs],
            "attrs": _attrs_to_json(n.name, n.attrs, nested),
            "meta": _clean({k: v for k, v in n.meta.items() if k in ("tactic", "source")}),
        }
        for n in graph.nodes
    ]
    doc = {
        "name": graph.name,
        "inputs": [v.name for v in graph.inputs],
        "outputs": [v.name for v in graph.outputs],
        "output_names": graph.meta.get("output_names"),
        "consts": sorted(consts),
        "values": values,
        "nodes": nodes,
    }
    return doc, {**consts, **nested}


def graph_from_json(doc: dict[str, Any], consts: dict[str, np.ndarray]) -> Graph:
    try:
        graph = Graph(doc["name"])
        values = doc["values"]
        env = {}
        for name in doc["inputs"]:
            shape, dtype = values[name]
            env[name] = graph.add_input(name, tuple(shape) if shape is not None else None, dtype)
        for name in doc["consts"]:
            v = graph.add_const(name, consts[name])
            if v.name != name:
                raise PlanError(f"duplicate constant {name!r} in plan")
            v.dtype = values[name][1]  # bfloat16 constants are stored as float32 data
            env[name] = v
        for n in doc["nodes"]:
            ins = [env[i] if i is not None else None for i in n["inputs"]]
            node = graph.add_node(
                n["op"],
                ins,
                _attrs_from_json(n["name"], n["attrs"], consts),
                outputs=n["outputs"],
                name=n["name"],
            )
            node.meta.update(_restore(n.get("meta", {})))
            for out in node.outputs:
                shape, dtype = values[out.name]
                out.shape = tuple(shape) if shape is not None else None
                out.dtype = dtype
                env[out.name] = out
        graph.outputs = [env[name] for name in doc["outputs"]]
        if doc.get("output_names"):
            graph.meta["output_names"] = list(doc["output_names"])
        return graph
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanError(f"plan graph is malformed: {type(exc).__name__}: {exc}") from None
