"""Helpers shared by Paddle importers: Paddle's axis broadcasting and padding conventions."""

from __future__ import annotations

from fluidrt.frontends.paddle.importer import ImportContext
from fluidrt.ir.graph import Value


def align_for_broadcast(ctx: ImportContext, x: Value, y: Value, axis: int) -> Value:
    """Reshape ``y`` so NumPy broadcasting reproduces Paddle's ``axis`` rule for elementwise ops.

    Paddle aligns ``y`` with ``x`` starting at dimension ``axis`` (-1: align trailing dims, which
    is NumPy's rule). Trailing size-1 dims of ``y`` past ``x``'s rank are dropped first.
    """
    if axis == -1 or x.rank is None or y.rank is None or x.rank == y.rank:
        return y
    if axis < 0:
        axis += x.rank
    y_shape = list(y.shape)
    while len(y_shape) > 1 and axis + len(y_shape) > x.rank and y_shape[-1] == 1:
        y_shape.pop()
    trailing = x.rank - axis - len(y_shape)
    if trailing <= 0 and len(y_shape) == y.rank:
        return y
    axes = list(range(len(y_shape), len(y_shape) + max(trailing, 0)))
    if len(y_shape) != y.rank:
        y = ctx.emit("reshape", [y], {"shape": y_shape})
    return ctx.emit("unsqueeze", [y], {"axes": axes}) if axes else y


def paddle_pads(paddings: list[int], spatial: int = 2) -> list[int]:
    """Paddle paddings ([ph, pw] or [pt, pb, pl, pr]) -> canonical [begin..., end...] order."""
    p = [int(v) for v in paddings]
    if len(p) == spatial:
        return p + p
    if len(p) == 2 * spatial:
        begins = p[0::2]
        ends = p[1::2]
        return begins + ends
    raise ValueError(f"paddings {p} do not fit {spatial} spatial dims")


def auto_pad(padding_algorithm: str | None) -> str:
    """Paddle ``padding_algorithm`` -> canonical ``auto_pad``."""
    return {"SAME": "SAME_UPPER", "VALID": "VALID"}.get(padding_algorithm or "EXPLICIT", "NOTSET")
