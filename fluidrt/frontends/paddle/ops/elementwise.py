"""Paddle importers: elementwise family (arithmetic, comparisons, activations, casts, reductions).

ProgramDesc ops read named slots (``X``, ``Y``, ``Out``) and Paddle's attribute names; PIR ops
(``pd_op.*``) read positional slots, with scalar and axis arguments often passed as constant
tensors from ``pd_op.full`` / ``pd_op.full_int_array``. PIR's in-place variants (trailing ``_``)
share the importer of their out-of-place op.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from fluidrt.frontends.paddle.importer import ImportContext, paddle_op
from fluidrt.frontends.paddle.ops.basic import paddle_dtype
from fluidrt.frontends.paddle.ops.common import align_for_broadcast
from fluidrt.frontends.paddle.source import SourceOp
from fluidrt.ir.dtypes import FLOAT_DTYPES
from fluidrt.ir.graph import Value

INT_DTYPES = frozenset({"int8", "uint8", "int16", "int32", "int64", "bool"})


def _pir(*names: str, inplace: bool = True) -> list[str]:
    """PIR op types for ``names``, with their in-place (``_``) variants."""
    out = [f"pd_op.{n}" for n in names]
    return out + [f"pd_op.{n}_" for n in names] if inplace else out


def _x(ctx: ImportContext, op: SourceOp) -> Value:
    return ctx.input(op, "X" if op.format_legacy else 0)


def _out(ctx: ImportContext, op: SourceOp, value: Value) -> None:
    ctx.bind(op, "Out" if op.format_legacy else 0, value)


def _declared_dtype(ctx: ImportContext, op: SourceOp) -> str | None:
    """The dtype Paddle declared for the op's first output, when the program records it."""
    names = ctx.out_names(op, "Out" if op.format_legacy else 0)
    var = ctx.program.vars.get(names[0]) if names else None
    return var.dtype if var is not None else None


def _scalar(ctx: ImportContext, op: SourceOp, value: Value | None, what: str) -> float | None:
    """The single value of a constant scalar tensor input, or None when it is absent."""
    if value is None:
        return None
    data = ctx.const_value(value)
    if data is None:
        return None
    flat = np.asarray(data).reshape(-1)
    if flat.size != 1:
        raise ValueError(f"{what} must hold one value, got shape {list(np.shape(data))}")
    return flat[0].item()


def _const_like(ctx: ImportContext, x: Value, value: float, name: str) -> Value:
    """A 0-D constant that combines with ``x`` without changing its dtype."""
    if x.dtype in INT_DTYPES and x.dtype != "bool":
        return ctx.const(np.asarray(int(value), dtype=x.dtype), name)
    if x.dtype in ("float64", "float16"):
        return ctx.const(np.asarray(value, dtype=x.dtype), name)
    return ctx.const(np.asarray(value, dtype=np.float32), name)


# ---- binary ops ---------------------------------------------------------------------------

_LEGACY_BINARY = {
    "elementwise_add": "add",
    "elementwise_sub": "sub",
    "elementwise_mul": "mul",
    "elementwise_div": "div",
    "elementwise_pow": "pow",
    "elementwise_max": "max",
    "elementwise_min": "min",
    "elementwise_floordiv": "floor_div",
    "elementwise_mod": "mod",
    "equal": "equal",
    "not_equal": "not_equal",
    "less_than": "less",
    "less_equal": "less_equal",
    "greater_than": "greater",
    "greater_equal": "greater_equal",
    "logical_and": "logical_and",
    "logical_or": "logical_or",
    "logical_xor": "logical_xor",
    "bitwise_and": "bitwise_and",
    "bitwise_or": "bitwise_or",
    "bitwise_xor": "bitwise_xor",
}
_PIR_BINARY = {
    "add": "add",
    "subtract": "sub",
    "multiply": "mul",
    "divide": "div",
    "elementwise_pow": "pow",
    "maximum": "max",
    "minimum": "min",
    "floor_divide": "floor_div",
    "remainder": "mod",
    "equal": "equal",
    "not_equal": "not_equal",
    "less_than": "less",
    "less_equal": "less_equal",
    "greater_than": "greater",
    "greater_equal": "greater_equal",
    "logical_and": "logical_and",
    "logical_or": "logical_or",
    "logical_xor": "logical_xor",
    "bitwise_and": "bitwise_and",
    "bitwise_or": "bitwise_or",
    "bitwise_xor": "bitwise_xor",
}


