"""Reduced precision for an engine: layers run in fp16/bf16, sensitive ones stay fp32.

Each float layer gets a run dtype: the engine's precision, or float32 for layers that lose
accuracy in half (softmax, normalization statistics, reductions, large-range elementwise) and for
layers the user pinned. Data-movement layers run in whatever dtype reaches them. Constants feeding
a layer are converted once at build time; casts are inserted where a tensor crosses between
dtypes, and the engine's outputs are cast back to their original dtype, so the engine's interface
does not change. Accumulation stays fp32 inside the libraries (cuBLAS/cuDNN do this for half).
"""

from __future__ import annotations

import logging

import numpy as np

from fluidrt.engine.layers import get_layer
from fluidrt.ir.graph import Graph, Node, Value
from fluidrt.ops.infer import infer_node

log = logging.getLogger(__name__)

FLOATS = ("float32", "float16", "bfloat16")
# layers kept in fp32 whatever the engine precision
KEEP_FP32 = frozenset(
    {
        "softmax",
        "log_softmax",
        "layer_norm",
        "group_norm",
        "instance_norm",
        "lrn",
        "reduce_sum",
        "reduce_mean",
        "reduce_prod",
        "reduce_l2",
        "logsumexp",
        "cumsum",
        "exp",
        "log",
        "pow",
        "div",
        "reciprocal",
        "rsqrt",
        "sqrt",
        "erf",
    }
)
# layers that run in the dtype that reaches them: data movement (the engine's non-float layers,
# asked from the layer registry) and a few float ops that are exact in any precision
_FOLLOW_FLOAT_OPS = frozenset({"max", "min", "pool2d", "adaptive_pool2d", "relu", "clip"})


def _follows_input(op: str) -> bool:
    layer = get_layer(op)
    return op in _FOLLOW_FLOAT_OPS or (layer is not None and not layer.float_only)


def _run_dtype(node: Node, half: str, overrides: dict[str, str], cur: dict[int, str]) -> str | None:
    if not any(o.dtype in FLOATS for o in node.outputs):
        return None
    for key in (node.name, node.op, node.meta.get("source_type", "")):
        if key in overrides:
            return overrides[key]
    if node.op in KEEP_FP32:
        return "float32"
    if node.op == "cast":
        return None
    if _follows_input(node.op):
        for v in node.inputs:
            if v is not None and not v.is_const and v.dtype in FLOATS:
                return cur.get(id(v), v.dtype)
    return half


def lower_precision(graph: Graph, half: str, overrides: dict[str, str] | None = None) -> Graph:
    """Rewrite ``graph`` (in place) to run its float layers in ``half`` where safe."""
    overrides = dict(overrides or {})
    interface = [v.dtype for v in graph.outputs]
    cur: dict[int, str] = {id(v): v.dtype for v in graph.inputs}
    casts: dict[tuple[int, str], Value] = {}
    consts: dict[tuple[int, str], Value] = {}
    counts = {"half": 0, "float32": 0}
    for node in list(graph.nodes):
        target = _run_dtype(node, half, overrides, cur)
        if target is None:
            for o in node.outputs:
                cur[id(o)] = o.dtype
            continue
        for i, v in enumerate(node.inputs):
            if v is None or v.dtype not in FLOATS:
                continue
            if v.is_const:
                if v.dtype != target:
                    key = (id(v), target)
                    if key not in consts:
                        # NumPy has no bfloat16: such constants keep fp32 data and are marked
                        # bfloat16; the runtime converts them when it loads them on the device
                        data = v.data.astype(np.float16 if target == "float16" else np.float32)
                        const = graph.add_const(f"{v.name}.{target}", data)
                        const.dtype = target
                        consts[key] = const
                    graph.set_input(node, i, consts[key])
                    continue
            have = cur.get(id(v), v.dtype)
            if have != target:
                key = (id(v), target)
                if key not in casts:
                    cast = graph.add_node(
                        "cast",
                        [v],
                        {"dtype": target},
                        outputs=[f"{v.name}.to_{target}"],
                        name=f"{v.name}.to_{target}",
                        index=graph.nodes.index(node),
                    )
                    infer_node(cast)
                    cur[id(cast.outputs[0])] = target
                    casts[key] = cast.outputs[0]
                graph.set_input(node, i, casts[key])
        infer_node(node)
        node.meta["precision"] = target
        counts["half" if target == half else "float32"] += 1
        for o in node.outputs:
            cur[id(o)] = o.dtype
    outputs = []
    for v, want in zip(graph.outputs, interface, strict=True):
        if v.dtype in FLOATS and v.dtype != want:
            # the engine's interface keeps its names and dtypes: the half tensor is renamed and
            # a cast back takes over the original name
            name = v.name
            del graph.values[name]
            v.name = graph.unique_name(f"{name}.{v.dtype}")
            graph.values[v.name] = v
            cast = graph.add_node("cast", [v], {"dtype": want}, outputs=[name], name=f"{name}.out")
            infer_node(cast)
            outputs.append(cast.outputs[0])
        else:
            outputs.append(v)
    graph.outputs = outputs
    graph.remove_unused_values()
    log.info(
        "precision %s: %d layers in %s, %d kept in float32",
        half,
        counts["half"],
        half,
        counts["float32"],
    )
    return graph
