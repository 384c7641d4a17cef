"""Canonical ops: elementwise family (arithmetic, comparisons, math, activations, casts,
reductions).

Binary ops broadcast as NumPy does and promote mixed dtypes as torch does. Integer semantics
follow C++ (and Paddle's kernels): ``div`` truncates toward zero, ``floor_div`` floors, ``mod``
takes the sign of the divisor, ``pow`` with a negative integer exponent truncates the real result,
``scale`` truncates its factors to the integer type. Float math on integer inputs (``exp``,
``sqrt``, ...) computes in float32 as torch does. Every implementation runs on meta tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from fluidrt.ops.dtypes import to_torch
from fluidrt.ops.registry import register_op

Tensor = torch.Tensor
Axes = Sequence[int] | None


def _is_int(t: Tensor) -> bool:
    """True for integer and bool tensors (no floating point or complex)."""
    return not (t.dtype.is_floating_point or t.dtype.is_complex)


def _define(
    name: str,
    impl: Callable[..., Any],
    doc: str,
    *,
    inputs: int | tuple[int, int] = 1,
    attrs: dict[str, Any] | None = None,
    tags: Sequence[str] = (),
) -> None:
    impl.__doc__ = doc
    impl.__name__ = impl.__qualname__ = name
    register_op(name, inputs=inputs, attrs=attrs, tags=tags)(impl)


# ---- binary arithmetic --------------------------------------------------------------------


def _binary(fn: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    def impl(a: Tensor, b: Tensor) -> Tensor:
        return fn(a, b)

    return impl


def _div(a: Tensor, b: Tensor) -> Tensor:
    if _is_int(a) and _is_int(b):
        return torch.div(a, b, rounding_mode="trunc")
    return torch.div(a, b)


def _int_pow(a: Tensor, b: Tensor) -> Tensor:
    """C++ ``static_cast<T>(std::pow(a, b))`` for integers: negative exponents give 0, except
    for bases 1 and -1."""
    a, b = torch.broadcast_tensors(a, b)
    nonneg = torch.pow(a, b.clamp(min=0))
    odd = torch.remainder(b, 2) == 1
    one = torch.ones_like(nonneg)
    neg_exp = torch.where(
        a == 1,
        one,
        torch.where(a == -1, torch.where(odd, -one, one), torch.zeros_like(nonneg)),
    )
    return torch.where(b >= 0, nonneg, neg_exp)


def _pow(a: Tensor, b: Tensor) -> Tensor:
    if _is_int(a) and _is_int(b) and a.dtype != torch.bool:
        return _int_pow(a, b)
    return torch.pow(a, b)


_BINARY: dict[str, tuple[Callable[[Tensor, Tensor], Tensor], str]] = {
    "add": (torch.add, "a + b."),
    "sub": (torch.sub, "a - b."),
    "mul": (torch.mul, "a * b."),
    "div": (_div, "a / b; integers truncate toward zero as in C++."),
    "pow": (_pow, "a ** b; integers with negative exponents truncate the real result."),
    "max": (torch.maximum, "Elementwise maximum (NaN propagates)."),
    "min": (torch.minimum, "Elementwise minimum (NaN propagates)."),
    "floor_div": (
        lambda a, b: torch.div(a, b, rounding_mode="floor"),
        "floor(a / b), for integers and floats.",
    ),
    "mod": (torch.remainder, "a - floor(a / b) * b: the result takes the sign of the divisor."),
    "bitwise_and": (torch.bitwise_and, "Bitwise and of integers (logical and of bools)."),
    "bitwise_or": (torch.bitwise_or, "Bitwise or of integers (logical or of bools)."),
    "bitwise_xor": (torch.bitwise_xor, "Bitwise xor of integers (logical xor of bools)."),
}
for _name, (_fn, _doc) in _BINARY.items():
    _define(_name, _binary(_fn), _doc, inputs=2, tags=("elementwise", "binary"))

_BOOL_BINARY: dict[str, tuple[Callable[[Tensor, Tensor], Tensor], str]] = {
    "equal": (torch.eq, "a == b (bool)."),
    "not_equal": (torch.ne, "a != b (bool)."),
    "less": (torch.lt, "a < b (bool)."),
    "less_equal": (torch.le, "a <= b (bool)."),
    "greater": (torch.gt, "a > b (bool)."),
    "greater_equal": (torch.ge, "a >= b (bool)."),
    "logical_and": (torch.logical_and, "a and b, nonzero meaning true (bool)."),
    "logical_or": (torch.logical_or, "a or b, nonzero meaning true (bool)."),
    "logical_xor": (torch.logical_xor, "a xor b, nonzero meaning true (bool)."),
}
for _name, (_fn, _doc) in _BOOL_BINARY.items():
    _define(_name, _binary(_fn), _doc, inputs=2, tags=("elementwise", "binary", "compare"))


# ---- unary math ---------------------------------------------------------------------------


def _unary(fn: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    def impl(x: Tensor) -> Tensor:
        return fn(x)

    return impl


def _sign(x: Tensor) -> Tensor:
    y = torch.sign(x)
    return torch.where(torch.isnan(x), x, y) if x.dtype.is_floating_point else y


_UNARY: dict[str, tuple[Callable[[Tensor], Tensor], str]] = {
    "neg": (torch.neg, "-x."),
    "abs": (torch.abs, "|x|."),
    "exp": (torch.exp, "e ** x."),
    "expm1": (torch.expm1, "e ** x - 1."),
    "log": (torch.log, "Natural logarithm."),
    "log2": (torch.log2, "Base-2 logarithm."),
    "log10": (torch.log10, "Base-10 logarithm."),
    "log1p": (torch.log1p, "log(1 + x)."),
    "sqrt": (torch.sqrt, "Square root."),
    "rsqrt": (torch.rsqrt, "1 / sqrt(x)."),
    "reciprocal": (torch.reciprocal, "1 / x."),
    "square": (lambda x: x * x, "x * x (keeps integer dtypes)."),
    "sin": (torch.sin, "Sine."),
    "cos": (torch.cos, "Cosine."),
    "tan": (torch.tan, "Tangent."),
    "asin": (torch.asin, "Arcsine."),
    "acos": (torch.acos, "Arccosine."),
    "atan": (torch.atan, "Arctangent."),
    "sinh": (torch.sinh, "Hyperbolic sine."),
    "cosh": (torch.cosh, "Hyperbolic cosine."),
    "tanh": (torch.tanh, "Hyperbolic tangent."),
    "sigmoid": (torch.sigmoid, "1 / (1 + exp(-x))."),
    "erf": (torch.erf, "Gauss error function."),
    "floor": (torch.floor, "Round down (integers unchanged)."),
    "ceil": (torch.ceil, "Round up (integers unchanged)."),
    "trunc": (torch.trunc, "Round toward zero (integers unchanged)."),
    "sign": (_sign, "-1, 0 or 1 by the sign of x (NaN stays NaN)."),
    "logical_not": (torch.logical_not, "not x, nonzero meaning true (bool)."),
    "bitwise_not": (torch.bitwise_not, "Bitwise not of integers (logical not of bools)."),
    "isnan": (torch.isnan, "x is NaN (bool)."),
    "isinf": (torch.isinf, "x is +-inf (bool)."),
    "isfinite": (torch.isfinite, "x is neither NaN nor +-inf (bool)."),
    "relu": (torch.relu, "max(x, 0); NaN propagates (Paddle's kernels give 0)."),
    "silu": (F.silu, "x * sigmoid(x)."),
    "softsign": (F.softsign, "x / (1 + |x|)."),
    "log_sigmoid": (F.logsigmoid, "log(sigmoid(x)), computed stably."),
    "tanh_shrink": (lambda x: x - torch.tanh(x), "x - tanh(x)."),
}
for _name, (_fn, _doc) in _UNARY.items():
    _define(_name, _unary(_fn), _doc, tags=("elementwise", "unary"))


@register_op("round", attrs={"decimals": 0}, tags=("elementwise", "unary"))
def round_(x: Tensor, *, decimals: int) -> Tensor:
    """Round to ``decimals`` places, halves to even (as Paddle >= 3 and ONNX do)."""
    if _is_int(x):
        return x
    return torch.round(x, decimals=int(decimals)) if decimals else torch.round(x)


# ---- activations with attributes ----------------------------------------------------------

_ACT = ("elementwise", "unary", "activation")


def _bound(x: Tensor, v: float | Tensor | None) -> float | int | Tensor | None:
    """A clip bound in ``x``'s terms: None when unbounded, truncated for integer ``x``."""
    if v is None:
        return None
    if isinstance(v, Tensor):
        return v.to(x.dtype)
    if math.isinf(v):
        return None
    return int(v) if _is_int(x) else float(v)