def _binary_canonical(op: SourceOp) -> str:
    if op.format_legacy:
        return _LEGACY_BINARY[op.type]
    return _PIR_BINARY[op.type.removeprefix("pd_op.").removesuffix("_")]


@paddle_op(*_LEGACY_BINARY, *_pir(*_PIR_BINARY))
def _binary(ctx: ImportContext, op: SourceOp) -> None:
    """Elementwise binary ops; legacy ``axis`` aligns the lower-rank operand Paddle's way."""
    canonical = _binary_canonical(op)
    legacy = op.format_legacy
    x = ctx.input(op, "X" if legacy else 0)
    y = ctx.input(op, "Y" if legacy else 1)
    axis = int(op.attrs.get("axis", -1)) if legacy else -1
    if axis != -1 and x.rank is not None and y.rank is not None:
        if x.rank >= y.rank:
            y = align_for_broadcast(ctx, x, y, axis)
        else:
            x = align_for_broadcast(ctx, y, x, axis)
    if canonical == "div" and x.dtype in INT_DTYPES and y.dtype in INT_DTYPES:
        declared = _declared_dtype(ctx, op)
        if declared in FLOAT_DTYPES:  # a true division Paddle declared as float
            x = ctx.emit("cast", [x], {"dtype": declared})
            y = ctx.emit("cast", [y], {"dtype": declared})
    _out(ctx, op, ctx.emit(canonical, [x, y]))


@paddle_op(*_pir("trunc_divide"))
def _trunc_divide(ctx: ImportContext, op: SourceOp) -> None:
    """Division rounded toward zero (integers: C++ division; floats: trunc of the quotient)."""
    x, y = ctx.input(op, 0), ctx.input(op, 1)
    q = ctx.emit("div", [x, y])
    if q.dtype in FLOAT_DTYPES:
        q = ctx.emit("trunc", [q])
    _out(ctx, op, q)


@paddle_op("sum", *_pir("add_n"))
def _add_n(ctx: ImportContext, op: SourceOp) -> None:
    """Sum of a list of tensors (legacy ``sum`` is add_n)."""
    xs = ctx.inputs(op, "X" if op.format_legacy else 0)
    acc = xs[0]
    for v in xs[1:]:
        acc = ctx.emit("add", [acc, v])
    if len(xs) == 1:
        acc = ctx.emit("identity", [acc])
    _out(ctx, op, acc)


# ---- unary ops without attributes ---------------------------------------------------------

_UNARY = {
    "relu": "relu",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "silu": "silu",
    "exp": "exp",
    "expm1": "expm1",
    "log": "log",
    "log2": "log2",
    "log10": "log10",
    "log1p": "log1p",
    "sqrt": "sqrt",
    "rsqrt": "rsqrt",
    "abs": "abs",
    "square": "square",
    "erf": "erf",
    "floor": "floor",
    "ceil": "ceil",
    "trunc": "trunc",
    "sign": "sign",
    "reciprocal": "reciprocal",
    "sin": "sin",
    "cos": "cos",
    "tan": "tan",
    "asin": "asin",
    "acos": "acos",
    "atan": "atan",
    "sinh": "sinh",
    "cosh": "cosh",
    "softsign": "softsign",
    "logsigmoid": "log_sigmoid",
    "tanh_shrink": "tanh_shrink",
    "logical_not": "logical_not",
    "bitwise_not": "bitwise_not",
}
# full op type -> canonical op (legacy names, PIR names and PIR in-place variants)
_UNARY_TYPES = {
    **_UNARY,
    **{t: _UNARY[t.removeprefix("pd_op.").removesuffix("_")] for t in _pir(*_UNARY)},
    "isnan_v2": "isnan",
    "isinf_v2": "isinf",
    "isfinite_v2": "isfinite",
    "pd_op.isnan": "isnan",
    "pd_op.isinf": "isinf",
    "pd_op.isfinite": "isfinite",
}


