"""Factories of small Paddle layers exercising the elementwise op family, for ``export_layers``.

``CASES`` maps a case name to ``(forward, input specs, params)``; the factory ``f_<name>`` builds
the layer. Paddle 3's Python API no longer emits many ProgramDesc op types (``gelu``,
``reduce_any``, ``elementwise_max``, ...) in legacy mode, and legacy-only attributes (``axis`` of
elementwise ops, ``FactorTensor``, ``ScaleTensor``, ...) are unreachable from it. So in legacy
mode every case appends the raw ProgramDesc ops with ``LayerHelper``, and in PIR mode it calls
the Python API; both programs compute the same thing.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn
from paddle.static import InputSpec

Spec = tuple  # (shape with -1 for the batch, dtype[, kind: "pos" > 0 or "unit" in (-1, 1)])
X4: list[Spec] = [([-1, 3, 4, 5], "float32")]


class Apply(nn.Layer):
    """Runs ``fn(self, x)``, with float32 parameters on ``self``."""

    def __init__(self, fn, **params: np.ndarray) -> None:
        super().__init__()
        self.fn = fn
        for name, value in params.items():
            p = self.create_parameter(list(value.shape), dtype="float32")
            p.set_value(value.astype("float32"))
            setattr(self, name, p)

    def forward(self, x):
        return self.fn(self, x)


class Apply3(Apply):
    def forward(self, x, p, u):
        return self.fn(self, x, p, u)


def _pir() -> bool:
    return paddle.framework.in_pir_mode()


def _legacy(
    op_type: str,
    inputs: dict,
    attrs: dict | None = None,
    dtype: str = "float32",
) -> paddle.Tensor:
    """Append one raw ProgramDesc op with output slot ``Out`` (legacy mode only)."""
    from paddle.base.layer_helper import LayerHelper

    helper = LayerHelper(op_type)
    out = helper.create_variable_for_type_inference(dtype)
    helper.append_op(type=op_type, inputs=inputs, outputs={"Out": out}, attrs=attrs or {})
    return out


def _unary(legacy_type: str, pir_fn: Callable, attrs: dict | None = None, dtype="float32"):
    """A function of x: the ProgramDesc op ``legacy_type`` or the PIR-mode API ``pir_fn``."""

    def run(x):
        if _pir():
            return pir_fn(x)
        return _legacy(legacy_type, {"X": x}, attrs, dtype)

    return run


def _binary(legacy_type: str, pir_fn: Callable, axis: int = -1, dtype="float32"):
    def run(x, y):
        if _pir():
            return pir_fn(x, y)
        return _legacy(legacy_type, {"X": x, "Y": y}, {"axis": axis}, dtype)

    return run


def _abs(x):
    return _unary("abs", paddle.abs)(x)


def _rand(*shape: int, seed: int = 1, positive: bool = False) -> np.ndarray:
    r = np.random.default_rng(seed).standard_normal(shape).astype("float32")
    return np.abs(r) + 0.5 if positive else r


CASES: dict[str, tuple[Callable, list[Spec], dict[str, np.ndarray]]] = {}


def _case(name: str, fn: Callable, specs: list[Spec] = X4, **params: np.ndarray) -> None:
    """Register a case (a plain call, not a decorator: dy2static re-reads decorated sources)."""
    CASES[name] = (fn, specs, params)


# ---- binary arithmetic with Paddle's axis rule --------------------------------------------
_ARITH = [
    ("elementwise_add", paddle.add),
    ("elementwise_sub", paddle.subtract),
    ("elementwise_mul", paddle.multiply),
    ("elementwise_div", paddle.divide),
]


def _arith_axis1(self, x):
    """Bias [C] at axis 1 of an NCHW tensor (legacy ``axis=1``; PIR reshapes it to [C,1,1])."""
    b = self.b
    if _pir():
        b = paddle.reshape(b, [3, 1, 1])
    return tuple(_binary(t, fn, axis=1)(x, b) for t, fn in _ARITH)


_case("arith_axis1", _arith_axis1, b=_rand(3, positive=True))


def _arith_axis2(self, x):
    """Y [4,5] at axis 2 (trailing, NumPy-compatible) and Y [3,1] at axis 1 (trailing 1 kept)."""
    b, c = self.b, self.c
    if _pir():
        c = paddle.reshape(c, [3, 1, 1])
    return (
        _binary("elementwise_add", paddle.add, axis=2)(x, b),
        _binary("elementwise_mul", paddle.multiply, axis=1)(x, c),
        _binary("elementwise_sub", paddle.subtract, axis=-1)(x, b),
    )


_case("arith_axis2", _arith_axis2, b=_rand(4, 5), c=_rand(3, 1))


def _arith_y_bigger(self, x):
    """X of lower rank than Y: the broadcast goes the other way. (Paddle Inference's legacy
    elementwise_div computes Y / X here for batches > 1, so division is left out.)"""
    return (
        _binary("elementwise_add", paddle.add)(self.b, x),
        _binary("elementwise_sub", paddle.subtract)(self.b, x),
    )


_case("arith_y_bigger", _arith_y_bigger, b=_rand(3, 4, 5))


_BCAST = [
    ("elementwise_max", paddle.maximum),
    ("elementwise_min", paddle.minimum),
    ("elementwise_floordiv", paddle.floor_divide),
    ("elementwise_mod", paddle.remainder),
]


def _arith_bcast(self, x):
    outs = [_binary(t, fn)(x, self.b) for t, fn in _BCAST]
    outs += [_binary(t, fn)(x, self.n) for t, fn in _BCAST[2:]]  # negative divisors
    base = _abs(x) + 0.5
    outs.append(_binary("elementwise_pow", paddle.pow)(base, self.b))
    outs.append(_binary("elementwise_pow", paddle.pow)(base, self.n))
    return tuple(outs)


_case("arith_bcast", _arith_bcast, b=_rand(4, 5, positive=True), n=-_rand(5, positive=True))


_COMPARE = [
    ("equal", paddle.equal),
    ("not_equal", paddle.not_equal),
    ("less_than", paddle.less_than),
    ("less_equal", paddle.less_equal),
    ("greater_than", paddle.greater_than),
    ("greater_equal", paddle.greater_equal),
]


def _compare(self, x):
    """Comparisons against a rounded bias (so equality happens), then logical ops."""
    xr = _unary("round", paddle.round)(x)
    outs = [_binary(t, fn, dtype="bool")(xr, self.b) for t, fn in _COMPARE]
    lt, gt = outs[2], outs[4]
    outs.append(_binary("logical_and", paddle.logical_and, dtype="bool")(lt, outs[1]))
    outs.append(_binary("logical_or", paddle.logical_or, dtype="bool")(lt, gt))
    outs.append(_binary("logical_xor", paddle.logical_xor, dtype="bool")(lt, outs[3]))
    outs.append(_unary("logical_not", paddle.logical_not, dtype="bool")(gt))
    return tuple(outs)


_case("compare", _compare, b=np.round(_rand(5)))


# ---- integer arithmetic -------------------------------------------------------------------
XI: list[Spec] = [([-1, 3, 4, 5], "int32")]
_DIVISORS = [3, -2, 5, -7, 1]


def _int_arith(self, x):
    """Integer division truncates (legacy) or is a true division (PIR casts to float)."""
    d = paddle.to_tensor(np.array(_DIVISORS, dtype="int32"))
    ops = [
        ("elementwise_div", paddle.divide),
        ("elementwise_floordiv", paddle.floor_divide),
        ("elementwise_mod", paddle.remainder),
        ("elementwise_max", paddle.maximum),
        ("elementwise_mul", paddle.multiply),
        ("elementwise_sub", paddle.subtract),
    ]
    outs = [_binary(t, fn, dtype="int32")(x, d) for t, fn in ops]
    e = paddle.to_tensor(np.array([2, 0, 1, 3, -1], dtype="int32"))
    outs.append(_binary("elementwise_pow", paddle.pow, dtype="int32")(x, e))
    return tuple(outs)


_case("int_arith", _int_arith, XI)


def _int_bitwise(self, x):
    m = paddle.to_tensor(np.array([3, 5, -1, 6, 0], dtype="int32"))
    return (
        _binary("bitwise_and", paddle.bitwise_and, dtype="int32")(x, m),
        _binary("bitwise_or", paddle.bitwise_or, dtype="int32")(x, m),
        _binary("bitwise_xor", paddle.bitwise_xor, dtype="int32")(x, m),
        _unary("bitwise_not", paddle.bitwise_not, dtype="int32")(x),
        _unary("abs", paddle.abs, dtype="int32")(x),
        _unary("sign", paddle.sign, dtype="int32")(x),
        _unary("square", paddle.square, dtype="int32")(x),
    )


_case("int_bitwise", _int_bitwise, XI)


# ---- unary math ---------------------------------------------------------------------------
_MATH_ANY = [
    ("exp", paddle.exp),
    ("expm1", paddle.expm1),
    ("abs", paddle.abs),
    ("square", paddle.square),
    ("erf", paddle.erf),
    ("floor", paddle.floor),
    ("ceil", paddle.ceil),
    ("trunc", paddle.trunc),
    ("sign", paddle.sign),
    ("sin", paddle.sin),
    ("cos", paddle.cos),
    ("tan", paddle.tan),
    ("atan", paddle.atan),
    ("sinh", paddle.sinh),
    ("cosh", paddle.cosh),
    ("sigmoid", F.sigmoid),
    ("tanh", paddle.tanh),
]
_MATH_POSITIVE = [
    ("log", paddle.log),
    ("log2", paddle.log2),
    ("log10", paddle.log10),
    ("log1p", paddle.log1p),
    ("sqrt", paddle.sqrt),
    ("rsqrt", paddle.rsqrt),
    ("reciprocal", paddle.reciprocal),
]
_MATH_UNIT = [("asin", paddle.asin), ("acos", paddle.acos)]


def _unary_math(self, x, pos, unit):
    """Domain-restricted inputs come as feeds: computing them in the model (abs(x) + 0.1) trips
    Paddle Inference's common-subexpression and oneDNN scale fusions, which corrupt them."""
    outs = [_unary(t, fn)(x) for t, fn in _MATH_ANY]
    outs += [_unary(t, fn)(pos) for t, fn in _MATH_POSITIVE]
    outs += [_unary(t, fn)(unit) for t, fn in _MATH_UNIT]
    return tuple(outs)


