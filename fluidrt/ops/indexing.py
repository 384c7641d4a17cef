"""Canonical index-producing and broadcasting tensor ops: ``argsort``, ``meshgrid``,
``broadcast_tensors``."""

from __future__ import annotations

import torch

from fluidrt.ops.registry import VARIADIC, register_op

Tensor = torch.Tensor


@register_op("argsort", attrs={"axis": -1, "descending": False}, outputs=2)
def argsort(x: Tensor, *, axis: int, descending: bool) -> tuple[Tensor, Tensor]:
    """Sorted values and their int64 indices along ``axis``; equal values keep input order
    (a valid order for Paddle's unstable sort too)."""
    values, indices = torch.sort(x, dim=int(axis), descending=bool(descending), stable=True)
    return values, indices


@register_op("meshgrid", inputs=(1, VARIADIC), outputs=lambda a: int(a["num"]), attrs={"num": 1})
def meshgrid(*xs: Tensor, num: int) -> list[Tensor]:
    """Coordinate grids of ``num`` 1-D inputs, ``ij`` indexing (output i varies along dim i)."""
    if len(xs) != num:
        raise ValueError(f"meshgrid: {len(xs)} inputs, but num={num}")
    return [t.contiguous() for t in torch.meshgrid(*[x.reshape(-1) for x in xs], indexing="ij")]


@register_op(
    "broadcast_tensors", inputs=(1, VARIADIC), outputs=lambda a: int(a["num"]), attrs={"num": 1}
)
def broadcast_tensors(*xs: Tensor, num: int) -> list[Tensor]:
    """The ``num`` inputs expanded to their common broadcast shape (NumPy rules)."""
    if len(xs) != num:
        raise ValueError(f"broadcast_tensors: {len(xs)} inputs, but num={num}")
    return [t.contiguous() for t in torch.broadcast_tensors(*xs)]
