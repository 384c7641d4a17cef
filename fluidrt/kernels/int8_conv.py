"""INT8 implicit-GEMM convolution and GEMM with fused epilogues, NHWC int8 (Triton).

The kernels are dtype-generic: int8 operands accumulate in int32, fp16/bf16 operands in fp32
(``fluidrt.kernels.conv_half`` is the half-precision API over the same kernels, through
``implicit_gemm_conv``, ``implicit_gemm`` and ``depthwise_conv``).

Layout: activations are int8 tensors of NCHW shape with channels_last strides (NHWC memory,
``t.contiguous(memory_format=torch.channels_last)``); outputs come back the same way. Weights
are packed once with ``pack_conv_weight`` to ``[K, R, S, C]`` so that the reduction index
``(r * S + s) * C + c`` is contiguous per output channel and each (r, s) tap of the input is a
contiguous C slice.

The convolution is a GEMM with M = N*P*Q output pixels, N = K output channels and a reduction of
R*S*C, computed as int8 x int8 -> int32 ``tl.dot`` (tensor cores). When C is a multiple of the
reduction block every block lies inside one tap (one contiguous C chunk per output pixel); other
C (e.g. the 3-channel stem) decode the tap per element. A 1x1, stride-1, unpadded convolution
is a plain GEMM on the ``[N*H*W, C]`` view. Every layer is one kernel: the epilogue runs on the
int32 accumulator in registers. With ``split_k > 1`` (batch 1, where M is tiny) programs each
reduce a slice of R*S*C into an int32 workspace and a second small kernel sums the slices and
runs the same epilogue (two launches, no atomics).

Epilogue, per output pixel m and channel k, in fp32 in this order (no FMA contraction, so float
results are bit-identical to the same steps in torch)::

    y = float(acc) * scale[k] (+ bias[k])
    y = y + float(residual) * residual_scale   # int8 residual
    y = y + float(residual)                    # float residual (residual_scale None)
    y = act(y)
    out = clamp(rint(y * rcp), -128, 127) as int8  (round half to even)        if out_scale
    out = y.to(out_dtype)                                                      otherwise

where ``rcp = fluidrt.ops.quantized.reciprocal(out_scale)``, 1 / out_scale rounded to fp32 on the
host: a multiply per element instead of an IEEE division, whose instruction sequence made the
epilogue, not the tensor cores, the bottleneck of large layers (4-5x slower kernels at batch 256
on an H200).

Activations (``act_alpha``/``act_beta`` where used): "none", "relu", "relu6", "clip"
(min(max(y, alpha), beta)), "leaky_relu" (y if y >= 0 else alpha * y), "hard_swish"
(y * min(max(y + 3, 0), 6) / 6), "sigmoid", "silu". sigmoid/silu use the GPU's fast exp and
match torch to a few ulp; the others are exact.

API (the int8 engine layers code against this):

- ``pack_conv_weight(w[int8, K, C, R, S]) -> [int8, K, R, S, C]`` contiguous.
- ``conv2d_int8(x, w_packed, scale, bias, stride, padding, dilation, activation="none",
  act_alpha=0.0, act_beta=0.0, residual=None, residual_scale=None, out_scale=None,
  out_dtype=torch.float16, config=None) -> tensor``; groups == 1, symmetric padding
  (int or (pad_h, pad_w)); scale fp32 [K] (input scale * per-channel weight scale); bias fp32 [K]
  or None; residual of the output's shape, int8 (with residual_scale) or float.
- ``gemm_int8(a[int8, M, K], b[int8, N, K], scale[N], bias, ..., config=None) -> [M, N]``
  (same epilogue; residual [M, N]).
- ``pack_depthwise_weight(w[int8, C, 1, R, S]) -> [int8, R, S, C]`` and
  ``depthwise_conv2d_int8(x, w_packed, scale, bias, stride, padding, dilation, ...)`` for
  groups == C (channel multiplier 1), same epilogue, no tensor cores (a per-channel stencil).

Tactics: the builder times named configs itself. ``conv_configs(shape)`` (shape from
``conv_shape(...)``) and ``gemm_configs(m, n, k)`` return a short list of ``Int8Config`` for that
shape, heuristic best first; pass one as ``config=`` (``None`` takes the first). A config's
``name`` is stable and can be cached with the timing; ``Int8Config.from_name`` rebuilds it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import triton
import triton.language as tl

from fluidrt.kernels.pdl import launch_options, wait_then_release
from fluidrt.ops.quantized import reciprocal

ACTIVATIONS: dict[str, int] = {
    "none": 0,
    "relu": 1,
    "relu6": 2,
    "clip": 3,
    "leaky_relu": 4,
    "hard_swish": 5,
    "sigmoid": 6,
    "silu": 7,
}
_OUT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
_NUM_SMS_GUESS = 132  # H100/H200 SXM; only steers which split-K candidates are listed
_INT32_LIMIT = 2**31 - 1


@dataclass(frozen=True)
class Int8Config:
    """One tactic: tile sizes, split of the reduction, warps and pipeline stages."""

    block_m: int
    block_n: int
    block_k: int
    split_k: int = 1
    group_m: int = 8
    num_warps: int = 4
    num_stages: int = 3

    @property
    def name(self) -> str:
        return (
            f"m{self.block_m}n{self.block_n}k{self.block_k}s{self.split_k}"
            f"w{self.num_warps}p{self.num_stages}"
        )

    @classmethod
    def from_name(cls, name: str) -> Int8Config:
        """The config a ``name`` was made from (for tactics cached by name in plan files)."""
        match = re.fullmatch(r"m(\d+)n(\d+)k(\d+)s(\d+)w(\d+)p(\d+)", name)
        if match is None:
            raise ValueError(f"not an Int8Config name (like 'm64n64k128s1w4p4'): {name!r}")
        bm, bn, bk, sk, warps, stages = (int(g) for g in match.groups())
        return cls(bm, bn, bk, sk, num_warps=warps, num_stages=stages)


class ConvShape(NamedTuple):
    """Problem size of one convolution (NCHW names, NHWC memory)."""

    n: int
    c: int
    h: int
    w: int
    k: int
    r: int
    s: int
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]

    @property
    def p(self) -> int:
        return (self.h + 2 * self.padding[0] - self.dilation[0] * (self.r - 1) - 1) // self.stride[
            0
        ] + 1

    @property
    def q(self) -> int:
        return (self.w + 2 * self.padding[1] - self.dilation[1] * (self.s - 1) - 1) // self.stride[
            1
        ] + 1

    @property
    def is_gemm(self) -> bool:
        """1x1, stride 1, no padding: the convolution is a GEMM on the [N*H*W, C] view."""
        return self.r == 1 and self.s == 1 and self.stride == (1, 1) and self.padding == (0, 0)


# ---------------------------------------------------------------------------------------------
# kernels


@triton.jit
def _rint_int8(y):
    # y in [-128, 127] after clamping: adding 1.5 * 2**23 leaves an ulp of 1, so the fp32 add
    # rounds to the nearest integer, ties to even, and the sum's low byte is that integer in
    # two's complement: a bit cast and a truncation instead of a float->int conversion
    return (y + 12582912.0).to(tl.int32, bitcast=True).to(tl.int8)


@triton.jit
def _epilogue(
    acc,
    rows,
    cols,
    M,
    N,
    out,
    stride_om,
    scale,
    bias,
    res,
    stride_rm,
    res_scale,
    alpha,
    beta,
    out_rcp,
    HAS_BIAS: tl.constexpr,
    RES_MODE: tl.constexpr,
    ACT: tl.constexpr,
    QUANT: tl.constexpr,
):
    mask_m = rows < M
    mask_n = cols < N
    mask = mask_m[:, None] & mask_n[None, :]
    y = acc.to(tl.float32) * tl.load(scale + cols, mask=mask_n, other=0.0)[None, :]
    if HAS_BIAS:
        y = y + tl.load(bias + cols, mask=mask_n, other=0.0)[None, :]
    if RES_MODE != 0:
        r = tl.load(res + rows[:, None] * stride_rm + cols[None, :], mask=mask, other=0)
        r = r.to(tl.float32)
        if RES_MODE == 1:
            r = r * res_scale
        y = y + r
    if ACT == 1:
        y = tl.maximum(y, 0.0)
    elif ACT == 2:
        y = tl.minimum(tl.maximum(y, 0.0), 6.0)
    elif ACT == 3:
        y = tl.minimum(tl.maximum(y, alpha), beta)
    elif ACT == 4:
        y = tl.where(y >= 0.0, y, y * alpha)
    elif ACT == 5:
        y = tl.div_rn(y * tl.minimum(tl.maximum(y + 3.0, 0.0), 6.0), 6.0)
    elif ACT == 6:
        y = tl.div_rn(1.0, 1.0 + tl.exp(-y))
    elif ACT == 7:
        y = y * tl.div_rn(1.0, 1.0 + tl.exp(-y))
    optr = out + rows[:, None] * stride_om + cols[None, :]
    if QUANT:
        y = tl.minimum(tl.maximum(y * out_rcp, -128.0), 127.0)
        tl.store(optr, _rint_int8(y), mask=mask)
    else:
        tl.store(optr, y.to(out.dtype.element_ty), mask=mask)


# sizes that vary per layer are not specialized on divisibility by 16 (that would compile a
# variant per spatial size); C and the row strides stay specialized (16-byte vector loads)
@triton.jit(do_not_specialize=["M", "H", "W", "P", "Q"])
def _conv_int8_kernel(
    x,
    w,
    out,
    scale,
    bias,
    res,
    res_scale,
    alpha,
    beta,
    out_rcp,
    M,
    N,
    C,
    H,
    W,
    P,
    Q,
    stride_xm,
    stride_xh,
    stride_xw,
    stride_wn,
    stride_om,
    stride_rm,
    stride_ws,
    R: tl.constexpr,
    S: tl.constexpr,
    SH: tl.constexpr,
    SW: tl.constexpr,
    PH: tl.constexpr,
    PW: tl.constexpr,
    DH: tl.constexpr,
    DW: tl.constexpr,
    IS_GEMM: tl.constexpr,
    TAP_ALIGNED: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    RES_MODE: tl.constexpr,
    ACT: tl.constexpr,
    QUANT: tl.constexpr,
    SPLIT_K: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
    ACC: tl.constexpr,
    PDL: tl.constexpr,
):
    wait_then_release(PDL)
    # grouped tile order: GROUP_M row blocks share the weight columns they read (L2 reuse)
    pid = tl.program_id(0)
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    group = GROUP_M * num_pid_n
    first_m = (pid // group) * GROUP_M
    group_size = min(num_pid_m - first_m, GROUP_M)
    pid_m = first_m + (pid % group) % group_size
    pid_n = (pid % group) // group_size
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    # rows/cols past the end wrap onto valid ones (loads need no mask); stores are masked
    rows_ld = rows % M
    cols_ld = cols % N
    w_cols = w + cols_ld[None, :] * stride_wn

    # the reduction, in BLOCK_K blocks, split evenly over SPLIT_K programs along axis 1
    if IS_GEMM:
        num_k = tl.cdiv(C, BLOCK_K)
    elif TAP_ALIGNED:
        num_k = R * S * (C // BLOCK_K)
    else:
        num_k = tl.cdiv(R * S * C, BLOCK_K)
    pid_k = tl.program_id(1)
    k_per = tl.cdiv(num_k, SPLIT_K)
    k_start = pid_k * k_per
    k_end = min(k_start + k_per, num_k)

    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=ACC)
    if IS_GEMM:
        x_rows = x + rows_ld[:, None] * stride_xm
        for kb in range(k_start, k_end):
            kk = kb * BLOCK_K + rk
            kmask = kk < C
            a = tl.load(x_rows + kk[None, :], mask=kmask[None, :], other=0)
            b = tl.load(w_cols + kk[:, None], mask=kmask[:, None], other=0)
            acc = tl.dot(a, b, acc, out_dtype=ACC)
    else:
        # output pixel -> (image, top-left input row/col of its window)
        q = rows_ld % Q
        t = rows_ld // Q
        p = t % P
        img = t // P
        ih0 = p * SH - PH
        iw0 = q * SW - PW
        x_img = x + img * stride_xm
        if TAP_ALIGNED:
            cb_count = C // BLOCK_K
            for kb in range(k_start, k_end):
                tap = kb // cb_count
                c0 = (kb - tap * cb_count) * BLOCK_K
                r = tap // S
                s = tap - r * S
                ih = ih0 + r * DH
                iw = iw0 + s * DW
                inside = (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
                a_ptr = (x_img + ih * stride_xh + iw * stride_xw + c0)[:, None] + rk[None, :]
                a = tl.load(a_ptr, mask=inside[:, None], other=0)
                b = tl.load(w_cols + (kb * BLOCK_K + rk)[:, None])
                acc = tl.dot(a, b, acc, out_dtype=ACC)
        else:
            rsc = R * S * C
            for kb in range(k_start, k_end):
                kk = kb * BLOCK_K + rk
                kmask = kk < rsc
                tap = kk // C
                c = kk - tap * C
                r = tap // S
                s = tap - r * S
                ih = ih0[:, None] + (r * DH)[None, :]
                iw = iw0[:, None] + (s * DW)[None, :]
                inside = (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W) & kmask[None, :]
                a_off = ih * stride_xh + iw * stride_xw + c[None, :]
                a = tl.load(x_img[:, None] + a_off, mask=inside, other=0)
                b = tl.load(w_cols + kk[:, None], mask=kmask[:, None], other=0)
                acc = tl.dot(a, b, acc, out_dtype=ACC)

    if SPLIT_K == 1:
        _epilogue(
            acc,
            rows,
            cols,
            M,
            N,
            out,
            stride_om,
            scale,
            bias,
            res,
            stride_rm,
            res_scale,
            alpha,
            beta,
            out_rcp,
            HAS_BIAS,
            RES_MODE,
            ACT,
            QUANT,
        )
    else:
        # partial sums to the workspace slice of this split; _splitk_epilogue_kernel ends it
        mask = (rows < M)[:, None] & (cols < N)[None, :]
        wptr = out + pid_k * stride_ws + rows[:, None] * N + cols[None, :]
        tl.store(wptr, acc, mask=mask)


@triton.jit
def _splitk_epilogue_kernel(
    ws,
    out,
    scale,
    bias,
    res,
    res_scale,
    alpha,
    beta,
    out_rcp,
    M,
    N,
    stride_ws,
    stride_om,
    stride_rm,
    HAS_BIAS: tl.constexpr,
    RES_MODE: tl.constexpr,
    ACT: tl.constexpr,
    QUANT: tl.constexpr,
    SPLIT_K: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    ACC: tl.constexpr,
    PDL: tl.constexpr,
):
    wait_then_release(PDL)
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask = (rows < M)[:, None] & (cols < N)[None, :]
    ptr = ws + rows[:, None] * N + cols[None, :]
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=ACC)
    for z in tl.static_range(SPLIT_K):
        acc += tl.load(ptr + z * stride_ws, mask=mask, other=0)
    _epilogue(
        acc,
        rows,
        cols,
        M,
        N,
        out,
        stride_om,
        scale,
        bias,
        res,
        stride_rm,
        res_scale,
        alpha,
        beta,
        out_rcp,
        HAS_BIAS,
        RES_MODE,
        ACT,
        QUANT,
    )


@triton.jit
def _depthwise_int8_kernel(
    x,
    w,
    out,
    scale,
    bias,
    res,
    res_scale,
    alpha,
    beta,
    out_rcp,
    C,
    H,
    W,
    P,
    Q,
    M,
    R: tl.constexpr,
    S: tl.constexpr,
    SH: tl.constexpr,
    SW: tl.constexpr,
    PH: tl.constexpr,
    PW: tl.constexpr,
    DH: tl.constexpr,
    DW: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    RES_MODE: tl.constexpr,
    ACT: tl.constexpr,
    QUANT: tl.constexpr,
    BLOCK_Q: tl.constexpr,
    BLOCK_C: tl.constexpr,
    ACC: tl.constexpr,
    PDL: tl.constexpr,
):
    wait_then_release(PDL)
    # BLOCK_Q output pixels along one output row x BLOCK_C channels per program
    pid = tl.program_id(0)
    n_qblocks = tl.cdiv(Q, BLOCK_Q)
    qb = pid % n_qblocks
    t = pid // n_qblocks
    p = t % P
    img = t // P
    q = qb * BLOCK_Q + tl.arange(0, BLOCK_Q)
    cs = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    qmask = q < Q
    cmask = cs < C
    acc = tl.zeros([BLOCK_Q, BLOCK_C], dtype=ACC)
    x_img = x + img * (H * W * C)
    for r in tl.static_range(R):
        ih = p * SH - PH + r * DH
        row_ok = (ih >= 0) & (ih < H)
        for s in tl.static_range(S):
            iw = q * SW - PW + s * DW
            inside = row_ok & (iw >= 0) & (iw < W) & qmask
            xv = tl.load(
                x_img + (ih * W + iw)[:, None] * C + cs[None, :],
                mask=inside[:, None] & cmask[None, :],
                other=0,
            )
            wv = tl.load(w + (r * S + s) * C + cs, mask=cmask, other=0)
            acc += xv.to(ACC) * wv.to(ACC)[None, :]
    rows = (img * P + p) * Q + q
    rows = tl.where(qmask, rows, M)  # pixels past the row end are masked out by rows < M
    _epilogue(
        acc,
        rows,
        cs,
        M,
        C,
        out,
        C,
        scale,
        bias,
        res,
        C,
        res_scale,
        alpha,
        beta,
        out_rcp,
        HAS_BIAS,
        RES_MODE,
        ACT,
        QUANT,
    )


# ---------------------------------------------------------------------------------------------
# configs


def _pow2_at_most(limit: int, cap: int) -> int:
    return max(16, min(cap, triton.next_power_of_2(limit)))


def _block_k_for(c: int, is_gemm: bool, half: bool = False) -> int:
    # 128 int8 or 64 half values: 128-byte rows (fp16 tiles of 128 would not fit 4 stages)
    for bk in (64, 32) if half else (128, 64, 32):
        if c % bk == 0:
            return bk
    return 64 if is_gemm and c >= 64 else 32


@functools.lru_cache(maxsize=1024)
def _candidates(m: int, n: int, k_total: int, block_k: int) -> tuple[Int8Config, ...]:
    """Tile configs for an M x N output with a reduction of k_total, best guess first (cached:
    the launchers ask for the default on every call)."""
    k_iters = triton.cdiv(k_total, block_k)
    configs: list[Int8Config] = []

    def add(bm: int, bn: int, warps: int, stages: int) -> None:
        bm = _pow2_at_most(m, bm)
        bn = _pow2_at_most(n, bn)
        tiles = triton.cdiv(m, bm) * triton.cdiv(n, bn)
        split = 1
        while tiles * split * 2 <= _NUM_SMS_GUESS and k_iters // (split * 2) >= 4:
            split *= 2
        stages = min(stages, max(2, k_iters))
        for sk in sorted({split, 1}, reverse=True):
            cfg = Int8Config(bm, bn, block_k, sk, 8, warps, stages)
            if cfg not in configs:
                configs.append(cfg)

    if m >= 8192:
        add(128, 128, 8, 4)
        add(128, 256, 8, 3)
        add(256, 128, 8, 3)
        add(64, 128, 4, 4)
        add(128, 64, 4, 4)
    elif m >= 1024:
        add(64, 128, 4, 4)
        add(128, 64, 4, 4)
        add(64, 64, 4, 4)
        add(128, 128, 8, 4)
    else:
        add(64, 64, 4, 4)
        add(32, 64, 4, 4)
        add(16, 64, 4, 5)
        add(64, 32, 4, 4)
    return tuple(configs)


def conv_shape(
    x: torch.Tensor,
    w_packed: torch.Tensor,
    stride: int | Sequence[int],
    padding: int | Sequence[int],
    dilation: int | Sequence[int],
) -> ConvShape:
    """The ConvShape of ``conv2d_int8(x, w_packed, ...)`` (for ``conv_configs``)."""
    n, c, h, w = x.shape
    k, r, s, _ = w_packed.shape
    return ConvShape(
        int(n),
        int(c),
        int(h),
        int(w),
        int(k),
        int(r),
        int(s),
        as_pair(stride, "stride"),
        as_pair(padding, "padding"),
        as_pair(dilation, "dilation"),
    )


def conv_configs(shape: ConvShape, half: bool = False) -> list[Int8Config]:
    """Configs worth timing for this convolution (int8, or fp16/bf16 with ``half``), heuristic
    best first."""
    m = shape.n * shape.p * shape.q
    bk = _block_k_for(shape.c, shape.is_gemm, half)
    return list(_candidates(m, shape.k, shape.r * shape.s * shape.c, bk))


def gemm_configs(m: int, n: int, k: int, half: bool = False) -> list[Int8Config]:
    """Configs worth timing for an [M, K] x [N, K]^T GEMM, heuristic best first."""
    return list(_candidates(m, n, k, _block_k_for(k, True, half)))


# ---------------------------------------------------------------------------------------------
# launchers


def as_pair(v: int | Sequence[int], what: str) -> tuple[int, int]:
    """An int or a 1- or 2-sequence as an (h, w) pair; else a ValueError naming ``what``."""
    if isinstance(v, int):
        return (v, v)
    vals = tuple(int(e) for e in v)
    if len(vals) == 1:
        return (vals[0], vals[0])
    if len(vals) != 2:
        raise ValueError(f"{what}: expected an int or (h, w) pair, got {v!r}")
    return vals  # type: ignore[return-value]


def _check_int8(t: torch.Tensor, name: str, ndim: int) -> None:
    if t.dtype != torch.int8 or t.dim() != ndim:
        raise ValueError(
            f"{name}: expected a {ndim}-D int8 tensor, got {t.dim()}-D {t.dtype} {tuple(t.shape)}"
        )


def _check_vector(t: torch.Tensor | None, name: str, n: int, device: torch.device) -> None:
    if t is None:
        return
    if t.dtype != torch.float32 or t.shape != (n,) or t.device != device:
        raise ValueError(
            f"{name}: expected float32 [{n}] on {device}, got {t.dtype} {tuple(t.shape)} "
            f"on {t.device}"
        )


def _epilogue_args(
    activation: str,
    residual: torch.Tensor | None,
    residual_scale: float | None,
    out_scale: float | None,
    out_dtype: torch.dtype,
    out_shape: tuple[int, ...],
) -> tuple[int, int, float]:
    """Validated (ACT, RES_MODE, residual scale) for the epilogue."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if out_scale is None and out_dtype not in _OUT_DTYPES:
        raise ValueError(f"out_dtype: expected one of {_OUT_DTYPES}, got {out_dtype}")
    if out_scale is not None and not out_scale > 0:
        raise ValueError(f"out_scale: expected a positive float, got {out_scale}")
    if residual is None:
        return ACTIVATIONS[activation], 0, 1.0
    if tuple(residual.shape) != out_shape:
        raise ValueError(f"residual: expected shape {out_shape}, got {tuple(residual.shape)}")
    if residual.dtype == torch.int8:
        if residual_scale is None:
            raise ValueError("residual_scale: required with an int8 residual")
        return ACTIVATIONS[activation], 1, float(residual_scale)
    if not residual.dtype.is_floating_point:
        raise ValueError(f"residual: expected int8 or a float dtype, got {residual.dtype}")
    if residual_scale is not None:
        raise ValueError("residual_scale: only for an int8 residual (a float one is added as is)")
    return ACTIVATIONS[activation], 2, 1.0


