"""Explicitly quantized models: fold quantize_linear -> dequantize_linear pairs into scales.

An activation pair ``x -> quantize_linear(s) -> dequantize_linear(s) -> y`` (per-tensor scale,
zero point 0, int8) is removed, its users read ``x``, and ``s`` becomes ``x``'s INT8 scale; the
INT8 lowering then uses the model's own scales with no calibration. Weight ``dequantize_linear``
of constant int8 data is folded to float weights by constant folding before this runs; lowering
re-derives per-channel scales max|w|/127, which reproduces symmetric per-channel weight scales
whose largest quantized value is 127 (what onnxruntime and PaddleSlim write).
"""

from __future__ import annotations

import logging

import numpy as np

from fluidrt.ir.graph import Graph, Node, Value

log = logging.getLogger(__name__)


def _const_scalar(v: Value | None) -> float | None:
    if v is None or not v.is_const or v.data.size != 1:
        return None
    return float(np.asarray(v.data, dtype=np.float64).reshape(()))


def _pair(q: Node) -> tuple[float, list[Node]] | None:
    """The scale and the dequantize users of a symmetric per-tensor int8 quantize node."""
    if q.op != "quantize_linear" or q.attrs.get("dtype") != "int8":
        return None
    scale = _const_scalar(q.inputs[1])
    zp = q.inputs[2] if len(q.inputs) > 2 else None
    if scale is None or (zp is not None and (not zp.is_const or np.any(zp.data))):
        return None
    users = q.outputs[0].users
    if not users or any(u.op != "dequantize_linear" for u in users):
        return None
    for dq in users:
        dzp = dq.inputs[2] if len(dq.inputs) > 2 else None
        if _const_scalar(dq.inputs[1]) != scale or (dzp is not None and np.any(dzp.data)):
            return None
    return scale, users


def fold_qdq(graph: Graph) -> dict[str, float]:
    """Remove foldable Q/DQ pairs in place; return value name -> INT8 scale."""
    scales: dict[str, float] = {}
    for q in list(graph.nodes):
        found = _pair(q)
        if found is None:
            continue
        scale, dqs = found
        x = q.inputs[0]
        if x.name in scales and scales[x.name] != scale:
            log.warning("tensor %s has two quantization scales; keeping the first", x.name)
        scales.setdefault(x.name, float(np.float32(scale)))
        for dq in dqs:
            graph.replace_all_uses(dq.outputs[0], x)
            graph.remove_node(dq)
        graph.remove_node(q)
    graph.remove_unused_values()
    log.info("explicit quantization: %d tensor scale(s) from Q/DQ pairs", len(scales))
    return scales