_case(
    "unary_math",
    _unary_math,
    [([-1, 3, 4, 5], "float32"), ([-1, 3, 4, 5], "float32", "pos"), ([-1, 4], "float32", "unit")],
)


def _round(self, x):
    halves = _unary("floor", paddle.floor)(x * 4.0) * 0.5  # many exact halves: ties round to even
    return (
        _unary("round", paddle.round)(halves),
        _unary("round", lambda v: paddle.round(v, decimals=1), {"decimals": 1})(x),
    )


_case("round", _round)


def _nan_inf(self, x):
    """isnan / isinf / isfinite of log(x) (NaN for x < 0) and 1 / (x * 0) (+-inf)."""
    lg = _unary("log", paddle.log)(x)
    inf = _unary("reciprocal", paddle.reciprocal)(x * 0.0)
    outs = []
    for v in (lg, inf):
        outs.append(_unary("isnan_v2", paddle.isnan, dtype="bool")(v))
        outs.append(_unary("isinf_v2", paddle.isinf, dtype="bool")(v))
        outs.append(_unary("isfinite_v2", paddle.isfinite, dtype="bool")(v))
    return tuple(outs)


_case("nan_inf", _nan_inf)


# ---- activations --------------------------------------------------------------------------
_ACTS = [
    ("relu", F.relu, {}),
    ("relu6", F.relu6, {}),
    ("silu", F.silu, {}),
    ("swish", F.swish, {}),
    ("gelu", F.gelu, {"approximate": False}),
    ("gelu", lambda v: F.gelu(v, approximate=True), {"approximate": True}),
    ("hard_swish", F.hardswish, {"threshold": 6.0, "scale": 6.0, "offset": 3.0}),
    ("hard_sigmoid", lambda v: F.hardsigmoid(v, 0.25, 0.4), {"slope": 0.25, "offset": 0.4}),
    ("hard_sigmoid", F.hardsigmoid, {"slope": 1.0 / 6.0, "offset": 0.5}),
    ("leaky_relu", lambda v: F.leaky_relu(v, 0.1), {"alpha": 0.1}),
    ("mish", F.mish, {"threshold": 20.0}),
    ("softplus", lambda v: F.softplus(v, 2.0, 15.0), {"beta": 2.0, "threshold": 15.0}),
    ("elu", lambda v: F.elu(v, 0.5), {"alpha": 0.5}),
    ("selu", F.selu, {"scale": 1.0507009873554805, "alpha": 1.6732632423543772}),
    ("celu", lambda v: F.celu(v, 0.7), {"alpha": 0.7}),
    ("softsign", F.softsign, {}),
    ("logsigmoid", F.log_sigmoid, {}),
    ("hard_shrink", lambda v: F.hardshrink(v, 0.3), {"threshold": 0.3}),
    ("softshrink", lambda v: F.softshrink(v, 0.4), {"lambda": 0.4}),
    ("tanh_shrink", F.tanhshrink, {}),
    (
        "thresholded_relu",
        lambda v: F.thresholded_relu(v, 0.2, 0.5),
        {"threshold": 0.2, "value": 0.5},
    ),
    ("brelu", lambda v: F.hardtanh(v, -0.3, 0.8), {"t_min": -0.3, "t_max": 0.8}),
    ("stanh", lambda v: paddle.stanh(v, 0.5, 2.0), {"scale_a": 0.5, "scale_b": 2.0}),
]