def _launch_gemm_like(
    x2d: torch.Tensor,
    w2d: torch.Tensor,
    out2d: torch.Tensor,
    res2d: torch.Tensor | None,
    scale: torch.Tensor,
    bias: torch.Tensor | None,
    act: int,
    res_mode: int,
    res_scale: float,
    alpha: float,
    beta: float,
    out_scale: float | None,
    config: Int8Config,
    m: int,
    geometry: ConvShape | None,
) -> None:
    """Launch the implicit-GEMM kernel (plus the split-K epilogue) into out2d [M, N]."""
    n = w2d.shape[0]
    bm, bn, bk = config.block_m, config.block_n, config.block_k
    if min(bm, bn) < 16 or bk < 32:
        raise ValueError(f"config {config.name}: blocks must be >= 16 (M, N) and >= 32 (K)")
    if geometry is None or geometry.is_gemm:
        c = x2d.shape[1] if geometry is None else geometry.c
        conv = dict(R=1, S=1, SH=1, SW=1, PH=0, PW=0, DH=1, DW=1, IS_GEMM=True)
        h = w = p = q = 1
        tap_aligned = True
        x_strides = (x2d.stride(0), 0, 0)
    else:
        g = geometry
        c, h, w, p, q = g.c, g.h, g.w, g.p, g.q
        conv = dict(
            R=g.r,
            S=g.s,
            SH=g.stride[0],
            SW=g.stride[1],
            PH=g.padding[0],
            PW=g.padding[1],
            DH=g.dilation[0],
            DW=g.dilation[1],
            IS_GEMM=False,
        )
        tap_aligned = c % bk == 0
        # x2d is the 4-D NCHW-shaped input with unit channel stride (NHWC memory, or a view
        # whose pixels overlap: see conv_half.conv2d_folded)
        x_strides = (x2d.stride(0), x2d.stride(2), x2d.stride(3))
    split = config.split_k
    epi = dict(HAS_BIAS=bias is not None, RES_MODE=res_mode, ACT=act, QUANT=out_scale is not None)
    res_arg = res2d if res2d is not None else scale
    stride_rm = res2d.stride(0) if res2d is not None else 0
    bias_arg = bias if bias is not None else scale
    qrcp = reciprocal(out_scale) if out_scale is not None else 1.0
    is_int8 = x2d.dtype == torch.int8
    acc, ws_dtype = (tl.int32, torch.int32) if is_int8 else (tl.float32, torch.float32)
    if split > 1:
        ws = torch.empty((split, m, n), device=x2d.device, dtype=ws_dtype)
        target, stride_ws = ws, m * n
    else:
        target, stride_ws = out2d, 0
    grid = (triton.cdiv(m, bm) * triton.cdiv(n, bn), split)
    _conv_int8_kernel[grid](
        x2d,
        w2d,
        target,
        scale,
        bias_arg,
        res_arg,
        res_scale,
        alpha,
        beta,
        qrcp,
        m,
        n,
        c,
        h,
        w,
        p,
        q,
        *x_strides,
        w2d.stride(0),
        out2d.stride(0),
        stride_rm,
        stride_ws,
        **conv,
        TAP_ALIGNED=tap_aligned,
        **epi,
        SPLIT_K=split,
        BLOCK_M=bm,
        BLOCK_N=bn,
        BLOCK_K=bk,
        GROUP_M=config.group_m,
        ACC=acc,
        num_warps=config.num_warps,
        num_stages=config.num_stages,
        enable_fp_fusion=False,
        **launch_options(x2d.device),
    )
    if split > 1:
        ebm, ebn = 32, min(128, triton.next_power_of_2(n))
        _splitk_epilogue_kernel[(triton.cdiv(m, ebm), triton.cdiv(n, ebn))](
            ws,
            out2d,
            scale,
            bias_arg,
            res_arg,
            res_scale,
            alpha,
            beta,
            qrcp,
            m,
            n,
            stride_ws,
            out2d.stride(0),
            stride_rm,
            **epi,
            SPLIT_K=split,
            BLOCK_M=ebm,
            BLOCK_N=ebn,
            ACC=acc,
            num_warps=4,
            enable_fp_fusion=False,
            **launch_options(x2d.device),
        )


