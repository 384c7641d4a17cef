"""Strided convolutions with few input channels as stride-1 convolutions (Triton transform).

An image stem (3 input channels, stride 2) wastes the tensor cores: the reduction R*S*C is not
a multiple of the MMA depth, and library kernels fall back to slow per-element paths (on an
H200, cuDNN's fp16 7x7/2 ResNet stem takes ~37 us at batch 5 for ~1 GFLOP). Folding the stride
into the channels turns it into an ordinary stride-1 convolution with a deep, aligned reduction:

    y[n, u, v, (bh * SW + bw) * C + c] = x[n, c, u * SH + bh - PH, v * SW + bw - PW]  (0 outside)
    w'[k, (bh * SW + bw) * C + c, a, b] = w[k, c, a * SH + bh, b * SW + bw]  (0 past R, S)
    conv(x, w, stride, pad)[n, k, p, q] = conv(y, w', stride 1, pad 0)[n, k, p, q]

with a in [0, ceil(R / SH)), b in [0, ceil(S / SW)), u in [0, P + ceil(R / SH) - 1) and
v in [0, Q + ceil(S / SW) - 1); the folded channels are zero-padded to a multiple of
``CHANNEL_ALIGN`` (a 16-byte fp16 vector). One kernel reads x in any dtype and strides (the fp32
NCHW network input directly, so the engine's input cast is absorbed) and writes y as fp16/bf16
channels-last.

API: ``folded_shape(c, h, w, kernel, stride, padding)``, ``fold_weight(w, stride)`` (host, once
at build) and ``space_to_depth(x, kernel, stride, padding, out_dtype, out=None)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import triton
import triton.language as tl

from fluidrt.kernels.int8_conv import as_pair
from fluidrt.kernels.pdl import launch_options, wait_then_release

CHANNEL_ALIGN = 8


class Folded(NamedTuple):
    """Sizes of the folded problem: channels (padded), rows, cols and the taps left."""

    channels: int
    height: int
    width: int
    taps_h: int
    taps_w: int


def folded_shape(
    c: int,
    h: int,
    w: int,
    kernel: int | Sequence[int],
    stride: int | Sequence[int],
    padding: int | Sequence[int],
) -> Folded:
    """The folded input's channels, height and width and the folded kernel's taps for a
    convolution of a [., c, h, w] input (symmetric ``padding``, dilation 1)."""
    r, s = as_pair(kernel, "kernel")
    (sh, sw), (ph, pw) = as_pair(stride, "stride"), as_pair(padding, "padding")
    p = (h + 2 * ph - r) // sh + 1
    q = (w + 2 * pw - s) // sw + 1
    if p < 1 or q < 1:
        raise ValueError(f"kernel {(r, s)} with padding {(ph, pw)} is larger than input {(h, w)}")
    ta, tb = -(-r // sh), -(-s // sw)
    ch = -(-(sh * sw * c) // CHANNEL_ALIGN) * CHANNEL_ALIGN
    return Folded(ch, p + ta - 1, q + tb - 1, ta, tb)


def fold_weight(w: torch.Tensor, stride: int | Sequence[int]) -> torch.Tensor:
    """``w`` [K, C, R, S] -> the stride-1 weight [K, C', ceil(R/SH), ceil(S/SW)] of the folded
    convolution (channels zero-padded to a multiple of CHANNEL_ALIGN), same dtype and device."""
    if w.dim() != 4:
        raise ValueError(f"weight: expected [K, C, R, S], got {tuple(w.shape)}")
    k, c, r, s = w.shape
    sh, sw = as_pair(stride, "stride")
    ta, tb = -(-r // sh), -(-s // sw)
    ch = -(-(sh * sw * c) // CHANNEL_ALIGN) * CHANNEL_ALIGN
    padded = w.new_zeros(k, c, ta * sh, tb * sw)
    padded[:, :, :r, :s] = w
    # [K, C, a, bh, b, bw] -> [K, bh, bw, C, a, b] -> [K, (bh, bw, C), a, b]
    folded = padded.reshape(k, c, ta, sh, tb, sw).permute(0, 3, 5, 1, 2, 4)
    out = w.new_zeros(k, ch, ta, tb)
    out[:, : sh * sw * c] = folded.reshape(k, sh * sw * c, ta, tb)
    return out


@triton.jit(do_not_specialize=["NPIX", "H", "W", "U", "V"])
def _space_to_depth_kernel(
    x,
    y,
    NPIX,
    C,
    H,
    W,
    U,
    V,
    sxn,
    sxc,
    sxh,
    sxw,
    CH: tl.constexpr,
    SH: tl.constexpr,
    SW: tl.constexpr,
    PH: tl.constexpr,
    PW: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr,
    PDL: tl.constexpr,
):
    wait_then_release(PDL)
    # a tile of BLOCK_P folded pixels (flattened n, u, v) x all folded channels
    pix = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    pmask = pix < NPIX
    v = pix % V
    t = pix // V
    u = t % U
    n = t // U
    ch = tl.arange(0, BLOCK_C)
    c = ch % C
    tap = ch // C
    bw = tap % SW
    bh = tap // SW
    ih = u[:, None] * SH + bh[None, :] - PH
    iw = v[:, None] * SW + bw[None, :] - PW
    live = (ch < SH * SW * C)[None, :] & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
    src = x + n[:, None].to(tl.int64) * sxn + c[None, :] * sxc + ih * sxh + iw * sxw
    val = tl.load(src, mask=live & pmask[:, None], other=0.0)
    dst = y + pix[:, None].to(tl.int64) * CH + ch[None, :]
    tl.store(dst, val.to(y.dtype.element_ty), mask=pmask[:, None] & (ch < CH)[None, :])


def space_to_depth(
    x: torch.Tensor,
    kernel: int | Sequence[int],
    stride: int | Sequence[int],
    padding: int | Sequence[int],
    out_dtype: torch.dtype = torch.float16,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """The folded input y of ``conv(x, w, stride, padding)`` (see the module docstring) as a
    channels-last ``out_dtype`` tensor [N, C', U, V]; ``x`` [N, C, H, W] in any float dtype and
    strides. ``out`` (that shape and dtype, channels-last) is written in place if given."""
    if x.dim() != 4 or not x.dtype.is_floating_point:
        raise ValueError(f"x: expected a 4-D float tensor, got {x.dim()}-D {x.dtype}")
    n, c, h, w = x.shape
    (sh, sw), (ph, pw) = as_pair(stride, "stride"), as_pair(padding, "padding")
    f = folded_shape(c, h, w, kernel, stride, padding)
    shape = (n, f.channels, f.height, f.width)
    if out is None:
        out = torch.empty(shape, dtype=out_dtype, device=x.device).contiguous(
            memory_format=torch.channels_last
        )
    elif tuple(out.shape) != shape or not out.is_contiguous(memory_format=torch.channels_last):
        raise ValueError(f"out: expected channels-last {shape}, got {tuple(out.shape)}")
    npix = n * f.height * f.width
    block_c = triton.next_power_of_2(f.channels)
    block_p = max(16, 2048 // block_c)
    _space_to_depth_kernel[(triton.cdiv(npix, block_p),)](
        x,
        out,
        npix,
        c,
        h,
        w,
        f.height,
        f.width,
        *x.stride(),
        CH=f.channels,
        SH=sh,
        SW=sw,
        PH=ph,
        PW=pw,
        BLOCK_P=block_p,
        BLOCK_C=block_c,
        **launch_options(x.device),
    )
    return out
