"""fp16/bf16 convolution, depthwise convolution and GEMM with fused epilogues (Triton).

The same implicit-GEMM and depthwise kernels as the INT8 engine (``fluidrt.kernels.int8_conv``),
on half-precision operands with fp32 accumulation. They exist for the layers the libraries leave
on the table at small batch: cuDNN and cuBLAS tile over output pixels x channels, so a layer with
few output pixels and a long reduction (ResNet's 7x7 stage at batch 1: 49 pixels x 512 channels
over 4608 products) fills 8 of 132 SMs; the implicit GEMM splits the reduction over programs
(``split_k``) and a second kernel sums the slices and runs the epilogue. cuDNN's grouped direct
kernel for depthwise convolutions is slow at any batch on Hopper; the depthwise kernel is a
per-channel stencil over NHWC rows.

Epilogue in fp32 (bias, residual add, activation), one rounding to the output dtype; the
activations are those of ``int8_conv.ACTIVATIONS``.

API:
- ``pack_conv_weight(w[K, C, R, S]) -> [K, R, S, C]`` and ``pack_depthwise_weight(w[C, 1, R, S])
  -> [R, S, C]``, in the dtype of the activations;
- ``conv2d(x, w_packed, bias, stride, padding, dilation, activation="none", act_alpha=0.0,
  act_beta=0.0, residual=None, config=None)`` (groups 1, NHWC in and out);
- ``conv2d_folded(y, w_packed, bias, ...)``: a strided few-channel convolution (an image stem)
  after ``fluidrt.kernels.space_to_depth`` folded its stride into channels;
- ``depthwise_conv2d(x, w_packed, bias, stride, padding, dilation, ...)`` (groups == C; also fp32:
  no tensor cores involved);
- ``gemm(a[M, K], b[N, K], bias, ...) -> [M, N]`` (a fully connected layer: b is the weight);
- ``conv_configs`` / ``gemm_configs`` / ``Int8Config`` (tile configs, named for the timing cache).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

from fluidrt.kernels.int8_conv import (
    ConvShape,
    Int8Config,
    conv_configs,
    conv_shape,
    depthwise_conv,
    gemm_configs,
    implicit_gemm,
    implicit_gemm_conv,
    nhwc_checked,
)
from fluidrt.kernels.space_to_depth import fold_weight, folded_shape, space_to_depth

HALF = (torch.float16, torch.bfloat16)

__all__ = [
    "HALF",
    "ConvShape",
    "Int8Config",
    "conv2d",
    "conv2d_folded",
    "conv_configs",
    "conv_shape",
    "depthwise_conv2d",
    "fold_weight",
    "folded_conv_shape",
    "folded_shape",
    "folded_view",
    "gemm",
    "gemm_configs",
    "pack_conv_weight",
    "pack_depthwise_weight",
    "space_to_depth",
]


def _check(t: torch.Tensor, name: str, ndim: int, dtypes: tuple[torch.dtype, ...]) -> None:
    if t.dtype not in dtypes or t.dim() != ndim:
        raise ValueError(
            f"{name}: expected a {ndim}-D tensor of {[str(d) for d in dtypes]}, got "
            f"{t.dim()}-D {t.dtype} {tuple(t.shape)}"
        )


@functools.lru_cache(maxsize=256)
def _ones(n: int, device: torch.device) -> torch.Tensor:
    # the kernels' per-channel dequantization scale, the identity here (x * 1.0 is exact)
    return torch.ones(n, dtype=torch.float32, device=device)


def _bias(bias: torch.Tensor | None, n: int) -> torch.Tensor | None:
    if bias is None:
        return None
    if bias.shape != (n,):
        raise ValueError(f"bias: expected [{n}], got {tuple(bias.shape)}")
    return bias.float().contiguous()


def pack_conv_weight(w: torch.Tensor) -> torch.Tensor:
    """[K, C, R, S] weights -> contiguous [K, R, S, C] (the layout ``conv2d`` reads)."""
    _check(w, "w", 4, HALF)
    return w.permute(0, 2, 3, 1).contiguous()


def pack_depthwise_weight(w: torch.Tensor) -> torch.Tensor:
    """[C, 1, R, S] depthwise weights -> contiguous [R, S, C]."""
    _check(w, "w", 4, (*HALF, torch.float32))
    if w.shape[1] != 1:
        raise ValueError(f"w: expected depthwise weights [C, 1, R, S], got {tuple(w.shape)}")
    return w[:, 0].permute(1, 2, 0).contiguous()


def conv2d(
    x: torch.Tensor,
    w_packed: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int | Sequence[int],
    padding: int | Sequence[int],
    dilation: int | Sequence[int] = 1,
    activation: str = "none",
    act_alpha: float = 0.0,
    act_beta: float = 0.0,
    residual: torch.Tensor | None = None,
    config: Int8Config | None = None,
) -> torch.Tensor:
    """Convolution (groups 1) of NHWC half ``x`` with packed [K, R, S, C] weights of its dtype;
    ``residual`` (output shape, any float dtype) is added before the activation."""
    _check(x, "x", 4, HALF)
    _check(w_packed, "w_packed", 4, (x.dtype,))
    return _conv(
        nhwc_checked(x, "x"), w_packed, bias, stride, padding, dilation,
        activation, act_alpha, act_beta, residual, config,
    )  # fmt: skip


def _conv(
    x: torch.Tensor,
    w_packed: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int | Sequence[int],
    padding: int | Sequence[int],
    dilation: int | Sequence[int],
    activation: str,
    act_alpha: float,
    act_beta: float,
    residual: torch.Tensor | None,
    config: Int8Config | None,
) -> torch.Tensor:
    k = int(w_packed.shape[0])
    return implicit_gemm_conv(
        x, w_packed, _ones(k, x.device), _bias(bias, k), stride, padding, dilation,
        activation, float(act_alpha), float(act_beta), residual, None, None, x.dtype, config,
    )  # fmt: skip


def folded_view(y: torch.Tensor, taps_w: int) -> torch.Tensor:
    """The space-to-depth output ``y`` (channels-last [N, C', U, V], see
    ``fluidrt.kernels.space_to_depth``) as an [N, taps_w * C', U, V - taps_w + 1] view whose
    pixel (u, v) holds the C' channels of ``taps_w`` neighbouring pixels: they are contiguous in
    memory, so a row of taps is one aligned reduction block (pixels overlap; read-only)."""
    n, c, u, v = y.shape
    if not y.is_contiguous(memory_format=torch.channels_last):
        raise ValueError(f"y: expected channels-last memory, got strides {y.stride()}")
    if not 1 <= taps_w <= v:
        raise ValueError(f"taps_w: expected 1..{v}, got {taps_w}")
    return y.as_strided((n, taps_w * c, u, v - taps_w + 1), (u * v * c, 1, v * c, c))


def folded_conv_shape(y: torch.Tensor, w_packed: torch.Tensor) -> ConvShape:
    """The ConvShape ``conv2d_folded(y, w_packed)`` runs (for ``conv_configs``)."""
    k, ta, tb, c = (int(d) for d in w_packed.shape)
    n, _, u, v = (int(d) for d in y.shape)
    return ConvShape(n, tb * c, u, v - tb + 1, k, ta, 1, (1, 1), (0, 0), (1, 1))


def conv2d_folded(
    y: torch.Tensor,
    w_packed: torch.Tensor,
    bias: torch.Tensor | None,
    activation: str = "none",
    act_alpha: float = 0.0,
    act_beta: float = 0.0,
    residual: torch.Tensor | None = None,
    config: Int8Config | None = None,
) -> torch.Tensor:
    """The stride-1, unpadded convolution of a space-to-depth output ``y`` with
    ``pack_conv_weight(fold_weight(w, stride))`` ([K, R', S', C']): the strided convolution of
    the original input. Runs as an R' x 1 convolution over ``folded_view(y, S')`` so that every
    reduction block is a contiguous run of memory."""
    _check(y, "y", 4, HALF)
    _check(w_packed, "w_packed", 4, (y.dtype,))
    k, ta, tb, c = (int(d) for d in w_packed.shape)
    if c != y.shape[1]:
        got = tuple(w_packed.shape)
        raise ValueError(f"w_packed: expected [K, R', S', {y.shape[1]}], got {got}")
    return _conv(
        folded_view(nhwc_checked(y, "y"), tb), w_packed.contiguous().view(k, ta, 1, tb * c),
        bias, 1, 0, 1, activation, act_alpha, act_beta, residual, config,
    )  # fmt: skip


def depthwise_conv2d(
    x: torch.Tensor,
    w_packed: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int | Sequence[int],
    padding: int | Sequence[int],
    dilation: int | Sequence[int] = 1,
    activation: str = "none",
    act_alpha: float = 0.0,
    act_beta: float = 0.0,
    residual: torch.Tensor | None = None,
) -> torch.Tensor:
    """Depthwise convolution (groups == C, multiplier 1) of NHWC ``x`` (fp16, bf16 or fp32)
    with packed [R, S, C] weights of its dtype."""
    _check(x, "x", 4, (*HALF, torch.float32))
    _check(w_packed, "w_packed", 3, (x.dtype,))
    x = nhwc_checked(x, "x")
    c = int(x.shape[1])
    return depthwise_conv(
        x,
        w_packed,
        _ones(c, x.device),
        _bias(bias, c),
        stride,
        padding,
        dilation,
        activation,
        float(act_alpha),
        float(act_beta),
        residual,
        None,
        None,
        x.dtype,
    )


def gemm(
    a: torch.Tensor,
    b: torch.Tensor,
    bias: torch.Tensor | None,
    activation: str = "none",
    act_alpha: float = 0.0,
    act_beta: float = 0.0,
    residual: torch.Tensor | None = None,
    config: Int8Config | None = None,
    out_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """a[M, K] x b[N, K]^T (+ bias, residual, activation); returns [M, N] in ``out_dtype``
    (default a's half dtype; float32 rounds the fp32 epilogue once, to fp32)."""
    _check(a, "a", 2, HALF)
    _check(b, "b", 2, (a.dtype,))
    n = int(b.shape[0])
    return implicit_gemm(
        a,
        b,
        _ones(n, a.device),
        _bias(bias, n),
        activation,
        float(act_alpha),
        float(act_beta),
        residual,
        None,
        None,
        out_dtype or a.dtype,
        config,
    )
