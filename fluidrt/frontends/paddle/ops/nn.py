"""Paddle importers: nn family (conv, pooling, normalization, matmul/fc, softmax, interpolation).

Each importer reads both formats: ProgramDesc ops (named slots ``"Input"``, ``"X"`` ...) and PIR
ops (``pd_op.*``, positional slots). Channel-last layouts (``NHWC`` ...) are imported as
``transpose -> channel-first op -> transpose``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from fluidrt.errors import UnsupportedOpError
from fluidrt.frontends.paddle.importer import ImportContext, paddle_op
from fluidrt.frontends.paddle.ops.common import auto_pad, paddle_pads
from fluidrt.frontends.paddle.source import SourceOp
from fluidrt.ir.graph import Value

log = logging.getLogger(__name__)


# ---- helpers ------------------------------------------------------------------------------
def _slot(op: SourceOp, legacy: str, pir: int) -> str | int:
    return legacy if op.format_legacy else pir


def _rank(ctx: ImportContext, v: Value, what: str = "input") -> int:
    if v.rank is None:
        raise UnsupportedOpError(f"{ctx.where()}: the rank of the {what} %{v.name} is unknown")
    return v.rank


def _channel_last(fmt: Any) -> bool:
    return isinstance(fmt, str) and len(fmt) > 2 and fmt.upper().endswith("C")


def _to_channel_first(ctx: ImportContext, x: Value) -> Value:
    r = _rank(ctx, x)
    return ctx.emit("transpose", [x], {"perm": [0, r - 1, *range(1, r - 1)]})


def _to_channel_last(ctx: ImportContext, y: Value) -> Value:
    r = _rank(ctx, y, "output")
    return ctx.emit("transpose", [y], {"perm": [0, *range(2, r), 1]})


def _channel_first_op(ctx: ImportContext, x: Value, fmt: Any, build) -> Value:
    """``build(x_nchw) -> y_nchw``, wrapped in transposes for channel-last layouts."""
    if not _channel_last(fmt) or _rank(ctx, x) <= 2:
        return build(x)
    return _to_channel_last(ctx, build(_to_channel_first(ctx, x)))


def _ints(value: Any, n: int, default: int) -> list[int]:
    if value is None or (isinstance(value, (list, tuple)) and not value):
        return [default] * n
    if isinstance(value, (int, np.integer)):
        return [int(value)] * n
    out = [int(v) for v in value]
    return out * n if len(out) == 1 and n > 1 else out


def _pads(paddings: Any, n: int) -> list[int]:
    p = _ints(paddings, n, 0)
    return paddle_pads(p * n if len(p) == 1 else p, n)


def _window_attrs(attrs: dict[str, Any], n: int) -> dict[str, Any]:
    """strides / pads / auto_pad of a conv or pool op (``padding_algorithm`` resolved)."""
    algo = auto_pad(attrs.get("padding_algorithm"))
    pads = [0] * (2 * n) if algo != "NOTSET" else _pads(attrs.get("paddings"), n)
    return {"strides": _ints(attrs.get("strides"), n, 1), "pads": pads, "auto_pad": algo}


def _static_spatial(x: Value, channel_last: bool) -> list[int] | None:
    """The spatial sizes of ``x`` when all are known at import time."""
    if x.shape is None:
        return None
    dims = x.shape[1:-1] if channel_last else x.shape[2:]
    if not all(isinstance(d, int) and d >= 0 for d in dims):
        return None
    return [int(d) for d in dims]


# ---- convolution --------------------------------------------------------------------------
@paddle_op(
    "conv2d",
    "depthwise_conv2d",
    "conv3d",
    "pd_op.conv2d",
    "pd_op.depthwise_conv2d",
    "pd_op.conv3d",
)
def _conv(ctx: ImportContext, op: SourceOp) -> None:
    legacy = op.format_legacy
    x = ctx.input(op, _slot(op, "Input", 0))
    w = ctx.input(op, _slot(op, "Filter", 1))
    b = ctx.optional_input(op, "Bias") if legacy else None
    n = _rank(ctx, w, "filter") - 2
    attrs = _window_attrs(op.attrs, n)
    attrs["dilations"] = _ints(op.attrs.get("dilations"), n, 1)
    if attrs["auto_pad"].startswith("SAME"):
        attrs["dilations"] = [1] * n  # Paddle's SAME padding ignores the dilation
    attrs["groups"] = int(op.attrs.get("groups", 1) or 1)
    if b is not None:
        b = ctx.emit("reshape", [b], {"shape": [-1]})
    fmt = op.attrs.get("data_format", "NCHW")
    y = _channel_first_op(
        ctx, x, fmt, lambda t: ctx.emit(f"conv{n}d", [t, w] + ([b] if b else []), attrs)
    )
    residual = ctx.optional_input(op, "ResidualData") if legacy else None
    if residual is not None:
        y = ctx.emit("add", [y, residual])
    ctx.bind(op, _slot(op, "Output", 0), y)


@paddle_op(
    "conv2d_transpose",
    "depthwise_conv2d_transpose",
    "conv3d_transpose",
    "pd_op.conv2d_transpose",
    "pd_op.depthwise_conv2d_transpose",
    "pd_op.conv3d_transpose",
)
def _conv_transpose(ctx: ImportContext, op: SourceOp) -> None:
    legacy = op.format_legacy
    x = ctx.input(op, _slot(op, "Input", 0))
    w = ctx.input(op, _slot(op, "Filter", 1))
    b = ctx.optional_input(op, "Bias") if legacy else None
    n = _rank(ctx, w, "filter") - 2
    out_size = op.attrs.get("output_size") or []
    if not legacy and ctx.has_input(op, 2):
        out_size = ctx.const_ints(ctx.input(op, 2), "the output size")
    attrs = _window_attrs(op.attrs, n)
    attrs["dilations"] = _ints(op.attrs.get("dilations"), n, 1)
    attrs["groups"] = int(op.attrs.get("groups", 1) or 1)
    attrs["output_padding"] = _ints(op.attrs.get("output_padding"), n, 0)
    attrs["output_size"] = [int(v) for v in out_size] or None
    channel_last = _channel_last(op.attrs.get("data_format", "NCHW"))
    if attrs["auto_pad"].startswith("SAME"):
        # Paddle pads as a forward conv of the input would (kernel, stride, dilation 1)
        attrs["dilations"] = [1] * n
        sizes = _static_spatial(x, channel_last)
        if sizes is not None:
            kernel = [int(k) for k in w.shape[2:]]
            p = _same_forward_pads(sizes, kernel, attrs["strides"])
            attrs.update(pads=p, auto_pad="NOTSET")
        else:
            log.warning(
                "%s: SAME padding on an input of run-time spatial size is imported with "
                "ONNX's rule, which matches Paddle's only when the size is a multiple of the "
                "stride",
                ctx.where(),
            )
    if b is not None:
        b = ctx.emit("reshape", [b], {"shape": [-1]})
    op_name = f"conv{n}d_transpose"
    y = _channel_first_op(
        ctx,
        x,
        op.attrs.get("data_format", "NCHW"),
        lambda t: ctx.emit(op_name, [t, w] + ([b] if b else []), attrs),
    )
    ctx.bind(op, _slot(op, "Output", 0), y)


def _same_forward_pads(sizes: list[int], kernel: list[int], strides: list[int]) -> list[int]:
    begins, ends = [], []
    for i, k, s in zip(sizes, kernel, strides, strict=True):
        total = max((-(-i // s) - 1) * s + k - i, 0)
        begins.append(total // 2)
        ends.append(total - total // 2)
    return begins + ends


# ---- pooling ------------------------------------------------------------------------------
@paddle_op("pool2d", "pool3d", "pd_op.pool2d", "pd_op.pool3d")
def _pool(ctx: ImportContext, op: SourceOp) -> None:
    legacy = op.format_legacy
    x = ctx.input(op, _slot(op, "X", 0))
    n = 3 if op.type.endswith("pool3d") else 2
    if not legacy and ctx.has_input(op, 1):
        kernel = ctx.const_ints(ctx.input(op, 1), "the pooling kernel size")
    else:
        kernel = op.attrs.get("ksize", op.attrs.get("kernel_size"))
    kernel = _ints(kernel, n, 1)
    mode = str(op.attrs.get("pooling_type", "max"))
    if op.attrs.get("global_pooling", False):
        build = _adaptive(ctx, mode, [1] * n)
    elif op.attrs.get("adaptive", False):
        build = _adaptive(ctx, mode, kernel)
    else:
        attrs = _window_attrs(op.attrs, n)
        attrs.update(
            mode=mode,
            kernel=kernel,
            ceil_mode=bool(op.attrs.get("ceil_mode", False)),
            count_include_pad=not bool(op.attrs.get("exclusive", True)),
        )

        def build(t: Value) -> Value:
            return ctx.emit(f"pool{n}d", [t], attrs)

    fmt = op.attrs.get("data_format", "NCHW")
    ctx.bind(op, _slot(op, "Out", 0), _channel_first_op(ctx, x, fmt, build))


def _adaptive(ctx: ImportContext, mode: str, size: list[int]):
    n = len(size)
    return lambda t: ctx.emit(f"adaptive_pool{n}d", [t], {"mode": mode, "output_size": size})


@paddle_op(
    "max_pool2d_with_index",
    "max_pool3d_with_index",
    "pd_op.max_pool2d_with_index",
    "pd_op.max_pool3d_with_index",
)
def _max_pool_with_index(ctx: ImportContext, op: SourceOp) -> None:
    """Max pooling; only ``Out`` is imported (the ``Mask`` argmax output is left unbound)."""
    x = ctx.input(op, _slot(op, "X", 0))
    n = 3 if "pool3d" in op.type else 2
    kernel = _ints(op.attrs.get("ksize", op.attrs.get("kernel_size")), n, 1)
    if op.attrs.get("global_pooling", False):
        y = _adaptive(ctx, "max", [1] * n)(x)
    elif op.attrs.get("adaptive", False):
        y = _adaptive(ctx, "max", kernel)(x)
    else:
        attrs = {
            "mode": "max",
            "kernel": kernel,
            "strides": _ints(op.attrs.get("strides"), n, 1),
            "pads": _pads(op.attrs.get("paddings"), n),
            "ceil_mode": bool(op.attrs.get("ceil_mode", False)),
        }
        y = ctx.emit(f"pool{n}d", [x], attrs)
    ctx.bind(op, _slot(op, "Out", 0), y)


# ---- normalization ------------------------------------------------------------------------
@paddle_op(
    "batch_norm",
    "sync_batch_norm",
    "pd_op.batch_norm",
    "pd_op.batch_norm_",
    "pd_op.sync_batch_norm",
    "pd_op.sync_batch_norm_",
)
def _batch_norm(ctx: ImportContext, op: SourceOp) -> None:
    """Inference batch norm with the running statistics; MeanOut/VarianceOut alias them."""
    x = ctx.input(op, _slot(op, "X", 0))
    mean = ctx.input(op, _slot(op, "Mean", 1))
    var = ctx.input(op, _slot(op, "Variance", 2))
    scale = ctx.optional_input(op, _slot(op, "Scale", 3))
    bias = ctx.optional_input(op, _slot(op, "Bias", 4))
    if scale is None or bias is None:
        c = ctx.const_value(mean)
        if c is None:
            raise UnsupportedOpError(f"{ctx.where()}: no scale/bias and a run-time mean")
        scale = scale if scale is not None else ctx.const(np.ones(c.shape, c.dtype), "bn_scale")
        bias = bias if bias is not None else ctx.const(np.zeros(c.shape, c.dtype), "bn_bias")
    eps = float(op.attrs.get("epsilon", 1e-5))
    fmt = op.attrs.get("data_layout", op.attrs.get("data_format", "NCHW"))
    y = _channel_first_op(
        ctx, x, fmt, lambda t: ctx.emit("batch_norm", [t, scale, bias, mean, var], {"epsilon": eps})
    )
    ctx.bind(op, _slot(op, "Y", 0), y)
    ctx.bind(op, _slot(op, "MeanOut", 1), mean)
    ctx.bind(op, _slot(op, "VarianceOut", 2), var)


@paddle_op("layer_norm", "pd_op.layer_norm")
def _layer_norm(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, _slot(op, "X", 0))
    scale = ctx.optional_input(op, _slot(op, "Scale", 1))
    bias = ctx.optional_input(op, _slot(op, "Bias", 2))
    attrs = {
        "axis": int(op.attrs.get("begin_norm_axis", 1)),
        "epsilon": float(op.attrs.get("epsilon", 1e-5)),
    }
    ctx.bind(op, _slot(op, "Y", 0), ctx.emit("layer_norm", [x, scale, bias], attrs))


@paddle_op("group_norm", "pd_op.group_norm")
def _group_norm(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, _slot(op, "X", 0))
    scale = ctx.optional_input(op, _slot(op, "Scale", 1))
    bias = ctx.optional_input(op, _slot(op, "Bias", 2))
    attrs = {
        "groups": int(op.attrs.get("groups", 1)),
        "epsilon": float(op.attrs.get("epsilon", 1e-5)),
    }
    fmt = op.attrs.get("data_layout", op.attrs.get("data_format", "NCHW"))
    y = _channel_first_op(ctx, x, fmt, lambda t: ctx.emit("group_norm", [t, scale, bias], attrs))
    ctx.bind(op, _slot(op, "Y", 0), y)


@paddle_op("instance_norm", "pd_op.instance_norm")
def _instance_norm(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, _slot(op, "X", 0))
    scale = ctx.optional_input(op, _slot(op, "Scale", 1))
    bias = ctx.optional_input(op, _slot(op, "Bias", 2))
    attrs = {"epsilon": float(op.attrs.get("epsilon", 1e-5))}
    ctx.bind(op, _slot(op, "Y", 0), ctx.emit("instance_norm", [x, scale, bias], attrs))


@paddle_op("lrn", "pd_op.lrn")
def _lrn(ctx: ImportContext, op: SourceOp) -> None:
    """Paddle: x * (k + alpha * sum_window x^2) ** -beta, alpha not divided by n (ONNX divides)."""
    x = ctx.input(op, _slot(op, "X", 0))
    n = int(op.attrs.get("n", 5))
    attrs = {
        "size": n,
        "alpha": float(op.attrs.get("alpha", 1e-4)) * n,
        "beta": float(op.attrs.get("beta", 0.75)),
        "bias": float(op.attrs.get("k", 1.0)),
    }
    fmt = op.attrs.get("data_format", "NCHW")
    y = _channel_first_op(ctx, x, fmt, lambda t: ctx.emit("lrn", [t], attrs))
    ctx.bind(op, _slot(op, "Out", 0), y)


# ---- matmul family ------------------------------------------------------------------------
@paddle_op("matmul_v2", "pd_op.matmul")
def _matmul_v2(ctx: ImportContext, op: SourceOp) -> None:
    legacy = op.format_legacy
    a = ctx.input(op, _slot(op, "X", 0))
    b = ctx.input(op, _slot(op, "Y", 1))
    ta = op.attrs.get("trans_x" if legacy else "transpose_x", False)
    tb = op.attrs.get("trans_y" if legacy else "transpose_y", False)
    y = ctx.emit("matmul", [a, b], {"trans_a": bool(ta), "trans_b": bool(tb)})
    ctx.bind(op, _slot(op, "Out", 0), y)


@paddle_op("matmul")
def _matmul_v1(ctx: ImportContext, op: SourceOp) -> None:
    """Legacy matmul: transpose_X / transpose_Y and an output scale ``alpha``."""
    a, b = ctx.input(op, "X"), ctx.input(op, "Y")
    attrs = {
        "trans_a": bool(op.attrs.get("transpose_X", False)),
        "trans_b": bool(op.attrs.get("transpose_Y", False)),
    }
    y = ctx.emit("matmul", [a, b], attrs)
    alpha = float(op.attrs.get("alpha", 1.0))
    if alpha != 1.0:
        y = ctx.emit("scale", [y], {"scale": alpha})
    ctx.bind(op, "Out", y)


def _flatten_tail(ctx: ImportContext, x: Value, keep: int) -> Value:
    """Keep dims [0, keep) and merge the rest into one."""
    r = _rank(ctx, x)
    if r == keep + 1:
        return x
    return ctx.emit("reshape", [x], {"shape": [0] * keep + [-1]})


def _as_matrix(ctx: ImportContext, y: Value, rows: int) -> Value:
    """Reshape ``y`` to 2-D: [prod(dims[:rows]), prod(dims[rows:])]."""
    r = _rank(ctx, y, "weight")
    if r == 2 and rows == 1:
        return y
    shape = y.shape
    if all(isinstance(d, int) for d in shape):
        return ctx.emit("reshape", [y], {"shape": [math.prod(shape[:rows]), -1]})
    if rows == 1:
        return ctx.emit("reshape", [y], {"shape": [0, -1]})
    if all(isinstance(d, int) for d in shape[rows:]):
        return ctx.emit("reshape", [y], {"shape": [-1, math.prod(shape[rows:])]})
    raise UnsupportedOpError(f"{ctx.where()}: cannot flatten %{y.name} of shape {shape}")


@paddle_op("mul")
def _mul(ctx: ImportContext, op: SourceOp) -> None:
    """out = flatten(X, x_num_col_dims) @ flatten(Y, y_num_col_dims), leading dims kept."""
    x, y = ctx.input(op, "X"), ctx.input(op, "Y")
    xn = int(op.attrs.get("x_num_col_dims", 1))
    yn = int(op.attrs.get("y_num_col_dims", 1))
    out = ctx.emit("matmul", [_flatten_tail(ctx, x, xn), _as_matrix(ctx, y, yn)])
    y_tail = list(y.shape[yn:]) if y.shape is not None else [-1]
    if len(y_tail) != 1:
        if not all(isinstance(d, int) for d in y_tail):
            raise UnsupportedOpError(f"{ctx.where()}: Y's trailing dims {y_tail} are not static")
        out = ctx.emit("reshape", [out], {"shape": [0] * xn + y_tail})
    ctx.bind(op, "Out", out)


@paddle_op("fc", "pd_op.fc")
def _fc(ctx: ImportContext, op: SourceOp) -> None:
    """activation(flatten(Input, in_num_col_dims) @ W + Bias)."""
    legacy = op.format_legacy
    x = ctx.input(op, _slot(op, "Input", 0))
    w = ctx.input(op, _slot(op, "W", 1))
    bias = ctx.optional_input(op, _slot(op, "Bias", 2))
    if op.attrs.get("padding_weights", False):
        data = ctx.const_value(w)
        if data is None:
            raise UnsupportedOpError(f"{ctx.where()}: padded fc weights must be constant")
        w = ctx.const(data[:-4, :-4], "fc_weight")
    keep = int(op.attrs.get("in_num_col_dims", 1))
    y = ctx.emit("matmul", [_flatten_tail(ctx, x, keep), w])
    if bias is not None:
        y = ctx.emit("add", [y, ctx.emit("reshape", [bias], {"shape": [-1]})])
    act = op.attrs.get("activation_type", "") or ""
    if act:
        if act not in ("relu",):
            raise UnsupportedOpError(f"{ctx.where()}: fc activation {act!r} is not supported")
        y = ctx.emit(act, [y])
    ctx.bind(op, "Out" if legacy else 0, y)


@paddle_op("softmax", "log_softmax", "pd_op.softmax", "pd_op.log_softmax")
def _softmax(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, _slot(op, "X", 0))
    name = op.type.rpartition(".")[2]
    y = ctx.emit(name, [x], {"axis": int(op.attrs.get("axis", -1))})
    ctx.bind(op, _slot(op, "Out", 0), y)


# ---- interpolation ------------------------------------------------------------------------
_INTERP_MODES = {
    "nearest": "nearest",
    "bilinear": "bilinear",
    "linear": "linear",
    "trilinear": "trilinear",
    "bicubic": "bicubic",
}


def interp_attrs(method: str, align_corners: bool, align_mode: int) -> dict[str, Any]:
    """Canonical ``resize`` attributes reproducing Paddle's interp kernels.

    nearest: ``int(r * k + 0.5)`` with align_corners, else ``int(r * k)``; linear modes:
    ``align_corners``, ``align_mode=1`` -> asymmetric ``r * k``, ``align_mode=0`` -> half-pixel
    clamped at 0; bicubic: half-pixel or align_corners (align_mode unused). Unchanged sizes copy
    the input. The 2-D kernels (bilinear, bicubic) use ratio 0 for an output size of 1, the 1-D
    and 3-D ones (linear, trilinear) do not (Paddle 3.3).
    """
    mode = _INTERP_MODES[method]
    nearest_mode = "floor"
    if mode == "nearest":
        coord = "align_corners" if align_corners else "asymmetric"
        nearest_mode = "round_prefer_ceil" if align_corners else "floor"
    elif align_corners:
        coord = "align_corners"
    elif mode != "bicubic" and int(align_mode) == 1:
        coord = "asymmetric"
    else:
        coord = "half_pixel"
    return {
        "mode": mode,
        "coordinate_mode": coord,
        "nearest_mode": nearest_mode,
        "cubic_coeff": -0.75,
        "zero_ratio_at_one": method not in ("linear", "trilinear"),
        "same_size_copy": True,
    }


_METHODS = ("nearest", "bilinear", "trilinear", "bicubic", "linear")
_V1_INTERP = tuple(f"{m}_interp" for m in _METHODS)
_V2_INTERP = tuple(f"{m}_interp_v2" for m in _METHODS)
_PIR_INTERP = tuple(f"pd_op.{m}_interp" for m in _METHODS)


@paddle_op(*_V1_INTERP, *_V2_INTERP, *_PIR_INTERP)
def _interp(ctx: ImportContext, op: SourceOp) -> None:
    v1 = op.type in _V1_INTERP
    x = ctx.input(op, _slot(op, "X", 0))
    method = str(op.attrs.get("interp_method") or op.type.rpartition(".")[2].split("_")[0])
    fmt = op.attrs.get("data_layout", op.attrs.get("data_format", "NCHW"))
    rank = _rank(ctx, x)
    n = rank - 2
    attrs = interp_attrs(
        method,
        bool(op.attrs.get("align_corners", True)),
        int(op.attrs.get("align_mode", 1)),
    )
    out_size = ctx.optional_input(op, _slot(op, "OutSize", 1))
    size_list = ctx.inputs(op, _slot(op, "SizeTensor", 2))
    scale_t = ctx.optional_input(op, _slot(op, "Scale", 3))

    size_in: Value | None = None
    scales_in: Value | None = None
    if size_list:  # SizeTensor wins; the scale is not read
        size_in = _size_from_list(ctx, size_list)
    else:
        scales: list[float] | None = None
        if scale_t is not None:
            data = ctx.const_value(scale_t)
            if data is not None:
                vals = [float(v) for v in np.asarray(data).reshape(-1)]
                scales = vals * n if len(vals) == 1 else vals
            else:
                scales_in = _scales_runtime(ctx, scale_t, n)
        else:
            s = op.attrs.get("scale")
            vals = [] if s is None else ([float(s)] if not isinstance(s, list) else s)
            vals = [float(v) for v in vals]
            if v1 and vals and vals[0] > 0:
                scales = vals * n
            elif len(vals) > (0 if n == 1 else 1) and all(v > 0 for v in vals[:n]):
                scales = vals[:n]
        if out_size is not None:
            size_in = out_size
        if scales is not None:  # v1 ops (float ``scale``) follow the same ratio rule in Paddle 3
            attrs["scales"] = scales
        if size_in is None and scales is None and scales_in is None:
            keys = ("out_d", "out_h", "out_w")[3 - n :]
            size = [int(op.attrs.get(k, -1)) for k in keys]
            if any(s <= 0 for s in size):
                raise UnsupportedOpError(f"{ctx.where()}: no output size or scale ({size})")
            attrs["size"] = size
    if size_in is not None:
        data = ctx.const_value(size_in)
        if data is not None:
            attrs["size"] = [int(v) for v in np.asarray(data).reshape(-1)]
            size_in = None
    inputs = [size_in, scales_in]
    while inputs and inputs[-1] is None:
        inputs.pop()
    y = _channel_first_op(ctx, x, fmt, lambda t: ctx.emit("resize", [t, *inputs], attrs))
    ctx.bind(op, _slot(op, "Out", 0), y)


def _size_from_list(ctx: ImportContext, parts: list[Value]) -> Value:
    consts = [ctx.const_value(v) for v in parts]
    if all(c is not None for c in consts):
        vals = [int(np.asarray(c).reshape(-1)[0]) for c in consts]
        return ctx.const(np.asarray(vals, np.int64), "interp_size")
    flat = [
        ctx.emit("cast", [ctx.emit("reshape", [v], {"shape": [1]})], {"dtype": "int64"})
        for v in parts
    ]
    return ctx.emit("concat", flat, {"axis": 0}) if len(flat) > 1 else flat[0]


def _scales_runtime(ctx: ImportContext, scale: Value, n: int) -> Value:
    s = ctx.emit("cast", [ctx.emit("reshape", [scale], {"shape": [-1]})], {"dtype": "float32"})
    if scale.shape is not None and math.prod(d for d in scale.shape if isinstance(d, int)) == 1:
        if n > 1:
            s = ctx.emit("concat", [s] * n, {"axis": 0})
    return s
