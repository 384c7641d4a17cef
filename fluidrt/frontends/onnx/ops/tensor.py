"""Importers of ONNX tensor ops: shapes, reshapes, slicing, indexing, padding, constants."""

from __future__ import annotations

import math

import numpy as np

from fluidrt.frontends.onnx.context import OnnxContext, OnnxNode
from fluidrt.frontends.onnx.importer import onnx_dtype
from fluidrt.frontends.onnx.ops.common import (
    INT64_MAX,
    emit_dynamic,
    norm_axes,
    norm_axis,
    rank_of,
    static_dim,
)
from fluidrt.frontends.onnx.registry import onnx_op
from fluidrt.ir.graph import Dim, Value
from fluidrt.ops.tensor import slice_bounds


# ---- constants and identities ---------------------------------------------------------------
@onnx_op("Constant", since=1)
def _constant(ctx: OnnxContext, node: OnnxNode) -> Value:
    a = node.attrs
    if "value" in a:
        arr = np.asarray(a["value"])
    elif "sparse_value" in a:
        arr = np.asarray(a["sparse_value"])
    elif "value_float" in a:
        arr = np.asarray(a["value_float"], dtype=np.float32)
    elif "value_floats" in a:
        arr = np.asarray(a["value_floats"], dtype=np.float32)
    elif "value_int" in a:
        arr = np.asarray(a["value_int"], dtype=np.int64)
    elif "value_ints" in a:
        arr = np.asarray(a["value_ints"], dtype=np.int64)
    elif "value_string" in a or "value_strings" in a:
        raise ctx.unsupported("string constants are not supported")
    else:
        raise ctx.error("has none of the value attributes")
    value = ctx.const(arr, "value")
    proto_t = node.proto.attribute[0].t if node.proto is not None and node.proto.attribute else None
    if proto_t is not None and proto_t.data_type == 16:  # bfloat16 constants stay bfloat16
        return ctx.emit("cast", [value], {"dtype": "bfloat16"})
    return value


@onnx_op("Identity", since=1)
def _identity(ctx: OnnxContext, node: OnnxNode) -> Value:
    v = ctx.input(node, 0)
    return v


@onnx_op("Dropout", since=7)
def _dropout(ctx: OnnxContext, node: OnnxNode) -> list[Value]:
    x = ctx.input(node, 0)
    training = ctx.optional(node, 2)
    if training is not None and bool(ctx.scalar(training, "training_mode", False)):
        raise ctx.unsupported("training-mode Dropout (random masks) is not supported")
    outs = [x]
    if node.has_output(1):
        outs.append(ctx.emit("full_like", [x], {"value": 1.0, "dtype": "bool"}))
    return outs


@onnx_op("ConstantOfShape", since=9)
def _constant_of_shape(ctx: OnnxContext, node: OnnxNode) -> Value:
    value = node.attrs.get("value")
    fill = np.zeros([1], dtype=np.float32) if value is None else np.asarray(value).reshape(-1)
    dtype = str(fill.dtype)
    shape_v = ctx.input(node, 0)
    dims = ctx.known(shape_v)
    if dims is not None and all(isinstance(d, int) for d in dims):
        if int(np.prod(dims, dtype=np.int64)) <= 1 << 24:
            return ctx.const(np.full(dims, fill[0], dtype=fill.dtype), "filled")
    v = fill[0].item()
    out = ctx.emit("fill", [shape_v], {"value": v, "dtype": dtype})
    return ctx.set_shape(out, dims if dims is not None else _unknown_dims(shape_v))


@onnx_op("EyeLike", since=9)
def _eye_like(ctx: OnnxContext, node: OnnxNode) -> Value:
    x = ctx.input(node, 0)
    dt = node.attrs.get("dtype")
    dtype = onnx_dtype(int(dt), ctx.where()) if dt is not None else x.dtype
    return ctx.emit("eye_like", [x], {"k": int(node.attrs.get("k", 0)), "dtype": dtype})


