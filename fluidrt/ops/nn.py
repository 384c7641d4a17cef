"""Canonical ops: nn family (convolution, pooling, normalization, matmul, softmax, resize).

Layouts are channel-first: ``(N, C, *spatial)``. Paddings are ``[begin..., end...]`` over the
spatial dims (``[h_begin, w_begin, h_end, w_end]`` in 2-D) and may be asymmetric. ``auto_pad``
(``NOTSET``, ``SAME_UPPER``, ``SAME_LOWER``, ``VALID``) is resolved from the actual input size
when the op runs, so it also holds for inputs whose spatial size is only known at run time.

Every implementation only reads shapes and attributes in Python (never tensor values, except the
``resize`` size/scale inputs, declared in ``value_inputs``), so shape inference on meta tensors
runs the same code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fluidrt.ops.registry import REQUIRED, register_op

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


# ---- shared helpers -----------------------------------------------------------------------
def _ints(value: int | Sequence[int] | None, n: int, what: str, default: int = 1) -> list[int]:
    """An int or a list of ``n`` ints (one per spatial dim)."""
    if value is None:
        return [default] * n
    if isinstance(value, int):
        return [value] * n
    out = [int(v) for v in value]
    if len(out) == 1 and n > 1:
        out = out * n
    if len(out) != n:
        raise ValueError(f"{what} {list(value)} does not fit {n} spatial dim(s)")
    return out


def _spatial_sizes(x: torch.Tensor) -> list[int]:
    return [int(d) for d in x.shape[2:]]


def same_pads(
    sizes: Sequence[int], extents: Sequence[int], strides: Sequence[int], upper: bool
) -> list[int]:
    """SAME padding: the output is ``ceil(size / stride)``; the odd pixel goes at the end (upper)
    or at the beginning (lower). ``extents`` are the dilated kernel sizes."""
    begins, ends = [], []
    for size, ext, s in zip(sizes, extents, strides, strict=True):
        out = -(-size // s)
        total = max((out - 1) * s + ext - size, 0)
        small, large = total // 2, total - total // 2
        begins.append(small if upper else large)
        ends.append(large if upper else small)
    return begins + ends


def _resolve_pads(
    x: torch.Tensor,
    pads: Sequence[int] | None,
    auto_pad: str,
    extents: Sequence[int],
    strides: Sequence[int],
) -> tuple[list[int], list[int]]:
    """(begins, ends) of the padding for a forward window op."""
    n = x.dim() - 2
    if auto_pad == "VALID":
        return [0] * n, [0] * n
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        p = same_pads(_spatial_sizes(x), extents, strides, auto_pad == "SAME_UPPER")
        return p[:n], p[n:]
    if auto_pad != "NOTSET":
        raise ValueError(f"auto_pad must be one of {AUTO_PADS}, got {auto_pad!r}")
    p = [0] * (2 * n) if pads is None else [int(v) for v in pads]
    if len(p) == n:
        p = p + p
    if len(p) != 2 * n:
        raise ValueError(f"pads {list(pads or [])} do not fit {n} spatial dim(s)")
    return p[:n], p[n:]


def _torch_pad_arg(begins: Sequence[int], ends: Sequence[int]) -> list[int]:
    """[begin..., end...] per spatial dim -> F.pad's (last_begin, last_end, ...) order."""
    arg: list[int] = []
    for b, e in zip(reversed(begins), reversed(ends), strict=True):
        arg += [b, e]
    return arg


def _split_pads(begins: list[int], ends: list[int]) -> tuple[list[int], list[int], list[int]]:
    """Symmetric part (for the op's own ``padding``) and the asymmetric remainder."""
    common = [min(b, e) for b, e in zip(begins, ends, strict=True)]
    return (
        common,
        [b - c for b, c in zip(begins, common, strict=True)],
        [e - c for e, c in zip(ends, common, strict=True)],
    )