@paddle_op(*_UNARY_TYPES)
def _unary(ctx: ImportContext, op: SourceOp) -> None:
    _out(ctx, op, ctx.emit(_UNARY_TYPES[op.type], [_x(ctx, op)]))


@paddle_op("isnan", "isinf", "isfinite")
def _legacy_v1_checks(ctx: ImportContext, op: SourceOp) -> None:
    """Fluid-era checks that reduce to one bool of shape [1]: any NaN, any inf, all finite."""
    check = ctx.emit(op.type, [ctx.input(op, "X")])
    reduce = "reduce_all" if op.type == "isfinite" else "reduce_any"
    flag = ctx.emit(reduce, [check], {"axes": None, "keepdim": False})
    _out(ctx, op, ctx.emit("reshape", [flag], {"shape": [1]}))


# ---- activations with attributes ----------------------------------------------------------


def _attr(op: SourceOp, legacy_name: str, pir_name: str, default: Any) -> Any:
    """An attribute by its ProgramDesc or PIR name, with Paddle's default."""
    value = op.attrs.get(legacy_name if op.format_legacy else pir_name)
    return default if value is None else value


def _activation(canonical: str, **attrs: tuple[str, str, Any]):
    """An importer emitting ``canonical`` with attrs read as (legacy name, PIR name, default)."""

    def importer(ctx: ImportContext, op: SourceOp) -> None:
        values = {k: float(_attr(op, *spec)) for k, spec in attrs.items()}
        _out(ctx, op, ctx.emit(canonical, [_x(ctx, op)], values))

    return importer


_ATTR_ACTIVATIONS: dict[tuple[str, str], Any] = {
    ("leaky_relu", "leaky_relu"): _activation(
        "leaky_relu", alpha=("alpha", "negative_slope", 0.02)
    ),
    ("elu", "elu"): _activation("elu", alpha=("alpha", "alpha", 1.0)),
    ("selu", "selu"): _activation(
        "selu",
        scale=("scale", "scale", 1.0507009873554805),
        alpha=("alpha", "alpha", 1.6732632423543772),
    ),
    ("celu", "celu"): _activation("celu", alpha=("alpha", "alpha", 1.0)),
    ("hard_sigmoid", "hardsigmoid"): _activation(
        "hard_sigmoid", slope=("slope", "slope", 0.2), offset=("offset", "offset", 0.5)
    ),
    ("hard_swish", "hardswish"): _activation(
        "hard_swish",
        threshold=("threshold", "threshold", 6.0),
        scale=("scale", "scale", 6.0),
        offset=("offset", "offset", 3.0),
    ),
    ("mish", "mish"): _activation("mish", threshold=("threshold", "lambda", 20.0)),
    ("softplus", "softplus"): _activation(
        "softplus", beta=("beta", "beta", 1.0), threshold=("threshold", "threshold", 20.0)
    ),
    ("hard_shrink", "hardshrink"): _activation(
        "hard_shrink", threshold=("threshold", "threshold", 0.5)
    ),
    ("softshrink", "softshrink"): _activation(
        "soft_shrink", threshold=("lambda", "threshold", 0.5)
    ),
    ("thresholded_relu", "thresholded_relu"): _activation(
        "thresholded_relu",
        threshold=("threshold", "threshold", 1.0),
        value=("value", "value", 0.0),
    ),
    ("swish", "swish"): _activation("swish", beta=("beta", "beta", 1.0)),
}
for (_legacy, _pir_name), _importer in _ATTR_ACTIVATIONS.items():
    paddle_op(_legacy, *_pir(_pir_name))(_importer)