@onnx_op("Range", since=11)
def _range(ctx: OnnxContext, node: OnnxNode) -> Value:
    start, limit, delta = (ctx.input(node, i) for i in range(3))
    if all(v.data is not None for v in (start, limit, delta)):
        s, e, d = (v.data.reshape(-1)[0] for v in (start, limit, delta))
        n = max(int(math.ceil((float(e) - float(s)) / float(d))), 0)
        arr = (s + np.arange(n, dtype=start.data.dtype) * d).astype(start.data.dtype)
        return ctx.const(arr, "range")
    return ctx.emit("arange", [start, limit, delta], {"dtype": start.dtype})


# ---- shapes --------------------------------------------------------------------------------
def _shape_dims(x: Value, start: int, end: int | None) -> list[Dim] | None:
    if x.shape is None:
        return None
    return list(x.shape)[slice(start, end)]


@onnx_op("Shape", since=1)
def _shape(ctx: OnnxContext, node: OnnxNode) -> Value:
    x = ctx.input(node, 0)
    start = int(node.attrs.get("start", 0))
    end = node.attrs.get("end")
    end = None if end is None else int(end)
    dims = _shape_dims(x, start, end)
    if dims is not None and all(isinstance(d, int) for d in dims):
        return ctx.const(np.asarray(dims, dtype=np.int64), "shape")
    out = ctx.emit("shape", [x])
    if start != 0 or end is not None:
        attrs = {"axes": [0], "starts": [start], "ends": [INT64_MAX if end is None else end]}
        out = ctx.emit("slice", [out], attrs)
    return out if dims is None else ctx.track(out, dims)


@onnx_op("Size", since=1)
def _size(ctx: OnnxContext, node: OnnxNode) -> Value:
    x = ctx.input(node, 0)
    if x.static_shape is not None:
        return ctx.const(np.asarray(int(np.prod(x.static_shape, dtype=np.int64)), np.int64))
    return ctx.emit("reduce_prod", [ctx.emit("shape", [x])], {"axes": None, "keepdim": False})


def _reshape(ctx: OnnxContext, x: Value, shape_v: Value, allowzero: bool) -> Value:
    dims = ctx.known(shape_v)
    if dims is None:
        if allowzero:
            raise ctx.unsupported("Reshape with allowzero=1 needs a constant shape")
        return ctx.set_shape(ctx.emit("reshape", [x, shape_v]), _unknown_dims(shape_v))
    if allowzero and 0 in dims:
        if x.static_shape is not None and int(np.prod(x.static_shape)) == 0:
            if all(isinstance(d, int) for d in dims) and -1 not in dims:
                return ctx.emit(
                    "fill",
                    [ctx.const(np.asarray(dims, np.int64))],
                    {"value": 0.0, "dtype": x.dtype},
                )
        raise ctx.unsupported(
            "Reshape with allowzero=1 and a 0 in the shape is only supported for empty tensors"
        )
    target: list[Dim] = list(dims)
    if x.shape is not None:  # a symbolic dim copied from the same place of the input: 0
        for i, d in enumerate(target):
            if isinstance(d, str) and d != "?" and i < len(x.shape) and x.shape[i] == d:
                target[i] = 0
    syms = [i for i, d in enumerate(target) if not isinstance(d, int)]
    if not syms:
        out = ctx.emit("reshape", [x], {"shape": [int(d) for d in target]})
    elif len(syms) == 1 and -1 not in target:
        target[syms[0]] = -1
        out = ctx.emit("reshape", [x], {"shape": target})
    else:  # the shape is computed at run time; its rank and most dims are known
        out = ctx.emit("reshape", [x, shape_v])
    # where inference could not follow (unknown input dims), the target still gives the rank
    resolved = [
        x.shape[i] if d == 0 and x.shape is not None and i < len(x.shape) else d
        for i, d in enumerate(
            dims if out.producer is not None and len(out.producer.inputs) > 1 else target
        )
    ]
    ctx.set_shape(out, ["?" if d == -1 else d for d in resolved])
    kx = ctx.known(x)
    if kx is not None and out.shape is not None and len(out.shape) <= 1:
        return ctx.track(out, kx, scalar=len(out.shape) == 0)
    return out


def _unknown_dims(shape_v: Value) -> list[Dim] | None:
    """A shape whose values are unknown but whose length is: its rank is known."""
    if shape_v.shape is not None and len(shape_v.shape) == 1 and isinstance(shape_v.shape[0], int):
        return ["?"] * shape_v.shape[0]
    return None


