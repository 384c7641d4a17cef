"""Importers of structural Paddle ops: constants, copies and inference no-ops."""

from __future__ import annotations

import numpy as np

from fluidrt.frontends.paddle.importer import ImportContext, paddle_op
from fluidrt.frontends.paddle.source import SourceOp

_PADDLE_DTYPES = {  # legacy VarType numbers used by dtype attributes
    0: "bool",
    1: "int16",
    2: "int32",
    3: "int64",
    4: "float16",
    5: "float32",
    6: "float64",
    20: "uint8",
    21: "int8",
    22: "bfloat16",
}


def paddle_dtype(value: int | str) -> str:
    """A dtype attribute (legacy VarType number or PIR name) -> IR dtype name."""
    if isinstance(value, str):
        return {"float": "float32", "double": "float64", "half": "float16"}.get(value, value)
    return _PADDLE_DTYPES[int(value)]


@paddle_op("pd_op.full_int_array")
def _full_int_array(ctx: ImportContext, op: SourceOp) -> None:
    dtype = paddle_dtype(op.attrs.get("dtype", "int64"))
    ctx.bind(op, 0, ctx.const(np.asarray(op.attrs["value"], dtype=dtype), "int_array"))


@paddle_op("pd_op.full")
def _full(ctx: ImportContext, op: SourceOp) -> None:
    dtype = paddle_dtype(op.attrs.get("dtype", "float32"))
    shape = [int(d) for d in op.attrs.get("shape", [])]
    ctx.bind(op, 0, ctx.const(np.full(shape, op.attrs["value"], dtype=dtype), "full"))


@paddle_op("fill_constant")
def _fill_constant(ctx: ImportContext, op: SourceOp) -> None:
    dtype = paddle_dtype(op.attrs.get("dtype", 5))
    value = op.attrs.get("value", 0.0)
    if op.attrs.get("str_value"):
        value = float(op.attrs["str_value"])
    shape_in = ctx.optional_input(op, "ShapeTensor")
    shape_list = ctx.inputs(op, "ShapeTensorList")
    if shape_in is not None or shape_list:
        if shape_in is None:
            parts = [ctx.emit("reshape", [v], {"shape": [1]}) for v in shape_list]
            shape_in = ctx.emit("concat", parts, {"axis": 0}) if len(parts) > 1 else parts[0]
        ctx.bind(op, "Out", ctx.emit("fill", [shape_in], {"value": float(value), "dtype": dtype}))
        return
    shape = [int(d) for d in op.attrs.get("shape", [])]
    ctx.bind(op, "Out", ctx.const(np.full(shape, value, dtype=dtype), "fill_constant"))


@paddle_op("assign", "share_data", "pd_op.assign", "pd_op.share_data_", "pd_op.assign_out_")
def _assign(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, "X" if op.format_legacy else 0)
    ctx.bind(op, "Out" if op.format_legacy else 0, x)


@paddle_op("assign_value", "pd_op.assign_value", "pd_op.assign_value_")
def _assign_value(ctx: ImportContext, op: SourceOp) -> None:
    dtype = paddle_dtype(op.attrs.get("dtype", 5))
    values = op.attrs.get("values")
    if values is None:
        key = {
            "float32": "fp32_values",
            "int32": "int32_values",
            "int64": "int64_values",
            "bool": "bool_values",
            "float64": "fp64_values",
        }.get(dtype, "fp32_values")
        values = op.attrs.get(key, [])
    shape = [int(d) for d in op.attrs.get("shape", [len(values)])]
    arr = np.asarray(values, dtype=dtype).reshape(shape)
    ctx.bind(op, "Out" if op.format_legacy else 0, ctx.const(arr, "assign_value"))


@paddle_op("dropout", "pd_op.dropout")
def _dropout(ctx: ImportContext, op: SourceOp) -> None:
    """Inference dropout: identity, or a (1 - p) scale in ``downgrade_in_infer`` mode."""
    legacy = op.format_legacy
    x = ctx.input(op, "X" if legacy else 0)
    mode = op.attrs.get("dropout_implementation" if legacy else "mode", "downgrade_in_infer")
    if legacy:
        p = float(op.attrs.get("dropout_prob", 0.5))
    else:
        p_in = ctx.optional_input(op, 2)
        p = float(ctx.const_value(p_in).reshape(-1)[0]) if p_in is not None else 0.5
    if mode == "downgrade_in_infer" and p != 0.0:
        x = ctx.emit("scale", [x], {"scale": 1.0 - p})
    ctx.bind(op, "Out" if legacy else 0, x)