@register_op("clip", attrs={"min": -math.inf, "max": math.inf}, inputs=(1, 3), tags=_ACT)
def clip(
    x: Tensor,
    min_t: Tensor | None = None,
    max_t: Tensor | None = None,
    *,
    min: float,
    max: float,
) -> Tensor:
    """Clamp to [min, max]; optional inputs 1 and 2 override the bounds (relu6 = clip 0..6)."""
    lo = _bound(x, min_t if min_t is not None else min)
    hi = _bound(x, max_t if max_t is not None else max)
    if lo is None and hi is None:
        return x
    if isinstance(lo, Tensor) or isinstance(hi, Tensor):  # torch.clamp wants like bounds
        lo, hi = (
            v if v is None or isinstance(v, Tensor) else torch.tensor(v, dtype=x.dtype)
            for v in (lo, hi)
        )
    return torch.clamp(x, lo, hi)


@register_op("leaky_relu", attrs={"alpha": 0.01}, tags=_ACT)
def leaky_relu(x: Tensor, *, alpha: float) -> Tensor:
    """x if x > 0 else alpha * x."""
    return F.leaky_relu(x, float(alpha))


@register_op("elu", attrs={"alpha": 1.0}, tags=_ACT)
def elu(x: Tensor, *, alpha: float) -> Tensor:
    """x if x > 0 else alpha * (exp(x) - 1)."""
    return F.elu(x, float(alpha))