@onnx_op("Reshape", since=5)
def _reshape_v5(ctx: OnnxContext, node: OnnxNode) -> Value:
    x, shape_v = ctx.input(node, 0), ctx.input(node, 1)
    return _reshape(ctx, x, shape_v, bool(node.attrs.get("allowzero", 0)))


@onnx_op("Flatten", since=1)
def _flatten(ctx: OnnxContext, node: OnnxNode) -> Value:
    x = ctx.input(node, 0)
    r = rank_of(ctx, x)
    axis = int(node.attrs.get("axis", 1))
    axis = axis + r if axis < 0 else axis
    if not 0 <= axis <= r:
        raise ctx.error(f"axis {node.attrs.get('axis')} is out of range for rank {r}")
    if axis == 0:
        return ctx.emit("reshape", [x], {"shape": [1, -1]})
    y = (
        ctx.emit("flatten", [x], {"start": axis, "stop": -1})
        if axis < r
        else ctx.emit("unsqueeze", [x], {"axes": [r]})
    )
    if axis > 1:
        y = ctx.emit("flatten", [y], {"start": 0, "stop": axis - 1})
    return y


@onnx_op("Transpose", since=1)
def _transpose(ctx: OnnxContext, node: OnnxNode) -> Value:
    x = ctx.input(node, 0)
    perm = node.attrs.get("perm")
    if not perm:  # the default reverses the dims
        perm = list(range(rank_of(ctx, x) - 1, -1, -1))
    return ctx.emit("transpose", [x], {"perm": [int(p) for p in perm]})


def _squeeze(ctx: OnnxContext, x: Value, axes: list[int] | None) -> Value:
    r = x.rank
    if axes:
        if r is None:
            raise ctx.unsupported("Squeeze needs the input rank")
        axes = sorted(norm_axes(ctx, axes, r))
    out = ctx.emit("squeeze", [x], {"axes": list(axes or [])})
    kx = ctx.known(x)
    if kx is not None and len(kx) == 1 and ctx.known_shape(x) == (1,):
        return ctx.track(out, kx, scalar=True)
    return out


@onnx_op("Squeeze", since=1)
def _squeeze_attr(ctx: OnnxContext, node: OnnxNode) -> Value:
    return _squeeze(ctx, ctx.input(node, 0), node.attrs.get("axes"))


@onnx_op("Squeeze", since=13)
def _squeeze_input(ctx: OnnxContext, node: OnnxNode) -> Value:
    x, axes_v = ctx.input(node, 0), ctx.optional(node, 1)
    if axes_v is not None and axes_v.data is None:
        return emit_dynamic(ctx, "squeeze", x, {}, [("axes", "ints", axes_v)])
    return _squeeze(ctx, x, ctx.ints(axes_v, "axes"))


def _unsqueeze(ctx: OnnxContext, x: Value, axes: list[int]) -> Value:
    r = rank_of(ctx, x) + len(axes)
    norm = sorted(norm_axes(ctx, axes, r))
    if len(set(norm)) != len(norm):
        raise ctx.error(f"axes {axes} repeat an axis")
    out = ctx.emit("unsqueeze", [x], {"axes": norm})
    kx = ctx.known(x)
    if kx is not None and ctx.known_shape(x) == () and norm == [0]:
        return ctx.track(out, kx)
    return out


@onnx_op("Unsqueeze", since=1)
def _unsqueeze_attr(ctx: OnnxContext, node: OnnxNode) -> Value:
    return _unsqueeze(ctx, ctx.input(node, 0), list(node.attrs["axes"]))


@onnx_op("Unsqueeze", since=13)
def _unsqueeze_input(ctx: OnnxContext, node: OnnxNode) -> Value:
    x, axes_v = ctx.input(node, 0), ctx.input(node, 1)
    if axes_v.data is None:
        return emit_dynamic(ctx, "unsqueeze", x, {}, [("axes", "unsqueeze_axes", axes_v)])
    return _unsqueeze(ctx, x, ctx.ints(axes_v, "axes") or [])