@paddle_op("gelu", *_pir("gelu"))
def _gelu(ctx: ImportContext, op: SourceOp) -> None:
    approximate = bool(op.attrs.get("approximate", False))
    _out(ctx, op, ctx.emit("gelu", [_x(ctx, op)], {"approximate": approximate}))


@paddle_op("relu6", *_pir("relu6"))
def _relu6(ctx: ImportContext, op: SourceOp) -> None:
    """relu6 = clip(x, 0, threshold); old ProgramDescs carry ``threshold`` (default 6)."""
    hi = float(op.attrs.get("threshold", 6.0))
    _out(ctx, op, ctx.emit("clip", [_x(ctx, op)], {"min": 0.0, "max": hi}))


@paddle_op("brelu", *_pir("hardtanh"))
def _hardtanh(ctx: ImportContext, op: SourceOp) -> None:
    """brelu / hardtanh = clip(x, t_min, t_max)."""
    default_lo, default_hi = (0.0, 24.0) if op.type.endswith("brelu") else (-1.0, 1.0)
    lo = float(op.attrs.get("t_min", default_lo))
    hi = float(op.attrs.get("t_max", default_hi))
    _out(ctx, op, ctx.emit("clip", [_x(ctx, op)], {"min": lo, "max": hi}))


@paddle_op("stanh", *_pir("stanh"))
def _stanh(ctx: ImportContext, op: SourceOp) -> None:
    """scale_b * tanh(scale_a * x)."""
    a = float(op.attrs.get("scale_a", 0.67))
    b = float(op.attrs.get("scale_b", 1.7159))
    y = ctx.emit("scale", [_x(ctx, op)], {"scale": a})
    y = ctx.emit("tanh", [y])
    _out(ctx, op, ctx.emit("scale", [y], {"scale": b}))


@paddle_op("round", *_pir("round"))
def _round(ctx: ImportContext, op: SourceOp) -> None:
    decimals = int(op.attrs.get("decimals", 0) or 0)
    _out(ctx, op, ctx.emit("round", [_x(ctx, op)], {"decimals": decimals}))


@paddle_op("prelu", *_pir("prelu"))
def _prelu(ctx: ImportContext, op: SourceOp) -> None:
    """PReLU; Paddle's alpha (modes all / channel / element) is reshaped to broadcast to x."""
    legacy = op.format_legacy
    x = ctx.input(op, "X" if legacy else 0)
    alpha = ctx.input(op, "Alpha" if legacy else 1)
    mode = str(op.attrs.get("mode", "all"))
    channels_last = str(op.attrs.get("data_format", "NCHW")) in ("NHWC", "NDHWC", "NLC")
    rank = x.rank
    target: list[int] | None = None
    if mode == "channel" and rank is not None and rank >= 2:
        target = [-1] if channels_last else [-1] + [1] * (rank - 2)
    elif mode == "element" and rank is not None and rank >= 1:
        dims = list(x.shape[1:])
        if all(isinstance(d, int) for d in dims):
            target = dims
        elif alpha.rank == rank:
            target = list(alpha.shape[1:])
    elif mode == "all":
        target = []
    if target is not None:
        data = ctx.const_value(alpha)
        if data is not None:
            alpha = ctx.const(np.asarray(data).reshape(target), "prelu_alpha")
        elif list(alpha.shape or []) != target:
            alpha = ctx.emit("reshape", [alpha], {"shape": target})
    ctx.bind(op, "Out" if legacy else 0, ctx.emit("prelu", [x, alpha]))


# ---- pow, clip, scale, cast ---------------------------------------------------------------


