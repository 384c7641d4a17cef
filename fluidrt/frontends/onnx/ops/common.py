"""Helpers shared by ONNX importers."""

from __future__ import annotations

from collections.abc import Sequence

from fluidrt.frontends.onnx.context import OnnxContext
from fluidrt.ir.graph import Value

INT64_MAX = 2**63 - 1


def rank_of(ctx: OnnxContext, v: Value, what: str = "input") -> int:
    if v.shape is None:
        raise ctx.unsupported(f"the rank of {what} %{v.name} must be known when importing")
    return len(v.shape)


def norm_axis(ctx: OnnxContext, axis: int, rank: int) -> int:
    a = int(axis)
    if a < 0:
        a += rank
    if not 0 <= a < max(rank, 1):
        raise ctx.error(f"axis {axis} is out of range for rank {rank}")
    return a


def norm_axes(ctx: OnnxContext, axes: Sequence[int], rank: int) -> list[int]:
    return [norm_axis(ctx, a, rank) for a in axes]


def static_dim(v: Value, axis: int) -> int | None:
    if v.shape is None or axis >= len(v.shape):
        return None
    d = v.shape[axis]
    return d if isinstance(d, int) else None


def reshape_back(ctx: OnnxContext, y: Value, like: Value) -> Value:
    """Reshape ``y`` to the shape of ``like`` (static, or with at most one unknown dim; else at
    run time through a ``shape`` op)."""
    if like.shape is None:
        return ctx.emit("reshape", [y, ctx.emit("shape", [like])])
    dims = list(like.shape)
    unknown = [i for i, d in enumerate(dims) if not isinstance(d, int)]
    if len(unknown) <= 1:
        target = [-1 if not isinstance(d, int) else d for d in dims]
        return ctx.emit("reshape", [y], {"shape": target})
    return ctx.emit("reshape", [y, ctx.emit("shape", [like])])


def emit_dynamic(
    ctx: OnnxContext,
    op: str,
    x: Value,
    attrs: dict,
    binds: Sequence[tuple[str, str, Value | None]],
    outputs: int = 1,
) -> Value | list[Value]:
    """``op`` on ``x`` with some attributes taken from inputs: static when every bound input is
    a constant (or absent), else through ``attrs_from_inputs`` at run time.

    ``binds`` are (attribute, kind, value) with kind ``int``, ``float``, ``scalar``, ``ints``,
    ``ints_noop`` or ``unsqueeze_axes`` (see ``fluidrt.ops.extra.attrs_from_inputs``).
    """
    live = [(n, k, v) for n, k, v in binds if v is not None]
    if all(v.data is not None for _, _, v in live):
        static = dict(attrs)
        for name, kind, v in live:
            flat = v.data.reshape(-1)
            if kind in ("int", "float", "scalar"):
                if flat.size == 0:
                    continue
                value = flat[0].item()
                static[name] = (
                    int(value) if kind == "int" else (float(value) if kind == "float" else value)
                )
            else:
                values = [int(a) for a in flat]
                if kind == "ints_noop" and not values:
                    return ctx.emit("identity", [x])
                if kind == "unsqueeze_axes":
                    r = rank_of(ctx, x) + len(values)
                    values = sorted(norm_axes(ctx, values, r))
                static[name] = values
        return ctx.emit(op, [x], static, outputs=outputs if outputs != 1 else None)
    attrs2 = {"op": op, "attrs": attrs, "bind": [[n, k] for n, k, _ in live], "outputs": outputs}
    return ctx.emit(
        "attrs_from_inputs",
        [x] + [v for _, _, v in live],
        attrs2,
        outputs=outputs if outputs != 1 else None,
    )