@onnx_op("Concat", since=4)
def _concat(ctx: OnnxContext, node: OnnxNode) -> Value:
    vals = [v for v in ctx.inputs(node) if v is not None]
    axis = int(node.attrs["axis"])
    known = [ctx.known(v) for v in vals]
    shapes = [ctx.known_shape(v) for v in vals]
    if all(k is not None for k in known) and all(s is not None and len(s) == 1 for s in shapes):
        dims = [d for k in known for d in k]  # type: ignore[union-attr]
        if all(isinstance(d, int) for d in dims):
            dtype = vals[0].dtype if vals[0].dtype in ("int32", "int64") else "int64"
            return ctx.const(np.asarray(dims, dtype=dtype), "concat")
        out = ctx.emit("concat", vals, {"axis": axis})
        return ctx.track(out, dims)
    if len(vals) == 1:
        return ctx.emit("identity", vals)
    return ctx.emit("concat", vals, {"axis": axis})


def _split(ctx: OnnxContext, node: OnnxNode, sizes: list[int] | None) -> list[Value]:
    x = ctx.input(node, 0)
    r = rank_of(ctx, x)
    axis = norm_axis(ctx, int(node.attrs.get("axis", 0)), r)
    n = len(node.outputs)
    if sizes:
        attrs = {"axis": axis, "sections": sizes}
    else:
        n = int(node.attrs.get("num_outputs") or n)
        d = static_dim(x, axis)
        if d is not None and d % n:
            chunk = -(-d // n)
            attrs = {"axis": axis, "sections": [chunk] * (n - 1) + [d - chunk * (n - 1)]}
        else:
            attrs = {"axis": axis, "num": n}
    outs = ctx.emit("split", [x], attrs)
    return outs if isinstance(outs, list) else [outs]


@onnx_op("Split", since=2)
def _split_attr(ctx: OnnxContext, node: OnnxNode) -> list[Value]:
    return _split(ctx, node, node.attrs.get("split"))


@onnx_op("Split", since=13)
def _split_input(ctx: OnnxContext, node: OnnxNode) -> list[Value]:
    split_v = ctx.optional(node, 1)
    if split_v is not None and split_v.data is None:
        x = ctx.input(node, 0)
        axis = norm_axis(ctx, int(node.attrs.get("axis", 0)), rank_of(ctx, x))
        n = len(node.outputs)
        outs = emit_dynamic(
            ctx, "split", x, {"axis": axis}, [("sections", "ints", split_v)], outputs=n
        )
        return outs if isinstance(outs, list) else [outs]
    return _split(ctx, node, ctx.ints(split_v, "split"))


def _slice(
    ctx: OnnxContext,
    x: Value,
    starts: Value | list[int],
    ends: Value | list[int],
    axes: Value | list[int] | None,
    steps: Value | list[int] | None,
) -> Value:
    def as_list(v: Value | list[int] | None) -> list[int] | None:
        if v is None or isinstance(v, list):
            return v
        return None if v.data is None else [int(a) for a in v.data.reshape(-1)]

    params = [as_list(v) for v in (starts, ends, axes, steps)]
    dynamic = [
        v is not None and not isinstance(v, list) and p is None
        for v, p in zip((starts, ends, axes, steps), params, strict=True)
    ]
    if any(dynamic):
        ins = [x] + [
            v
            if isinstance(v, Value)
            else ctx.const(np.asarray(v, np.int64))
            if v is not None
            else None
            for v in (starts, ends, axes, steps)
        ]
        while ins[-1] is None:
            ins.pop()
        return ctx.emit("slice", ins)
    st, en, ax, sp = params
    kx = ctx.known(x)
    if kx is not None and ctx.known_shape(x) == (len(kx),) and (ax is None or ax in ([0], [-1])):
        s, e, k = st[0], en[0], (sp or [1])[0]
        s, e, count = slice_bounds(len(kx), s, e, k)
        picked = [kx[s + i * k] for i in range(count)]
        out = ctx.emit("slice", [x], {"axes": ax, "starts": st, "ends": en, "steps": sp})
        return ctx.track(out, picked) if x.data is None else out
    return ctx.emit("slice", [x], {"axes": ax, "starts": st, "ends": en, "steps": sp})


@onnx_op("Slice", since=1)
def _slice_attr(ctx: OnnxContext, node: OnnxNode) -> Value:
    a = node.attrs
    axes = a.get("axes")
    return _slice(
        ctx,
        ctx.input(node, 0),
        list(a["starts"]),
        list(a["ends"]),
        list(axes) if axes else None,
        None,
    )


@onnx_op("Slice", since=10)
def _slice_input(ctx: OnnxContext, node: OnnxNode) -> Value:
    return _slice(
        ctx,
        ctx.input(node, 0),
        ctx.input(node, 1),
        ctx.input(node, 2),
        ctx.optional(node, 3),
        ctx.optional(node, 4),
    )


# ---- indexing -------------------------------------------------------------------------------
@onnx_op("Gather", since=1)
def _gather(ctx: OnnxContext, node: OnnxNode) -> Value:
    x, idx = ctx.input(node, 0), ctx.input(node, 1)
    axis = int(node.attrs.get("axis", 0))
    kx = ctx.known(x)
    if (
        kx is not None
        and idx.data is not None
        and axis in (0, -1)
        and x.data is None
        and ctx.known_shape(x) == (len(kx),)
        and idx.data.ndim <= 1
    ):
        picked = [kx[int(i)] for i in idx.data.reshape(-1)]
        out = ctx.emit("gather", [x, idx], {"axis": 0})
        return ctx.track(out, picked, scalar=idx.data.ndim == 0)
    return ctx.emit("gather", [x, idx], {"axis": axis})


@onnx_op("GatherElements", since=11)
def _gather_elements(ctx: OnnxContext, node: OnnxNode) -> Value:
    return ctx.emit(
        "take_along_axis",
        [ctx.input(node, 0), ctx.input(node, 1)],
        {"axis": int(node.attrs.get("axis", 0))},
    )


@onnx_op("GatherND", since=11)
def _gather_nd(ctx: OnnxContext, node: OnnxNode) -> Value:
    x, idx = ctx.input(node, 0), ctx.input(node, 1)
    b = int(node.attrs.get("batch_dims", 0))
    if b == 0:
        return ctx.emit("gather_nd", [x, idx])
    return ctx.emit("gather_nd_batched", [x, idx], {"batch_dims": b})


@onnx_op("ScatterElements", "Scatter", since=9)
def _scatter_elements(ctx: OnnxContext, node: OnnxNode) -> Value:
    x, idx, upd = (ctx.input(node, i) for i in range(3))
    attrs = {
        "axis": int(node.attrs.get("axis", 0)),
        "reduction": str(node.attrs.get("reduction", "none")),
    }
    return ctx.emit("scatter_elements", [x, idx, upd], attrs)


@onnx_op("ScatterND", since=11)
def _scatter_nd(ctx: OnnxContext, node: OnnxNode) -> Value:
    x, idx, upd = (ctx.input(node, i) for i in range(3))
    return ctx.emit(
        "scatter_nd", [x, idx, upd], {"reduction": str(node.attrs.get("reduction", "none"))}
    )


@onnx_op("Where", since=9)
def _where(ctx: OnnxContext, node: OnnxNode) -> Value:
    ins = [ctx.input(node, i) for i in range(3)]
    out = ctx.emit("where", ins)
    args = ctx.known_args(ins) if out.data is None else None
    if args is None:
        return out
    (cond, xs, ys), scalar = args
    return ctx.track(
        out, [x if c else y for c, x, y in zip(cond, xs, ys, strict=True)], scalar=scalar
    )


@onnx_op("NonZero", since=9)
def _nonzero(ctx: OnnxContext, node: OnnxNode) -> Value:
    return ctx.emit("nonzero", [ctx.input(node, 0)])


@onnx_op("Compress", since=9)
def _compress(ctx: OnnxContext, node: OnnxNode) -> Value:
    axis = node.attrs.get("axis")
    return ctx.emit(
        "compress",
        [ctx.input(node, 0), ctx.input(node, 1)],
        {"axis": None if axis is None else int(axis)},
    )


@onnx_op("OneHot", since=9)
def _one_hot(ctx: OnnxContext, node: OnnxNode) -> Value:
    idx, depth_v, values = (ctx.input(node, i) for i in range(3))
    vals = ctx.const_array(values, "values").reshape(-1)
    off, on = vals[0], vals[1]
    idx = ctx.emit("cast", [idx], {"dtype": "int64"})
    attrs = {"dtype": str(vals.dtype), "axis": int(node.attrs.get("axis", -1))}
    if depth_v.data is not None:
        depth = int(depth_v.data.reshape(-1)[0])
        depth_c = ctx.const(np.asarray(depth, dtype=np.int64), "depth")
        attrs["depth"] = depth
        ins = []
    else:  # depth known at run time: the one_hot op reads it as a value input
        depth_c = ctx.emit("cast", [depth_v], {"dtype": "int64"})
        ins = [depth_c]
    neg = ctx.emit("less", [idx, ctx.const(np.zeros((), dtype=np.int64), "zero")])
    idx = ctx.emit("where", [neg, ctx.emit("add", [idx, depth_c]), idx])
    oh = ctx.emit("one_hot", [idx, *ins], attrs)
    if off == 0 and on == 1:
        return oh
    scaled = ctx.emit("mul", [oh, ctx.const(np.asarray(on - off, dtype=vals.dtype), "span")])
    return ctx.emit("add", [scaled, ctx.const(np.asarray(off, dtype=vals.dtype), "off")])


@onnx_op("Trilu", since=14)
def _trilu(ctx: OnnxContext, node: OnnxNode) -> Value:
    op = "triu" if int(node.attrs.get("upper", 1)) else "tril"
    return emit_dynamic(
        ctx, op, ctx.input(node, 0), {"diagonal": 0}, [("diagonal", "int", ctx.optional(node, 1))]
    )


# ---- padding, broadcasting, tiling ----------------------------------------------------------
_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "circular"}


