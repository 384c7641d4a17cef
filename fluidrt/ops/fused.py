"""Fused canonical ops produced by the fusion passes. Their native implementations compose the
basic ops' implementations, so every engine tactic for them has a reference to match.

Activations are named by the canonical unary op (``relu``, ``clip``, ``silu``, ...) plus that op's
attributes in ``act_attrs``; ``"none"`` means no activation.
"""

from __future__ import annotations

from typing import Any

import torch

from fluidrt.ops.registry import VARIADIC, get_op, register_op

CONV_ATTRS = {
    "strides": [1, 1],
    "pads": [0, 0, 0, 0],
    "dilations": [1, 1],
    "groups": 1,
    "auto_pad": "NOTSET",
}
EPILOGUE_ATTRS = {"activation": "none", "act_attrs": {}}


def apply_activation(y: torch.Tensor, activation: str, act_attrs: dict[str, Any]) -> torch.Tensor:
    """Apply a canonical unary op (or nothing for ``"none"``) to ``y``."""
    if activation == "none":
        return y
    op = get_op(activation)
    return op.impl(y, **op.resolve_attrs(act_attrs))


@register_op("fused_conv2d", attrs={**CONV_ATTRS, **EPILOGUE_ATTRS}, inputs=(2, 4), tags=("fused",))
def fused_conv2d(
    x: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor | None = None,
    residual: torch.Tensor | None = None,
    *,
    activation: str,
    act_attrs: dict[str, Any],
    **conv: Any,
) -> torch.Tensor:
    """activation(conv2d(x, w) + b + residual)."""
    y = get_op("conv2d").impl(x, w, b, **conv)
    if residual is not None:
        y = y + residual
    return apply_activation(y, activation, act_attrs)


@register_op(
    "fused_matmul",
    attrs={"trans_a": False, "trans_b": False, **EPILOGUE_ATTRS},
    inputs=(2, 4),
    tags=("fused",),
)
def fused_matmul(
    a: torch.Tensor,
    b: torch.Tensor,
    bias: torch.Tensor | None = None,
    residual: torch.Tensor | None = None,
    *,
    trans_a: bool,
    trans_b: bool,
    activation: str,
    act_attrs: dict[str, Any],
) -> torch.Tensor:
    """activation(matmul(a, b) + bias + residual)."""
    y = get_op("matmul").impl(a, b, trans_a=trans_a, trans_b=trans_b)
    if bias is not None:
        y = y + bias
    if residual is not None:
        y = y + residual
    return apply_activation(y, activation, act_attrs)


@register_op("fused_elementwise", attrs={"steps": []}, inputs=(1, VARIADIC), tags=("fused",))
def fused_elementwise(*inputs: torch.Tensor, steps: list) -> torch.Tensor:
    """A chain of elementwise ops; each step is [op, [refs], attrs], refs "i<k>" or "s<k>"."""
    env: list[torch.Tensor] = []
    for op_name, refs, attrs in steps:
        args = [inputs[int(r[1:])] if r[0] == "i" else env[int(r[1:])] for r in refs]
        op = get_op(op_name)
        env.append(op.impl(*args, **op.resolve_attrs(attrs)))
    return env[-1]
