"""Canonical ops needed by frontends beyond Paddle (ONNX): added as they are needed.

Framework-neutral like every canonical op: ``impl(*inputs, **attrs)`` over torch tensors that also
runs on meta tensors for shape inference. Ops whose output shape depends on the data (``nonzero``,
``compress``) cannot run on meta tensors; their shapes are unknown until run time and their
``dtype`` attribute gives the output dtype.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from fluidrt.ops.dtypes import to_torch
from fluidrt.ops.infer import UNKNOWN_DIM
from fluidrt.ops.registry import REQUIRED, VARIADIC, register_op
from fluidrt.ops.tensor import gather_nd

Tensor = torch.Tensor


def _axis(axis: int, rank: int) -> int:
    a = int(axis)
    if a < 0:
        a += rank
    if not 0 <= a < max(rank, 1):
        raise IndexError(f"axis {axis} is out of range for rank {rank}")
    return a


def _wrap(index: Tensor, dim: int) -> Tensor:
    index = index.long()
    return torch.where(index < 0, index + dim, index)


# ---- elementwise ----------------------------------------------------------------------------
@register_op("fmod", inputs=2, tags=("elementwise", "binary"))
def fmod(a: Tensor, b: Tensor) -> Tensor:
    """C fmod: a - trunc(a / b) * b, the result takes the sign of the dividend."""
    return torch.fmod(a, b)


@register_op("bit_shift", attrs={"direction": REQUIRED}, inputs=2, tags=("elementwise",))
def bit_shift(a: Tensor, b: Tensor, *, direction: str) -> Tensor:
    """Shift the bits of integer ``a`` by ``b`` to the ``left`` or ``right``."""
    if direction == "left":
        return torch.bitwise_left_shift(a, b)
    if direction == "right":
        return torch.bitwise_right_shift(a, b)
    raise ValueError(f"bit_shift: direction must be 'left' or 'right', got {direction!r}")


for _name, _fn, _doc in (
    ("asinh", torch.asinh, "Inverse hyperbolic sine."),
    ("acosh", torch.acosh, "Inverse hyperbolic cosine."),
    ("atanh", torch.atanh, "Inverse hyperbolic tangent."),
):

    def _make(fn=_fn):
        def impl(x: Tensor) -> Tensor:
            return fn(x)

        return impl

    _impl = _make()
    _impl.__doc__ = _doc
    register_op(_name, tags=("elementwise", "unary"))(_impl)


@register_op("shrink", attrs={"lambd": 0.5, "bias": 0.0}, tags=("elementwise", "unary"))
def shrink(x: Tensor, *, lambd: float, bias: float) -> Tensor:
    """x + bias where x < -lambd, x - bias where x > lambd, else 0 (keeps the dtype)."""
    lo = x < -float(lambd)
    hi = x > float(lambd)
    y = torch.where(lo, x + float(bias), torch.where(hi, x - float(bias), torch.zeros_like(x)))
    return y.to(x.dtype)


@register_op("det")
def det(x: Tensor) -> Tensor:
    """Determinant of the square matrices in the last two dims."""
    return torch.linalg.det(x)


@register_op("lp_norm", attrs={"axis": -1, "p": 2})
def lp_norm(x: Tensor, *, axis: int, p: int) -> Tensor:
    """x divided by its L1 or L2 norm along ``axis`` (0 where the norm is 0)."""
    ax = _axis(axis, x.dim())
    if int(p) == 1:
        norm = torch.sum(torch.abs(x), dim=ax, keepdim=True)
    elif int(p) == 2:
        norm = torch.sqrt(torch.sum(x * x, dim=ax, keepdim=True))
    else:
        raise ValueError(f"lp_norm: p must be 1 or 2, got {p}")
    return torch.where(norm == 0, torch.zeros_like(x), x / norm)


# ---- creation -------------------------------------------------------------------------------
@register_op("eye_like", attrs={"k": 0, "dtype": "float32"})
def eye_like(x: Tensor, *, k: int, dtype: str) -> Tensor:
    """A 2-D tensor shaped like ``x`` with ones on diagonal ``k`` (above main: k > 0)."""
    if x.dim() != 2:
        raise ValueError(f"eye_like: input must be 2-D, got rank {x.dim()}")
    rows = torch.arange(x.shape[0], device=x.device).unsqueeze(1)
    cols = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    return (cols - rows == int(k)).to(to_torch(dtype))


# ---- indexing -------------------------------------------------------------------------------
@register_op("gather_nd_batched", attrs={"batch_dims": 1}, inputs=2)
def gather_nd_batched(x: Tensor, index: Tensor, *, batch_dims: int) -> Tensor:
    """GatherND whose first ``batch_dims`` dims of ``x`` and ``index`` are batch dims."""
    b = int(batch_dims)
    batch = list(x.shape[:b])
    if list(index.shape[:b]) != batch:
        raise ValueError(f"gather_nd_batched: batch dims {batch} vs {list(index.shape[:b])}")
    total = math.prod(batch)
    xf = x.reshape([total] + list(x.shape[b:]))
    idx = index.reshape([total] + list(index.shape[b:])).long()
    mid = list(idx.shape[1:-1])
    bidx = torch.arange(total, device=x.device).reshape([total] + [1] * (len(mid) + 1))
    bidx = bidx.expand([total] + mid + [1])
    out = gather_nd(xf, torch.cat([bidx, idx], dim=-1))
    return out.reshape(batch + list(out.shape[1:]))


_REDUCE = {"add": "sum", "mul": "prod", "max": "amax", "min": "amin"}


@register_op("scatter_elements", attrs={"axis": 0, "reduction": "none"}, inputs=3)
def scatter_elements(
    x: Tensor, index: Tensor, updates: Tensor, *, axis: int, reduction: str
) -> Tensor:
    """Write (or reduce: add/mul/max/min) ``updates`` into ``x`` at ``index`` along ``axis``."""
    ax = _axis(axis, x.dim())
    idx = _wrap(index, x.shape[ax])
    upd = updates.to(x.dtype)
    if reduction == "none":
        return torch.scatter(x, ax, idx, upd)
    if reduction not in _REDUCE:
        raise ValueError(f"scatter_elements: unknown reduction {reduction!r}")
    return torch.scatter_reduce(x, ax, idx, upd, _REDUCE[reduction], include_self=True)


@register_op("scatter_nd", attrs={"reduction": "none"}, inputs=3)
def scatter_nd(x: Tensor, index: Tensor, updates: Tensor, *, reduction: str) -> Tensor:
    """Write (or reduce) ``updates`` into the slices of ``x`` addressed by ``index[..., :k]``."""
    k = int(index.shape[-1])
    lead = list(x.shape[:k])
    rows = math.prod(lead)
    flat = torch.zeros(index.shape[:-1], dtype=torch.long, device=x.device)
    for i in range(k):
        flat = flat * x.shape[i] + _wrap(index[..., i], x.shape[i])
    xr = x.reshape([rows, -1]) if x.numel() else x.reshape([rows] + [math.prod(x.shape[k:])])
    m = flat.numel()
    upd = updates.to(x.dtype).reshape([m, xr.shape[1]])
    lin = flat.reshape(m, 1).expand(m, xr.shape[1])
    if reduction == "none":
        out = torch.scatter(xr, 0, lin, upd)
    elif reduction in _REDUCE:
        out = torch.scatter_reduce(xr, 0, lin, upd, _REDUCE[reduction], include_self=True)
    else:
        raise ValueError(f"scatter_nd: unknown reduction {reduction!r}")
    return out.reshape(x.shape)


@register_op("nonzero", attrs={"dtype": "int64"})
def nonzero(x: Tensor, *, dtype: str) -> Tensor:
    """Indices of the nonzero elements, one column per element: shape [rank, count]."""
    if x.device.type == "meta":  # the count depends on the data: an unknown ("?") dim
        return torch.empty((x.dim(), UNKNOWN_DIM), dtype=to_torch(dtype), device="meta")
    return torch.nonzero(x).t().contiguous().to(to_torch(dtype))


@register_op("compress", attrs={"axis": None}, inputs=2)
def compress(x: Tensor, condition: Tensor, *, axis: int | None) -> Tensor:
    """Slices of ``x`` along ``axis`` (None: of the flattened tensor) where ``condition``."""
    if axis is None:
        x, ax = x.reshape(-1), 0
    else:
        ax = _axis(axis, x.dim())
    keep = torch.nonzero(condition.reshape(-1).bool()).reshape(-1)
    return torch.index_select(x, ax, keep)


@register_op("reverse_sequence", attrs={"batch_axis": 1, "time_axis": 0}, inputs=2)
def reverse_sequence(x: Tensor, lengths: Tensor, *, batch_axis: int, time_axis: int) -> Tensor:
    """Reverse the first ``lengths[b]`` elements along ``time_axis`` of every batch ``b``."""
    ba, ta = _axis(batch_axis, x.dim()), _axis(time_axis, x.dim())
    steps = x.shape[ta]
    t = torch.arange(steps, device=x.device).reshape(-1, 1)  # [T, 1]
    lens = lengths.long().reshape(1, -1)  # [1, B]
    src = torch.where(t < lens, lens - 1 - t, t)  # [T, B]
    shape = [1] * x.dim()
    shape[ta], shape[ba] = steps, x.shape[ba]
    src = src if ta < ba else src.t()
    return torch.gather(x, ta, src.reshape(shape).expand(x.shape))


# ---- rearrangements -------------------------------------------------------------------------
@register_op("depth_to_space", attrs={"blocksize": REQUIRED, "mode": "DCR"})
def depth_to_space(x: Tensor, *, blocksize: int, mode: str) -> Tensor:
    """Move channel blocks into 2x2..bxb spatial blocks (``DCR`` or ``CRD`` channel order)."""
    n, c, h, w = (int(d) for d in x.shape)
    bs = int(blocksize)
    if c % (bs * bs):
        raise ValueError(f"depth_to_space: {c} channels are not divisible by {bs}^2")
    if mode == "DCR":
        y = x.reshape(n, bs, bs, c // (bs * bs), h, w).permute(0, 3, 4, 1, 5, 2)
    elif mode == "CRD":
        y = x.reshape(n, c // (bs * bs), bs, bs, h, w).permute(0, 1, 4, 2, 5, 3)
    else:
        raise ValueError(f"depth_to_space: mode must be DCR or CRD, got {mode!r}")
    return y.reshape(n, c // (bs * bs), h * bs, w * bs)


@register_op("space_to_depth", attrs={"blocksize": REQUIRED, "mode": "DCR"})
def space_to_depth(x: Tensor, *, blocksize: int, mode: str) -> Tensor:
    """Move bxb spatial blocks into channels (the inverse of ``depth_to_space`` in that mode)."""
    n, c, h, w = (int(d) for d in x.shape)
    bs = int(blocksize)
    if h % bs or w % bs:
        raise ValueError(f"space_to_depth: {h}x{w} is not divisible by {bs}")
    y = x.reshape(n, c, h // bs, bs, w // bs, bs)
    if mode == "DCR":
        y = y.permute(0, 3, 5, 1, 2, 4)
    elif mode == "CRD":
        y = y.permute(0, 1, 3, 5, 2, 4)
    else:
        raise ValueError(f"space_to_depth: mode must be DCR or CRD, got {mode!r}")
    return y.reshape(n, c * bs * bs, h // bs, w // bs)


# ---- scans, sorting, contractions -----------------------------------------------------------
@register_op("cumprod", attrs={"axis": -1, "exclusive": False, "reverse": False}, tags=("scan",))
def cumprod(x: Tensor, *, axis: int, exclusive: bool, reverse: bool) -> Tensor:
    """Running product along ``axis`` (``exclusive``: shifted by one, starting at 1)."""
    ax = _axis(axis, x.dim())
    if reverse:
        x = torch.flip(x, [ax])
    y = torch.cumprod(x, dim=ax, dtype=x.dtype)
    if exclusive:
        ones = torch.ones_like(y.narrow(ax, 0, 1))
        y = torch.cat([ones, y.narrow(ax, 0, y.shape[ax] - 1)], dim=ax)
    return torch.flip(y, [ax]) if reverse else y


@register_op(
    "topk",
    attrs={"k": None, "axis": -1, "largest": True, "sorted": True},
    inputs=(1, 2),
    value_inputs=(1,),
    outputs=2,
)
def topk(
    x: Tensor, k_t: Tensor | None = None, *, k: int | None, axis: int, largest: bool, sorted: bool
) -> tuple[Tensor, Tensor]:
    """The ``k`` largest (smallest) elements along ``axis`` and their int64 indices; equal
    values keep the lower index first. ``k`` is the attribute or, computed at run time, input 1
    (then the size along ``axis`` is unknown until run time)."""
    ax = _axis(axis, x.dim())
    if k_t is not None:
        if k_t.device.type == "meta":
            shape = list(x.shape)
            shape[ax] = UNKNOWN_DIM
            return x.new_empty(shape), x.new_empty(shape, dtype=torch.int64)
        k = int(k_t.reshape(-1)[0])
    if k is None:
        raise ValueError("topk: no k (attribute or input 1)")
    if not 0 <= int(k) <= x.shape[ax]:
        raise ValueError(f"topk: k={k} is out of range for dim {x.shape[ax]}")
    values, indices = torch.sort(x, dim=ax, descending=bool(largest), stable=True)
    del sorted  # always sorted: a valid order for sorted=0 too
    return values.narrow(ax, 0, int(k)), indices.narrow(ax, 0, int(k))


@register_op("einsum", attrs={"equation": REQUIRED}, inputs=(1, VARIADIC))
def einsum(*xs: Tensor, equation: str) -> Tensor:
    """Einstein summation over the inputs (NumPy/ONNX equation syntax, ``...`` broadcasting)."""
    return torch.einsum(equation.replace(" ", ""), *xs)


# ---- pooling --------------------------------------------------------------------------------
def _window_out(size: int, ext: int, s: int, pb: int, pe: int, ceil_mode: bool) -> int:
    span = size + pb + pe - ext
    return (span + (s - 1 if ceil_mode else 0)) // s + 1


@register_op(
    "dilated_pool",
    attrs={
        "mode": "max",
        "kernel": REQUIRED,
        "strides": None,
        "pads": None,
        "dilations": None,
        "ceil_mode": False,
        "count_include_pad": False,
    },
)
def dilated_pool(
    x: Tensor,
    *,
    mode: str,
    kernel: Sequence[int],
    strides: Sequence[int] | None,
    pads: Sequence[int] | None,
    dilations: Sequence[int] | None,
    ceil_mode: bool,
    count_include_pad: bool,
) -> Tensor:
    """Max/avg pooling with dilated windows over (N, C, *spatial); output size as ``pool2d``.

    ``avg`` divides by the number of input elements in the window, or by the kernel size with
    ``count_include_pad``.
    """
    n = x.dim() - 2
    kernel = [int(k) for k in kernel]
    strides = [int(s) for s in strides] if strides else [1] * n
    dil = [int(d) for d in dilations] if dilations else [1] * n
    p = [int(v) for v in pads] if pads else [0] * (2 * n)
    begins, ends = p[:n], p[n:]
    sizes = [int(d) for d in x.shape[2:]]
    ext = [(k - 1) * d + 1 for k, d in zip(kernel, dil, strict=True)]
    outs = [
        _window_out(i, e, s, b, en, bool(ceil_mode))
        for i, e, s, b, en in zip(sizes, ext, strides, begins, ends, strict=True)
    ]
    if any(o <= 0 for o in outs):
        raise ValueError(f"dilated_pool: output size {outs} is not positive")
    tails = [
        (o - 1) * s + e - i - b
        for o, s, e, i, b in zip(outs, strides, ext, sizes, begins, strict=True)
    ]
    pad_arg: list[int] = []
    for b, t in zip(reversed(begins), reversed(tails), strict=True):
        pad_arg += [b, t]
    is_max = mode == "max"
    if mode not in ("max", "avg"):
        raise ValueError(f"dilated_pool: mode must be 'max' or 'avg', got {mode!r}")
    xp = F.pad(x, pad_arg, value=-math.inf if is_max else 0.0)
    mask = None
    if not is_max and not count_include_pad:
        ones = torch.ones([1, 1] + sizes, dtype=x.dtype, device=x.device)
        mask = F.pad(ones, pad_arg, value=0.0)
    acc = cnt = None
    for offs in itertools.product(*(range(k) for k in kernel)):
        idx = [slice(None), slice(None)] + [
            slice(o * d, o * d + (out - 1) * s + 1, s)
            for o, d, out, s in zip(offs, dil, outs, strides, strict=True)
        ]
        win = xp[tuple(idx)]
        if is_max:
            acc = win if acc is None else torch.maximum(acc, win)
        else:
            acc = win if acc is None else acc + win
            if mask is not None:
                m = mask[tuple(idx)]
                cnt = m if cnt is None else cnt + m
    if is_max:
        return acc
    if cnt is None:
        return acc / float(math.prod(kernel))
    return acc / cnt


@register_op(
    "max_pool_with_indices",
    attrs={
        "kernel": REQUIRED,
        "strides": None,
        "pads": None,
        "dilations": None,
        "ceil_mode": False,
        "storage_order": 0,
    },
    outputs=2,
)
def max_pool_with_indices(
    x: Tensor,
    *,
    kernel: Sequence[int],
    strides: Sequence[int] | None,
    pads: Sequence[int] | None,
    dilations: Sequence[int] | None,
    ceil_mode: bool,
    storage_order: int,
) -> tuple[Tensor, Tensor]:
    """Max pooling (symmetric pads) and the int64 index of each maximum in the flattened
    input (row major, or column major over the spatial dims with ``storage_order=1``)."""
    n = x.dim() - 2
    if n not in (1, 2, 3):
        raise ValueError(f"max_pool_with_indices: rank {x.dim()} not supported")
    strides = [int(s) for s in strides] if strides else [1] * n
    dil = [int(d) for d in dilations] if dilations else [1] * n
    p = [int(v) for v in pads] if pads else [0] * (2 * n)
    if p[:n] != p[n:]:
        raise ValueError(f"max_pool_with_indices: asymmetric pads {p} are not supported")
    fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[n]
    y, idx = fn(x, [int(k) for k in kernel], strides, p[:n], dil, bool(ceil_mode), True)
    sizes = [int(d) for d in x.shape[2:]]
    if int(storage_order) and n == 2:
        h, w = sizes
        idx = (idx % w) * h + idx // w
    plane = math.prod(sizes)
    base = (
        torch.arange(x.shape[0] * x.shape[1], device=x.device).reshape(
            [x.shape[0], x.shape[1]] + [1] * n
        )
        * plane
    )
    return y, (idx + base).to(torch.int64)


# ---- attributes computed at run time --------------------------------------------------------
def _bound_value(t: Tensor, kind: str, x: Tensor) -> object:
    flat = t.reshape(-1)
    if kind == "int":
        return int(flat[0].item())
    if kind == "float":
        return float(flat[0].item())
    if kind == "scalar":
        return flat[0].item()
    values = [int(v) for v in flat.tolist()]
    if kind == "unsqueeze_axes":  # ONNX: positions in the output, applied in ascending order
        rank = x.dim() + len(values)
        return sorted(v + rank if v < 0 else v for v in values)
    if kind in ("ints", "ints_noop"):
        return values
    raise ValueError(f"attrs_from_inputs: unknown binding kind {kind!r}")


@register_op(
    "attrs_from_inputs",
    attrs={"op": REQUIRED, "attrs": {}, "bind": REQUIRED, "outputs": 1},
    inputs=(1, VARIADIC),
    value_inputs=tuple(range(1, 16)),
    outputs=lambda a: int(a["outputs"]),
)
def attrs_from_inputs(
    x: Tensor,
    *values: Tensor | None,
    op: str,
    attrs: dict,
    bind: Sequence[Sequence[str]],
    outputs: int,
) -> object:
    """Run canonical op ``op`` on ``x`` with attributes read at run time from the value inputs.

    ``bind[i] = [name, kind]`` describes input ``i + 1``: kind ``int``, ``float``, ``scalar``,
    ``ints``, ``ints_noop`` (an empty list returns ``x`` unchanged) or ``unsqueeze_axes``.
    Absent (None) inputs keep ``attrs``. For models whose shape-like inputs are computed.
    """
    from fluidrt.ops.registry import get_op

    kw = dict(attrs)
    for (name, kind), t in zip(bind, values, strict=True):
        if t is None:
            continue
        value = _bound_value(t, kind, x)
        if kind == "ints_noop" and not value:
            return x
        kw[name] = value
    opdef = get_op(op)
    del outputs
    return opdef.impl(x, **opdef.resolve_attrs(kw))


# ---- quantization ---------------------------------------------------------------------------
_INT_RANGES = {
    "uint8": (0, 255),
    "int8": (-128, 127),
    "int16": (-32768, 32767),
    "int32": (-(2**31), 2**31 - 1),
}


def _per_axis(p: Tensor, x: Tensor, axis: int, block_size: int) -> Tensor:
    """A scale or zero point broadcast to ``x``: scalar, per ``axis``, or per block of it."""
    if p.dim() == 0 or p.numel() == 1 and int(block_size) <= 0:
        return p.reshape([1] * x.dim()) if x.dim() else p.reshape(())
    ax = _axis(axis, x.dim())
    if int(block_size) > 0:
        p = torch.repeat_interleave(p, int(block_size), dim=ax).narrow(ax, 0, x.shape[ax])
        return p
    shape = [1] * x.dim()
    shape[ax] = -1
    return p.reshape(shape)


@register_op("dequantize_linear", attrs={"axis": 1, "block_size": 0, "dtype": None}, inputs=(2, 3))
def dequantize_linear(
    x: Tensor,
    scale: Tensor,
    zero_point: Tensor | None = None,
    *,
    axis: int,
    block_size: int,
    dtype: str | None,
) -> Tensor:
    """(x - zero_point) * scale per tensor, per ``axis`` or per block; in ``dtype`` (default:
    the scale's)."""
    dx = x.to(torch.float32)
    if zero_point is not None:
        dx = dx - _per_axis(zero_point, x, axis, block_size).to(torch.float32)
    y = dx * _per_axis(scale, x, axis, block_size)
    return y.to(to_torch(dtype) if dtype else scale.dtype)


@register_op("quantize_linear", attrs={"axis": 1, "block_size": 0, "dtype": "uint8"}, inputs=(2, 3))
def quantize_linear(
    x: Tensor,
    scale: Tensor,
    zero_point: Tensor | None = None,
    *,
    axis: int,
    block_size: int,
    dtype: str,
) -> Tensor:
    """Saturate(round_half_even(x / scale) + zero_point) to the integer ``dtype``."""
    lo, hi = _INT_RANGES[dtype]
    y = torch.round(x / _per_axis(scale, x, axis, block_size))
    if dtype == "int32":
        y = y.to(torch.int64)
        if zero_point is not None:
            y = y + _per_axis(zero_point, x, axis, block_size).to(torch.int64)
        return torch.clamp(y, lo, hi).to(torch.int32)
    # 8/16-bit: float32 holds every integer to 2**24, and anything beyond saturates either way
    y = y.to(torch.float32)
    if zero_point is not None:
        y = y + _per_axis(zero_point, x, axis, block_size).to(torch.float32)
    return y.clamp_(lo, hi).to(to_torch(dtype))


# ---- losses ---------------------------------------------------------------------------------
def _nll(
    logp: Tensor, target: Tensor, weight: Tensor | None, reduction: str, ignore_index: int | None
) -> Tensor:
    dtype = logp.dtype
    ignore = -(2**62) if ignore_index is None else int(ignore_index)
    t = target.long()
    if ignore_index is not None:
        t = torch.where(t == ignore, torch.full_like(t, ignore), t)
    out = F.nll_loss(
        logp.float(),
        t,
        None if weight is None else weight.float(),
        ignore_index=ignore,
        reduction=reduction,
    )
    return out.to(dtype)


@register_op("nll_loss", attrs={"reduction": "mean", "ignore_index": None}, inputs=(2, 3))
def nll_loss(
    logp: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    *,
    reduction: str,
    ignore_index: int | None,
) -> Tensor:
    """Negative log likelihood of class ``target`` in ``logp`` [N, C, ...] (weights, ignored
    index; reduction none, sum or weighted mean)."""
    return _nll(logp, target, weight, reduction, ignore_index)


@register_op(
    "softmax_cross_entropy",
    attrs={"reduction": "mean", "ignore_index": None},
    inputs=(2, 3),
    outputs=2,
)
def softmax_cross_entropy(
    scores: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    *,
    reduction: str,
    ignore_index: int | None,
) -> tuple[Tensor, Tensor]:
    """Cross entropy of softmax(scores) over dim 1 with class ``target``; also log-probs."""
    logp = torch.log_softmax(scores.float(), dim=1).to(scores.dtype)
    return _nll(logp, target, weight, reduction, ignore_index), logp


# ---- attention ------------------------------------------------------------------------------
def _bias_from_mask(mask: Tensor, dtype: torch.dtype) -> Tensor:
    if mask.dtype == torch.bool:
        zero = torch.zeros((), dtype=dtype, device=mask.device)
        return torch.where(mask, zero, torch.full_like(zero, -math.inf))
    return mask.to(dtype)


def _window_bias(
    q: int,
    kv: int,
    offset: Tensor | int,
    dtype: torch.dtype,
    device: torch.device,
    causal: bool,
    left: int,
    right: int,
) -> Tensor:
    i = torch.arange(q, device=device).reshape(q, 1)
    j = torch.arange(kv, device=device).reshape(1, kv)
    if isinstance(offset, Tensor):
        diff = (i + offset.reshape(-1, 1, 1)) - j  # [B, q, kv]
    else:
        diff = i + int(offset) - j
    allowed = torch.ones_like(diff, dtype=torch.bool)
    if causal:
        allowed &= diff >= 0
    if left >= 0:
        allowed &= diff <= left
    if right >= 0:
        allowed &= -diff <= right
    zero = torch.zeros((), dtype=dtype, device=device)
    bias = torch.where(allowed, zero, torch.full_like(zero, -math.inf))
    return bias.unsqueeze(1) if bias.dim() == 3 else bias


@register_op(
    "attention",
    attrs={
        "scale": None,
        "is_causal": False,
        "q_num_heads": None,
        "kv_num_heads": None,
        "softcap": 0.0,
        "qk_matmul_output_mode": 0,
        "softmax_dtype": None,
        "left_window_size": -1,
        "right_window_size": -1,
    },
    inputs=(3, 7),
    outputs=4,
)
def attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: Tensor | None = None,
    past_key: Tensor | None = None,
    past_value: Tensor | None = None,
    nonpad_kv_seqlen: Tensor | None = None,
    *,
    scale: float | None,
    is_causal: bool,
    q_num_heads: int | None,
    kv_num_heads: int | None,
    softcap: float,
    qk_matmul_output_mode: int,
    softmax_dtype: str | None,
    left_window_size: int,
    right_window_size: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Scaled dot-product attention as ONNX Attention: 3-D ([B, S, heads*D], with head counts)
    or 4-D ([B, H, S, D]) inputs, KV cache, grouped KV heads, boolean or additive mask, causal
    and sliding-window masks, softcap. Outputs Y, present K, present V and the QK product
    (``qk_matmul_output_mode`` 0/1: after softcap, 2: plus bias, 3: after softmax)."""
    three_d = q.dim() == 3
    batch = q.shape[0]
    if three_d:
        if not q_num_heads or not kv_num_heads:
            raise ValueError("attention: 3-D inputs need q_num_heads and kv_num_heads")

        def heads(t: Tensor, n: int) -> Tensor:
            return t.reshape(batch, t.shape[1], n, t.shape[2] // n).transpose(1, 2)

        q, k, v = (
            heads(q, int(q_num_heads)),
            heads(k, int(kv_num_heads)),
            heads(v, int(kv_num_heads)),
        )
    dtype = q.dtype
    s = 1.0 / math.sqrt(q.shape[3]) if scale is None else float(scale)
    s = torch.tensor(math.sqrt(s), dtype=torch.float64).to(dtype)
    present_k = torch.cat([past_key, k], dim=2) if past_key is not None else k
    present_v = torch.cat([past_value, v], dim=2) if past_value is not None else v
    k, v = present_k, present_v
    nq, nkv = q.shape[2], k.shape[2]
    bias = torch.zeros((nq, nkv), dtype=dtype, device=q.device)
    if attn_mask is not None:
        pad = nkv - attn_mask.shape[-1]
        if pad > 0:
            attn_mask = F.pad(
                attn_mask, (0, pad), value=False if attn_mask.dtype == torch.bool else -math.inf
            )
        bias = bias + _bias_from_mask(attn_mask, dtype)
    if nonpad_kv_seqlen is not None and past_key is None:
        offset: Tensor | int = nonpad_kv_seqlen.reshape(-1).long() - nq
    else:
        offset = past_key.shape[2] if past_key is not None else 0
    if is_causal or left_window_size >= 0 or right_window_size >= 0:
        bias = bias + _window_bias(
            nq,
            nkv,
            offset,
            dtype,
            q.device,
            bool(is_causal),
            int(left_window_size),
            int(right_window_size),
        )
    if nonpad_kv_seqlen is not None:
        valid = torch.arange(nkv, device=q.device) < nonpad_kv_seqlen.reshape(-1, 1)
        bias = bias + _bias_from_mask(valid.reshape(batch, 1, 1, nkv), dtype)
    hq, hk = q.shape[1], k.shape[1]
    if hq != hk and hq % hk == 0:
        k = torch.repeat_interleave(k, hq // hk, dim=1)
        v = torch.repeat_interleave(v, hq // hk, dim=1)
    qk = torch.matmul(q * s, k.transpose(-1, -2) * s)
    if softcap and float(softcap) > 0:
        qk = torch.tanh(qk / float(softcap)) * float(softcap)
    with_bias = qk + bias
    qk_out = with_bias if int(qk_matmul_output_mode) == 2 else qk
    work = with_bias.to(to_torch(softmax_dtype)) if softmax_dtype else with_bias
    row_max = work.amax(dim=-1, keepdim=True)
    dead = torch.isneginf(row_max)
    e = torch.exp(work - torch.where(dead, torch.zeros_like(row_max), row_max))
    total = e.sum(dim=-1, keepdim=True)
    probs = e / torch.where(total == 0, torch.ones_like(total), total)
    masked_rows = torch.isneginf(bias.amax(dim=-1, keepdim=True))
    probs = torch.where(masked_rows, torch.zeros_like(probs), probs)
    if int(qk_matmul_output_mode) == 3:
        qk_out = probs
    y = torch.matmul(probs.to(dtype), v)
    if three_d:
        y = y.transpose(1, 2).reshape(y.shape[0], y.shape[2], -1)
    return y, present_k, present_v, qk_out.to(dtype)


# ---- sampling and windows -------------------------------------------------------------------
@register_op(
    "grid_sample",
    attrs={"mode": "bilinear", "padding_mode": "zeros", "align_corners": False},
    inputs=2,
)
def grid_sample(
    x: Tensor, grid: Tensor, *, mode: str, padding_mode: str, align_corners: bool
) -> Tensor:
    """Sample ``x`` (N, C, *spatial) at ``grid`` (N, *out, ndim) coordinates in [-1, 1]."""
    return F.grid_sample(
        x, grid.to(x.dtype), mode=mode, padding_mode=padding_mode, align_corners=bool(align_corners)
    )


@register_op(
    "window", attrs={"kind": REQUIRED, "periodic": True, "dtype": "float32"}, value_inputs=(0,)
)
def window(size: Tensor, *, kind: str, periodic: bool, dtype: str) -> Tensor:
    """A ``hann``, ``hamming`` (25/46, 21/46) or ``blackman`` window of ``size`` samples."""
    n = int(size.reshape(-1)[0].item())
    kw = {"periodic": bool(periodic), "dtype": torch.float64, "device": size.device}
    if kind == "hann":
        w = torch.hann_window(n, **kw)
    elif kind == "hamming":
        w = torch.hamming_window(n, alpha=25 / 46, beta=21 / 46, **kw)
    elif kind == "blackman":
        w = torch.blackman_window(n, **kw)
    else:
        raise ValueError(f"window: unknown kind {kind!r}")
    return w.to(to_torch(dtype))


# ---- recurrent layers -----------------------------------------------------------------------
def _activation(name: str, alpha: float | None, beta: float | None):  # noqa: ANN202
    n = name.lower()
    a = alpha
    b = beta
    table = {
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": torch.relu,
        "softsign": F.softsign,
        "softplus": F.softplus,
        "affine": lambda x: (1.0 if a is None else a) * x + (0.0 if b is None else b),
        "leakyrelu": lambda x: F.leaky_relu(x, 0.01 if a is None else a),
        "thresholdedrelu": lambda x: F.threshold(x, 1.0 if a is None else a, 0.0),
        "scaledtanh": lambda x: (
            (1.0 if a is None else a) * torch.tanh((1.0 if b is None else b) * x)
        ),
        "hardsigmoid": lambda x: torch.clamp(
            (0.2 if a is None else a) * x + (0.5 if b is None else b), 0.0, 1.0
        ),
        "elu": lambda x: F.elu(x, 1.0 if a is None else a),
    }
    if n not in table:
        raise ValueError(f"recurrent: activation {name!r} is not supported")
    return table[n]


_GATES = {"rnn": 1, "gru": 3, "lstm": 4}
_DEFAULT_ACTS = {"rnn": ["Tanh"], "gru": ["Sigmoid", "Tanh"], "lstm": ["Sigmoid", "Tanh", "Tanh"]}


@register_op(
    "recurrent",
    attrs={
        "cell": REQUIRED,
        "hidden_size": REQUIRED,
        "direction": "forward",
        "activations": None,
        "clip": None,
        "linear_before_reset": False,
        "layout": 0,
    },
    inputs=(3, 8),
    outputs=3,
)
def recurrent(
    x: Tensor,
    w: Tensor,
    r: Tensor,
    b: Tensor | None = None,
    seq_lens: Tensor | None = None,
    init_h: Tensor | None = None,
    init_c: Tensor | None = None,
    peephole: Tensor | None = None,
    *,
    cell: str,
    hidden_size: int,
    direction: str,
    activations: Sequence | None,
    clip: float | None,
    linear_before_reset: bool,
    layout: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """ONNX RNN/GRU/LSTM (``cell``): gates in ONNX order (GRU z,r,h; LSTM i,o,f,c), forward,
    reverse or bidirectional, per-sequence lengths, initial states, LSTM peepholes, ``clip``.
    ``activations`` is a list of [name, alpha, beta] per direction. Returns Y
    [seq, dirs, batch, hidden], Y_h and Y_c [dirs, batch, hidden] (``layout=1``: batch first)."""
    if int(layout):
        x = x.transpose(0, 1)
        init_h = None if init_h is None else init_h.transpose(0, 1)
        init_c = None if init_c is None else init_c.transpose(0, 1)
    steps, batch = int(x.shape[0]), int(x.shape[1])
    hs, g = int(hidden_size), _GATES[cell]
    dirs = 2 if direction == "bidirectional" else 1
    acts_spec = (
        list(activations) if activations else [[a, None, None] for a in _DEFAULT_ACTS[cell]] * dirs
    )
    per_dir = len(acts_spec) // dirs
    lens = (
        torch.full((batch,), steps, dtype=torch.long, device=x.device)
        if seq_lens is None
        else seq_lens.long().to(x.device)
    )
    t_idx = torch.arange(steps, device=x.device).reshape(steps, 1)
    valid = (t_idx < lens.reshape(1, batch)).to(x.dtype).unsqueeze(-1)  # [T, B, 1]
    lim = None if clip is None else float(clip)

    def cl(v: Tensor) -> Tensor:
        return v if lim is None else torch.clamp(v, -lim, lim)

    ys, last_h, last_c = [], [], []
    for d in range(dirs):
        acts = [_activation(*a) for a in acts_spec[d * per_dir : (d + 1) * per_dir]]
        reverse = direction == "reverse" or d == 1
        wd, rd = w[d], r[d]
        bw = (
            b[d, : g * hs] if b is not None else torch.zeros(g * hs, dtype=x.dtype, device=x.device)
        )
        br = b[d, g * hs :] if b is not None else torch.zeros_like(bw)
        h = (
            init_h[d]
            if init_h is not None
            else torch.zeros(batch, hs, dtype=x.dtype, device=x.device)
        )
        c = init_c[d] if init_c is not None else torch.zeros_like(h)
        p = peephole[d] if peephole is not None else None
        xw = torch.matmul(x, wd.t()) + bw  # [T, B, g*H]
        out = torch.zeros(steps, batch, hs, dtype=x.dtype, device=x.device)
        if reverse:  # each sequence reversed within its own length
            src = torch.where(
                t_idx < lens.reshape(1, batch), lens.reshape(1, batch) - 1 - t_idx, t_idx
            )  # [T, B]
            xw = torch.gather(xw, 0, src.unsqueeze(-1).expand(xw.shape))
        for t in range(steps):
            gates_x = xw[t]
            m = valid[t]
            if cell == "lstm":
                gr = torch.matmul(h, rd.t()) + br
                gi, go, gf, gc = (gates_x + gr).chunk(4, dim=-1)
                if p is not None:
                    gi = gi + p[:hs] * c
                    gf = gf + p[2 * hs :] * c
                i_t, f_t = acts[0](cl(gi)), acts[0](cl(gf))
                c_new = f_t * c + i_t * acts[1](cl(gc))
                if p is not None:
                    go = go + p[hs : 2 * hs] * c_new
                o_t = acts[0](cl(go))
                h_new = o_t * acts[2](c_new)
                c = m * c_new + (1 - m) * c
            elif cell == "gru":
                xz, xr, xh = gates_x.chunk(3, dim=-1)
                rz, rr, rh = rd.chunk(3, dim=0)
                bz, brr, bh = br.chunk(3)
                z_t = acts[0](cl(xz + torch.matmul(h, rz.t()) + bz))
                r_t = acts[0](cl(xr + torch.matmul(h, rr.t()) + brr))
                if linear_before_reset:
                    hh = xh + r_t * (torch.matmul(h, rh.t()) + bh)
                else:
                    hh = xh + torch.matmul(r_t * h, rh.t()) + bh
                h_new = (1 - z_t) * acts[1](cl(hh)) + z_t * h
            else:
                h_new = acts[0](cl(gates_x + torch.matmul(h, rd.t()) + br))
            h = m * h_new + (1 - m) * h
            out[t] = h_new * m
        if reverse:
            out = torch.gather(out, 0, src.unsqueeze(-1).expand(out.shape)) * valid
        ys.append(out)
        last_h.append(h)
        last_c.append(c)
    y = torch.stack(ys, dim=1)  # [T, dirs, B, H]
    yh, yc = torch.stack(last_h), torch.stack(last_c)
    if int(layout):
        return y.permute(2, 0, 1, 3), yh.transpose(0, 1), yc.transpose(0, 1)
    return y, yh, yc