def _pad(
    ctx: OnnxContext, node: OnnxNode, pads: list[int], value: float, axes: list[int] | None
) -> Value:
    x = ctx.input(node, 0)
    mode = str(node.attrs.get("mode", "constant"))
    if mode not in _PAD_MODES:
        raise ctx.unsupported(f"Pad mode {mode!r} is not supported")
    r = rank_of(ctx, x)
    if axes is not None:
        axes = norm_axes(ctx, axes, r)
        full = [0] * (2 * r)
        for i, a in enumerate(axes):
            full[a] = pads[i]
            full[r + a] = pads[len(axes) + i]
        pads = full
    if len(pads) != 2 * r:
        raise ctx.error(f"pads {pads} do not fit rank {r}")
    if not any(pads):
        return ctx.emit("identity", [x])
    return ctx.emit("pad", [x], {"pads": pads, "mode": _PAD_MODES[mode], "value": value})


@onnx_op("Pad", since=2)
def _pad_attr(ctx: OnnxContext, node: OnnxNode) -> Value:
    return _pad(ctx, node, list(node.attrs["pads"]), float(node.attrs.get("value", 0.0)), None)


@onnx_op("Pad", since=11)
def _pad_input(ctx: OnnxContext, node: OnnxNode) -> Value:
    pads_v, value_v, axes_v = ctx.input(node, 1), ctx.optional(node, 2), ctx.optional(node, 3)
    if pads_v.data is None or (value_v is not None and value_v.data is None):
        mode = str(node.attrs.get("mode", "constant"))
        if mode not in _PAD_MODES or axes_v is not None:
            raise ctx.unsupported("Pad with pads computed at run time supports no axes input")
        return emit_dynamic(
            ctx,
            "pad",
            ctx.input(node, 0),
            {"mode": _PAD_MODES[mode]},
            [("pads", "ints", pads_v), ("value", "scalar", value_v)],
        )
    pads = ctx.ints(pads_v, "pads") or []
    value = ctx.scalar(value_v, "constant_value", 0)
    axes = ctx.ints(axes_v, "axes")
    return _pad(ctx, node, pads, value, axes)


