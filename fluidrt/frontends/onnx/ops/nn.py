"""Importers of ONNX nn ops: convolution, pooling, normalization, matmul, softmax, resize."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from fluidrt.frontends.onnx.context import OnnxContext, OnnxNode
from fluidrt.frontends.onnx.ops.common import (
    norm_axes,
    norm_axis,
    rank_of,
    reshape_back,
    static_dim,
)
from fluidrt.frontends.onnx.registry import onnx_op
from fluidrt.ir.graph import Value
from fluidrt.ops.nn import same_pads

_CONV = {1: "conv1d", 2: "conv2d", 3: "conv3d"}
_CONV_T = {1: "conv1d_transpose", 2: "conv2d_transpose", 3: "conv3d_transpose"}
_POOL = {1: "pool1d", 2: "pool2d", 3: "pool3d"}
_AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def _auto_pad(ctx: OnnxContext, node: OnnxNode) -> str:
    ap = str(node.attrs.get("auto_pad", "NOTSET") or "NOTSET")
    if ap not in _AUTO_PADS:
        raise ctx.error(f"auto_pad must be one of {_AUTO_PADS}, got {ap!r}")
    return ap


def _spatial(ctx: OnnxContext, node: OnnxNode, x: Value, w: Value | None = None) -> int:
    kernel = node.attrs.get("kernel_shape")
    if kernel:
        return len(kernel)
    if w is not None and w.rank is not None:
        return w.rank - 2
    return rank_of(ctx, x) - 2


def _list(value: Sequence[int] | None, n: int, default: int) -> list[int]:
    return [int(v) for v in value] if value else [default] * n


def _spatial_sizes(x: Value) -> list[int] | None:
    if x.shape is None:
        return None
    dims = list(x.shape[2:])
    return dims if all(isinstance(d, int) for d in dims) else None  # type: ignore[return-value]


# ---- convolution ---------------------------------------------------------------------------
@onnx_op("Conv", since=1)
def _conv(ctx: OnnxContext, node: OnnxNode) -> Value:
    x, w, b = ctx.input(node, 0), ctx.input(node, 1), ctx.optional(node, 2)
    n = _spatial(ctx, node, x, w)
    if n not in _CONV:
        raise ctx.unsupported(f"{n}-D convolution is not supported (1-D to 3-D are)")
    attrs = {
        "strides": _list(node.attrs.get("strides"), n, 1),
        "pads": _list(node.attrs.get("pads"), 2 * n, 0),
        "dilations": _list(node.attrs.get("dilations"), n, 1),
        "groups": int(node.attrs.get("group", 1)),
        "auto_pad": _auto_pad(ctx, node),
    }
    return ctx.emit(_CONV[n], [x, w, b] if b is not None else [x, w], attrs)


@onnx_op("ConvTranspose", since=1)
def _conv_transpose(ctx: OnnxContext, node: OnnxNode) -> Value:
    x, w, b = ctx.input(node, 0), ctx.input(node, 1), ctx.optional(node, 2)
    n = _spatial(ctx, node, x, w)
    if n not in _CONV_T:
        raise ctx.unsupported(f"{n}-D transposed convolution is not supported")
    strides = _list(node.attrs.get("strides"), n, 1)
    dilations = _list(node.attrs.get("dilations"), n, 1)
    out_pad = _list(node.attrs.get("output_padding"), n, 0)
    pads = _list(node.attrs.get("pads"), 2 * n, 0)
    auto_pad = _auto_pad(ctx, node)
    out_shape = node.attrs.get("output_shape")
    out_shape = [int(v) for v in out_shape][-n:] if out_shape else None
    sizes = _spatial_sizes(x)
    kernel = node.attrs.get("kernel_shape") or (list(w.shape[2:]) if w.shape is not None else None)
    output_size = None
    if out_shape is not None:
        if sizes is not None and kernel is not None and all(isinstance(k, int) for k in kernel):
            # ONNX: pads follow from the requested output shape; SAME_UPPER puts the odd one
            # at the end, everything else at the beginning
            begins, ends = [], []
            for i in range(n):
                ext = (int(kernel[i]) - 1) * dilations[i] + 1
                total = strides[i] * (sizes[i] - 1) + out_pad[i] + ext - out_shape[i]
                small, large = total // 2, total - total // 2
                if auto_pad == "SAME_UPPER":
                    begins.append(small)
                    ends.append(large)
                else:
                    begins.append(large)
                    ends.append(small)
            pads, auto_pad = begins + ends, "NOTSET"
        else:
            output_size = out_shape
    attrs = {
        "strides": strides,
        "pads": pads,
        "dilations": dilations,
        "groups": int(node.attrs.get("group", 1)),
        "auto_pad": auto_pad,
        "output_padding": out_pad,
        "output_size": output_size,
    }
    return ctx.emit(_CONV_T[n], [x, w, b] if b is not None else [x, w], attrs)


# ---- pooling -------------------------------------------------------------------------------
def _pool(
    ctx: OnnxContext,
    node: OnnxNode,
    mode: str,
    x: Value,
    *,
    count_include_pad: bool,
    sum_only: bool = False,
) -> Value:
    """ONNX MaxPool/AveragePool/LpPool windows on the canonical pool ops.

    ``sum_only``: return window sums (LpPool). ONNX's ceil mode drops a last window that would
    start in the end padding; with static sizes that is expressed as explicit end padding.
    ``count_include_pad`` divides by the window clipped to the padded input: the padding is
    made explicit (zeros) and the pool counts only real elements of that padded input.
    """
    n = _spatial(ctx, node, x)
    if n not in _POOL:
        raise ctx.unsupported(f"{n}-D pooling is not supported (1-D to 3-D are)")
    kernel = [int(k) for k in node.attrs["kernel_shape"]]
    strides = _list(node.attrs.get("strides"), n, 1)
    dilations = _list(node.attrs.get("dilations"), n, 1)
    pads = _list(node.attrs.get("pads"), 2 * n, 0)
    ceil = bool(node.attrs.get("ceil_mode", 0))
    auto_pad = _auto_pad(ctx, node)
    dilated = any(d != 1 for d in dilations)
    sizes = _spatial_sizes(x)
    extents = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    simple = not dilated and not (mode == "avg" and count_include_pad) and not sum_only
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        if simple:
            attrs = {
                "mode": mode,
                "kernel": kernel,
                "strides": strides,
                "auto_pad": auto_pad,
                "count_include_pad": False,
            }
            return ctx.emit(_POOL[n], [x], attrs)
        if sizes is None:
            raise ctx.unsupported(
                "SAME padding with dilations or count_include_pad needs static spatial sizes"
            )
        pads = same_pads(sizes, extents, strides, auto_pad == "SAME_UPPER")
        ceil = False
    elif auto_pad == "VALID":
        pads = [0] * (2 * n)
    begins, ends = pads[:n], pads[n:]
    ends_eff = list(ends)
    if ceil and sizes is not None:
        for i in range(n):
            span = sizes[i] + begins[i] + ends[i] - extents[i]
            out = -(-span // strides[i]) + 1
            if (out - 1) * strides[i] >= sizes[i] + begins[i]:
                out -= 1  # the last window would start in the end padding
            ends_eff[i] = (out - 1) * strides[i] + extents[i] - sizes[i] - begins[i]
        ceil = False
    include = count_include_pad or sum_only
    if mode == "avg" and count_include_pad and not sum_only:
        # explicit zero padding; the extension past it (ceil mode) does not count
        if any(pads):
            full = [0, 0] + begins + [0, 0] + ends
            x = ctx.emit("pad", [x], {"pads": full, "mode": "constant", "value": 0.0})
            ends_eff = [e - p for e, p in zip(ends_eff, ends, strict=True)]
            begins = [0] * n
        include = False
    pads_eff = begins + ends_eff
    if dilated:
        attrs = {
            "mode": mode,
            "kernel": kernel,
            "strides": strides,
            "pads": pads_eff,
            "dilations": dilations,
            "ceil_mode": ceil,
            "count_include_pad": include,
        }
        y = ctx.emit("dilated_pool", [x], attrs)
    else:
        attrs = {
            "mode": mode,
            "kernel": kernel,
            "strides": strides,
            "pads": pads_eff,
            "ceil_mode": ceil,
            "count_include_pad": include,
        }
        y = ctx.emit(_POOL[n], [x], attrs)
    if sum_only:
        k = ctx.const(np.asarray(float(np.prod(kernel)), dtype=x.dtype or "float32"), "k")
        y = ctx.emit("mul", [y, k])
    return y


@onnx_op("MaxPool", since=1)
def _max_pool(ctx: OnnxContext, node: OnnxNode) -> Value | list[Value]:
    x = ctx.input(node, 0)
    if node.has_output(1):
        n = _spatial(ctx, node, x)
        attrs = {
            "kernel": [int(k) for k in node.attrs["kernel_shape"]],
            "strides": _list(node.attrs.get("strides"), n, 1),
            "pads": _list(node.attrs.get("pads"), 2 * n, 0),
            "dilations": _list(node.attrs.get("dilations"), n, 1),
            "ceil_mode": bool(node.attrs.get("ceil_mode", 0)),
            "storage_order": int(node.attrs.get("storage_order", 0)),
        }
        if _auto_pad(ctx, node) != "NOTSET":
            raise ctx.unsupported("MaxPool indices with auto_pad are not supported")
        return ctx.emit("max_pool_with_indices", [x], attrs)
    if x.dtype in ("int8", "uint8", "int16", "int32"):  # exact in float; -inf padding
        y = _pool(
            ctx, node, "max", ctx.emit("cast", [x], {"dtype": "float64"}), count_include_pad=False
        )
        return ctx.emit("cast", [y], {"dtype": x.dtype})
    return _pool(ctx, node, "max", x, count_include_pad=False)


@onnx_op("AveragePool", since=7)
def _avg_pool(ctx: OnnxContext, node: OnnxNode) -> Value:
    include = bool(node.attrs.get("count_include_pad", 0))
    return _pool(ctx, node, "avg", ctx.input(node, 0), count_include_pad=include)


@onnx_op("LpPool", since=11)
def _lp_pool(ctx: OnnxContext, node: OnnxNode) -> Value:
    x = ctx.input(node, 0)
    p = float(node.attrs.get("p", 2))
    powered = ctx.emit("pow", [ctx.emit("abs", [x]), ctx.const(np.asarray(p, x.dtype), "p")])
    s = _pool(ctx, node, "avg", powered, count_include_pad=True, sum_only=True)
    return ctx.emit("pow", [s, ctx.const(np.asarray(1.0 / p, x.dtype), "inv_p")])


def _global(mode: str) -> Callable[[OnnxContext, OnnxNode], Value]:
    def importer(ctx: OnnxContext, node: OnnxNode) -> Value:
        x = ctx.input(node, 0)
        r = rank_of(ctx, x)
        if r == 4:
            return ctx.emit("adaptive_pool2d", [x], {"mode": mode, "output_size": [1, 1]})
        axes = list(range(2, r))
        op = "reduce_mean" if mode == "avg" else "reduce_max"
        return ctx.emit(op, [x], {"axes": axes, "keepdim": True})

    return importer


onnx_op("GlobalAveragePool", since=1)(_global("avg"))
onnx_op("GlobalMaxPool", since=1)(_global("max"))


@onnx_op("GlobalLpPool", since=2)
def _global_lp_pool(ctx: OnnxContext, node: OnnxNode) -> Value:
    x = ctx.input(node, 0)
    p = float(node.attrs.get("p", 2))
    axes = list(range(2, rank_of(ctx, x)))
    powered = ctx.emit("pow", [ctx.emit("abs", [x]), ctx.const(np.asarray(p, x.dtype), "p")])
    s = ctx.emit("reduce_sum", [powered], {"axes": axes, "keepdim": True})
    return ctx.emit("pow", [s, ctx.const(np.asarray(1.0 / p, x.dtype), "inv_p")])


# ---- normalization -------------------------------------------------------------------------
@onnx_op("BatchNormalization", since=7)
def _batch_norm(ctx: OnnxContext, node: OnnxNode) -> Value:
    if int(node.attrs.get("training_mode", 0)):
        raise ctx.unsupported("training-mode BatchNormalization is not supported")
    if int(node.attrs.get("spatial", 1)) != 1:
        raise ctx.unsupported("BatchNormalization with spatial=0 is not supported")
    if any(node.has_output(i) for i in range(1, len(node.outputs))):
        raise ctx.unsupported("BatchNormalization's training outputs are not supported")
    ins = [ctx.input(node, i) for i in range(5)]
    return ctx.emit("batch_norm", ins, {"epsilon": float(node.attrs.get("epsilon", 1e-5))})


@onnx_op("InstanceNormalization", since=6)
def _instance_norm(ctx: OnnxContext, node: OnnxNode) -> Value:
    ins = [ctx.input(node, i) for i in range(3)]
    return ctx.emit("instance_norm", ins, {"epsilon": float(node.attrs.get("epsilon", 1e-5))})


def _group_norm(ctx: OnnxContext, node: OnnxNode, per_group: bool) -> Value:
    x, scale, bias = (ctx.input(node, i) for i in range(3))
    groups = int(node.attrs["num_groups"])
    c = static_dim(x, 1)
    if per_group:  # opset 18: one scale and bias per group, shared by its channels
        if c is None:
            raise ctx.unsupported("GroupNormalization-18 needs a static channel count")
        index = ctx.const(np.arange(c, dtype=np.int64) // (c // groups), "group_of_channel")
        scale = ctx.emit("gather", [scale, index], {"axis": 0})
        bias = ctx.emit("gather", [bias, index], {"axis": 0})
    attrs = {"groups": groups, "epsilon": float(node.attrs.get("epsilon", 1e-5))}
    return ctx.emit("group_norm", [x, scale, bias], attrs)


@onnx_op("GroupNormalization", since=18)
def _group_norm_18(ctx: OnnxContext, node: OnnxNode) -> Value:
    return _group_norm(ctx, node, per_group=True)


@onnx_op("GroupNormalization", since=21)
def _group_norm_21(ctx: OnnxContext, node: OnnxNode) -> Value:
    return _group_norm(ctx, node, per_group=False)


@onnx_op("LayerNormalization", since=17)
def _layer_norm(ctx: OnnxContext, node: OnnxNode) -> list[Value]:
    x, scale, bias = ctx.input(node, 0), ctx.input(node, 1), ctx.optional(node, 2)
    r = rank_of(ctx, x)
    axis = norm_axis(ctx, int(node.attrs.get("axis", -1)), r)
    eps = float(node.attrs.get("epsilon", 1e-5))
    norm_dims = list(x.shape[axis:]) if x.shape is not None else []
    full = all(isinstance(d, int) for d in norm_dims) and all(
        v is None
        or (v.static_shape is not None and int(np.prod(v.static_shape)) == int(np.prod(norm_dims)))
        for v in (scale, bias)
    )
    if full:
        ins = [x, scale] + ([bias] if bias is not None else [])
        y = ctx.emit("layer_norm", ins, {"axis": axis, "epsilon": eps})
    else:  # scale/bias that only broadcast to the normalized dims
        y = ctx.emit("layer_norm", [x], {"axis": axis, "epsilon": eps})
        y = ctx.emit("mul", [y, scale])
        if bias is not None:
            y = ctx.emit("add", [y, bias])
    outs = [y]
    if node.has_output(1) or node.has_output(2):
        axes = list(range(axis, r))
        mean = ctx.emit("reduce_mean", [x], {"axes": axes, "keepdim": True})
        centered = ctx.emit("sub", [x, mean])
        var = ctx.emit(
            "reduce_mean", [ctx.emit("mul", [centered, centered])], {"axes": axes, "keepdim": True}
        )
        eps_c = ctx.const(np.asarray(eps, dtype=x.dtype), "eps")
        inv = ctx.emit("rsqrt", [ctx.emit("add", [var, eps_c])])
        outs += [mean, inv]
    return outs


@onnx_op("RMSNormalization", since=23)
def _rms_norm(ctx: OnnxContext, node: OnnxNode) -> Value:
    x, scale = ctx.input(node, 0), ctx.input(node, 1)
    r = rank_of(ctx, x)
    axis = norm_axis(ctx, int(node.attrs.get("axis", -1)), r)
    eps = ctx.const(np.asarray(float(node.attrs.get("epsilon", 1e-5)), dtype=x.dtype), "eps")
    ms = ctx.emit(
        "reduce_mean", [ctx.emit("mul", [x, x])], {"axes": list(range(axis, r)), "keepdim": True}
    )
    y = ctx.emit("mul", [x, ctx.emit("rsqrt", [ctx.emit("add", [ms, eps])])])
    return ctx.emit("mul", [y, scale])


@onnx_op("LRN", since=1)
def _lrn(ctx: OnnxContext, node: OnnxNode) -> Value:
    a = node.attrs
    attrs = {
        "size": int(a["size"]),
        "alpha": float(a.get("alpha", 1e-4)),
        "beta": float(a.get("beta", 0.75)),
        "bias": float(a.get("bias", 1.0)),
    }
    return ctx.emit("lrn", [ctx.input(node, 0)], attrs)


@onnx_op("LpNormalization", since=1)
def _lp_norm(ctx: OnnxContext, node: OnnxNode) -> Value:
    attrs = {"axis": int(node.attrs.get("axis", -1)), "p": int(node.attrs.get("p", 2))}
    return ctx.emit("lp_norm", [ctx.input(node, 0)], attrs)


@onnx_op("MeanVarianceNormalization", since=9)
def _mvn(ctx: OnnxContext, node: OnnxNode) -> Value:
    x = ctx.input(node, 0)
    axes = norm_axes(ctx, list(node.attrs.get("axes") or [0, 2, 3]), rank_of(ctx, x))
    mean = ctx.emit("reduce_mean", [x], {"axes": axes, "keepdim": True})
    sq_mean = ctx.emit("reduce_mean", [ctx.emit("mul", [x, x])], {"axes": axes, "keepdim": True})
    var = ctx.emit("sub", [sq_mean, ctx.emit("mul", [mean, mean])])
    eps = ctx.const(np.asarray(1e-9, dtype=x.dtype), "eps")
    std = ctx.emit("add", [ctx.emit("sqrt", [var]), eps])
    return ctx.emit("div", [ctx.emit("sub", [x, mean]), std])


# ---- matmul ----------------------------------------------------------------------------------
@onnx_op("MatMul", since=1)
def _matmul(ctx: OnnxContext, node: OnnxNode) -> Value:
    return ctx.emit("matmul", [ctx.input(node, 0), ctx.input(node, 1)])


@onnx_op("Gemm", since=7)
def _gemm(ctx: OnnxContext, node: OnnxNode) -> Value:
    a, b, c = ctx.input(node, 0), ctx.input(node, 1), ctx.optional(node, 2)
    attrs = {
        "trans_a": bool(node.attrs.get("transA", 0)),
        "trans_b": bool(node.attrs.get("transB", 0)),
    }
    y = ctx.emit("matmul", [a, b], attrs)
    alpha, beta = float(node.attrs.get("alpha", 1.0)), float(node.attrs.get("beta", 1.0))
    if alpha != 1.0:
        y = ctx.emit("mul", [y, ctx.const(np.asarray(alpha, dtype=y.dtype), "alpha")])
    if c is not None and beta != 0.0:
        if beta != 1.0:
            c = ctx.emit("mul", [c, ctx.const(np.asarray(beta, dtype=c.dtype), "beta")])
        y = ctx.emit("add", [y, c])
    return y


# ---- softmax family --------------------------------------------------------------------------
def _hardmax_last(ctx: OnnxContext, x: Value, axis: int) -> Value:
    d = static_dim(x, axis)
    if d is None:
        raise ctx.unsupported("Hardmax needs a static size along its axis")
    idx = ctx.emit("argmax", [x], {"axis": axis, "keepdim": False, "dtype": "int64"})
    return ctx.emit("one_hot", [idx], {"depth": d, "dtype": x.dtype, "axis": axis})


def _softmax_like(kind: str, coerce_2d: bool) -> Callable[[OnnxContext, OnnxNode], Value]:
    canonical = {"Softmax": "softmax", "LogSoftmax": "log_softmax"}.get(kind)

    def apply(ctx: OnnxContext, x: Value, axis: int) -> Value:
        if canonical is None:
            return _hardmax_last(ctx, x, axis)
        return ctx.emit(canonical, [x], {"axis": axis})

    def importer(ctx: OnnxContext, node: OnnxNode) -> Value:
        x = ctx.input(node, 0)
        r = rank_of(ctx, x)
        axis = norm_axis(ctx, int(node.attrs.get("axis", 1 if coerce_2d else -1)), r)
        if not coerce_2d or axis == r - 1:
            return apply(ctx, x, axis)
        # opset < 13: the input is seen as 2-D [prod(dims[:axis]), prod(dims[axis:])]
        flat = ctx.emit("flatten", [x], {"start": axis, "stop": -1})
        return reshape_back(ctx, apply(ctx, flat, axis), x)

    return importer


for _kind in ("Softmax", "LogSoftmax", "Hardmax"):
    onnx_op(_kind, since=1)(_softmax_like(_kind, coerce_2d=True))
    onnx_op(_kind, since=13)(_softmax_like(_kind, coerce_2d=False))


# ---- resize ----------------------------------------------------------------------------------
_COORD_MODES = ("asymmetric", "half_pixel", "pytorch_half_pixel", "align_corners")
_RESIZE_MODES = {"nearest": "nearest", "linear": "linear", "bilinear": "linear", "cubic": "cubic"}


def _resize(
    ctx: OnnxContext,
    node: OnnxNode,
    x: Value,
    scales_v: Value | None,
    sizes_v: Value | None,
    coordinate_mode: str,
    nearest_mode: str,
) -> Value:
    a = node.attrs
    mode = str(a.get("mode", "nearest"))
    if mode not in _RESIZE_MODES:
        raise ctx.unsupported(f"Resize mode {mode!r} is not supported")
    if coordinate_mode not in _COORD_MODES:
        raise ctx.unsupported(
            f"coordinate_transformation_mode {coordinate_mode!r} is not "
            f"supported (supported: {', '.join(_COORD_MODES)})"
        )
    if int(a.get("exclude_outside", 0)):
        raise ctx.unsupported("Resize with exclude_outside=1 is not supported")
    if int(a.get("antialias", 0)):
        raise ctx.unsupported("Resize with antialias=1 is not supported")
    r = rank_of(ctx, x)
    axes = norm_axes(ctx, list(a.get("axes") or range(r)), r)
    scales = None
    if scales_v is not None and scales_v.data is None:  # scales known at run time
        if len(axes) != r:
            raise ctx.unsupported("Resize scales computed at run time need all axes")
        spatial = ctx.emit("slice", [scales_v], {"axes": [0], "starts": [2], "ends": [r]})
        attrs = {
            "mode": _RESIZE_MODES[mode],
            "coordinate_mode": coordinate_mode,
            "nearest_mode": nearest_mode,
            "cubic_coeff": float(a.get("cubic_coeff_a", -0.75)),
        }
        return ctx.emit("resize", [x, None, spatial], attrs)
    if scales_v is not None and scales_v.data.size:
        sc = [float(s) for s in ctx.const_array(scales_v, "scales").reshape(-1)]
        scales = [1.0] * r
        for ax, s in zip(axes, sc, strict=True):
            scales[ax] = s
    sizes: list | None = None
    if sizes_v is not None and (sizes_v.data is None or sizes_v.data.size):
        known = ctx.known(sizes_v)
        if known is None:
            if x.rank is None or len(axes) != r:
                raise ctx.unsupported("Resize sizes computed at run time need all axes")
            spatial = ctx.emit("slice", [sizes_v], {"axes": [0], "starts": [2], "ends": [r]})
            attrs = {
                "mode": _RESIZE_MODES[mode],
                "coordinate_mode": coordinate_mode,
                "nearest_mode": nearest_mode,
                "cubic_coeff": float(a.get("cubic_coeff_a", -0.75)),
            }
            return ctx.emit("resize", [x, spatial], attrs)
        sizes = list(x.shape) if x.shape is not None else [None] * r
        for ax, s in zip(axes, known, strict=True):
            sizes[ax] = s
    policy = str(a.get("keep_aspect_ratio_policy", "stretch"))
    if sizes is not None and policy != "stretch":
        ins = [x.shape[ax] if x.shape is not None else None for ax in axes]
        if not all(isinstance(d, int) for d in ins):
            raise ctx.unsupported("keep_aspect_ratio_policy needs static input sizes")
        ratios = [sizes[ax] / d for ax, d in zip(axes, ins, strict=True)]
        scale = min(ratios) if policy == "not_larger" else max(ratios)
        scales = [1.0] * r
        for ax, d in zip(axes, ins, strict=True):
            scales[ax] = scale
            sizes[ax] = int(math.floor(scale * d + 0.5))
    if scales is None and sizes is None:
        raise ctx.error("needs scales or sizes")
    # the canonical op resizes spatial dims (2..); batch and channels must stay
    if scales is not None and any(s != 1.0 for s in scales[:2]):
        raise ctx.unsupported(
            f"resizing the batch or channel dims (scales {scales}) is not supported"
        )
    if sizes is not None:
        if x.shape is None or any(sizes[i] != x.shape[i] for i in range(min(2, r))):
            raise ctx.unsupported(
                f"resizing the batch or channel dims (sizes {sizes}) is not supported"
            )
        spatial_sizes = sizes[2:]
        if not all(isinstance(s, int) for s in spatial_sizes):
            spatial = ctx.emit("slice", [sizes_v], {"axes": [0], "starts": [2], "ends": [r]})
            attrs = {
                "mode": _RESIZE_MODES[mode],
                "coordinate_mode": coordinate_mode,
                "nearest_mode": nearest_mode,
                "cubic_coeff": float(a.get("cubic_coeff_a", -0.75)),
            }
            return ctx.emit("resize", [x, spatial], attrs)
    attrs = {
        "size": sizes[2:] if sizes is not None else None,
        "scales": scales[2:] if scales is not None else None,
        "mode": _RESIZE_MODES[mode],
        "coordinate_mode": coordinate_mode,
        "nearest_mode": nearest_mode,
        "cubic_coeff": float(a.get("cubic_coeff_a", -0.75)),
    }
    if policy == "stretch" and sizes is not None:
        attrs["scales"] = None
    return ctx.emit("resize", [x], attrs)


@onnx_op("Resize", since=10)
def _resize_10(ctx: OnnxContext, node: OnnxNode) -> Value:
    return _resize(ctx, node, ctx.input(node, 0), ctx.input(node, 1), None, "asymmetric", "floor")


@onnx_op("Resize", since=11)
def _resize_11(ctx: OnnxContext, node: OnnxNode) -> Value:
    a = node.attrs
    return _resize(
        ctx,
        node,
        ctx.input(node, 0),
        ctx.optional(node, 2),
        ctx.optional(node, 3),
        str(a.get("coordinate_transformation_mode", "half_pixel")),
        str(a.get("nearest_mode", "round_prefer_floor")),
    )


@onnx_op("Upsample", since=7)
def _upsample_7(ctx: OnnxContext, node: OnnxNode) -> Value:
    x = ctx.input(node, 0)
    scales = ctx.const(np.asarray(node.attrs["scales"], dtype=np.float32), "scales")
    return _resize(ctx, node, x, scales, None, "asymmetric", "floor")


@onnx_op("Upsample", since=9)
def _upsample_9(ctx: OnnxContext, node: OnnxNode) -> Value:
    return _resize(ctx, node, ctx.input(node, 0), ctx.input(node, 1), None, "asymmetric", "floor")