def pack_conv_weight(w: torch.Tensor) -> torch.Tensor:
    """[K, C, R, S] int8 weights -> contiguous [K, R, S, C] (the layout conv2d_int8 reads)."""
    _check_int8(w, "w", 4)
    return w.permute(0, 2, 3, 1).contiguous()


def pack_depthwise_weight(w: torch.Tensor) -> torch.Tensor:
    """[C, 1, R, S] int8 depthwise weights -> contiguous [R, S, C]."""
    _check_int8(w, "w", 4)
    if w.shape[1] != 1:
        raise ValueError(f"w: expected depthwise weights [C, 1, R, S], got {tuple(w.shape)}")
    return w[:, 0].permute(1, 2, 0).contiguous()


def _nhwc(x: torch.Tensor, name: str) -> torch.Tensor:
    _check_int8(x, name, 4)
    return nhwc_checked(x, name)


def nhwc_checked(x: torch.Tensor, name: str) -> torch.Tensor:
    """x as channels-last memory, within the kernels' int32 offsets (any dtype)."""
    x = x.contiguous(memory_format=torch.channels_last)
    if x.numel() > _INT32_LIMIT:
        raise ValueError(f"{name}: {x.numel()} elements exceed int32 offsets; split the batch")
    return x


def _out_nhwc(
    x: torch.Tensor, n: int, k: int, p: int, q: int, out_scale: float | None, dtype: torch.dtype
) -> torch.Tensor:
    if n * k * p * q > _INT32_LIMIT:
        raise ValueError(f"output of {n * k * p * q} elements exceeds int32 offsets; split it")
    return torch.empty(
        (n, k, p, q),
        device=x.device,
        dtype=torch.int8 if out_scale is not None else dtype,
        memory_format=torch.channels_last,
    )


