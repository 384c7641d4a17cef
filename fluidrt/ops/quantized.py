"""INT8 layers produced by INT8 lowering: ``qconv2d`` and ``qmatmul``.

Activations are symmetric int8 (zero point 0, value = q * scale); weights are int8 with one
symmetric scale per output channel. One layer computes::

    acc = int32 conv(x_q, w_q)                      (or x_q @ w_q.T)
    y   = float32(acc) * (in_scale * w_scale[k]) + bias[k]
    y  += residual  (int8 residual: residual_q * residual_scale)
    y   = activation(y)
    out = clamp(round_half_even(y * rcp), -128, 127) as int8,  or y as ``out_dtype``

with ``rcp`` = 1 / out_scale rounded to float32 once (a multiply, as the GPU epilogues do).

These native implementations are the test oracle and the CPU fallback: the integer accumulation
runs in float64, which is exact for every int8 layer (|acc| < 2**53), and the epilogue in float32
as the GPU kernels do. ``quantize_linear`` / ``dequantize_linear`` (ops/extra.py) mark the borders.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from fluidrt.ops.dtypes import to_torch
from fluidrt.ops.fused import CONV_ATTRS, EPILOGUE_ATTRS, apply_activation
from fluidrt.ops.registry import REQUIRED, get_op, register_op

RESIDUAL = 4  # the residual's input index of qconv2d and qmatmul: x, w, w_scale, bias, residual
QUANT_ATTRS = {
    "in_scale": REQUIRED,
    "out_scale": None,
    "residual_scale": None,
    "out_dtype": "float32",
}


@functools.lru_cache(maxsize=4096)
def reciprocal(out_scale: float) -> float:
    """1 / out_scale rounded to float32: the factor requantization multiplies by (cached: the GPU
    launchers ask on every call)."""
    one = torch.tensor(1.0, dtype=torch.float32)
    return float(one / torch.tensor(float(out_scale), dtype=torch.float32))


def requantize(y: torch.Tensor, out_scale: float) -> torch.Tensor:
    """clamp(round_half_even(y * rcp), -128, 127) as int8, rcp = reciprocal(out_scale)."""
    q = torch.round(y.float() * torch.tensor(reciprocal(out_scale), dtype=torch.float32))
    return q.clamp_(-128, 127).to(torch.int8)


def epilogue(
    acc: torch.Tensor,
    scale: torch.Tensor,
    bias: torch.Tensor | None,
    residual: torch.Tensor | None,
    *,
    activation: str,
    act_attrs: dict[str, Any],
    out_scale: float | None,
    residual_scale: float | None,
    out_dtype: str,
    channel_dim: int,
) -> torch.Tensor:
    """Dequantize an integer accumulator (any float dtype holding exact integers) and finish."""
    shape = [1] * acc.dim()
    shape[channel_dim] = -1
    y = acc.float() * scale.float().reshape(shape)
    if bias is not None:
        y = y + bias.float().reshape(shape)
    if residual is not None:
        if residual.dtype == torch.int8:
            if residual_scale is None:
                raise ValueError("int8 residual needs residual_scale")
            y = y + residual.float() * torch.tensor(residual_scale, dtype=torch.float32)
        else:
            y = y + residual.float()
    y = apply_activation(y, activation, act_attrs)
    if out_scale is not None:
        return requantize(y, out_scale)
    return y.to(to_torch(out_dtype))


def layer_scale(in_scale: float, w_scale: torch.Tensor) -> torch.Tensor:
    """The per-channel dequantization factor in float32: in_scale * w_scale."""
    return torch.tensor(in_scale, dtype=torch.float32, device=w_scale.device) * w_scale.float()


def _check_int8(x: torch.Tensor, what: str) -> None:
    if x.dtype != torch.int8:
        raise TypeError(f"{what} must be int8, got {x.dtype}")


@register_op(
    "qconv2d", attrs={**CONV_ATTRS, **EPILOGUE_ATTRS, **QUANT_ATTRS}, inputs=(3, 5), tags=("int8",)
)
def qconv2d(
    x: torch.Tensor,
    w: torch.Tensor,
    w_scale: torch.Tensor,
    bias: torch.Tensor | None = None,
    residual: torch.Tensor | None = None,
    *,
    activation: str,
    act_attrs: dict[str, Any],
    in_scale: float,
    out_scale: float | None,
    residual_scale: float | None,
    out_dtype: str,
    **conv: Any,
) -> torch.Tensor:
    """INT8 convolution: int8 x and per-channel int8 w, fused dequantize/bias/residual/act."""
    _check_int8(x, "qconv2d input x")
    _check_int8(w, "qconv2d weight")
    acc = get_op("conv2d").impl(x.double(), w.double(), None, **conv)
    return epilogue(
        acc,
        layer_scale(in_scale, w_scale),
        bias,
        residual,
        activation=activation,
        act_attrs=act_attrs,
        out_scale=out_scale,
        residual_scale=residual_scale,
        out_dtype=out_dtype,
        channel_dim=1,
    )


@register_op("qmatmul", attrs={**EPILOGUE_ATTRS, **QUANT_ATTRS}, inputs=(3, 5), tags=("int8",))
def qmatmul(
    a: torch.Tensor,
    w: torch.Tensor,
    w_scale: torch.Tensor,
    bias: torch.Tensor | None = None,
    residual: torch.Tensor | None = None,
    *,
    activation: str,
    act_attrs: dict[str, Any],
    in_scale: float,
    out_scale: float | None,
    residual_scale: float | None,
    out_dtype: str,
) -> torch.Tensor:
    """INT8 GEMM a[..., K] @ w[N, K]^T with per-output-channel w_scale and the same epilogue."""
    _check_int8(a, "qmatmul input a")
    _check_int8(w, "qmatmul weight")
    acc = torch.matmul(a.double(), w.double().t())
    return epilogue(
        acc,
        layer_scale(in_scale, w_scale),
        bias,
        residual,
        activation=activation,
        act_attrs=act_attrs,
        out_scale=out_scale,
        residual_scale=residual_scale,
        out_dtype=out_dtype,
        channel_dim=acc.dim() - 1,
    )