def _activations(self, x):
    return tuple(_unary(t, fn, attrs)(x) for t, fn, attrs in _ACTS)


_case("activations", _activations)


def _activations_legacy_attrs(self, x):
    """Attributes only old ProgramDescs carry (Paddle's PIR API fixes them). Paddle Inference 3
    drops legacy hard_swish's attributes, so ``hard_swish_attrs`` is checked on its own."""
    x = x * 4.0
    if _pir():
        return (
            F.relu6(x) * 0.0 + paddle.clip(x, 0.0, 3.0),
            F.swish(x) * 0.0 + x * F.sigmoid(x * 1.5),
        )
    return (
        _legacy("relu6", {"X": x}, {"threshold": 3.0}),
        _legacy("swish", {"X": x}, {"beta": 1.5}),
    )


_case("activations_legacy_attrs", _activations_legacy_attrs)


def _hard_swish_attrs(self, x):
    """Legacy hard_swish with non-default attributes (not comparable with Paddle Inference 3,
    which ignores them; the test checks the formula instead)."""
    x = x * 4.0
    if _pir():
        return x * paddle.clip(x + 2.0, 0.0, 5.0) / 4.0
    return _legacy("hard_swish", {"X": x}, {"threshold": 5.0, "scale": 4.0, "offset": 2.0})


