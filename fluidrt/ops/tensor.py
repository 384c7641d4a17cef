"""Canonical ops: tensor family (shape manipulation, indexing, padding, constants from shapes).

Every implementation runs on meta tensors for shape inference, so none of them reads the values of
an input unless that input is declared in ``value_inputs``. Attributes that name axes accept
negative values (counted from the end). Shape-like value inputs (``reshape``'s target, ``slice``'s
starts/ends, ...) override the matching attribute when present.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from fluidrt.ops.dtypes import to_torch
from fluidrt.ops.registry import REQUIRED, VARIADIC, register_op

Tensor = torch.Tensor


def _axis(axis: int, rank: int) -> int:
    """Normalize a possibly negative axis against ``rank``."""
    a = int(axis)
    if a < 0:
        a += rank
    if not 0 <= a < max(rank, 1):
        raise IndexError(f"axis {axis} is out of range for rank {rank}")
    return a


def _ints(t: Tensor | None, default: Sequence[int] | None) -> list[int] | None:
    """The values of a shape-like value input, or ``default`` when it is absent."""
    if t is None:
        return None if default is None else [int(v) for v in default]
    return [int(v) for v in t.reshape(-1).tolist()]


def _scalar(t: Tensor | None, default: float | int | None) -> float | int | None:
    if t is None:
        return default
    return t.reshape(-1)[0].item()


# ---- views and layout ---------------------------------------------------------------------


@register_op("identity")
def identity(x: Tensor) -> Tensor:
    """Return a copy of the input (a graph output must not alias an input or a constant)."""
    return x.clone()


def reshape_target(in_shape: Sequence[int], target: Sequence[int]) -> list[int]:
    """Resolve a reshape target: ``0`` copies the input dim at that index, ``-1`` is inferred."""
    out = []
    for i, d in enumerate(target):
        d = int(d)
        if d == 0:
            if i >= len(in_shape):
                raise ValueError(f"reshape: 0 at index {i} but the input has rank {len(in_shape)}")
            d = int(in_shape[i])
        out.append(d)
    if out.count(-1) > 1:
        raise ValueError(f"reshape: more than one -1 in {list(target)}")
    if -1 in out:
        known = 1
        for d in out:
            if d != -1:
                known *= d
        total = 1
        for d in in_shape:
            total *= int(d)
        if known == 0 or total % known:
            raise ValueError(f"reshape: cannot infer -1 of {list(target)} from {list(in_shape)}")
        out[out.index(-1)] = total // known
    return out


@register_op("reshape", attrs={"shape": []}, inputs=(1, 2), value_inputs=(1,))
def reshape(x: Tensor, shape_t: Tensor | None = None, *, shape: Sequence[int]) -> Tensor:
    """Reshape to ``shape`` (or value input 1); 0 copies the input dim, -1 is inferred."""
    target = _ints(shape_t, shape)
    return x.reshape(reshape_target(x.shape, target))


@register_op("flatten", attrs={"start": 1, "stop": -1})
def flatten(x: Tensor, *, start: int, stop: int) -> Tensor:
    """Merge dims ``start``..``stop`` (inclusive) into one."""
    if x.dim() == 0:
        return x.reshape(1)
    return torch.flatten(x, _axis(start, x.dim()), _axis(stop, x.dim()))


@register_op("transpose", attrs={"perm": None})
def transpose(x: Tensor, *, perm: Sequence[int] | None) -> Tensor:
    """Permute dims by ``perm`` (None reverses them)."""
    if perm is None:
        perm = list(range(x.dim() - 1, -1, -1))
    return x.permute([_axis(p, x.dim()) for p in perm])


@register_op("squeeze", attrs={"axes": []})
def squeeze(x: Tensor, *, axes: Sequence[int]) -> Tensor:
    """Remove size-1 dims: the listed ones (others are left alone), or all if ``axes`` is empty."""
    if not axes:
        drop = {i for i, d in enumerate(x.shape) if d == 1}
    else:
        drop = {a for a in (_axis(a, x.dim()) for a in axes) if x.shape[a] == 1}
    return x.reshape([d for i, d in enumerate(x.shape) if i not in drop])


@register_op("unsqueeze", attrs={"axes": REQUIRED})
def unsqueeze(x: Tensor, *, axes: Sequence[int]) -> Tensor:
    """Insert size-1 dims at ``axes`` one after another (negative: counted in the grown rank)."""
    for a in axes:
        x = x.unsqueeze(int(a))
    return x


@register_op("concat", attrs={"axis": REQUIRED}, inputs=(1, VARIADIC))
def concat(*xs: Tensor, axis: int) -> Tensor:
    """Concatenate along ``axis`` (integer dtypes are promoted as torch.cat does)."""
    return torch.cat(list(xs), dim=_axis(axis, xs[0].dim()))


def _split_sizes(dim: int, sections: Sequence[int], num: int) -> list[int]:
    if not sections:
        if num <= 0 or dim % num:
            raise ValueError(f"split: dim {dim} cannot be split into {num} equal parts")
        return [dim // num] * num
    sizes = [int(s) for s in sections]
    if sizes.count(-1) > 1:
        raise ValueError(f"split: more than one -1 in sections {sizes}")
    if -1 in sizes:
        sizes[sizes.index(-1)] = dim - (sum(sizes) + 1)
    if sum(sizes) != dim or min(sizes) < 0:
        raise ValueError(f"split: sections {list(sections)} do not add up to dim {dim}")
    return sizes


@register_op(
    "split",
    attrs={"axis": 0, "sections": [], "num": 0},
    outputs=lambda a: len(a["sections"]) or int(a["num"]),
)
def split(x: Tensor, *, axis: int, sections: Sequence[int], num: int) -> tuple[Tensor, ...]:
    """Split along ``axis`` into ``sections`` sizes (one may be -1), or ``num`` equal parts."""
    ax = _axis(axis, x.dim())
    return tuple(torch.split(x, _split_sizes(x.shape[ax], sections, int(num)), dim=ax))


@register_op("stack", attrs={"axis": 0}, inputs=(1, VARIADIC))
def stack(*xs: Tensor, axis: int) -> Tensor:
    """Stack same-shaped tensors along a new ``axis``."""
    return torch.stack(list(xs), dim=_axis(axis, xs[0].dim() + 1))


@register_op("unstack", attrs={"axis": 0, "num": REQUIRED}, outputs=lambda a: int(a["num"]))
def unstack(x: Tensor, *, axis: int, num: int) -> tuple[Tensor, ...]:
    """Split along ``axis`` into its ``num`` slices, removing the axis."""
    ax = _axis(axis, x.dim())
    if x.shape[ax] != num:
        raise ValueError(f"unstack: dim {ax} has size {x.shape[ax]}, expected num={num}")
    return tuple(torch.unbind(x, dim=ax))


@register_op("flip", attrs={"axes": REQUIRED})
def flip(x: Tensor, *, axes: Sequence[int]) -> Tensor:
    """Reverse the order of elements along ``axes``."""
    return torch.flip(x, [_axis(a, x.dim()) for a in axes]) if axes else x


@register_op("roll", attrs={"shifts": REQUIRED, "axes": []})
def roll(x: Tensor, *, shifts: Sequence[int], axes: Sequence[int]) -> Tensor:
    """Roll elements by ``shifts`` along ``axes`` (empty axes: over the flattened tensor)."""
    if not axes:
        return torch.roll(x.reshape(-1), int(sum(shifts))).reshape(x.shape)
    return torch.roll(x, [int(s) for s in shifts], [_axis(a, x.dim()) for a in axes])


# ---- slicing and indexing -----------------------------------------------------------------


def slice_bounds(dim: int, start: int, end: int, step: int) -> tuple[int, int, int]:
    """(start, end, count) of one sliced axis, clamped like NumPy/ONNX."""
    if step == 0:
        raise ValueError("slice: step must not be 0")
    if start < 0:
        start += dim
    if end < 0:
        end += dim
    if step > 0:
        start = min(max(start, 0), dim)
        end = min(max(end, 0), dim)
        count = max(0, (end - start + step - 1) // step)
    else:
        start = min(max(start, -1), dim - 1)
        end = min(max(end, -1), dim - 1)
        count = max(0, (start - end + (-step) - 1) // (-step))
    return start, end, count


@register_op(
    "slice",
    attrs={"axes": None, "starts": [], "ends": [], "steps": None, "decrease_axes": []},
    inputs=(1, 5),
    value_inputs=(1, 2, 3, 4),
)
def slice_(
    x: Tensor,
    starts_t: Tensor | None = None,
    ends_t: Tensor | None = None,
    axes_t: Tensor | None = None,
    steps_t: Tensor | None = None,
    *,
    axes: Sequence[int] | None,
    starts: Sequence[int],
    ends: Sequence[int],
    steps: Sequence[int] | None,
    decrease_axes: Sequence[int],
) -> Tensor:
    """Slice ``x[starts:ends:steps]`` on ``axes`` (inputs 1-4 override), drop ``decrease_axes``."""
    st = _ints(starts_t, starts)
    en = _ints(ends_t, ends)
    ax = _ints(axes_t, axes)
    if ax is None:
        ax = list(range(len(st)))
    sp = _ints(steps_t, steps) or [1] * len(ax)
    if not len(st) == len(en) == len(ax) == len(sp):
        raise ValueError(f"slice: axes {ax}, starts {st}, ends {en}, steps {sp} differ in length")
    rank = x.dim()
    for a, s, e, k in zip(ax, st, en, sp, strict=True):
        a = _axis(a, rank)
        dim = x.shape[a]
        s, e, n = slice_bounds(dim, int(s), int(e), int(k))
        if k > 0:
            if s == 0 and k == 1 and n == dim:
                continue
            idx = [slice(None)] * a + [slice(s, s + (n - 1) * k + 1 if n else s, k)]
        else:
            x = torch.flip(x, [a])  # in the flipped axis, element i sits at dim - 1 - i
            s = dim - 1 - s
            idx = [slice(None)] * a + [slice(s, s + (n - 1) * (-k) + 1 if n else s, -k)]
        x = x[tuple(idx)]
    if decrease_axes:
        drop = {_axis(a, rank) for a in decrease_axes}
        x = x.reshape([d for i, d in enumerate(x.shape) if i not in drop])
    return x


def _wrap_index(index: Tensor, dim: int) -> Tensor:
    index = index.long()
    return torch.where(index < 0, index + dim, index)


@register_op("gather", attrs={"axis": 0}, inputs=2)
def gather(x: Tensor, index: Tensor, *, axis: int) -> Tensor:
    """Take slices along ``axis`` at ``index`` (ONNX Gather: index dims replace that axis)."""
    ax = _axis(axis, x.dim())
    idx = _wrap_index(index, x.shape[ax])
    out = torch.index_select(x, ax, idx.reshape(-1))
    return out.reshape(list(x.shape[:ax]) + list(index.shape) + list(x.shape[ax + 1 :]))


@register_op("gather_nd", inputs=2)
def gather_nd(x: Tensor, index: Tensor) -> Tensor:
    """Gather slices of ``x`` addressed by the last dim of ``index`` (Paddle/ONNX GatherND)."""
    k = index.shape[-1]
    batch = list(index.shape[:-1])
    if k == 0:
        return x.expand(batch + list(x.shape)) if batch else x
    idx = index.long()
    flat = torch.zeros(batch, dtype=torch.long, device=x.device)
    for i in range(k):
        flat = flat * x.shape[i] + _wrap_index(idx[..., i], x.shape[i])
    rows = x.reshape([-1] + list(x.shape[k:]))
    out = torch.index_select(rows, 0, flat.reshape(-1))
    return out.reshape(batch + list(x.shape[k:]))


@register_op("take_along_axis", attrs={"axis": REQUIRED}, inputs=2)
def take_along_axis(x: Tensor, index: Tensor, *, axis: int) -> Tensor:
    """Pick ``x`` elements along ``axis`` at ``index`` of the same rank (ONNX GatherElements)."""
    ax = _axis(axis, x.dim())
    return torch.gather(x, ax, _wrap_index(index, x.shape[ax]))


@register_op("scatter", attrs={"overwrite": True}, inputs=3)
def scatter(x: Tensor, index: Tensor, updates: Tensor, *, overwrite: bool) -> Tensor:
    """Paddle scatter: rows ``index`` of ``x`` set to (or, overwrite=False, summed from) updates."""
    idx = _wrap_index(index.reshape(-1), x.shape[0])
    out = x.clone()
    if overwrite:
        out[idx] = updates.to(x.dtype)
    else:
        out[idx] = torch.zeros_like(updates, dtype=x.dtype)
        out.index_put_((idx,), updates.to(x.dtype), accumulate=True)
    return out


@register_op("scatter_nd_add", inputs=3)
def scatter_nd_add(x: Tensor, index: Tensor, updates: Tensor) -> Tensor:
    """Add ``updates`` into the slices of ``x`` addressed by the last dim of ``index``."""
    k = index.shape[-1]
    idx = tuple(_wrap_index(index[..., i], x.shape[i]) for i in range(k))
    return x.clone().index_put_(idx, updates.to(x.dtype), accumulate=True)


# ---- padding and broadcasting ---------------------------------------------------------------


def _pad_index(dim: int, begin: int, end: int, mode: str, device: torch.device) -> Tensor:
    """Source index of each output position of one padded axis."""
    i = torch.arange(-begin, dim + end, device=device)
    if mode == "reflect":
        if dim == 1:
            return torch.zeros_like(i)
        period = 2 * (dim - 1)
        j = torch.remainder(i, period)
        return torch.where(j >= dim, period - j, j)
    if mode == "edge":
        return i.clamp(0, dim - 1)
    if mode == "circular":
        return torch.remainder(i, dim)
    raise ValueError(f"pad: unknown mode {mode!r}")


@register_op("pad", attrs={"pads": REQUIRED, "mode": "constant", "value": 0.0})
def pad(x: Tensor, *, pads: Sequence[int], mode: str, value: float) -> Tensor:
    """Pad by ``pads`` (all begins, then all ends; negative crops) in the given ``mode``."""
    rank = x.dim()
    if len(pads) != 2 * rank:
        raise ValueError(f"pad: {len(pads)} pads for rank {rank}; need begins then ends per dim")
    begins, ends = [int(p) for p in pads[:rank]], [int(p) for p in pads[rank:]]
    if mode == "constant":
        torch_pads = []
        for a in range(rank - 1, -1, -1):
            torch_pads += [begins[a], ends[a]]
        while len(torch_pads) > 2 and torch_pads[-2:] == [0, 0]:
            torch_pads = torch_pads[:-2]
        if not any(torch_pads):
            return x
        return F.pad(x, torch_pads, mode="constant", value=value)
    if mode == "replicate":
        mode = "edge"
    for a in range(rank):
        if begins[a] or ends[a]:
            if mode == "reflect" and (begins[a] >= x.shape[a] or ends[a] >= x.shape[a]):
                raise ValueError(f"pad: reflect padding on dim {a} must be < size {x.shape[a]}")
            idx = _pad_index(x.shape[a], begins[a], ends[a], mode, x.device)
            x = torch.index_select(x, a, idx)
    return x


def _expand_shape(in_shape: Sequence[int], target: Sequence[int]) -> list[int]:
    rank = max(len(in_shape), len(target))
    src = [1] * (rank - len(in_shape)) + [int(d) for d in in_shape]
    tgt = [-1] * (rank - len(target)) + [int(d) for d in target]
    out = []
    for s, t in zip(src, tgt, strict=True):
        if t == -1 or (t == 1 and s != 1):
            out.append(s)
        elif s in (1, t):
            out.append(t)
        else:
            raise ValueError(f"expand: cannot expand shape {list(in_shape)} to {list(target)}")
    return out


@register_op("expand", attrs={"shape": []}, inputs=(1, 2), value_inputs=(1,))
def expand(x: Tensor, shape_t: Tensor | None = None, *, shape: Sequence[int]) -> Tensor:
    """Broadcast to ``shape`` (or value input 1): -1 keeps a dim, leading dims may be added."""
    out = _expand_shape(x.shape, _ints(shape_t, shape))
    return x.reshape([1] * (len(out) - x.dim()) + list(x.shape)).expand(out)


@register_op("expand_as", inputs=2)
def expand_as(x: Tensor, ref: Tensor) -> Tensor:
    """Broadcast ``x`` to the shape of ``ref`` (only ``ref``'s shape is read)."""
    out = _expand_shape(x.shape, ref.shape)
    return x.reshape([1] * (len(out) - x.dim()) + list(x.shape)).expand(out)


@register_op("tile", attrs={"repeats": []}, inputs=(1, 2), value_inputs=(1,))
def tile(x: Tensor, repeats_t: Tensor | None = None, *, repeats: Sequence[int]) -> Tensor:
    """Repeat ``x`` ``repeats`` times per dim (or value input 1; shorter lists pad with 1)."""
    return x.tile(_ints(repeats_t, repeats))


# ---- tensors made from shapes and values ----------------------------------------------------


@register_op("shape", attrs={"dtype": "int64"})
def shape(x: Tensor, *, dtype: str) -> Tensor:
    """The shape of ``x`` as a 1-D tensor on x's device."""
    return torch.tensor(list(x.shape), dtype=to_torch(dtype), device=x.device)


@register_op("numel", attrs={"dtype": "int64"})
def numel(x: Tensor, *, dtype: str) -> Tensor:
    """The number of elements of ``x`` as a 0-d tensor on x's device."""
    return torch.tensor(x.numel(), dtype=to_torch(dtype), device=x.device)


@register_op("fill", attrs={"value": 0.0, "dtype": "float32"}, value_inputs=(0,))
def fill(shape_t: Tensor, *, value: float, dtype: str) -> Tensor:
    """A tensor of shape ``shape_t`` (value input) filled with ``value``."""
    return torch.full(_ints(shape_t, None), value, dtype=to_torch(dtype), device=shape_t.device)


@register_op("full_like", attrs={"value": 0.0, "dtype": None}, inputs=(1, 2), value_inputs=(1,))
def full_like(
    x: Tensor, value_t: Tensor | None = None, *, value: float, dtype: str | None
) -> Tensor:
    """A tensor shaped like ``x`` filled with ``value`` (or 1-element value input 1)."""
    v = _scalar(value_t, value)
    return torch.full(x.shape, v, dtype=to_torch(dtype) if dtype else x.dtype, device=x.device)


@register_op(
    "arange",
    attrs={"start": 0, "end": None, "step": 1, "dtype": "int64"},
    inputs=(0, 3),
    value_inputs=(0, 1, 2),
)
def arange(
    start_t: Tensor | None = None,
    end_t: Tensor | None = None,
    step_t: Tensor | None = None,
    *,
    start: float,
    end: float | None,
    step: float,
    dtype: str,
) -> Tensor:
    """``[start, end)`` by ``step`` (value inputs 0-2 override the attrs), as torch.arange."""
    device = next((t.device for t in (start_t, end_t, step_t) if t is not None), None)
    s, e, k = _scalar(start_t, start), _scalar(end_t, end), _scalar(step_t, step)
    if e is None:
        raise ValueError("arange: no end")
    return torch.arange(s, e, k, dtype=to_torch(dtype), device=device)


@register_op("where", inputs=3)
def where(cond: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """Elements of ``x`` where ``cond`` else of ``y`` (broadcasting)."""
    return torch.where(cond.bool(), x, y)


@register_op(
    "one_hot",
    attrs={"depth": -1, "dtype": "float32", "axis": -1},
    inputs=(1, 2),
    value_inputs=(1,),
)
def one_hot(
    x: Tensor, depth_t: Tensor | None = None, *, depth: int, dtype: str, axis: int
) -> Tensor:
    """One-hot encode integer ``x`` into ``depth`` classes (value input 1); out of range: zeros."""
    n = int(_scalar(depth_t, depth))
    if n < 0:
        raise ValueError("one_hot: depth is unknown")
    classes = torch.arange(n, device=x.device)
    out = (x.long().unsqueeze(-1) == classes).to(to_torch(dtype))
    ax = _axis(axis, out.dim())
    return out if ax == out.dim() - 1 else out.movedim(-1, ax)


@register_op("tril", attrs={"diagonal": 0})
def tril(x: Tensor, *, diagonal: int) -> Tensor:
    """Keep the lower triangle (elements with col - row <= diagonal) of the last two dims."""
    return torch.tril(x, diagonal)


@register_op("triu", attrs={"diagonal": 0})
def triu(x: Tensor, *, diagonal: int) -> Tensor:
    """Keep the upper triangle (elements with col - row >= diagonal) of the last two dims."""
    return torch.triu(x, diagonal)
