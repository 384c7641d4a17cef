"""Importers of ONNX reductions (attribute and input ``axes`` forms) and ArgMax/ArgMin."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fluidrt.frontends.onnx.context import OnnxContext, OnnxNode
from fluidrt.frontends.onnx.ops.common import (
    emit_dynamic,
    norm_axes,
    norm_axis,
    rank_of,
    static_dim,
)
from fluidrt.frontends.onnx.registry import onnx_op
from fluidrt.ir.graph import Value

_CORE = {
    "ReduceSum": "reduce_sum",
    "ReduceMean": "reduce_mean",
    "ReduceMax": "reduce_max",
    "ReduceMin": "reduce_min",
    "ReduceProd": "reduce_prod",
    "ReduceL1": "reduce_sum",
    "ReduceL2": "reduce_l2",
    "ReduceLogSum": "reduce_sum",
    "ReduceLogSumExp": "logsumexp",
    "ReduceSumSquare": "reduce_sum",
}


def _reduce(ctx: OnnxContext, node: OnnxNode, axes: list[int] | Value | None) -> Value:
    """Reduce with static axes (a list), or axes known only at run time (a Value)."""
    x = ctx.input(node, 0)
    keep = bool(node.attrs.get("keepdims", 1))
    noop = bool(int(node.attrs.get("noop_with_empty_axes", 0)))
    if isinstance(axes, list) or axes is None:
        if not axes:
            if noop:
                return ctx.emit("identity", [x])
            axes = None
        else:
            axes = sorted(set(norm_axes(ctx, axes, rank_of(ctx, x))))
    kind = node.type
    if kind == "ReduceL1":
        x = ctx.emit("abs", [x])
    elif kind == "ReduceSumSquare":
        x = ctx.emit("mul", [x, x])
    attrs = {"keepdim": keep}
    if isinstance(axes, Value):
        binding = ("axes", "ints_noop" if noop else "ints", axes)
        y = emit_dynamic(ctx, _CORE[kind], x, attrs, [binding])
    else:
        y = ctx.emit(_CORE[kind], [x], {"axes": axes, **attrs})
    if kind == "ReduceLogSum":
        y = ctx.emit("log", [y])
    return y


def _attr_form(ctx: OnnxContext, node: OnnxNode) -> Value:
    axes = node.attrs.get("axes")
    return _reduce(ctx, node, list(axes) if axes else None)


def _input_form(ctx: OnnxContext, node: OnnxNode) -> Value:
    axes_v = ctx.optional(node, 1)
    if axes_v is not None and axes_v.data is None:
        return _reduce(ctx, node, axes_v)
    return _reduce(ctx, node, ctx.ints(axes_v, "axes"))


_REDUCE_INPUT_SINCE = {
    "ReduceSum": 13,
    "ReduceMean": 18,
    "ReduceMax": 18,
    "ReduceMin": 18,
    "ReduceProd": 18,
    "ReduceL1": 18,
    "ReduceL2": 18,
    "ReduceLogSum": 18,
    "ReduceLogSumExp": 18,
    "ReduceSumSquare": 18,
}
for _op, _since in _REDUCE_INPUT_SINCE.items():
    onnx_op(_op, since=1)(_attr_form)
    onnx_op(_op, since=_since)(_input_form)


def _arg(canonical: str) -> Callable[[OnnxContext, OnnxNode], Value]:
    def importer(ctx: OnnxContext, node: OnnxNode) -> Value:
        x = ctx.input(node, 0)
        r = rank_of(ctx, x)
        axis = norm_axis(ctx, int(node.attrs.get("axis", 0)), r)
        keep = bool(node.attrs.get("keepdims", 1))
        attrs = {"axis": axis, "keepdim": keep, "dtype": "int64"}
        if not int(node.attrs.get("select_last_index", 0)):
            return ctx.emit(canonical, [x], attrs)
        # the last extreme: the first one in the flipped tensor, counted from the end
        idx = ctx.emit(canonical, [ctx.emit("flip", [x], {"axes": [axis]})], attrs)
        d = static_dim(x, axis)
        if d is not None:
            last = ctx.const(np.asarray(d - 1, dtype=np.int64), "last")
        else:
            dim = ctx.emit(
                "gather", [ctx.emit("shape", [x]), ctx.const(np.asarray(axis, np.int64), "axis")]
            )
            last = ctx.emit("sub", [dim, ctx.const(np.asarray(1, np.int64), "one")])
        return ctx.emit("sub", [last, idx])

    return importer


onnx_op("ArgMax", since=1)(_arg("argmax"))
onnx_op("ArgMin", since=1)(_arg("argmin"))