_case("hard_swish_attrs", _hard_swish_attrs)
NOT_COMPARABLE = {"hard_swish_attrs": "Paddle Inference 3 ignores legacy hard_swish attributes"}


def _prelu_modes(self, x):
    """PReLU modes all ([1]), channel ([C]) and element ([1, C, H, W]). (Paddle Inference
    rejects channel mode with NHWC on CPU, so that variant is only unit-tested.)"""

    def prelu(w, mode):
        if _pir():
            return paddle._C_ops.prelu(x, w, "NCHW", mode)
        return _legacy("prelu", {"X": x, "Alpha": w}, {"mode": mode, "data_format": "NCHW"})

    return prelu(self.a1, "all"), prelu(self.ac, "channel"), prelu(self.ae, "element")


_case(
    "prelu_modes", _prelu_modes, a1=np.array([0.2]), ac=_rand(3) * 0.3, ae=_rand(1, 3, 4, 5) * 0.3
)


# ---- pow, clip, scale, cast ---------------------------------------------------------------


def _pow_factor(self, x):
    if _pir():
        return paddle.pow(x, 2.0), paddle.pow(_abs(x), 0.5), paddle.pow(x, self.f)
    return (
        _legacy("pow", {"X": x}, {"factor": 2.0}),
        _legacy("pow", {"X": _abs(x)}, {"factor": 0.5}),
        _legacy("pow", {"X": x, "FactorTensor": self.f}, {"factor": 1.0}),
    )