@register_op("selu", attrs={"scale": 1.0507009873554805, "alpha": 1.6732632423543772}, tags=_ACT)
def selu(x: Tensor, *, scale: float, alpha: float) -> Tensor:
    """scale * (x if x > 0 else alpha * (exp(x) - 1))."""
    return float(scale) * torch.where(x > 0, x, float(alpha) * torch.expm1(x))


@register_op("celu", attrs={"alpha": 1.0}, tags=_ACT)
def celu(x: Tensor, *, alpha: float) -> Tensor:
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1))."""
    return F.celu(x, float(alpha))


@register_op("gelu", attrs={"approximate": False}, tags=_ACT)
def gelu(x: Tensor, *, approximate: bool) -> Tensor:
    """x * Phi(x); ``approximate`` uses the tanh formula."""
    return F.gelu(x, approximate="tanh" if approximate else "none")


@register_op("swish", attrs={"beta": 1.0}, tags=_ACT)
def swish(x: Tensor, *, beta: float) -> Tensor:
    """x * sigmoid(beta * x)."""
    if float(beta) == 1.0:
        return F.silu(x)
    return x * torch.sigmoid(float(beta) * x)


@register_op("hard_swish", attrs={"threshold": 6.0, "scale": 6.0, "offset": 3.0}, tags=_ACT)
def hard_swish(x: Tensor, *, threshold: float, scale: float, offset: float) -> Tensor:
    """x * min(max(x + offset, 0), threshold) / scale."""
    return x * torch.clamp(x + float(offset), 0.0, float(threshold)) / float(scale)


@register_op("hard_sigmoid", attrs={"slope": 1.0 / 6.0, "offset": 0.5}, tags=_ACT)
def hard_sigmoid(x: Tensor, *, slope: float, offset: float) -> Tensor:
    """min(max(slope * x + offset, 0), 1)."""
    return torch.clamp(x * float(slope) + float(offset), 0.0, 1.0)


@register_op("hard_tanh", attrs={"min": -1.0, "max": 1.0}, tags=_ACT)
def hard_tanh(x: Tensor, *, min: float, max: float) -> Tensor:
    """min(max(x, min), max)."""
    return torch.clamp(x, float(min), float(max))


@register_op("softplus", attrs={"beta": 1.0, "threshold": 20.0}, tags=_ACT)
def softplus(x: Tensor, *, beta: float, threshold: float) -> Tensor:
    """log(1 + exp(beta * x)) / beta, or x where beta * x > threshold."""
    return F.softplus(x, float(beta), float(threshold))


@register_op("mish", attrs={"threshold": 20.0}, tags=_ACT)
def mish(x: Tensor, *, threshold: float) -> Tensor:
    """x * tanh(softplus(x)), softplus linear past ``threshold``."""
    return x * torch.tanh(F.softplus(x, 1.0, float(threshold)))


@register_op("hard_shrink", attrs={"threshold": 0.5}, tags=_ACT)
def hard_shrink(x: Tensor, *, threshold: float) -> Tensor:
    """x where |x| >= threshold, else 0 (Paddle keeps x at exactly +-threshold)."""
    return x * (torch.abs(x) >= float(threshold))


@register_op("soft_shrink", attrs={"threshold": 0.5}, tags=_ACT)
def soft_shrink(x: Tensor, *, threshold: float) -> Tensor:
    """x - threshold, x + threshold or 0, shrinking x toward zero by ``threshold``."""
    return F.softshrink(x, float(threshold))


@register_op("thresholded_relu", attrs={"threshold": 1.0, "value": 0.0}, tags=_ACT)
def thresholded_relu(x: Tensor, *, threshold: float, value: float) -> Tensor:
    """x where x > threshold, else ``value``."""
    return F.threshold(x, float(threshold), float(value))


@register_op("prelu", inputs=2, tags=("elementwise", "activation"))
def prelu(x: Tensor, slope: Tensor) -> Tensor:
    """x if x > 0 else slope * x, ``slope`` broadcast to x."""
    return torch.where(x > 0, x, x * slope)


@register_op(
    "scale",
    attrs={"scale": 1.0, "bias": 0.0, "bias_after_scale": True},
    tags=("elementwise", "unary"),
)
def scale(x: Tensor, *, scale: float, bias: float, bias_after_scale: bool) -> Tensor:
    """x * scale + bias (or (x + bias) * scale); keeps the dtype, integers truncate the factors."""
    s, b = (int(scale), int(bias)) if _is_int(x) else (float(scale), float(bias))
    if bias_after_scale:
        y = x * s if s != 1 else x
        return y + b if b != 0 else y
    y = x + b if b != 0 else x
    return y * s if s != 1 else y


@register_op("cast", attrs={"dtype": "float32"}, tags=("elementwise", "unary"))
def cast(x: Tensor, *, dtype: str) -> Tensor:
    """Convert to ``dtype``; float to integer truncates toward zero, nonzero to bool is True."""
    return x.to(to_torch(dtype))


# ---- reductions ---------------------------------------------------------------------------

_RED = ("reduction",)
_RED_ATTRS = {"axes": None, "keepdim": False}


def _dims(x: Tensor, axes: Axes) -> tuple[int, ...]:
    """Normalized reduction dims; None or [] means every dim."""
    rank = x.dim()
    if not axes:
        return tuple(range(rank))
    dims = []
    for a in axes:
        a = int(a)
        if a < 0:
            a += rank
        if not 0 <= a < max(rank, 1):
            raise IndexError(f"reduction axis {a} is out of range for rank {rank}")
        if a not in dims:
            dims.append(a)
    return tuple(sorted(d for d in dims if d < rank))


def _out_dtype(x: Tensor, dtype: str | None) -> torch.dtype:
    return to_torch(dtype) if dtype else x.dtype


def _squeeze_dims(y: Tensor, dims: tuple[int, ...], keepdim: bool) -> Tensor:
    if keepdim or not dims:
        return y
    keep = [d for i, d in enumerate(y.shape) if i not in dims]
    return y.reshape(keep)


@register_op("reduce_sum", attrs={**_RED_ATTRS, "dtype": None}, tags=_RED)
def reduce_sum(x: Tensor, *, axes: Axes, keepdim: bool, dtype: str | None) -> Tensor:
    """Sum over ``axes`` (None or [] = all); the result has ``dtype`` or x's dtype."""
    dims = _dims(x, axes)
    if not dims:
        return x.to(_out_dtype(x, dtype))
    return torch.sum(x, dim=dims, keepdim=bool(keepdim), dtype=_out_dtype(x, dtype))