# ---- convolution --------------------------------------------------------------------------
_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _conv(
    x: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor | None,
    *,
    strides: Sequence[int],
    pads: Sequence[int],
    dilations: Sequence[int],
    groups: int,
    auto_pad: str,
) -> torch.Tensor:
    n = x.dim() - 2
    if n not in _CONV or w.dim() != x.dim():
        raise ValueError(f"conv: input rank {x.dim()} / weight rank {w.dim()} not supported")
    strides = _ints(strides, n, "strides")
    dilations = _ints(dilations, n, "dilations")
    extents = [(int(k) - 1) * d + 1 for k, d in zip(w.shape[2:], dilations, strict=True)]
    begins, ends = _resolve_pads(x, pads, auto_pad, extents, strides)
    common, extra_b, extra_e = _split_pads(begins, ends)
    if any(extra_b) or any(extra_e):
        x = F.pad(x, _torch_pad_arg(extra_b, extra_e))
    return _CONV[n](x, w, b, strides, common, dilations, int(groups))


def _conv_attrs(n: int) -> dict:
    return {
        "strides": [1] * n,
        "pads": [0] * (2 * n),
        "dilations": [1] * n,
        "groups": 1,
        "auto_pad": "NOTSET",
    }


@register_op("conv1d", attrs=_conv_attrs(1), inputs=(2, 3))
def conv1d(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None, **attrs
) -> torch.Tensor:
    """1-D convolution (N, C, L); weight [C_out, C_in/groups, k]."""
    return _conv(x, w, b, **attrs)


@register_op("conv2d", attrs=_conv_attrs(2), inputs=(2, 3))
def conv2d(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None, **attrs
) -> torch.Tensor:
    """2-D convolution (grouped, depthwise, dilated, asymmetric pads); weight [C_out, C_in/g, k]."""
    return _conv(x, w, b, **attrs)


@register_op("conv3d", attrs=_conv_attrs(3), inputs=(2, 3))
def conv3d(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None, **attrs
) -> torch.Tensor:
    """3-D convolution (N, C, D, H, W); weight [C_out, C_in/groups, kd, kh, kw]."""
    return _conv(x, w, b, **attrs)