_case("pow_factor", _pow_factor, f=np.array([3.0]))


def _clip_variants(self, x):
    if _pir():
        return (
            paddle.clip(x, -0.5, 0.5),
            paddle.clip(x, min=0.1),
            paddle.clip(x, self.lo, self.hi),
        )
    return (
        _legacy("clip", {"X": x}, {"min": -0.5, "max": 0.5}),
        _legacy("clip", {"X": x}, {"min": 0.1, "max": float(np.finfo(np.float32).max)}),
        _legacy("clip", {"X": x, "Min": self.lo, "Max": self.hi}, {"min": 0.0, "max": 0.0}),
    )


_case("clip_variants", _clip_variants, lo=np.array([-0.4]), hi=np.array([0.7]))


def _scale_variants(self, x):
    if _pir():
        return (
            paddle.scale(x, 2.0, 1.0),
            paddle.scale(x, 2.0, 1.0, bias_after_scale=False),
            paddle.scale(x, self.s, -0.5),
        )
    return (
        _legacy("scale", {"X": x}, {"scale": 2.0, "bias": 1.0, "bias_after_scale": True}),
        _legacy("scale", {"X": x}, {"scale": 2.0, "bias": 1.0, "bias_after_scale": False}),
        _legacy("scale", {"X": x, "ScaleTensor": self.s}, {"scale": 9.0, "bias": -0.5}),
    )


_case("scale_variants", _scale_variants, s=np.array([1.5]))


def _scale_int(self, x):
    """Integer scale: Paddle truncates the factors to the integer type first."""
    if _pir():
        return paddle.scale(x, 2.5, 1.0), paddle.scale(x, 3.0, -2.0, bias_after_scale=False)
    return (
        _legacy("scale", {"X": x}, {"scale": 2.5, "bias": 1.0}, "int32"),
        _legacy(
            "scale", {"X": x}, {"scale": 3.0, "bias": -2.0, "bias_after_scale": False}, "int32"
        ),
    )


_case("scale_int", _scale_int, XI)


_CASTS = [("int32", 2), ("int64", 3), ("bool", 0), ("float64", 6), ("float16", 4)]


def _cast(self, x):
    x = x * 3.0
    outs = []
    for name, num in _CASTS:
        if _pir():
            outs.append(paddle.cast(x, name))
        else:
            outs.append(_legacy("cast", {"X": x}, {"in_dtype": 5, "out_dtype": num}, name))
    back = outs[0]
    if _pir():
        outs.append(paddle.cast(back, "float32"))
    else:
        outs.append(_legacy("cast", {"X": back}, {"in_dtype": 2, "out_dtype": 5}))
    return tuple(outs)


_case("cast", _cast)


# ---- reductions ---------------------------------------------------------------------------
_REDUCE = [
    ("reduce_sum", paddle.sum),
    ("reduce_mean", paddle.mean),
    ("reduce_max", paddle.max),
    ("reduce_min", paddle.min),
    ("reduce_prod", paddle.prod),
]


def _reduce(legacy_type, fn, x, axis, keepdim, dtype="float32"):
    if _pir():
        return fn(x, axis=axis, keepdim=keepdim)
    reduce_all = axis is None
    dims = [0] if axis is None else (axis if isinstance(axis, list) else [axis])
    attrs = {"dim": dims, "keep_dim": keepdim, "reduce_all": reduce_all}
    return _legacy(legacy_type, {"X": x}, attrs, dtype)