@register_op("reduce_mean", attrs={**_RED_ATTRS, "dtype": None}, tags=_RED)
def reduce_mean(x: Tensor, *, axes: Axes, keepdim: bool, dtype: str | None) -> Tensor:
    """Mean over ``axes`` (None or [] = all); integers divide the sum with truncation."""
    dims = _dims(x, axes)
    out = _out_dtype(x, dtype)
    if not dims:
        return x.to(out)
    if out.is_floating_point:
        return torch.mean(x.to(out), dim=dims, keepdim=bool(keepdim))
    count = 1
    for d in dims:
        count *= x.shape[d]
    total = torch.sum(x, dim=dims, keepdim=bool(keepdim), dtype=out)
    return torch.div(total, max(count, 1), rounding_mode="trunc")


@register_op("reduce_max", attrs=dict(_RED_ATTRS), tags=_RED)
def reduce_max(x: Tensor, *, axes: Axes, keepdim: bool) -> Tensor:
    """Maximum over ``axes`` (None or [] = all)."""
    dims = _dims(x, axes)
    return torch.amax(x, dim=dims, keepdim=bool(keepdim)) if dims else x


@register_op("reduce_min", attrs=dict(_RED_ATTRS), tags=_RED)
def reduce_min(x: Tensor, *, axes: Axes, keepdim: bool) -> Tensor:
    """Minimum over ``axes`` (None or [] = all)."""
    dims = _dims(x, axes)
    return torch.amin(x, dim=dims, keepdim=bool(keepdim)) if dims else x