def conv2d_int8(
    x: torch.Tensor,
    w_packed: torch.Tensor,
    scale: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int | Sequence[int],
    padding: int | Sequence[int],
    dilation: int | Sequence[int],
    activation: str = "none",
    act_alpha: float = 0.0,
    act_beta: float = 0.0,
    residual: torch.Tensor | None = None,
    residual_scale: float | None = None,
    out_scale: float | None = None,
    out_dtype: torch.dtype = torch.float16,
    config: Int8Config | None = None,
) -> torch.Tensor:
    """Int8 convolution (groups 1) of NHWC x with packed [K, R, S, C] weights, fused epilogue."""
    x = _nhwc(x, "x")
    _check_int8(w_packed, "w_packed", 4)
    return implicit_gemm_conv(
        x,
        w_packed,
        scale,
        bias,
        stride,
        padding,
        dilation,
        activation,
        act_alpha,
        act_beta,
        residual,
        residual_scale,
        out_scale,
        out_dtype,
        config,
    )


def implicit_gemm_conv(
    x: torch.Tensor,
    w_packed: torch.Tensor,
    scale: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int | Sequence[int],
    padding: int | Sequence[int],
    dilation: int | Sequence[int],
    activation: str,
    act_alpha: float,
    act_beta: float,
    residual: torch.Tensor | None,
    residual_scale: float | None,
    out_scale: float | None,
    out_dtype: torch.dtype,
    config: Int8Config | None,
) -> torch.Tensor:
    """The convolution kernel for checked NHWC ``x`` and packed weights of its dtype (int8 ->
    int32 accumulation, fp16/bf16 -> fp32)."""
    shape = conv_shape(x, w_packed, stride, padding, dilation)
    if w_packed.shape[3] != shape.c:
        raise ValueError(
            f"w_packed: expected [K, R, S, {shape.c}] (pack_conv_weight of [K, C, R, S]), "
            f"got {tuple(w_packed.shape)}"
        )
    if shape.p <= 0 or shape.q <= 0:
        raise ValueError(f"convolution: empty output for {shape}")
    _check_vector(scale, "scale", shape.k, x.device)
    _check_vector(bias, "bias", shape.k, x.device)
    out_shape = (shape.n, shape.k, shape.p, shape.q)
    act, res_mode, res_scale = _epilogue_args(
        activation, residual, residual_scale, out_scale, out_dtype, out_shape
    )
    out = _out_nhwc(x, *out_shape, out_scale, out_dtype)
    m = shape.n * shape.p * shape.q
    out2d = out.permute(0, 2, 3, 1).view(m, shape.k)
    res2d = None
    if residual is not None:
        res2d = residual.contiguous(memory_format=torch.channels_last)
        res2d = res2d.permute(0, 2, 3, 1).view(m, shape.k)
    if x.stride(1) != 1:
        raise ValueError(f"x: expected unit channel stride (NHWC memory), got {x.stride()}")
    x2d = x.permute(0, 2, 3, 1).view(m, shape.c) if shape.is_gemm else x
    w2d = w_packed.contiguous().view(shape.k, -1)
    _launch_gemm_like(
        x2d,
        w2d,
        out2d,
        res2d,
        scale,
        bias,
        act,
        res_mode,
        res_scale,
        float(act_alpha),
        float(act_beta),
        out_scale,
        config or conv_configs(shape, x.dtype != torch.int8)[0],
        m,
        shape,
    )
    return out