@paddle_op("pow", *_pir("pow"))
def _pow(ctx: ImportContext, op: SourceOp) -> None:
    """x ** factor: attribute ``factor`` (legacy) / ``y`` (PIR), or legacy ``FactorTensor``."""
    legacy = op.format_legacy
    x = _x(ctx, op)
    factor_t = ctx.optional_input(op, "FactorTensor") if legacy else None
    factor = _scalar(ctx, op, factor_t, "FactorTensor")
    if factor_t is not None and factor is None:  # computed at run time
        y = ctx.emit("cast", [factor_t], {"dtype": x.dtype})
        y = ctx.emit("reshape", [y], {"shape": []})
        _out(ctx, op, ctx.emit("pow", [x, y]))
        return
    if factor is None:
        factor = float(op.attrs.get("factor" if legacy else "y", 1.0))
    _out(ctx, op, ctx.emit("pow", [x, _const_like(ctx, x, factor, "pow_factor")]))


@paddle_op("clip", *_pir("clip"))
def _clip(ctx: ImportContext, op: SourceOp) -> None:
    """clip(x, min, max): legacy ``Min``/``Max`` tensors override the attrs; PIR passes both
    as inputs 1 and 2 (usually constants from ``pd_op.full``)."""
    legacy = op.format_legacy
    x = _x(ctx, op)
    lo_t = ctx.optional_input(op, "Min" if legacy else 1)
    hi_t = ctx.optional_input(op, "Max" if legacy else 2)
    lo = _scalar(ctx, op, lo_t, "clip min")
    hi = _scalar(ctx, op, hi_t, "clip max")
    if lo is None and lo_t is None:
        lo = float(op.attrs.get("min", -math.inf))
    if hi is None and hi_t is None:
        hi = float(op.attrs.get("max", math.inf))
    inputs: list[Value | None] = [x]
    attrs: dict[str, float] = {}
    if lo is None:  # a bound computed at run time
        inputs.append(ctx.emit("reshape", [lo_t], {"shape": []}))
    else:
        inputs.append(None)
        attrs["min"] = float(lo)
    if hi is None:
        inputs.append(ctx.emit("reshape", [hi_t], {"shape": []}))
    else:
        inputs.append(None)
        attrs["max"] = float(hi)
    while inputs[-1] is None:
        inputs.pop()
    _out(ctx, op, ctx.emit("clip", inputs, attrs))


@paddle_op("scale", *_pir("scale"))
def _scale(ctx: ImportContext, op: SourceOp) -> None:
    """x * scale + bias (or (x + bias) * scale); scale may come as a tensor (legacy
    ``ScaleTensor``, PIR input 1), bias as a tensor (legacy ``BiasTensor``)."""
    legacy = op.format_legacy
    x = _x(ctx, op)
    scale_t = ctx.optional_input(op, "ScaleTensor" if legacy else 1)
    bias_t = ctx.optional_input(op, "BiasTensor") if legacy else None
    after = bool(op.attrs.get("bias_after_scale", True))
    scale = _scalar(ctx, op, scale_t, "scale")
    bias = _scalar(ctx, op, bias_t, "bias")
    if scale is None and scale_t is None:
        scale = float(op.attrs.get("scale", 1.0))
    if bias is None and bias_t is None:
        bias = float(op.attrs.get("bias", 0.0))
    if scale is not None and bias is not None:
        attrs = {"scale": float(scale), "bias": float(bias), "bias_after_scale": after}
        _out(ctx, op, ctx.emit("scale", [x], attrs))
        return
    # a factor computed at run time: spell it out with mul / add in x's dtype
    s = _runtime_scalar(ctx, x, scale_t, scale)
    b = _runtime_scalar(ctx, x, bias_t, bias)
    y = ctx.emit("add", [ctx.emit("mul", [x, s]), b]) if after else None
    if y is None:
        y = ctx.emit("mul", [ctx.emit("add", [x, b]), s])
    _out(ctx, op, y)


