"""Per-tensor symmetric int8 quantize / dequantize as Triton kernels.

``quantize(x, scale) = clamp(rint(x / scale), -128, 127)`` as int8 (round half to even, the
division in fp32 as IEEE does it, so the result equals the same steps in torch), and
``dequantize(q, scale, dtype) = (float(q) * scale).to(dtype)``. Both keep the layout of their
input: a dense tensor (contiguous, channels_last or any other dense permutation) is processed as
its flat storage and the output gets the same strides; a non-dense input is made contiguous.

Launchers: ``quantize(x, scale) -> int8 tensor``, ``dequantize(q, scale, dtype) -> tensor``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from fluidrt.kernels.pdl import launch_options, wait_then_release

_BLOCK = 1024


@triton.jit
def _quantize_kernel(x, out, n, scale, BLOCK: tl.constexpr, PDL: tl.constexpr):
    wait_then_release(PDL)
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    v = tl.load(x + offs, mask=mask, other=0.0).to(tl.float32)
    v = tl.minimum(tl.maximum(tl.div_rn(v, scale), -128.0), 127.0)
    # |v| <= 128: adding 1.5 * 2**23 rounds to the nearest integer, ties to even
    v = (v + 12582912.0) - 12582912.0
    tl.store(out + offs, v.to(tl.int8), mask=mask)


@triton.jit
def _dequantize_kernel(q, out, n, scale, BLOCK: tl.constexpr, PDL: tl.constexpr):
    wait_then_release(PDL)
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    v = tl.load(q + offs, mask=mask, other=0).to(tl.float32) * scale
    tl.store(out + offs, v.to(out.dtype.element_ty), mask=mask)


def _dense_pair(x: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """x (made dense if needed) and an empty output of the same strides."""
    channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
    if not (x.is_contiguous() or channels_last):
        x = x.contiguous()
    return x, torch.empty_like(x, dtype=dtype)


def _check_scale(scale: float) -> float:
    scale = float(scale)
    if not scale > 0:
        raise ValueError(f"scale: expected a positive float, got {scale}")
    return scale


def quantize(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Float tensor -> int8 with one symmetric scale, same shape and layout."""
    if not x.dtype.is_floating_point:
        raise ValueError(f"x: expected a float tensor, got {x.dtype}")
    x, out = _dense_pair(x, torch.int8)
    n = x.numel()
    if n:
        _quantize_kernel[(triton.cdiv(n, _BLOCK),)](
            x,
            out,
            n,
            _check_scale(scale),
            BLOCK=_BLOCK,
            enable_fp_fusion=False,
            **launch_options(x.device),
        )
    return out


def dequantize(q: torch.Tensor, scale: float, dtype: torch.dtype = torch.float16) -> torch.Tensor:
    """Int8 tensor -> float ``dtype`` (q * scale), same shape and layout."""
    if q.dtype != torch.int8:
        raise ValueError(f"q: expected an int8 tensor, got {q.dtype}")
    if not dtype.is_floating_point:
        raise ValueError(f"dtype: expected a float dtype, got {dtype}")
    q, out = _dense_pair(q, dtype)
    n = q.numel()
    if n:
        _dequantize_kernel[(triton.cdiv(n, _BLOCK),)](
            q,
            out,
            n,
            _check_scale(scale),
            BLOCK=_BLOCK,
            enable_fp_fusion=False,
            **launch_options(q.device),
        )
    return out