def gemm_int8(
    a: torch.Tensor,
    b: torch.Tensor,
    scale: torch.Tensor,
    bias: torch.Tensor | None,
    activation: str = "none",
    act_alpha: float = 0.0,
    act_beta: float = 0.0,
    residual: torch.Tensor | None = None,
    residual_scale: float | None = None,
    out_scale: float | None = None,
    out_dtype: torch.dtype = torch.float16,
    config: Int8Config | None = None,
) -> torch.Tensor:
    """Int8 GEMM a[M, K] x b[N, K]^T with the conv epilogue; returns [M, N]."""
    _check_int8(a, "a", 2)
    _check_int8(b, "b", 2)
    return implicit_gemm(
        a,
        b,
        scale,
        bias,
        activation,
        act_alpha,
        act_beta,
        residual,
        residual_scale,
        out_scale,
        out_dtype,
        config,
    )


def implicit_gemm(
    a: torch.Tensor,
    b: torch.Tensor,
    scale: torch.Tensor,
    bias: torch.Tensor | None,
    activation: str,
    act_alpha: float,
    act_beta: float,
    residual: torch.Tensor | None,
    residual_scale: float | None,
    out_scale: float | None,
    out_dtype: torch.dtype,
    config: Int8Config | None,
) -> torch.Tensor:
    """The GEMM kernel for checked 2-D ``a`` and ``b`` of one dtype."""
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"b: expected [N, {a.shape[1]}], got {tuple(b.shape)}")
    m, k = (int(d) for d in a.shape)
    n = int(b.shape[0])
    if a.stride(1) != 1:
        a = a.contiguous()
    if b.stride(1) != 1:
        b = b.contiguous()
    _check_vector(scale, "scale", n, a.device)
    _check_vector(bias, "bias", n, a.device)
    act, res_mode, res_scale = _epilogue_args(
        activation, residual, residual_scale, out_scale, out_dtype, (m, n)
    )
    out = torch.empty(
        (m, n), device=a.device, dtype=torch.int8 if out_scale is not None else out_dtype
    )
    res2d = residual.contiguous() if residual is not None else None
    _launch_gemm_like(
        a,
        b,
        out,
        res2d,
        scale,
        bias,
        act,
        res_mode,
        res_scale,
        float(act_alpha),
        float(act_beta),
        out_scale,
        config or gemm_configs(m, n, k, a.dtype != torch.int8)[0],
        m,
        None,
    )
    return out