def _runtime_scalar(ctx: ImportContext, x: Value, t: Value | None, value: float | None) -> Value:
    if value is not None:
        return _const_like(ctx, x, value, "scale_factor")
    assert t is not None
    t = ctx.emit("cast", [t], {"dtype": x.dtype})
    return ctx.emit("reshape", [t], {"shape": []})


@paddle_op("cast", *_pir("cast"))
def _cast(ctx: ImportContext, op: SourceOp) -> None:
    """cast: legacy ``out_dtype`` (VarType number), PIR ``dtype`` (name)."""
    dtype = paddle_dtype(op.attrs["out_dtype"] if op.format_legacy else op.attrs["dtype"])
    _out(ctx, op, ctx.emit("cast", [_x(ctx, op)], {"dtype": dtype}))


# ---- reductions ---------------------------------------------------------------------------

_LEGACY_REDUCE = {
    "reduce_sum": "reduce_sum",
    "reduce_mean": "reduce_mean",
    "reduce_max": "reduce_max",
    "reduce_min": "reduce_min",
    "reduce_prod": "reduce_prod",
    "reduce_any": "reduce_any",
    "reduce_all": "reduce_all",
    "reduce_amax": "reduce_max",
    "reduce_amin": "reduce_min",
}
# PIR: op -> (canonical, where the axes are: "input" (IntArray input 1) or the attr name)
_PIR_REDUCE = {
    "sum": ("reduce_sum", "input"),
    "mean": ("reduce_mean", "input"),
    "max": ("reduce_max", "input"),
    "min": ("reduce_min", "input"),
    "prod": ("reduce_prod", "input"),
    "any": ("reduce_any", "axis"),
    "all": ("reduce_all", "axis"),
    "amax": ("reduce_max", "axis"),
    "amin": ("reduce_min", "axis"),
    "mean_all": ("reduce_mean", None),
}


def _sum_dtype(x: Value, dtype: str | None) -> str | None:
    """Paddle's sum and prod kernels promote bool and int32 to int64 when no dtype is given."""
    if dtype is None and x.dtype in ("bool", "int32"):
        return "int64"
    return dtype


def _emit_reduce(
    ctx: ImportContext,
    op: SourceOp,
    canonical: str,
    x: Value,
    axes: Sequence[int] | None,
    keepdim: bool,
    dtype: str | None,
) -> None:
    axes = None if not axes else [int(a) for a in axes]
    attrs: dict[str, Any] = {"axes": axes, "keepdim": bool(keepdim)}
    if canonical == "reduce_sum":
        dtype = _sum_dtype(x, dtype)
    if canonical in ("reduce_sum", "reduce_mean", "reduce_prod") and dtype is not None:
        attrs["dtype"] = dtype
    _out(ctx, op, ctx.emit(canonical, [x], attrs))


@paddle_op(*_LEGACY_REDUCE)
def _legacy_reduce(ctx: ImportContext, op: SourceOp) -> None:
    """reduce_*: ``dim``, ``keep_dim``, ``reduce_all``, ``out_dtype`` (-1: unchanged); any/all
    may take the axes as ``AxisTensor`` / ``AxisTensorList``."""
    x = ctx.input(op, "X")
    axes: list[int] | None = [int(a) for a in op.attrs.get("dim", [0]) or []]
    axis_t = ctx.optional_input(op, "AxisTensor")
    axis_list = ctx.inputs(op, "AxisTensorList")
    if axis_t is not None:
        axes = ctx.const_ints(axis_t, "reduction axes")
    elif axis_list:
        axes = [a for v in axis_list for a in ctx.const_ints(v, "reduction axes")]
    if op.attrs.get("reduce_all"):
        axes = None
    out_dtype = op.attrs.get("out_dtype", -1)
    dtype = None if out_dtype in (None, -1) else paddle_dtype(out_dtype)
    canonical = _LEGACY_REDUCE[op.type]
    _emit_reduce(ctx, op, canonical, x, axes, bool(op.attrs.get("keep_dim", False)), dtype)


