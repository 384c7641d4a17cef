"""Canonical elementwise-family ops vs Paddle's own eager ops (CPU), plus meta-tensor shape
inference with a symbolic batch."""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from fluidrt.ir.graph import Graph
from fluidrt.ops.infer import infer_node
from fluidrt.ops.registry import get_op, registered_ops
from tests.support.paddle_ref import rel_l2

paddle = pytest.importorskip("paddle")
F = paddle.nn.functional

TOL = 1e-5
MODULE = "fluidrt.ops.elementwise"


# ---- inputs -------------------------------------------------------------------------------


def _rng(key: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(key.encode()))


def _floats(rng, shape, kind: str = "any", dtype: str = "float32") -> np.ndarray:
    """Random floats with edge values: exact zeros, ties and large magnitudes (kind "any"),
    or restricted to a domain ("pos": > 0, "unit": (-1, 1), "nonzero": |x| >= 0.25)."""
    x = rng.standard_normal(shape) * 2.0
    if kind == "pos":
        x = np.abs(x) + 0.05
    elif kind == "unit":
        x = np.tanh(x) * 0.99
    elif kind == "nonzero":
        x = np.where(np.abs(x) < 0.25, 0.25 * np.sign(x) + (x == 0) * 0.25, x)
    elif kind == "any" and x.size >= 8:
        flat = x.reshape(-1)
        flat[::5] = 0.0
        flat[1::7] = np.round(flat[1::7] * 2.0) / 2.0  # exact halves and integers
        flat[2::11] *= 20.0
    return x.astype(dtype)


def _ints(rng, shape, lo=-20, hi=21, dtype="int32", nonzero=False) -> np.ndarray:
    x = rng.integers(lo, hi, size=shape)
    if nonzero:
        x = np.where(x == 0, 3, x)
    return x.astype(dtype)


# ---- running both sides -------------------------------------------------------------------