def depthwise_conv2d_int8(
    x: torch.Tensor,
    w_packed: torch.Tensor,
    scale: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int | Sequence[int],
    padding: int | Sequence[int],
    dilation: int | Sequence[int],
    activation: str = "none",
    act_alpha: float = 0.0,
    act_beta: float = 0.0,
    residual: torch.Tensor | None = None,
    residual_scale: float | None = None,
    out_scale: float | None = None,
    out_dtype: torch.dtype = torch.float16,
) -> torch.Tensor:
    """Int8 depthwise convolution (groups == C) with packed [R, S, C] weights, fused epilogue."""
    x = _nhwc(x, "x")
    _check_int8(w_packed, "w_packed", 3)
    return depthwise_conv(
        x,
        w_packed,
        scale,
        bias,
        stride,
        padding,
        dilation,
        activation,
        act_alpha,
        act_beta,
        residual,
        residual_scale,
        out_scale,
        out_dtype,
    )


def depthwise_conv(
    x: torch.Tensor,
    w_packed: torch.Tensor,
    scale: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int | Sequence[int],
    padding: int | Sequence[int],
    dilation: int | Sequence[int],
    activation: str,
    act_alpha: float,
    act_beta: float,
    residual: torch.Tensor | None,
    residual_scale: float | None,
    out_scale: float | None,
    out_dtype: torch.dtype,
) -> torch.Tensor:
    """The depthwise kernel for checked NHWC ``x`` and packed [R, S, C] weights of its dtype."""
    n, c, h, w = (int(d) for d in x.shape)
    r, s, wc = (int(d) for d in w_packed.shape)
    if wc != c:
        raise ValueError(
            f"w_packed: expected [R, S, {c}] (pack_depthwise_weight), got {tuple(w_packed.shape)}"
        )
    g = ConvShape(
        n,
        c,
        h,
        w,
        c,
        r,
        s,
        as_pair(stride, "stride"),
        as_pair(padding, "padding"),
        as_pair(dilation, "dilation"),
    )
    if g.p <= 0 or g.q <= 0:
        raise ValueError(f"depthwise convolution: empty output for {g}")
    _check_vector(scale, "scale", c, x.device)
    _check_vector(bias, "bias", c, x.device)
    out_shape = (n, c, g.p, g.q)
    act, res_mode, res_scale = _epilogue_args(
        activation, residual, residual_scale, out_scale, out_dtype, out_shape
    )
    out = _out_nhwc(x, *out_shape, out_scale, out_dtype)
    res = residual.contiguous(memory_format=torch.channels_last) if residual is not None else None
    block_c = min(64, triton.next_power_of_2(c))
    block_q = min(16, triton.next_power_of_2(g.q))
    grid = (n * g.p * triton.cdiv(g.q, block_q), triton.cdiv(c, block_c))
    _depthwise_int8_kernel[grid](
        x,
        w_packed.contiguous(),
        out,
        scale,
        bias if bias is not None else scale,
        res if res is not None else scale,
        res_scale,
        float(act_alpha),
        float(act_beta),
        reciprocal(out_scale) if out_scale is not None else 1.0,
        c,
        h,
        w,
        g.p,
        g.q,
        n * g.p * g.q,
        R=r,
        S=s,
        SH=g.stride[0],
        SW=g.stride[1],
        PH=g.padding[0],
        PW=g.padding[1],
        DH=g.dilation[0],
        DW=g.dilation[1],
        HAS_BIAS=bias is not None,
        RES_MODE=res_mode,
        ACT=act,
        QUANT=out_scale is not None,
        BLOCK_Q=block_q,
        BLOCK_C=block_c,
        ACC=tl.int32 if x.dtype == torch.int8 else tl.float32,
        num_warps=4,
        enable_fp_fusion=False,
        **launch_options(x.device),
    )
    return out
