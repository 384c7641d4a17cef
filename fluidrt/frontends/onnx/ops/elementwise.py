"""Importers of ONNX elementwise ops: arithmetic, comparisons, logic, math and activations."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from fluidrt.frontends.onnx.context import OnnxContext, OnnxNode
from fluidrt.frontends.onnx.importer import onnx_dtype
from fluidrt.frontends.onnx.registry import onnx_op
from fluidrt.ir.graph import Dim, Value


def _simple(canonical: str, n_inputs: int, attrs: dict | None = None) -> Callable:
    def importer(ctx: OnnxContext, node: OnnxNode) -> Value:
        return ctx.emit(canonical, [ctx.input(node, i) for i in range(n_inputs)], attrs)

    importer.__name__ = f"import_{canonical}"
    return importer


# ---- binary arithmetic, comparison and logic (NumPy broadcasting since opset 7) -------------
_BINARY: dict[str, tuple[str, int]] = {
    "Add": ("add", 7),
    "Sub": ("sub", 7),
    "Mul": ("mul", 7),
    "Div": ("div", 7),
    "Equal": ("equal", 7),
    "Less": ("less", 7),
    "Greater": ("greater", 7),
    "LessOrEqual": ("less_equal", 12),
    "GreaterOrEqual": ("greater_equal", 12),
    "And": ("logical_and", 7),
    "Or": ("logical_or", 7),
    "Xor": ("logical_xor", 7),
    "BitwiseAnd": ("bitwise_and", 18),
    "BitwiseOr": ("bitwise_or", 18),
    "BitwiseXor": ("bitwise_xor", 18),
}


def _sym_cmp(op: str, a: Dim, b: Dim) -> Dim | None:
    """A comparison with a symbolic dim, which is at least 1: decided against ints <= 0."""
    sym, num, flipped = (a, b, False) if isinstance(b, int) else (b, a, True)
    if not isinstance(num, int) or isinstance(sym, int) or num > 0:
        return None
    if op == "equal":
        return 0
    if op == "not_equal":
        return 1
    greater = op in ("greater", "greater_equal")  # sym > num
    return int(greater != flipped)


def _eval_dim(op: str, a: Dim, b: Dim) -> Dim | None:
    """``op`` of two known elements of shape values (ints or symbolic dims); None: unknown."""
    if isinstance(a, int) and isinstance(b, int):
        if op == "div":
            return None if b == 0 or a % b else a // b
        return {
            "add": a + b,
            "sub": a - b,
            "mul": a * b,
            "equal": int(a == b),
            "less": int(a < b),
            "greater": int(a > b),
            "less_equal": int(a <= b),
            "greater_equal": int(a >= b),
        }.get(op)
    if op in ("equal", "less", "greater", "less_equal", "greater_equal"):
        if a == b and a != "?":
            return int(op in ("equal", "less_equal", "greater_equal"))
        return _sym_cmp(op, a, b)
    if op == "div" and isinstance(a, str) and isinstance(b, int) and b > 0:
        sym, _, k = a.partition("*")  # "N*64" / 64 -> "N", / 16 -> "N*4"
        if k and int(k) % b == 0:
            q = int(k) // b
            return sym if q == 1 else f"{sym}*{q}"
    neutral = {"add": 0, "sub": 0, "mul": 1, "div": 1}.get(op)
    if b == neutral:
        return a
    if op in ("add", "mul") and a == neutral:
        return b
    if op == "mul" and isinstance(a, int) and isinstance(b, str):
        a, b = b, a
    if op == "mul" and isinstance(b, int) and isinstance(a, str) and b > 0:
        sym, _, k = a.partition("*")
        if sym.isidentifier() and sym != "?":
            return f"{sym}*{b * int(k or 1)}"
    return None


def _binary_importer(canonical: str) -> Callable:
    def importer(ctx: OnnxContext, node: OnnxNode) -> Value:
        a, b = ctx.input(node, 0), ctx.input(node, 1)
        out = ctx.emit(canonical, [a, b])
        if out.data is not None or canonical not in _DIM_OPS:
            return out
        args = ctx.known_args([a, b])
        if args is None:
            return out
        (xs, ys), scalar = args
        dims = [_eval_dim(canonical, x, y) for x, y in zip(xs, ys, strict=True)]
        if any(d is None for d in dims):
            return out
        return ctx.track(out, dims, scalar=scalar)  # type: ignore[arg-type]

    importer.__name__ = f"import_{canonical}"
    return importer


_DIM_OPS = {"add", "sub", "mul", "div", "equal", "less", "greater", "less_equal", "greater_equal"}
for _op, (_canon, _since) in _BINARY.items():
    onnx_op(_op, since=_since)(_binary_importer(_canon))


@onnx_op("Pow", since=7)
def _pow(ctx: OnnxContext, node: OnnxNode) -> Value:
    x, y = ctx.input(node, 0), ctx.input(node, 1)
    out = ctx.emit("pow", [x, y])
    if out.dtype != x.dtype:  # ONNX: the result has the base's type
        out = ctx.emit("cast", [out], {"dtype": x.dtype})
    return out


@onnx_op("Mod", since=10)
def _mod(ctx: OnnxContext, node: OnnxNode) -> Value:
    x, y = ctx.input(node, 0), ctx.input(node, 1)
    return ctx.emit("fmod" if node.attrs.get("fmod", 0) else "mod", [x, y])


@onnx_op("BitShift", since=11)
def _bitshift(ctx: OnnxContext, node: OnnxNode) -> Value:
    direction = str(node.attrs.get("direction", "")).upper()
    if direction not in ("LEFT", "RIGHT"):
        raise ctx.error(f"direction must be LEFT or RIGHT, got {direction!r}")
    return ctx.emit(
        "bit_shift", [ctx.input(node, 0), ctx.input(node, 1)], {"direction": direction.lower()}
    )


def _variadic(canonical: str) -> Callable:
    def importer(ctx: OnnxContext, node: OnnxNode) -> Value:
        vals = [v for v in ctx.inputs(node) if v is not None]
        if not vals:
            raise ctx.error("needs at least one input")
        out = vals[0]
        for v in vals[1:]:
            out = ctx.emit(canonical, [out, v])
        if len(vals) == 1:
            out = ctx.emit("identity", [out])
        return out

    return importer


onnx_op("Sum", since=6)(_variadic("add"))


def _extreme(canonical: str) -> Callable:
    """Max/Min; of shape values (``Max(Cast(shape), ...)``) also evaluated at import."""
    runtime = _variadic(canonical)

    def pick(a: object, b: object) -> object:
        if isinstance(a, int) and isinstance(b, int):
            return max(a, b) if canonical == "max" else min(a, b)
        if a == b:
            return a
        small = {0, 1}  # a dim is >= 1: max(1, N) = N, min(1, N) = 1
        if isinstance(a, int) and a in small:
            return b if canonical == "max" else a
        if isinstance(b, int) and b in small:
            return a if canonical == "max" else b
        return None

    def importer(ctx: OnnxContext, node: OnnxNode) -> Value:
        vals = [v for v in ctx.inputs(node) if v is not None]
        known = [ctx.known(v) for v in vals]
        out = runtime(ctx, node)
        if len(vals) < 2 or any(k is None for k in known) or out.data is not None:
            return out
        lengths = {len(k) for k in known if k is not None}
        if len(lengths) != 1 or any(
            ctx.known_shape(v) not in ((n,) for n in lengths) for v in vals
        ):
            return out
        dims = list(known[0])  # type: ignore[arg-type]
        for k in known[1:]:
            dims = [pick(a, b) for a, b in zip(dims, k, strict=True)]  # type: ignore[arg-type]
        return out if any(d is None for d in dims) else ctx.track(out, dims)  # type: ignore

    return importer


onnx_op("Max", since=6)(_extreme("max"))
onnx_op("Min", since=6)(_extreme("min"))


@onnx_op("Mean", since=6)
def _mean(ctx: OnnxContext, node: OnnxNode) -> Value:
    vals = [v for v in ctx.inputs(node) if v is not None]
    total = _variadic("add")(ctx, node)
    if len(vals) == 1:
        return total
    return ctx.emit("div", [total, ctx.const(np.asarray(len(vals), dtype=vals[0].dtype), "n")])


# ---- unary math ----------------------------------------------------------------------------
_UNARY: dict[str, tuple[str, int]] = {
    "Abs": ("abs", 6),
    "Neg": ("neg", 6),
    "Exp": ("exp", 6),
    "Log": ("log", 6),
    "Sqrt": ("sqrt", 6),
    "Reciprocal": ("reciprocal", 6),
    "Floor": ("floor", 6),
    "Ceil": ("ceil", 6),
    "Sigmoid": ("sigmoid", 6),
    "Tanh": ("tanh", 6),
    "Relu": ("relu", 6),
    "Sin": ("sin", 7),
    "Cos": ("cos", 7),
    "Tan": ("tan", 7),
    "Asin": ("asin", 7),
    "Acos": ("acos", 7),
    "Atan": ("atan", 7),
    "Sinh": ("sinh", 9),
    "Cosh": ("cosh", 9),
    "Asinh": ("asinh", 9),
    "Acosh": ("acosh", 9),
    "Atanh": ("atanh", 9),
    "Erf": ("erf", 9),
    "Sign": ("sign", 9),
    "Not": ("logical_not", 1),
    "BitwiseNot": ("bitwise_not", 18),
    "IsNaN": ("isnan", 9),
    "Softsign": ("softsign", 1),
    "Round": ("round", 11),
    "Mish": ("mish", 18),
    "HardSwish": ("hard_swish", 14),
    "Softplus": ("softplus", 1),
}
for _op, (_canon, _since) in _UNARY.items():
    onnx_op(_op, since=_since)(_simple(_canon, 1))


@onnx_op("Det", since=11)
def _det(ctx: OnnxContext, node: OnnxNode) -> Value:
    return ctx.emit("det", [ctx.input(node, 0)])


@onnx_op("IsInf", since=10)
def _isinf(ctx: OnnxContext, node: OnnxNode) -> Value:
    x = ctx.input(node, 0)
    neg, pos = int(node.attrs.get("detect_negative", 1)), int(node.attrs.get("detect_positive", 1))
    inf = ctx.emit("isinf", [x])
    if neg and pos:
        return inf
    zero = ctx.const(np.zeros((), dtype=x.dtype), "zero")
    side = ctx.emit("greater" if pos else "less", [x, zero])
    if not neg and not pos:
        return ctx.emit("logical_and", [inf, ctx.emit("logical_not", [inf])])
    return ctx.emit("logical_and", [inf, side])


# ---- activations with attributes -----------------------------------------------------------
@onnx_op("LeakyRelu", since=6)
def _leaky_relu(ctx: OnnxContext, node: OnnxNode) -> Value:
    return ctx.emit("leaky_relu", [ctx.input(node, 0)], {"alpha": float(node.attrs["alpha"])})


@onnx_op("Elu", since=6)
def _elu(ctx: OnnxContext, node: OnnxNode) -> Value:
    return ctx.emit("elu", [ctx.input(node, 0)], {"alpha": float(node.attrs["alpha"])})


@onnx_op("Celu", since=12)
def _celu(ctx: OnnxContext, node: OnnxNode) -> Value:
    return ctx.emit("celu", [ctx.input(node, 0)], {"alpha": float(node.attrs["alpha"])})


@onnx_op("Selu", since=6)
def _selu(ctx: OnnxContext, node: OnnxNode) -> Value:
    attrs = {"alpha": float(node.attrs["alpha"]), "scale": float(node.attrs["gamma"])}
    return ctx.emit("selu", [ctx.input(node, 0)], attrs)


@onnx_op("ThresholdedRelu", since=10)
def _thresholded_relu(ctx: OnnxContext, node: OnnxNode) -> Value:
    attrs = {"threshold": float(node.attrs["alpha"]), "value": 0.0}
    return ctx.emit("thresholded_relu", [ctx.input(node, 0)], attrs)


@onnx_op("HardSigmoid", since=6)
def _hard_sigmoid(ctx: OnnxContext, node: OnnxNode) -> Value:
    attrs = {"slope": float(node.attrs["alpha"]), "offset": float(node.attrs["beta"])}
    return ctx.emit("hard_sigmoid", [ctx.input(node, 0)], attrs)


@onnx_op("Gelu", since=20)
def _gelu(ctx: OnnxContext, node: OnnxNode) -> Value:
    approx = str(node.attrs.get("approximate", "none"))
    if approx not in ("none", "tanh"):
        raise ctx.error(f"approximate must be 'none' or 'tanh', got {approx!r}")
    return ctx.emit("gelu", [ctx.input(node, 0)], {"approximate": approx == "tanh"})


@onnx_op("Swish", since=24)
def _swish(ctx: OnnxContext, node: OnnxNode) -> Value:
    return ctx.emit("swish", [ctx.input(node, 0)], {"beta": float(node.attrs.get("alpha", 1.0))})


@onnx_op("Shrink", since=9)
def _shrink(ctx: OnnxContext, node: OnnxNode) -> Value:
    attrs = {"lambd": float(node.attrs["lambd"]), "bias": float(node.attrs["bias"])}
    return ctx.emit("shrink", [ctx.input(node, 0)], attrs)


@onnx_op("PRelu", since=7)
def _prelu(ctx: OnnxContext, node: OnnxNode) -> Value:
    return ctx.emit("prelu", [ctx.input(node, 0), ctx.input(node, 1)])


_F32_MAX = float(np.finfo(np.float32).max)


@onnx_op("Clip", since=6)
def _clip_attrs(ctx: OnnxContext, node: OnnxNode) -> Value:
    lo, hi = float(node.attrs.get("min", -_F32_MAX)), float(node.attrs.get("max", _F32_MAX))
    return ctx.emit("clip", [ctx.input(node, 0)], {"min": lo, "max": hi})


@onnx_op("Clip", since=11)
def _clip_inputs(ctx: OnnxContext, node: OnnxNode) -> Value:
    x, lo, hi = ctx.input(node, 0), ctx.optional(node, 1), ctx.optional(node, 2)
    attrs: dict = {}
    ins: list[Value | None] = [x]
    for key, v, default in (("min", lo, -math.inf), ("max", hi, math.inf)):
        if v is not None and v.data is not None and v.data.size == 1:
            attrs[key] = float(v.data.reshape(-1)[0])
            ins.append(None)
        elif v is not None and v.data is not None and v.data.size == 0:
            attrs[key] = default  # an empty tensor: no bound
            ins.append(None)
        else:
            ins.append(v)
    while len(ins) > 1 and ins[-1] is None:
        ins.pop()
    return ctx.emit("clip", ins, attrs)


# ---- casts ---------------------------------------------------------------------------------
@onnx_op("Cast", since=6)
def _cast(ctx: OnnxContext, node: OnnxNode) -> Value:
    dtype = onnx_dtype(int(node.attrs["to"]), ctx.where() + ": Cast target")
    x = ctx.input(node, 0)
    known = ctx.known(x)
    out = ctx.emit("cast", [x], {"dtype": dtype})
    if known is not None and x.data is None and dtype not in ("bool", "bfloat16"):
        return ctx.track(out, known, scalar=ctx.known_shape(x) == ())
    return out


@onnx_op("CastLike", since=15)
def _cast_like(ctx: OnnxContext, node: OnnxNode) -> Value:
    x, like = ctx.input(node, 0), ctx.input(node, 1)
    return ctx.emit("cast", [x], {"dtype": like.dtype})