@onnx_op("Expand", since=8)
def _expand(ctx: OnnxContext, node: OnnxNode) -> Value:
    x, shape_v = ctx.input(node, 0), ctx.input(node, 1)
    dims = ctx.known(shape_v)
    if dims is not None and x.shape is not None:
        target: list[Dim] = list(dims)
        offset = len(target) - len(x.shape)
        for i, d in enumerate(target):
            j = i - offset
            if isinstance(d, str) and 0 <= j < len(x.shape) and x.shape[j] == d and d != "?":
                target[i] = -1  # keep the input's (symbolic) dim
        if all(isinstance(d, int) for d in target):
            return ctx.emit("expand", [x], {"shape": target})
        out = ctx.emit("expand", [x, shape_v])
        return ctx.set_shape(out, _broadcast(list(x.shape), list(dims)))
    out = ctx.emit("expand", [x, shape_v])
    unknown = _unknown_dims(shape_v)
    if unknown is not None and x.shape is not None:
        return ctx.set_shape(out, _broadcast(list(x.shape), unknown))  # type: ignore[arg-type]
    return out


def _broadcast(a: list[Dim], b: list[Dim]) -> list[Dim]:
    """NumPy broadcasting of two shapes that may hold symbolic dims ("?" where unknown)."""
    n = max(len(a), len(b))
    a = [1] * (n - len(a)) + a
    b = [1] * (n - len(b)) + b
    out: list[Dim] = []
    for p, q in zip(a, b, strict=True):
        if p == q or q == 1:
            out.append(p)
        elif p == 1:
            out.append(q)
        elif isinstance(p, int) and not isinstance(q, int):
            out.append(p)
        elif isinstance(q, int) and not isinstance(p, int):
            out.append(q)
        else:
            out.append("?")
    return out