def _run(op: str, inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    opdef = get_op(op)
    args = [None if a is None else torch.from_numpy(np.ascontiguousarray(a)) for a in inputs]
    out = opdef.impl(*args, **opdef.resolve_attrs(attrs))
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    return [o.numpy() for o in outs]


def _paddle(fn: Callable, inputs: list[np.ndarray]) -> list[np.ndarray]:
    out = fn(*[paddle.to_tensor(a) for a in inputs])
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    return [np.asarray(o.numpy()) for o in outs]


def _check(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    """Shape and dtype first; ints and bools exactly; floats: same NaN/inf positions and
    relative L2 <= TOL over the finite values."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    if actual.dtype.kind in "iub":
        np.testing.assert_array_equal(actual, expected, err_msg=what)
        return
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(e), err_msg=f"{what}: NaN positions")
    np.testing.assert_array_equal(
        np.where(np.isinf(a), a, 0), np.where(np.isinf(e), e, 0), err_msg=f"{what}: infs"
    )
    finite = np.isfinite(e)
    err = rel_l2(a[finite], e[finite])
    assert err <= TOL, f"{what}: relative L2 error {err:.3g} > {TOL:g}"


TESTED: set[str] = set()


class Case:
    """One comparison: canonical ``op`` with ``attrs`` on ``make(rng)`` vs ``ref`` in Paddle."""

    def __init__(self, id_: str, op: str, make, ref: Callable, **attrs: Any) -> None:
        self.id, self.op, self.make, self.ref, self.attrs = id_, op, make, ref, attrs
        TESTED.add(op)


CASES: list[Case] = []


def case(id_: str, op: str, make, ref: Callable, **attrs: Any) -> None:
    CASES.append(Case(id_, op, make, ref, **attrs))


# ---- binary ops ---------------------------------------------------------------------------
BCAST = [
    ((2, 3, 4), (2, 3, 4)),
    ((2, 3, 4), (4,)),
    ((2, 3, 4), (3, 1)),
    ((2, 1, 4), (1, 3, 1)),
    ((2, 3, 4), ()),
    ((4,), (2, 3, 4)),
]


def _pair(ka="any", kb="any", dtype="float32"):
    def make(rng):
        out = []
        for sa, sb in BCAST:
            out.append([_floats(rng, sa, ka, dtype), _floats(rng, sb, kb, dtype)])
        return out

    return make


def _int_pair(dtype="int32", nonzero=False, lo=-20, hi=21):
    def make(rng):
        return [
            [_ints(rng, sa, dtype=dtype), _ints(rng, sb, lo, hi, dtype, nonzero)]
            for sa, sb in BCAST
        ]

    return make


def _many(make):
    """Mark a maker as yielding several input sets."""
    make.many = True
    return make


FLOAT_BINARY = {
    "add": paddle.add,
    "sub": paddle.subtract,
    "mul": paddle.multiply,
    "div": paddle.divide,
    "max": paddle.maximum,
    "min": paddle.minimum,
    "equal": paddle.equal,
    "not_equal": paddle.not_equal,
    "less": paddle.less_than,
    "less_equal": paddle.less_equal,
    "greater": paddle.greater_than,
    "greater_equal": paddle.greater_equal,
    "logical_and": paddle.logical_and,
    "logical_or": paddle.logical_or,
    "logical_xor": paddle.logical_xor,
}
for _op, _fn in FLOAT_BINARY.items():
    _kb = "nonzero" if _op == "div" else "any"
    case(f"{_op}-f32", _op, _many(_pair(kb=_kb)), _fn)
case("floor_div-f32", "floor_div", _many(_pair(kb="nonzero")), paddle.floor_divide)
case("mod-f32", "mod", _many(_pair(kb="nonzero")), paddle.remainder)
case("pow-f32", "pow", _many(_pair(ka="pos")), paddle.pow)
case("add-f64", "add", _many(_pair(dtype="float64")), paddle.add)

INT_BINARY = {
    "add": paddle.add,
    "sub": paddle.subtract,
    "mul": paddle.multiply,
    "max": paddle.maximum,
    "min": paddle.minimum,
    "equal": paddle.equal,
    "less": paddle.less_than,
    "greater_equal": paddle.greater_equal,
    "bitwise_and": paddle.bitwise_and,
    "bitwise_or": paddle.bitwise_or,
    "bitwise_xor": paddle.bitwise_xor,
    "logical_and": paddle.logical_and,
}
for _op, _fn in INT_BINARY.items():
    for _dt in ("int32", "int64"):
        case(f"{_op}-{_dt}", _op, _many(_int_pair(_dt)), _fn)
for _dt in ("int32", "int64"):
    # C++ division truncates toward zero (Paddle's legacy elementwise_div on ints)
    case(
        f"div-{_dt}",
        "div",
        _many(_int_pair(_dt, nonzero=True)),
        lambda a, b: paddle.divide(a, b, rounding_mode="trunc"),
    )
    case(f"floor_div-{_dt}", "floor_div", _many(_int_pair(_dt, nonzero=True)), paddle.floor_divide)
    case(f"mod-{_dt}", "mod", _many(_int_pair(_dt, nonzero=True)), paddle.remainder)
    case(f"pow-{_dt}", "pow", _many(_int_pair(_dt, lo=-3, hi=6)), paddle._C_ops.elementwise_pow)


def _bools(rng):
    return [[rng.random(sa) > 0.5, rng.random(sb) > 0.5] for sa, sb in BCAST]


for _op, _fn in [
    ("bitwise_and", paddle.bitwise_and),
    ("bitwise_xor", paddle.bitwise_xor),
    ("logical_or", paddle.logical_or),
    ("logical_xor", paddle.logical_xor),
]:
    case(f"{_op}-bool", _op, _many(_bools), _fn)


def _pow_edges(rng):
    a = np.array([0.0, 0.0, 1.0, -2.0, -2.0, 4.0, 1e-3, 10.0], np.float32)
    b = np.array([0.0, 2.0, -3.5, 3.0, 2.0, -0.5, 2.5, -1.0], np.float32)
    return [[a, b]]


case("pow-edges", "pow", _many(_pow_edges), paddle.pow)


def _mod_edges(rng):
    a = np.array([7, -7, 7, -7, 0, 5, -1, 1], np.int32)
    b = np.array([2, 2, -2, -2, 3, 5, 4, -4], np.int32)
    return [[a, b], [a.astype(np.float32), b.astype(np.float32)]]


case("mod-edges", "mod", _many(_mod_edges), paddle.remainder)
case("floor_div-edges", "floor_div", _many(_mod_edges), paddle.floor_divide)


# ---- unary ops ----------------------------------------------------------------------------
SHAPE = (2, 3, 4, 5)


def _one(kind="any", dtype="float32", shape=SHAPE):
    def make(rng):
        return [_floats(rng, shape, kind, dtype)]

    return make


def _special(rng):
    x = _floats(rng, (3, 8), "any")
    x[0, :6] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30]
    return [x]


UNARY = {  # op: (paddle fn, input kind)
    "neg": (paddle.neg, "any"),
    "abs": (paddle.abs, "any"),
    "exp": (paddle.exp, "any"),
    "expm1": (paddle.expm1, "any"),
    "log": (paddle.log, "pos"),
    "log2": (paddle.log2, "pos"),
    "log10": (paddle.log10, "pos"),
    "log1p": (paddle.log1p, "pos"),
    "sqrt": (paddle.sqrt, "pos"),
    "rsqrt": (paddle.rsqrt, "pos"),
    "reciprocal": (paddle.reciprocal, "nonzero"),
    "square": (paddle.square, "any"),
    "sin": (paddle.sin, "any"),
    "cos": (paddle.cos, "any"),
    "tan": (paddle.tan, "unit"),
    "asin": (paddle.asin, "unit"),
    "acos": (paddle.acos, "unit"),
    "atan": (paddle.atan, "any"),
    "sinh": (paddle.sinh, "any"),
    "cosh": (paddle.cosh, "any"),
    "tanh": (paddle.tanh, "any"),
    "sigmoid": (F.sigmoid, "any"),
    "erf": (paddle.erf, "any"),
    "floor": (paddle.floor, "any"),
    "ceil": (paddle.ceil, "any"),
    "trunc": (paddle.trunc, "any"),
    "round": (paddle.round, "any"),
    "sign": (paddle.sign, "any"),
    "relu": (F.relu, "any"),
    "silu": (F.silu, "any"),
    "softsign": (F.softsign, "any"),
    "log_sigmoid": (F.log_sigmoid, "any"),
    "tanh_shrink": (F.tanhshrink, "any"),
    "logical_not": (paddle.logical_not, "any"),
    "isnan": (paddle.isnan, "any"),
    "isinf": (paddle.isinf, "any"),
    "isfinite": (paddle.isfinite, "any"),
}
for _op, (_fn, _kind) in UNARY.items():
    case(f"{_op}-f32", _op, _one(_kind), _fn)
for _op in ("abs", "sign", "exp", "isnan", "isinf", "isfinite", "floor", "sigmoid"):
    case(f"{_op}-special", _op, _special, UNARY[_op][0])
for _op in ("neg", "abs", "square", "sign", "floor", "ceil", "round"):
    case(f"{_op}-int32", _op, lambda rng: [_ints(rng, SHAPE)], UNARY[_op][0])
case("bitwise_not-int32", "bitwise_not", lambda rng: [_ints(rng, SHAPE)], paddle.bitwise_not)
case("bitwise_not-bool", "bitwise_not", lambda rng: [rng.random(SHAPE) > 0.5], paddle.bitwise_not)
case(
    "logical_not-int64",
    "logical_not",
    lambda rng: [_ints(rng, SHAPE, -2, 3, "int64")],
    paddle.logical_not,
)
case("exp-f64", "exp", _one(dtype="float64"), paddle.exp)
case(
    "round-decimals",
    "round",
    _one(),
    lambda x: paddle.round(x, decimals=2),
    decimals=2,
)


def _halves(rng):
    return [np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.49, -3.51], np.float32)]


case("round-halves", "round", _halves, paddle.round)  # ties to even since Paddle 3


# ---- activations with attributes ----------------------------------------------------------
def _act(op, fn, kind="any", **attrs):
    case(
        f"{op}-{'-'.join(f'{k}{v}' for k, v in attrs.items()) or 'default'}",
        op,
        _one(kind),
        fn,
        **attrs,
    )


_act("clip", lambda x: paddle.clip(x, -0.7, 1.2), min=-0.7, max=1.2)
_act("clip", lambda x: paddle.clip(x, min=0.0), min=0.0)
_act("clip", F.relu6, max=6.0, min=0.0)
case(
    "clip-int32",
    "clip",
    lambda rng: [_ints(rng, SHAPE)],
    lambda x: paddle.clip(x, -5, 7),
    min=-5.0,
    max=7.0,
)
case(
    "clip-inputs",
    "clip",
    lambda rng: [_floats(rng, SHAPE), np.float32(-0.5), np.float32(0.3)],
    lambda x, lo, hi: paddle.clip(x, lo, hi),
)
_act("leaky_relu", F.leaky_relu)
_act("leaky_relu", lambda x: F.leaky_relu(x, 0.3), alpha=0.3)
_act("elu", F.elu)
_act("elu", lambda x: F.elu(x, 0.4), alpha=0.4)
_act("selu", F.selu)
_act("selu", lambda x: F.selu(x, 1.2, 1.5), scale=1.2, alpha=1.5)
_act("celu", lambda x: F.celu(x, 0.6), alpha=0.6)
_act("gelu", F.gelu)
_act("gelu", lambda x: F.gelu(x, approximate=True), approximate=True)
_act("swish", F.swish)
_act("swish", lambda x: x * F.sigmoid(x * 1.7), beta=1.7)
_act("hard_swish", F.hardswish)
_act(
    "hard_swish",
    lambda x: x * paddle.clip(x + 2.0, 0.0, 5.0) / 4.0,
    threshold=5.0,
    scale=4.0,
    offset=2.0,
)
_act("hard_sigmoid", F.hardsigmoid)
_act("hard_sigmoid", lambda x: F.hardsigmoid(x, 0.2, 0.4), slope=0.2, offset=0.4)
_act("hard_tanh", F.hardtanh)
_act("hard_tanh", lambda x: F.hardtanh(x, -0.4, 2.0), min=-0.4, max=2.0)
_act("mish", F.mish)
_act("mish", lambda x: x * paddle.tanh(F.softplus(x, 1.0, 1.5)), threshold=1.5)
_act("softplus", F.softplus)
_act("softplus", lambda x: F.softplus(x, 2.0, 3.0), beta=2.0, threshold=3.0)
_act("hard_shrink", F.hardshrink)
_act("hard_shrink", lambda x: F.hardshrink(x, 1.5), threshold=1.5)
_act("soft_shrink", F.softshrink)
_act("soft_shrink", lambda x: F.softshrink(x, 0.25), threshold=0.25)
_act("thresholded_relu", F.thresholded_relu)
_act("thresholded_relu", lambda x: F.thresholded_relu(x, 0.5, -1.0), threshold=0.5, value=-1.0)


def _prelu_inputs(slope_shape, shape=SHAPE):
    def make(rng):
        return [_floats(rng, shape), (rng.random(slope_shape) * 0.5).astype(np.float32)]

    return make


case("prelu-all", "prelu", _prelu_inputs((1,)), lambda x, a: F.prelu(x, a))
case(
    "prelu-channel",
    "prelu",
    _prelu_inputs((3, 1, 1)),
    lambda x, a: F.prelu(x, a.reshape([3])),
)
case(
    "prelu-channel-nhwc",
    "prelu",
    _prelu_inputs((3,), (2, 4, 5, 3)),
    lambda x, a: F.prelu(x, a, data_format="NHWC"),
)
case(
    "prelu-element",
    "prelu",
    _prelu_inputs((3, 4, 5)),
    lambda x, a: paddle._C_ops.prelu(x, a.reshape([1, 3, 4, 5]), "NCHW", "element"),
)

for _attrs in (
    {"scale": 2.5, "bias": 1.0},
    {"scale": -0.5, "bias": 0.25, "bias_after_scale": False},
    {"scale": 1.0, "bias": 0.0},
):
    _fn = (lambda a: lambda x: paddle.scale(x, **a))(_attrs)
    case(f"scale-f32-{_attrs}", "scale", _one(), _fn, **_attrs)
    case(f"scale-int32-{_attrs}", "scale", lambda rng: [_ints(rng, SHAPE)], _fn, **_attrs)
case(
    "scale-f16",
    "scale",
    _one(dtype="float16"),
    lambda x: paddle.scale(x, 3.0, 0.5),
    scale=3.0,
    bias=0.5,
)

# ---- casts --------------------------------------------------------------------------------
CAST_SOURCES = {
    "float32": lambda rng: [_floats(rng, SHAPE) * 10],
    "float64": lambda rng: [_floats(rng, SHAPE, dtype="float64") * 10],
    "int32": lambda rng: [_ints(rng, SHAPE, -1000, 1000)],
    "int64": lambda rng: [_ints(rng, SHAPE, -1000, 1000, "int64")],
    "bool": lambda rng: [rng.random(SHAPE) > 0.5],
    "uint8": lambda rng: [_ints(rng, SHAPE, 0, 256, "uint8")],
}
for _src, _make in CAST_SOURCES.items():
    for _dst in ("float32", "float64", "float16", "int32", "int64", "int8", "uint8", "bool"):
        if _src.startswith("float") and _dst in ("uint8", "int8"):
            continue  # out-of-range float -> small int conversions are undefined behaviour
        if _src in ("int32", "int64") and _dst in ("uint8", "int8"):
            continue
        _fn = (lambda d: lambda x: paddle.cast(x, d))(_dst)
        case(f"cast-{_src}-{_dst}", "cast", _make, _fn, dtype=_dst)
case(
    "cast-f32-uint8-in-range",
    "cast",
    lambda rng: [(rng.random(SHAPE) * 255).astype(np.float32)],
    lambda x: paddle.cast(x, "uint8"),
    dtype="uint8",
)


# ---- reductions ---------------------------------------------------------------------------
AXES = [None, [], [1], [-1], [0, 2], [1, 2, 3]]
REDUCE = {
    "reduce_sum": paddle.sum,
    "reduce_mean": paddle.mean,
    "reduce_max": paddle.max,
    "reduce_min": paddle.min,
    "reduce_prod": paddle.prod,
    "logsumexp": paddle.logsumexp,
}


def _paddle_axes(axes):
    return None if not axes else axes


for _op, _fn in REDUCE.items():
    for _axes in AXES:
        for _keep in (False, True):
            _ref = (lambda f, a, k: lambda x: f(x, axis=_paddle_axes(a), keepdim=k))(
                _fn, _axes, _keep
            )
            kind = "unit" if _op == "reduce_prod" else "any"
            case(f"{_op}-{_axes}-{_keep}", _op, _one(kind), _ref, axes=_axes, keepdim=_keep)
for _op, _fn in (("reduce_any", paddle.any), ("reduce_all", paddle.all)):
    for _axes in AXES:
        _ref = (lambda f, a: lambda x: f(x, axis=_paddle_axes(a), keepdim=False))(_fn, _axes)
        case(f"{_op}-{_axes}", _op, lambda rng: [rng.random(SHAPE) > 0.2], _ref, axes=_axes)
    case(
        f"{_op}-float",
        _op,
        _one(),
        lambda x, f=_fn: f(x, axis=1, keepdim=True),
        axes=[1],
        keepdim=True,
    )
case(
    "reduce_sum-int32-to-int64",
    "reduce_sum",
    lambda rng: [_ints(rng, SHAPE)],
    lambda x: paddle.sum(x, axis=[1, 2]),
    axes=[1, 2],
    dtype="int64",
)
case(
    "reduce_sum-int64",
    "reduce_sum",
    lambda rng: [_ints(rng, SHAPE, dtype="int64")],
    lambda x: paddle.sum(x, axis=1),
    axes=[1],
)
case(
    "reduce_sum-f32-to-f64",
    "reduce_sum",
    _one(),
    lambda x: paddle.sum(x, 1, "float64"),
    axes=[1],
    dtype="float64",
)
case(
    "reduce_max-int32",
    "reduce_max",
    lambda rng: [_ints(rng, SHAPE)],
    lambda x: paddle.max(x, axis=[0, 3]),
    axes=[0, 3],
)
case(
    "reduce_prod-int32",
    "reduce_prod",
    lambda rng: [_ints(rng, SHAPE, -3, 4)],
    lambda x: paddle.prod(x, axis=[1, 2]),
    axes=[1, 2],
)
case(
    "reduce_mean-int32",
    "reduce_mean",
    lambda rng: [_ints(rng, SHAPE)],
    lambda x: paddle.mean(x, axis=[1]),
    axes=[1],
)
case(
    "reduce_l2",
    "reduce_l2",
    _one(),
    lambda x: paddle.sqrt(paddle.sum(x * x, axis=[1, 2], keepdim=True)),
    axes=[1, 2],
    keepdim=True,
)
case("reduce_l2-all", "reduce_l2", _one(), lambda x: paddle.sqrt(paddle.sum(x * x)))

for _op, _fn in (("argmax", paddle.argmax), ("argmin", paddle.argmin)):
    for _axis, _keep, _dtype in [
        (None, False, "int64"),
        (None, True, "int64"),
        (1, False, "int64"),
        (-1, True, "int32"),
        (0, False, "int32"),
    ]:
        _ref = (lambda f, a, k, d: lambda x: f(x, axis=a, keepdim=k, dtype=d))(
            _fn, _axis, _keep, _dtype
        )
        case(
            f"{_op}-{_axis}-{_keep}-{_dtype}",
            _op,
            _one(),
            _ref,
            axis=_axis,
            keepdim=_keep,
            dtype=_dtype,
        )
    case(
        f"{_op}-ties-int32",
        _op,
        lambda rng: [_ints(rng, SHAPE, -2, 3)],
        lambda x, f=_fn: f(x, axis=2),
        axis=2,
    )

for _axis in (0, 1, -1):
    for _excl in (False, True):
        for _rev in (False, True):
            _ref = (lambda a, e, r: lambda x: paddle._C_ops.cumsum(x, a, False, e, r))(
                _axis, _excl, _rev
            )
            case(
                f"cumsum-{_axis}-{_excl}-{_rev}",
                "cumsum",
                _one(),
                _ref,
                axis=_axis,
                exclusive=_excl,
                reverse=_rev,
            )
case("cumsum-flat", "cumsum", _one(), lambda x: paddle.cumsum(x), axis=None)
case(
    "cumsum-int32",
    "cumsum",
    lambda rng: [_ints(rng, SHAPE)],
    lambda x: paddle._C_ops.cumsum(x, 2, False, False, False),
    axis=2,
)


# ---- the tests ----------------------------------------------------------------------------


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_op_matches_paddle(c: Case) -> None:
    rng = _rng(c.id)
    sets = c.make(rng) if getattr(c.make, "many", False) else [c.make(rng)]
    for k, inputs in enumerate(sets):
        expected = _paddle(c.ref, inputs)
        actual = _run(c.op, inputs, c.attrs)
        assert len(actual) == len(expected)
        shapes = [np.shape(a) for a in inputs]
        for a, e in zip(actual, expected, strict=True):
            _check(a, e, f"{c.id} inputs {shapes} (set {k})")


def test_every_family_op_is_tested() -> None:
    """Every op fluidrt.ops.elementwise registers has at least one comparison above."""
    family = {n for n, d in registered_ops().items() if d.impl.__module__ == MODULE}
    assert len(family) > 80
    assert family - TESTED == set()


# ---- shape inference on meta tensors with a symbolic batch --------------------------------
META_CASES: list[tuple[str, list[tuple[tuple, str]], dict[str, Any]]] = [
    ("add", [(("N", 3, 4), "float32"), ((4,), "float32")], {}),
    ("add", [(("N", 1, 4), "float32"), ((3, 1), "float32")], {}),
    ("div", [(("N", 3), "int32"), ((3,), "int32")], {}),
    ("pow", [(("N", 3), "int64"), ((), "int64")], {}),
    ("less", [(("N", 3), "float32"), (("N", 3), "float32")], {}),
    ("logical_and", [(("N", 3), "bool"), ((3,), "bool")], {}),
    ("exp", [(("N", 3), "int32")], {}),
    ("isnan", [(("N", 3), "float16")], {}),
    ("round", [(("N", 3), "float32")], {"decimals": 2}),
    ("clip", [(("N", 3), "float32")], {"min": 0.0, "max": 6.0}),
    ("clip", [(("N", 3), "int32")], {"min": -1.5}),
    ("clip", [(("N", 3), "float32"), ((), "float32"), ((), "float32")], {}),
    ("prelu", [(("N", 3, 4, 4), "float32"), ((3, 1, 1), "float32")], {}),
    ("scale", [(("N", 3), "int64")], {"scale": 2.5, "bias": 1.0}),
    ("cast", [(("N", 3), "float32")], {"dtype": "int8"}),
    ("reduce_sum", [(("N", 3, 4), "int32")], {"axes": [1], "dtype": "int64"}),
    ("reduce_mean", [(("N", 3, 4), "float32")], {"axes": [0], "keepdim": True}),
    ("reduce_max", [(("N", 3, 4), "float32")], {"axes": [-1]}),
    ("reduce_prod", [(("N", 3, 4), "float32")], {"axes": [1, 2], "keepdim": True}),
    ("reduce_any", [(("N", 3, 4), "bool")], {"axes": None}),
    ("reduce_l2", [(("N", 3, 4), "float32")], {"axes": [2]}),
    ("logsumexp", [(("N", 3, 4), "float32")], {"axes": [1]}),
    ("argmax", [(("N", 3, 4), "float32")], {"axis": 1, "dtype": "int32"}),
    ("argmin", [(("N", 3, 4), "float32")], {"axis": None, "keepdim": True}),
    ("cumsum", [(("N", 3, 4), "int32")], {"axis": 1, "exclusive": True, "reverse": True}),
    ("cumsum", [(("N", 3, 4), "float32")], {"axis": None}),
    ("gelu", [(("N", 3), "float32")], {"approximate": True}),
    ("hard_swish", [(("N", 3), "float16")], {}),
]


def _concrete(shape: tuple, n: int) -> tuple[int, ...]:
    return tuple(n if d == "N" else d for d in shape)


@pytest.mark.parametrize(
    "op,specs,attrs", META_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(META_CASES)]
)
def test_meta_inference_matches(op: str, specs, attrs) -> None:
    g = Graph("meta")
    ins = [g.add_input(f"in{i}", shape, dtype) for i, (shape, dtype) in enumerate(specs)]
    node = g.add_node(op, ins, attrs)
    infer_node(node)
    out = node.outputs[0]
    # real runs at two batch sizes: dims that follow the batch must be symbolic
    runs = []
    for n in (2, 3):
        rng = _rng(f"{op}-{n}")
        arrays = [
            _floats(rng, _concrete(s, n), "pos", d)
            if d.startswith("float")
            else (
                rng.random(_concrete(s, n)) > 0.5
                if d == "bool"
                else _ints(rng, _concrete(s, n), 1, 5, d)
            )
            for s, d in specs
        ]
        runs.append(_run(op, arrays, attrs)[0])
    expected = tuple(
        a if a == b else ("N" if a == 2 else f"N*{a // 2}")
        for a, b in zip(runs[0].shape, runs[1].shape, strict=True)
    )
    assert out.shape == expected
    assert out.dtype == str(runs[0].dtype)


def test_int_semantics_spelled_out() -> None:
    """The integer rules the canonical ops promise, on hand-checked values."""
    a = np.array([7, -7, 7, -7], np.int32)
    b = np.array([2, 2, -2, -2], np.int32)
    assert _run("div", [a, b], {})[0].tolist() == [3, -3, -3, 3]
    assert _run("floor_div", [a, b], {})[0].tolist() == [3, -4, -4, 3]
    assert _run("mod", [a, b], {})[0].tolist() == [1, 1, -1, -1]
    e = np.array([-1, -2, -3, 0], np.int32)
    base = np.array([2, -1, 1, 0], np.int32)
    assert _run("pow", [base, e], {})[0].tolist() == [0, 1, 1, 1]
    assert _run("scale", [a], {"scale": 2.5, "bias": 1.9})[0].tolist() == [15, -13, 15, -13]
    x = np.array([1.7, -1.7, 2.5, -0.5], np.float32)
    assert _run("cast", [x], {"dtype": "int32"})[0].tolist() == [1, -1, 2, 0]
    assert _run("round", [x], {})[0].tolist() == [2.0, -2.0, 2.0, -0.0]
    assert math.copysign(1.0, float(_run("round", [x], {})[0][3])) == -1.0