def _conv_transpose(
    x: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor | None,
    *,
    strides: Sequence[int],
    pads: Sequence[int],
    dilations: Sequence[int],
    groups: int,
    output_padding: Sequence[int],
    output_size: Sequence[int] | None,
    auto_pad: str,
) -> torch.Tensor:
    n = x.dim() - 2
    if n not in _CONV_T or w.dim() != x.dim():
        raise ValueError(f"conv_transpose: input rank {x.dim()} / weight rank {w.dim()}")
    strides = _ints(strides, n, "strides")
    dilations = _ints(dilations, n, "dilations")
    out_pad = _ints(output_padding, n, "output_padding", default=0)
    sizes = _spatial_sizes(x)
    extents = [(int(k) - 1) * d + 1 for k, d in zip(w.shape[2:], dilations, strict=True)]
    # the un-cropped result: every input pixel's full kernel footprint
    full = [(i - 1) * s + e for i, s, e in zip(sizes, strides, extents, strict=True)]
    target = _ints(output_size, n, "output_size") if output_size else None
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        # ONNX rule: the output is input * stride (or output_size); pad what is left over
        want = target or [i * s for i, s in zip(sizes, strides, strict=True)]
        total = [max(f + op - t, 0) for f, op, t in zip(full, out_pad, want, strict=True)]
        small = [t // 2 for t in total]
        large = [t - t // 2 for t in total]
        begins, ends = (small, large) if auto_pad == "SAME_UPPER" else (large, small)
        target = want
    elif auto_pad == "VALID":
        begins, ends = [0] * n, [0] * n
    else:
        begins, ends = _resolve_pads(x, pads, "NOTSET", extents, strides)
    if target is None:
        parts = zip(full, begins, ends, out_pad, strict=True)
        target = [f - pb - pe + op for f, pb, pe, op in parts]
    extra = [t - (f - pb - pe) for t, f, pb, pe in zip(target, full, begins, ends, strict=True)]
    fits = all(0 <= e < max(s, d) for e, s, d in zip(extra, strides, dilations, strict=True))
    if begins == ends and fits:
        return _CONV_T[n](x, w, b, strides, begins, extra, int(groups), dilations)
    # general case: full result, then crop (negative pad) or zero-extend to the target window
    y = _CONV_T[n](x, w, None, strides, 0, 0, int(groups), dilations)
    ends_arg = [t + pb - f for t, pb, f in zip(target, begins, full, strict=True)]
    y = F.pad(y, _torch_pad_arg([-pb for pb in begins], ends_arg))
    if b is not None:
        y = y + b.reshape([1, -1] + [1] * n)
    return y


def _conv_t_attrs(n: int) -> dict:
    return {**_conv_attrs(n), "output_padding": [0] * n, "output_size": None}


@register_op("conv1d_transpose", attrs=_conv_t_attrs(1), inputs=(2, 3))
def conv1d_transpose(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None, **attrs
) -> torch.Tensor:
    """1-D transposed convolution; weight [C_in, C_out/groups, k]."""
    return _conv_transpose(x, w, b, **attrs)


@register_op("conv2d_transpose", attrs=_conv_t_attrs(2), inputs=(2, 3))
def conv2d_transpose(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None, **attrs
) -> torch.Tensor:
    """2-D transposed convolution; weight [C_in, C_out/groups, kh, kw]; output_size overrides.

    Output size per dim: ``(in - 1) * stride - pad_begin - pad_end + dilated_kernel +
    output_padding``, or ``output_size`` when given (the difference to the formula without
    output_padding must lie in ``[0, stride)`` as in Paddle; extra rows get only the bias).
    ``SAME_UPPER``/``SAME_LOWER`` follow ONNX: the output is ``in * stride`` (or
    ``output_size``) and the leftover padding is split with the odd pixel at the end (upper) or
    the beginning (lower).
    """
    return _conv_transpose(x, w, b, **attrs)


@register_op("conv3d_transpose", attrs=_conv_t_attrs(3), inputs=(2, 3))
def conv3d_transpose(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None, **attrs
) -> torch.Tensor:
    """3-D transposed convolution; weight [C_in, C_out/groups, kd, kh, kw]."""
    return _conv_transpose(x, w, b, **attrs)


# ---- pooling ------------------------------------------------------------------------------
_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def _pool_out_size(size: int, k: int, s: int, pb: int, pe: int, ceil_mode: bool) -> int:
    span = size + pb + pe - k
    return (span + (s - 1 if ceil_mode else 0)) // s + 1


def _pool(
    x: torch.Tensor,
    *,
    mode: str,
    kernel: Sequence[int],
    strides: Sequence[int] | None,
    pads: Sequence[int] | None,
    ceil_mode: bool,
    count_include_pad: bool,
    auto_pad: str,
) -> torch.Tensor:
    n = x.dim() - 2
    if n not in _MAX_POOL:
        raise ValueError(f"pool: input rank {x.dim()} not supported")
    kernel = _ints(kernel, n, "kernel")
    strides = _ints(strides, n, "strides")
    begins, ends = _resolve_pads(x, pads, auto_pad, kernel, strides)
    sizes = _spatial_sizes(x)
    outs = [
        _pool_out_size(i, k, s, pb, pe, ceil_mode)
        for i, k, s, pb, pe in zip(sizes, kernel, strides, begins, ends, strict=True)
    ]
    if any(o <= 0 for o in outs):
        raise ValueError(f"pool: output size {outs} is not positive (input {sizes})")
    floor_outs = [
        _pool_out_size(i, k, s, pb, pe, False)
        for i, k, s, pb, pe in zip(sizes, kernel, strides, begins, ends, strict=True)
    ]
    small_pads = all(2 * p <= k for p, k in zip(begins, kernel, strict=True))
    if begins == ends and outs == floor_outs and small_pads:
        # torch's own padding has exactly these semantics when no window overhangs the padding
        if mode == "max":
            return _MAX_POOL[n](x, kernel, strides, begins)
        if mode == "avg":
            return _AVG_POOL[n](x, kernel, strides, begins, False, bool(count_include_pad))
    # pad (or crop) so the windows tile exactly: span = (out - 1) * stride + kernel
    tail = [
        (o - 1) * s + k - i - pb
        for o, s, k, i, pb in zip(outs, strides, kernel, sizes, begins, strict=True)
    ]
    if mode == "max":
        if any(begins) or any(tail):
            x = F.pad(x, _torch_pad_arg(begins, tail), value=-math.inf)
        y = _MAX_POOL[n](x, kernel, strides)
        if _has_empty_window(sizes, kernel, strides, begins, outs) and y.dtype.is_floating_point:
            # a window wholly in the padding yields the lowest finite value, as in Paddle
            y = torch.clamp_min(y, torch.finfo(y.dtype).min)
        return y
    if mode != "avg":
        raise ValueError(f"pool: mode must be 'max' or 'avg', got {mode!r}")
    if any(begins) or any(tail):
        x = F.pad(x, _torch_pad_arg(begins, tail))
    y = _AVG_POOL[n](x, kernel, strides, 0, False, True)  # sum / prod(kernel)
    if count_include_pad:
        return y
    counts = None
    for d, (i, k, s, pb, o) in enumerate(zip(sizes, kernel, strides, begins, outs, strict=True)):
        start = np.arange(o) * s - pb
        valid = np.minimum(start + k, i) - np.maximum(start, 0)
        if np.all(valid == k):
            continue
        shape = [1] * (n + 2)
        shape[d + 2] = o
        with np.errstate(divide="ignore"):  # an empty window: 0 / 0 (NaN) or 0 / -n as Paddle
            factor = k / valid.astype(np.float64)
        c = _device_array(factor.reshape(shape), y.device, y.dtype)
        counts = c if counts is None else counts * c
    if counts is None:
        return y
    return y * counts


def _has_empty_window(sizes, kernel, strides, begins, outs) -> bool:
    for i, k, s, pb, o in zip(sizes, kernel, strides, begins, outs, strict=True):
        start = np.arange(o) * s - pb
        if np.any((start >= i) | (start + k <= 0)):
            return True
    return False


def _pool_attrs(n: int) -> dict:
    return {
        "mode": "max",
        "kernel": REQUIRED,
        "strides": [1] * n,
        "pads": [0] * (2 * n),
        "ceil_mode": False,
        "count_include_pad": False,
        "auto_pad": "NOTSET",
    }


@register_op("pool1d", attrs=_pool_attrs(1))
def pool1d(x: torch.Tensor, **attrs) -> torch.Tensor:
    """1-D max/avg pooling over (N, C, L); see ``pool2d`` for the window rules."""
    return _pool(x, **attrs)


@register_op("pool2d", attrs=_pool_attrs(2))
def pool2d(x: torch.Tensor, **attrs) -> torch.Tensor:
    """2-D max/avg pooling with Paddle's ceil-mode and divisor rules.

    Output size per dim: ``(in + pad_begin + pad_end - kernel [+ stride - 1 if ceil_mode])
    // stride + 1``, with no correction for a last window that starts in the end padding (as
    in Paddle). ``max`` windows wholly in padding give the dtype's lowest finite value. ``avg``
    with ``count_include_pad`` divides by the full kernel size, also where a ceil-mode window
    overhangs the padding (Paddle Inference's oneDNN and Paddle's CUDA rule); otherwise by the
    number of input elements in the window (Paddle's count: 0 or negative for an empty window,
    giving NaN or -0).
    """
    return _pool(x, **attrs)


@register_op("pool3d", attrs=_pool_attrs(3))
def pool3d(x: torch.Tensor, **attrs) -> torch.Tensor:
    """3-D max/avg pooling over (N, C, D, H, W); see ``pool2d`` for the window rules."""
    return _pool(x, **attrs)


_ADAPTIVE = {
    ("avg", 1): F.adaptive_avg_pool1d,
    ("avg", 2): F.adaptive_avg_pool2d,
    ("avg", 3): F.adaptive_avg_pool3d,
    ("max", 1): F.adaptive_max_pool1d,
    ("max", 2): F.adaptive_max_pool2d,
    ("max", 3): F.adaptive_max_pool3d,
}


def _adaptive_pool(x: torch.Tensor, *, mode: str, output_size: Sequence[int]) -> torch.Tensor:
    n = x.dim() - 2
    fn = _ADAPTIVE.get((mode, n))
    if fn is None:
        raise ValueError(f"adaptive pool: mode {mode!r} on rank {x.dim()} not supported")
    size = _ints(output_size, n, "output_size")
    if all(s == 1 for s in size):  # global pooling: a plain reduction
        dims = tuple(range(2, x.dim()))
        if mode == "avg":
            return x.mean(dim=dims, keepdim=True)
        return x.amax(dim=dims, keepdim=True)
    return fn(x, size)


@register_op("adaptive_pool1d", attrs={"mode": "avg", "output_size": REQUIRED})
def adaptive_pool1d(x: torch.Tensor, **attrs) -> torch.Tensor:
    """Adaptive 1-D pooling: window i covers [floor(i*L/out), ceil((i+1)*L/out))."""
    return _adaptive_pool(x, **attrs)


@register_op("adaptive_pool2d", attrs={"mode": "avg", "output_size": REQUIRED})
def adaptive_pool2d(x: torch.Tensor, **attrs) -> torch.Tensor:
    """Adaptive 2-D pooling (global pooling = output_size [1, 1]); windows as in adaptive_pool1d."""
    return _adaptive_pool(x, **attrs)


@register_op("adaptive_pool3d", attrs={"mode": "avg", "output_size": REQUIRED})
def adaptive_pool3d(x: torch.Tensor, **attrs) -> torch.Tensor:
    """Adaptive 3-D pooling; windows as in adaptive_pool1d."""
    return _adaptive_pool(x, **attrs)


# ---- normalization ------------------------------------------------------------------------
@register_op("batch_norm", attrs={"epsilon": 1e-5}, inputs=5)
def batch_norm(
    x: torch.Tensor,
    scale: torch.Tensor,
    bias: torch.Tensor,
    mean: torch.Tensor,
    var: torch.Tensor,
    *,
    epsilon: float,
) -> torch.Tensor:
    """Inference batch norm on channel axis 1: (x - mean) / sqrt(var + eps) * scale + bias."""
    return F.batch_norm(x, mean, var, scale, bias, False, 0.0, float(epsilon))


@register_op("layer_norm", attrs={"axis": -1, "epsilon": 1e-5}, inputs=(1, 3))
def layer_norm(
    x: torch.Tensor,
    scale: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    axis: int,
    epsilon: float,
) -> torch.Tensor:
    """Normalize over dims axis..end; scale/bias hold prod(normalized dims) values (any shape)."""
    axis = axis + x.dim() if axis < 0 else axis
    shape = tuple(int(d) for d in x.shape[axis:])
    w = scale.reshape(shape) if scale is not None else None
    b = bias.reshape(shape) if bias is not None else None
    return F.layer_norm(x, shape, w, b, float(epsilon))


@register_op("group_norm", attrs={"groups": REQUIRED, "epsilon": 1e-5}, inputs=(1, 3))
def group_norm(
    x: torch.Tensor,
    scale: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    groups: int,
    epsilon: float,
) -> torch.Tensor:
    """Group norm over (N, C, ...): statistics per sample and group of C/groups channels."""
    return F.group_norm(x, int(groups), scale, bias, float(epsilon))


@register_op("instance_norm", attrs={"epsilon": 1e-5}, inputs=(1, 3))
def instance_norm(
    x: torch.Tensor,
    scale: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    epsilon: float,
) -> torch.Tensor:
    """Instance norm: statistics per sample and channel over the spatial dims."""
    return F.instance_norm(x, weight=scale, bias=bias, eps=float(epsilon))


@register_op("lrn", attrs={"size": 5, "alpha": 1e-4, "beta": 0.75, "bias": 1.0})
def lrn(x: torch.Tensor, *, size: int, alpha: float, beta: float, bias: float) -> torch.Tensor:
    """ONNX LRN across channels: x / (bias + alpha / size * sum_window x^2) ** beta."""
    size = int(size)
    n, c = int(x.shape[0]), int(x.shape[1])
    sq = (x * x).reshape(n, 1, c, -1)
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    sq = F.pad(sq, (0, 0, before, after))
    mean = F.avg_pool2d(sq, (size, 1), 1).reshape(x.shape)  # sum / size, zeros past the edges
    return x / (mean * float(alpha) + float(bias)) ** float(beta)


# ---- matmul and softmax -------------------------------------------------------------------
@register_op("matmul", attrs={"trans_a": False, "trans_b": False}, inputs=2)
def matmul(a: torch.Tensor, b: torch.Tensor, *, trans_a: bool, trans_b: bool) -> torch.Tensor:
    """Batched matmul, NumPy broadcasting and 1-D rules; trans_* swap the last two dims of N-D."""
    if trans_a and a.dim() >= 2:
        a = a.transpose(-1, -2)
    if trans_b and b.dim() >= 2:
        b = b.transpose(-1, -2)
    return torch.matmul(a, b)


@register_op("softmax", attrs={"axis": -1})
def softmax(x: torch.Tensor, *, axis: int) -> torch.Tensor:
    """Softmax along ``axis``."""
    return torch.softmax(x, int(axis))


@register_op("log_softmax", attrs={"axis": -1})
def log_softmax(x: torch.Tensor, *, axis: int) -> torch.Tensor:
    """Log-softmax along ``axis``."""
    return torch.log_softmax(x, int(axis))


# ---- resize -------------------------------------------------------------------------------
RESIZE_MODES = ("nearest", "linear", "bilinear", "trilinear", "bicubic", "cubic")
COORDINATE_MODES = ("asymmetric", "half_pixel", "pytorch_half_pixel", "align_corners")
NEAREST_MODES = ("floor", "round_prefer_floor", "round_prefer_ceil", "ceil")


def _resize_plan(
    sizes: list[int],
    size: Sequence[int] | None,
    scales: Sequence[float] | None,
    zero_ratio_at_one: bool,
    coordinate_mode: str,
) -> tuple[list[int], list[np.float32]]:
    """Output sizes and per-dim float32 ratios (input pixels per output pixel)."""
    n = len(sizes)
    sc = None if scales is None else [np.float32(s) for s in _floats(scales, n, "scales")]
    if size is not None:
        outs = _ints(list(size), n, "size")
    elif sc is not None:
        outs = [int(np.float32(i) * s) for i, s in zip(sizes, sc, strict=True)]
    else:
        raise ValueError("resize needs an output size or scales")
    ratios = []
    for d, (i, o) in enumerate(zip(sizes, outs, strict=True)):
        if o <= 0:
            raise ValueError(f"resize: output size {outs} is not positive")
        if coordinate_mode == "align_corners":
            r = np.float32(i - 1) / np.float32(o - 1) if o > 1 else np.float32(0)
        elif zero_ratio_at_one and o == 1:
            r = np.float32(0)
        elif sc is not None:
            r = np.float32(1.0 / np.float64(sc[d]))
        else:
            r = np.float32(i) / np.float32(o)
        ratios.append(r)
    return outs, ratios


def _floats(value: float | Sequence[float], n: int, what: str) -> list[float]:
    if isinstance(value, (int, float)):
        return [float(value)] * n
    out = [float(v) for v in value]
    if len(out) == 1 and n > 1:
        out = out * n
    if len(out) != n:
        raise ValueError(f"{what} {out} does not fit {n} spatial dim(s)")
    return out


def _source_coords(out: int, ratio: np.float32, coordinate_mode: str) -> np.ndarray:
    """Source coordinate of every output index (float64 holding the kernel's float math)."""
    k = np.arange(out)
    if coordinate_mode in ("asymmetric", "align_corners"):
        return (k.astype(np.float32) * ratio).astype(np.float64)  # float32 product
    if coordinate_mode == "half_pixel":
        return np.float64(ratio) * (k + 0.5) - 0.5
    if coordinate_mode == "pytorch_half_pixel":
        return np.where(out > 1, np.float64(ratio) * (k + 0.5) - 0.5, 0.0)
    raise ValueError(f"coordinate_mode must be one of {COORDINATE_MODES}, got {coordinate_mode!r}")


def _nearest_index(src: np.ndarray, size: int, nearest_mode: str) -> np.ndarray:
    if nearest_mode == "floor":
        idx = np.floor(src)
    elif nearest_mode == "ceil":
        idx = np.ceil(src)
    elif nearest_mode == "round_prefer_ceil":
        idx = np.floor(src + 0.5)
    elif nearest_mode == "round_prefer_floor":
        idx = np.ceil(src - 0.5)
    else:
        raise ValueError(f"nearest_mode must be one of {NEAREST_MODES}, got {nearest_mode!r}")
    return np.clip(idx, 0, size - 1).astype(np.int64)


def _cubic_weights(t: np.ndarray, a: float) -> list[np.ndarray]:
    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]


_DEVICE_ARRAYS: dict[tuple, torch.Tensor] = {}


def _device_array(arr: np.ndarray, device: torch.device, dtype: torch.dtype | None = None):
    """``arr`` on ``device``, cached: these index/weight tables depend only on shapes, and a
    cached device copy keeps host-to-device copies out of CUDA-graph captures (the warm-up run
    before a capture fills the cache)."""
    key = (arr.tobytes(), arr.shape, arr.dtype.str, str(device), dtype)
    t = _DEVICE_ARRAYS.get(key)
    if t is None:
        if len(_DEVICE_ARRAYS) > 4096:
            _DEVICE_ARRAYS.clear()
        t = torch.from_numpy(np.ascontiguousarray(arr)).to(device=device, dtype=dtype)
        _DEVICE_ARRAYS[key] = t
    return t


def _gather_taps(
    x: torch.Tensor, dim: int, taps: list[tuple[np.ndarray, np.ndarray | None]]
) -> torch.Tensor:
    """sum_j x.index_select(dim, idx_j) * w_j (weights broadcast along ``dim``)."""
    shape = [1] * x.dim()
    shape[dim] = -1
    out = None
    for idx, w in taps:
        g = x.index_select(dim, _device_array(idx, x.device))
        if w is not None:
            g = g * _device_array(w.astype(np.float32), x.device, x.dtype).reshape(shape)
        out = g if out is None else out + g
    return out


@register_op(
    "resize",
    attrs={
        "size": None,
        "scales": None,
        "mode": "nearest",
        "coordinate_mode": "asymmetric",
        "nearest_mode": "floor",
        "cubic_coeff": -0.75,
        "zero_ratio_at_one": False,
        "same_size_copy": False,
    },
    inputs=(1, 3),
    value_inputs=(1, 2),
)
def resize(
    x: torch.Tensor,
    size_input: torch.Tensor | None = None,
    scales_input: torch.Tensor | None = None,
    *,
    size: Sequence[int] | None,
    scales: Sequence[float] | None,
    mode: str,
    coordinate_mode: str,
    nearest_mode: str,
    cubic_coeff: float,
    zero_ratio_at_one: bool,
    same_size_copy: bool,
) -> torch.Tensor:
    """Resize the spatial dims of (N, C, *spatial): nearest, (bi/tri)linear or bicubic.

    The output size is ``size`` (input 1 or attribute) or ``floor(in * scale)`` in float32
    (``scales``, input 2 or attribute). The ratio is ``1 / scale`` when scales are given, else
    ``in / out`` (``(in - 1) / (out - 1)`` for ``align_corners``), in float32. Source coordinate:
    ``asymmetric`` dst * r; ``half_pixel`` (dst + 0.5) * r - 0.5; ``pytorch_half_pixel`` the
    same but 0 when out == 1; ``align_corners`` dst * r. Linear modes clamp the source to
    [0, in - 1]; cubic (``cubic_coeff`` A) replicates edge pixels. ``zero_ratio_at_one``: an
    output dim of size 1 uses ratio 0; ``same_size_copy``: unchanged spatial sizes copy the input
    (both Paddle's interp rules).
    """
    n = x.dim() - 2
    if n < 1:
        raise ValueError(f"resize: input rank {x.dim()} has no spatial dims")
    if size_input is not None:
        size = [int(v) for v in size_input.reshape(-1).tolist()]
    if scales_input is not None:
        scales = [float(v) for v in scales_input.reshape(-1).tolist()]
    sizes = _spatial_sizes(x)
    outs, ratios = _resize_plan(sizes, size, scales, zero_ratio_at_one, coordinate_mode)
    if same_size_copy and outs == sizes:
        return x.clone()
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize: mode must be one of {RESIZE_MODES}, got {mode!r}")
    y = x
    for d, (i, o, r) in enumerate(zip(sizes, outs, ratios, strict=True)):
        dim = d + 2
        src = _source_coords(o, r, coordinate_mode)
        if i == o and np.array_equal(src, np.arange(o)):
            continue  # every mode is the identity on integer source coordinates
        if mode == "nearest":
            y = _gather_taps(y, dim, [(_nearest_index(src, i, nearest_mode), None)])
        elif mode in ("linear", "bilinear", "trilinear"):
            src = np.clip(src, 0.0, None).astype(np.float32).astype(np.float64)
            lo = np.minimum(np.floor(src), i - 1).astype(np.int64)
            hi = np.minimum(lo + 1, i - 1)
            w_hi = (src - lo).astype(np.float32)
            w_lo = (np.float32(1) - w_hi).astype(np.float32)
            y = _gather_taps(y, dim, [(lo, w_lo), (hi, w_hi)])
        else:
            src32 = src.astype(np.float32)
            base = np.floor(src32).astype(np.int64)
            t = (src32 - base).astype(np.float64)
            weights = _cubic_weights(t, float(cubic_coeff))
            taps = [(np.clip(base - 1 + j, 0, i - 1), weights[j]) for j in range(4)]
            y = _gather_taps(y, dim, taps)
    return y
