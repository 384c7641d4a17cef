"""2-D max/average pooling over channels-last (NHWC) tensors as one Triton kernel.

One program computes a tile of output pixels along a row for a block of channels: each window
tap is read as contiguous channel vectors (neighbouring windows overlap, so taps hit the cache),
accumulated in fp32 and written once. Windows are clipped to the
input (padding never read); average pooling divides by the window size (``count_include_pad``)
or by the number of input pixels the window covers.

Launchers: ``pool2d_nhwc(x, kernel, strides, pads, mode, count_include_pad) -> tensor`` and
``global_pool_nhwc(x, mode)`` (global pooling: one program reduces all pixels of an image for a
block of channels).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton
import triton.language as tl

from fluidrt.kernels.pdl import launch_options, wait_then_release


@triton.jit
def _pool2d_nhwc_kernel(
    x,
    out,
    H,
    W,
    C,
    OH,
    OW,
    sxn,
    sxh,
    sxw,
    sxc,
    son,
    soh,
    sow,
    soc,
    KH: tl.constexpr,
    KW: tl.constexpr,
    SH: tl.constexpr,
    SW: tl.constexpr,
    PH: tl.constexpr,
    PW: tl.constexpr,
    IS_MAX: tl.constexpr,
    COUNT_PAD: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr,
    PDL: tl.constexpr,
):
    wait_then_release(PDL)
    # a tile of BLOCK_P output pixels along a row x BLOCK_C channels per program
    pid = tl.program_id(0)
    n_wblocks = tl.cdiv(OW, BLOCK_P)
    wb = pid % n_wblocks
    rest = pid // n_wblocks
    oh = rest % OH
    n = rest // OH
    ow = wb * BLOCK_P + tl.arange(0, BLOCK_P)
    cs = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    pmask = ow < OW
    cmask = cs < C
    if IS_MAX:
        acc = tl.full([BLOCK_P, BLOCK_C], float("-inf"), tl.float32)
    else:
        acc = tl.zeros([BLOCK_P, BLOCK_C], tl.float32)
    count = tl.zeros([BLOCK_P], tl.int32)
    for kh in tl.static_range(KH):
        ih = oh * SH - PH + kh
        row_ok = (ih >= 0) & (ih < H)
        for kw in tl.static_range(KW):
            iw = ow * SW - PW + kw
            inside = row_ok & (iw >= 0) & (iw < W) & pmask
            ptr = x + n * sxn + ih * sxh + iw[:, None] * sxw + cs[None, :] * sxc
            mask = inside[:, None] & cmask[None, :]
            if IS_MAX:
                v = tl.load(ptr, mask=mask, other=float("-inf")).to(tl.float32)
                acc = tl.maximum(acc, v)
            else:
                v = tl.load(ptr, mask=mask, other=0.0).to(tl.float32)
                acc += v
            count += inside.to(tl.int32)
    if not IS_MAX:
        if COUNT_PAD:
            acc = acc / (KH * KW)
        else:
            acc = acc / tl.maximum(count, 1).to(tl.float32)[:, None]
    optr = out + n * son + oh * soh + ow[:, None] * sow + cs[None, :] * soc
    tl.store(optr, acc.to(out.dtype.element_ty), mask=pmask[:, None] & cmask[None, :])


def pool2d_nhwc(
    x: torch.Tensor,
    kernel: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[int],
    mode: str,
    count_include_pad: bool,
) -> torch.Tensor:
    """Pool a 4-D tensor (any strides; fastest channels-last) with symmetric padding."""
    n, c, h, w = x.shape
    kh, kw = (int(k) for k in kernel)
    sh, sw = (int(s) for s in strides)
    ph, pw = (int(p) for p in pads[:2])
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
    out = torch.empty(
        (n, c, oh, ow), device=x.device, dtype=x.dtype, memory_format=torch.channels_last
    )
    block_c = min(64, triton.next_power_of_2(c))
    block_p = min(16, triton.next_power_of_2(ow))
    grid = (n * oh * triton.cdiv(ow, block_p), triton.cdiv(c, block_c))
    _pool2d_nhwc_kernel[grid](
        x,
        out,
        h,
        w,
        c,
        oh,
        ow,
        x.stride(0),
        x.stride(2),
        x.stride(3),
        x.stride(1),
        out.stride(0),
        out.stride(2),
        out.stride(3),
        out.stride(1),
        KH=kh,
        KW=kw,
        SH=sh,
        SW=sw,
        PH=ph,
        PW=pw,
        IS_MAX=mode == "max",
        COUNT_PAD=bool(count_include_pad),
        BLOCK_P=block_p,
        BLOCK_C=block_c,
        num_warps=4,
        **launch_options(x.device),
    )
    return out


@triton.jit(do_not_specialize=["HW"])
def _global_pool_nhwc_kernel(
    x,
    out,
    HW,
    C,
    sxn,
    sxp,
    sxc,
    IS_MAX: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr,
    PDL: tl.constexpr,
):
    wait_then_release(PDL)
    # one image x BLOCK_C channels per program, the pixels in BLOCK_P rows at a time
    n = tl.program_id(0)
    cs = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = cs < C
    if IS_MAX:
        acc = tl.full([BLOCK_P, BLOCK_C], float("-inf"), tl.float32)
    else:
        acc = tl.zeros([BLOCK_P, BLOCK_C], tl.float32)
    for p0 in range(0, HW, BLOCK_P):
        ps = p0 + tl.arange(0, BLOCK_P)
        mask = (ps < HW)[:, None] & cmask[None, :]
        ptr = x + n * sxn + ps[:, None] * sxp + cs[None, :] * sxc
        if IS_MAX:
            acc = tl.maximum(acc, tl.load(ptr, mask=mask, other=float("-inf")).to(tl.float32))
        else:
            acc += tl.load(ptr, mask=mask, other=0.0).to(tl.float32)
    if IS_MAX:
        y = tl.max(acc, axis=0)
    else:
        y = tl.sum(acc, axis=0) / HW
    tl.store(out + n * C + cs, y.to(out.dtype.element_ty), mask=cmask)


def global_pool_nhwc(x: torch.Tensor, mode: str) -> torch.Tensor:
    """Max or average over all pixels of a 4-D tensor whose pixels share one stride (NHWC
    memory, or H or W of 1): [N, C, H, W] -> [N, C, 1, 1] (contiguous, so also channels-last);
    fp32 accumulation, one rounding to x's dtype."""
    if mode not in ("max", "avg"):
        raise ValueError(f"mode: expected 'max' or 'avg', got {mode!r}")
    n, c, h, w = x.shape
    if h > 1 and w > 1 and x.stride(2) != w * x.stride(3):
        x = x.contiguous(memory_format=torch.channels_last)
    if h * w == 0:
        raise ValueError(f"global pooling of an empty image {tuple(x.shape)}")
    out = torch.empty((n, c, 1, 1), device=x.device, dtype=x.dtype)
    block_c = min(128, triton.next_power_of_2(c))
    block_p = min(16, triton.next_power_of_2(h * w))
    _global_pool_nhwc_kernel[(n, triton.cdiv(c, block_c))](
        x,
        out,
        h * w,
        c,
        x.stride(0),
        x.stride(3) if w > 1 else x.stride(2),
        x.stride(1),
        IS_MAX=mode == "max",
        BLOCK_P=block_p,
        BLOCK_C=block_c,
        num_warps=4,
        **launch_options(x.device),
    )
    return out