def _reductions(self, x):
    outs = []
    for t, fn in _REDUCE:
        outs.append(_reduce(t, fn, x, [1, 2], False))
        outs.append(_reduce(t, fn, x, -1, True))
        outs.append(_reduce(t, fn, x, None, False))
    return tuple(outs)


_case("reductions", _reductions)


def _reduce_bool(self, x):
    pos = x > 0.0
    outs = []
    for t, fn in [("reduce_any", paddle.any), ("reduce_all", paddle.all)]:
        outs.append(_reduce(t, fn, pos, 1, False, "bool"))
        outs.append(_reduce(t, fn, pos, [2, 3], True, "bool"))
        outs.append(_reduce(t, fn, pos, None, False, "bool"))
    return tuple(outs)


_case("reduce_bool", _reduce_bool)


def _reduce_int(self, x):
    """Sum of int32 gives int64 (as Paddle's kernel promotes); max keeps int32."""
    return (
        _reduce("reduce_sum", paddle.sum, x, 1, False, "int64"),
        _reduce("reduce_max", paddle.max, x, [1, 3], True, "int32"),
    )


_case("reduce_int", _reduce_int, XI)


def _mean_all(self, x):
    """The legacy ``mean`` op (every element); PIR mode uses paddle.mean."""
    if _pir():
        return paddle.mean(x)
    return _legacy("mean", {"X": x})


_case("mean_all", _mean_all)


def _argminmax(self, x):
    def arg(t, fn, axis, keepdims=False, flatten=False, dtype="int64"):
        if _pir():
            return fn(x, axis=None if flatten else axis, keepdim=keepdims, dtype=dtype)
        num = {"int64": 3, "int32": 2}[dtype]
        attrs = {"axis": axis, "keepdims": keepdims, "flatten": flatten, "dtype": num}
        return _legacy(t, {"X": x}, attrs, dtype)

    return (
        arg("arg_max", paddle.argmax, 1),
        arg("arg_max", paddle.argmax, -1, keepdims=True),
        arg("arg_max", paddle.argmax, 0, flatten=True),
        arg("arg_min", paddle.argmin, 2, dtype="int32"),
        arg("arg_min", paddle.argmin, 0, flatten=True, keepdims=True),
    )


_case("argminmax", _argminmax)


def _cumsum(self, x):
    def cs(axis, flatten=False, exclusive=False, reverse=False):
        if _pir():
            if not exclusive and not reverse:
                return paddle.cumsum(x, axis=None if flatten else axis)
            return paddle._C_ops.cumsum(x, axis, flatten, exclusive, reverse)
        attrs = {"axis": axis, "flatten": flatten, "exclusive": exclusive, "reverse": reverse}
        return _legacy("cumsum", {"X": x}, attrs)

    return (
        cs(1),
        cs(-1, exclusive=True),
        cs(2, reverse=True),
        cs(3, exclusive=True, reverse=True),
        cs(0, flatten=True),
    )


_case("cumsum", _cumsum)


def _logsumexp(self, x):
    def lse(axis, keepdim=False, reduce_all=False):
        if _pir():
            return paddle.logsumexp(x, axis=None if reduce_all else axis, keepdim=keepdim)
        attrs = {"axis": axis, "keepdim": keepdim, "reduce_all": reduce_all}
        return _legacy("logsumexp", {"X": x}, attrs)

    return lse([1]), lse([1, 3], keepdim=True), lse([0], reduce_all=True)


_case("logsumexp", _logsumexp)


def _add_n(self, x):
    if _pir():
        return paddle.add_n([x, x * 2.0, x])
    return _legacy("sum", {"X": [x, x * 2.0, x]})


_case("add_n", _add_n)


# ---- factories ----------------------------------------------------------------------------


def _factory(name: str):
    fn, specs, params = CASES[name]

    def factory():
        inputs = [InputSpec(spec[0], spec[1], f"x{i}") for i, spec in enumerate(specs)]
        return (Apply3 if len(specs) == 3 else Apply)(fn, **params), inputs

    factory.__name__ = f"f_{name}"
    return factory


for _name in CASES:
    globals()[f"f_{_name}"] = _factory(_name)