@register_op("reduce_prod", attrs={**_RED_ATTRS, "dtype": None}, tags=_RED)
def reduce_prod(x: Tensor, *, axes: Axes, keepdim: bool, dtype: str | None) -> Tensor:
    """Product over ``axes`` (None or [] = all); the result has ``dtype`` or x's dtype."""
    dims = _dims(x, axes)
    y = x.to(_out_dtype(x, dtype))
    for d in dims:
        y = torch.prod(y, dim=d, keepdim=True, dtype=y.dtype)
    return _squeeze_dims(y, dims, bool(keepdim))


@register_op("reduce_any", attrs=dict(_RED_ATTRS), tags=_RED)
def reduce_any(x: Tensor, *, axes: Axes, keepdim: bool) -> Tensor:
    """Whether any element over ``axes`` is nonzero (bool)."""
    dims = _dims(x, axes)
    return torch.any(x, dim=dims, keepdim=bool(keepdim)) if dims else x.to(torch.bool)


@register_op("reduce_all", attrs=dict(_RED_ATTRS), tags=_RED)
def reduce_all(x: Tensor, *, axes: Axes, keepdim: bool) -> Tensor:
    """Whether every element over ``axes`` is nonzero (bool)."""
    dims = _dims(x, axes)
    return torch.all(x, dim=dims, keepdim=bool(keepdim)) if dims else x.to(torch.bool)


@register_op("reduce_l2", attrs=dict(_RED_ATTRS), tags=_RED)
def reduce_l2(x: Tensor, *, axes: Axes, keepdim: bool) -> Tensor:
    """sqrt(sum(x * x)) over ``axes`` (None or [] = all)."""
    dims = _dims(x, axes)
    if not dims:
        return torch.abs(x)
    return torch.linalg.vector_norm(x, 2, dim=dims, keepdim=bool(keepdim))


@register_op("logsumexp", attrs=dict(_RED_ATTRS), tags=_RED)
def logsumexp(x: Tensor, *, axes: Axes, keepdim: bool) -> Tensor:
    """log(sum(exp(x))) over ``axes`` (None or [] = all), computed stably."""
    dims = _dims(x, axes)
    return torch.logsumexp(x, dim=dims, keepdim=bool(keepdim)) if dims else x


def _arg(fn: Callable[..., Tensor], x: Tensor, axis: int | None, keepdim: bool, dtype: str):
    if axis is None:
        y = fn(x.reshape(-1), dim=0)
        if keepdim:
            y = y.reshape([1] * x.dim())
    else:
        y = fn(x, dim=int(axis), keepdim=bool(keepdim))
    return y.to(to_torch(dtype))


@register_op("argmax", attrs={"axis": None, "keepdim": False, "dtype": "int64"}, tags=_RED)
def argmax(x: Tensor, *, axis: int | None, keepdim: bool, dtype: str) -> Tensor:
    """Index of the first maximum along ``axis`` (None: of the flattened tensor)."""
    return _arg(torch.argmax, x, axis, keepdim, dtype)


@register_op("argmin", attrs={"axis": None, "keepdim": False, "dtype": "int64"}, tags=_RED)
def argmin(x: Tensor, *, axis: int | None, keepdim: bool, dtype: str) -> Tensor:
    """Index of the first minimum along ``axis`` (None: of the flattened tensor)."""
    return _arg(torch.argmin, x, axis, keepdim, dtype)


@register_op(
    "cumsum",
    attrs={"axis": -1, "exclusive": False, "reverse": False},
    tags=("scan",),
)
def cumsum(x: Tensor, *, axis: int | None, exclusive: bool, reverse: bool) -> Tensor:
    """Running sum along ``axis`` (None: of the flattened tensor), keeping the dtype."""
    if axis is None:
        x, axis = x.reshape(-1), 0
    if x.dim() == 0:
        return torch.zeros_like(x) if exclusive else x.clone()
    axis = int(axis) % x.dim()
    if reverse:
        x = torch.flip(x, [axis])
    y = torch.cumsum(x, dim=axis, dtype=x.dtype)
    if exclusive:
        n = y.shape[axis]
        head = torch.zeros_like(y.narrow(axis, 0, min(n, 1)))
        y = torch.cat([head, y.narrow(axis, 0, max(n - 1, 0))], dim=axis)
    if reverse:
        y = torch.flip(y, [axis])
    return y