@onnx_op("Tile", since=6)
def _tile(ctx: OnnxContext, node: OnnxNode) -> Value:
    x, reps = ctx.input(node, 0), ctx.input(node, 1)
    if reps.data is not None:
        return ctx.emit("tile", [x], {"repeats": [int(r) for r in reps.data.reshape(-1)]})
    return ctx.emit("tile", [x, reps])


# ---- rearrangements -------------------------------------------------------------------------
@onnx_op("DepthToSpace", since=1)
def _depth_to_space(ctx: OnnxContext, node: OnnxNode) -> Value:
    attrs = {"blocksize": int(node.attrs["blocksize"]), "mode": str(node.attrs.get("mode", "DCR"))}
    return ctx.emit("depth_to_space", [ctx.input(node, 0)], attrs)


@onnx_op("SpaceToDepth", since=1)
def _space_to_depth(ctx: OnnxContext, node: OnnxNode) -> Value:
    attrs = {"blocksize": int(node.attrs["blocksize"]), "mode": str(node.attrs.get("mode", "DCR"))}
    return ctx.emit("space_to_depth", [ctx.input(node, 0)], attrs)


@onnx_op("ReverseSequence", since=10)
def _reverse_sequence(ctx: OnnxContext, node: OnnxNode) -> Value:
    attrs = {
        "batch_axis": int(node.attrs.get("batch_axis", 1)),
        "time_axis": int(node.attrs.get("time_axis", 0)),
    }
    return ctx.emit("reverse_sequence", [ctx.input(node, 0), ctx.input(node, 1)], attrs)


@onnx_op("CenterCropPad", since=18)
def _center_crop_pad(ctx: OnnxContext, node: OnnxNode) -> Value:
    x = ctx.input(node, 0)
    shape = ctx.ints(ctx.input(node, 1), "shape") or []
    r = rank_of(ctx, x)
    axes = node.attrs.get("axes")
    axes = norm_axes(ctx, list(axes), r) if axes else list(range(r))
    if x.static_shape is None:
        raise ctx.unsupported("CenterCropPad needs a static input shape")
    pads = [0] * (2 * r)
    for a, target in zip(axes, shape, strict=True):
        d = x.static_shape[a]
        diff = target - d
        if diff >= 0:  # pad: the extra element goes to the end
            pads[a], pads[r + a] = diff // 2, diff - diff // 2
        else:  # crop: the extra element is cut from the end
            cut = -diff
            pads[a], pads[r + a] = -(cut // 2), -(cut - cut // 2)
    if not any(pads):
        return ctx.emit("identity", [x])
    return ctx.emit("pad", [x], {"pads": pads, "mode": "constant", "value": 0.0})