@paddle_op(*_pir(*_PIR_REDUCE, inplace=False))
def _pir_reduce(ctx: ImportContext, op: SourceOp) -> None:
    canonical, where = _PIR_REDUCE[op.type.removeprefix("pd_op.")]
    x = ctx.input(op, 0)
    axes: list[int] | None
    if where is None:
        axes = None
    elif where == "input":
        axes_in = ctx.optional_input(op, 1)
        axes = ctx.const_ints(axes_in, "reduction axes") if axes_in is not None else None
    else:
        axes = [int(a) for a in op.attrs.get(where, []) or []]
    if op.attrs.get("reduce_all"):
        axes = None
    dtype_attr = op.attrs.get("dtype")
    dtype = None
    if isinstance(dtype_attr, str) and not dtype_attr.lower().startswith("undefined"):
        dtype = paddle_dtype(dtype_attr)
    _emit_reduce(ctx, op, canonical, x, axes, bool(op.attrs.get("keepdim", False)), dtype)


@paddle_op("mean")
def _mean(ctx: ImportContext, op: SourceOp) -> None:
    """Legacy ``mean``: the mean of every element, a 0-D tensor (Paddle >= 2.5)."""
    _emit_reduce(ctx, op, "reduce_mean", ctx.input(op, "X"), None, False, None)


@paddle_op("logsumexp", *_pir("logsumexp", inplace=False))
def _logsumexp(ctx: ImportContext, op: SourceOp) -> None:
    axes = [int(a) for a in op.attrs.get("axis", []) or []]
    if op.attrs.get("reduce_all"):
        axes = []
    attrs = {"axes": axes or None, "keepdim": bool(op.attrs.get("keepdim", False))}
    _out(ctx, op, ctx.emit("logsumexp", [_x(ctx, op)], attrs))


@paddle_op("arg_max", "arg_min", *_pir("argmax", "argmin", inplace=False))
def _arg(ctx: ImportContext, op: SourceOp) -> None:
    """arg_max / arg_min: ``axis`` (PIR: input 1), ``keepdims``, ``flatten``, ``dtype``."""
    legacy = op.format_legacy
    x = _x(ctx, op)
    if legacy:
        axis = int(op.attrs.get("axis", -1))
    else:
        axis_in = ctx.input(op, 1)
        axis = ctx.const_ints(axis_in, "arg_max axis")[0]
    dtype_attr = op.attrs.get("dtype", 3 if legacy else "int64")
    dtype = "int64" if dtype_attr in (None, -1) else paddle_dtype(dtype_attr)
    canonical = "argmax" if op.type.endswith(("arg_max", "argmax")) else "argmin"
    attrs = {
        "axis": None if op.attrs.get("flatten") else axis,
        "keepdim": bool(op.attrs.get("keepdims", False)),
        "dtype": dtype,
    }
    _out(ctx, op, ctx.emit(canonical, [x], attrs))


@paddle_op("cumsum", *_pir("cumsum"))
def _cumsum(ctx: ImportContext, op: SourceOp) -> None:
    """cumsum: ``axis`` (PIR: input 1), ``flatten``, ``exclusive``, ``reverse``."""
    legacy = op.format_legacy
    x = _x(ctx, op)
    if legacy:
        axis = int(op.attrs.get("axis", -1))
    else:
        axis_in = ctx.optional_input(op, 1)
        axis = ctx.const_ints(axis_in, "cumsum axis")[0] if axis_in is not None else -1
    attrs = {
        "axis": None if op.attrs.get("flatten") else axis,
        "exclusive": bool(op.attrs.get("exclusive", False)),
        "reverse": bool(op.attrs.get("reverse", False)),
    }
    _out(ctx, op, ctx.emit("cumsum", [x], attrs))
