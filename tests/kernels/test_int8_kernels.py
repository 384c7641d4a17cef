"""INT8 conv / GEMM / depthwise / quantize kernels against torch references.

The int32 accumulation is checked exactly against torch's float64 convolution (exact for int8
products at these sizes); the epilogue against the same fp32 steps written in torch (bit-exact
except sigmoid/silu, which use the GPU's fast exp). On CPU the kernels run in Triton's
interpreter with small shapes; the ``gpu`` tests use ResNet50 shapes.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fluidrt.kernels.int8_conv import (
    ACTIVATIONS,
    Int8Config,
    conv2d_int8,
    conv_configs,
    conv_shape,
    depthwise_conv2d_int8,
    gemm_configs,
    gemm_int8,
    pack_conv_weight,
    pack_depthwise_weight,
)
from fluidrt.kernels.quantize import dequantize, quantize

CL = torch.channels_last


def _rand_i8(*shape: int, device: str, gen: torch.Generator) -> torch.Tensor:
    return torch.randint(-128, 128, shape, dtype=torch.int8, generator=gen).to(device)


def _conv_acc(x: torch.Tensor, w: torch.Tensor, stride, padding, dilation, groups=1):
    """Exact int32-valued accumulator as float64 (torch conv on CPU in float64).

    Float32 outputs compare with ``acc.float()``: the kernel converts int32 to fp32 (round to
    nearest) like torch does, which is inexact past 2**24.
    """
    return F.conv2d(x.cpu().double(), w.cpu().double(), None, stride, padding, dilation, groups)


def _epilogue_ref(
    acc: torch.Tensor,
    scale: torch.Tensor,
    bias: torch.Tensor | None,
    activation: str,
    alpha: float,
    beta: float,
    residual: torch.Tensor | None,
    residual_scale: float | None,
    out_scale: float | None,
    channel_dim: int,
) -> torch.Tensor:
    """The documented epilogue in fp32 torch ops (NCHW acc: channel_dim 1; GEMM: 1 as well)."""
    view = [1] * acc.dim()
    view[channel_dim] = -1
    y = acc.float() * scale.cpu().view(view)
    if bias is not None:
        y = y + bias.cpu().view(view)
    if residual is not None:
        r = residual.cpu().float()
        y = y + (r * residual_scale if residual.dtype == torch.int8 else r)
    if activation == "relu":
        y = torch.clamp_min(y, 0.0)
    elif activation == "relu6":
        y = torch.clamp(y, 0.0, 6.0)
    elif activation == "clip":
        y = torch.minimum(torch.maximum(y, torch.tensor(alpha)), torch.tensor(beta))
    elif activation == "leaky_relu":
        y = torch.where(y >= 0, y, y * alpha)
    elif activation == "hard_swish":
        y = y * torch.clamp(y + 3.0, 0.0, 6.0) / 6.0
    elif activation == "sigmoid":
        y = torch.sigmoid(y)
    elif activation == "silu":
        y = y * torch.sigmoid(y)
    if out_scale is not None:
        rcp = torch.tensor(1.0) / torch.tensor(out_scale, dtype=torch.float32)
        return torch.clamp(torch.round(y * rcp), -128, 127).to(torch.int8)
    return y


# (N, C, H, W, K, R, S, stride, padding, dilation): 1x1 GEMM path, 1x1 stride 2, 3x3 stride 1
# and 2 (C aligned to the K block and not), the 3-channel 7x7 stem, dilation, non-square
CONV_CASES = [
    (2, 64, 5, 5, 40, 1, 1, 1, 0, 1),
    (1, 64, 7, 7, 32, 1, 1, 2, 0, 1),
    (2, 32, 6, 6, 24, 3, 3, 1, 1, 1),
    (1, 48, 5, 5, 20, 3, 3, 2, 1, 1),
    (1, 3, 9, 9, 16, 7, 7, 2, 3, 1),
    (1, 32, 7, 7, 16, 3, 3, 1, 2, 2),
    (1, 32, 4, 7, 16, 3, 1, 1, (1, 0), 1),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "x".join(map(str, c)))
def test_conv_accumulator_exact_every_config(case: tuple, device: str) -> None:
    n, c, h, w, k, r, s, stride, padding, dilation = case
    gen = torch.Generator().manual_seed(1)
    x = _rand_i8(n, c, h, w, device=device, gen=gen).contiguous(memory_format=CL)
    wt = _rand_i8(k, c, r, s, device=device, gen=gen)
    wp = pack_conv_weight(wt)
    ref = _conv_acc(x, wt, stride, padding, dilation)
    scale = torch.ones(k, device=device)
    shape = conv_shape(x, wp, stride, padding, dilation)
    configs = conv_configs(shape) + [Int8Config(16, 16, 32, split_k=3)]
    for cfg in configs:
        y = conv2d_int8(
            x, wp, scale, None, stride, padding, dilation, out_dtype=torch.float32, config=cfg
        )
        assert y.shape == ref.shape and y.dtype == torch.float32, cfg.name
        assert y.is_contiguous(memory_format=CL), cfg.name
        assert torch.equal(y.cpu(), ref.float()), cfg.name


EPILOGUES = [
    ("none", 0.0, 0.0, None, None),
    ("relu", 0.0, 0.0, "int8", 0.05),
    ("relu6", 0.0, 0.0, "float", None),
    ("clip", -1.5, 2.0, None, 0.02),
    ("leaky_relu", 0.1, 0.0, "int8", None),
    ("hard_swish", 0.0, 0.0, None, 0.03),
    ("sigmoid", 0.0, 0.0, "float", 0.004),
    ("silu", 0.0, 0.0, None, None),
]


@pytest.mark.parametrize("epi", EPILOGUES, ids=lambda e: f"{e[0]}-{e[3]}-{e[4]}")
@pytest.mark.parametrize("split_k", [1, 2])
def test_conv_epilogue(epi: tuple, split_k: int, device: str) -> None:
    activation, alpha, beta, res_kind, out_scale = epi
    gen = torch.Generator().manual_seed(2)
    n, c, h, w, k = 1, 32, 5, 5, 24
    x = _rand_i8(n, c, h, w, device=device, gen=gen).contiguous(memory_format=CL)
    wt = _rand_i8(k, c, 3, 3, device=device, gen=gen)
    scale = (torch.rand(k, generator=gen) * 1e-4 + 1e-5).to(device)
    bias = torch.randn(k, generator=gen).to(device)
    residual, residual_scale = None, None
    if res_kind == "int8":
        residual = _rand_i8(n, k, h, w, device=device, gen=gen).contiguous(memory_format=CL)
        residual_scale = 0.01
    elif res_kind == "float":
        residual = torch.randn(n, k, h, w, generator=gen).to(device)  # NCHW: any layout works
    y = conv2d_int8(
        x,
        pack_conv_weight(wt),
        scale,
        bias,
        1,
        1,
        1,
        activation,
        alpha,
        beta,
        residual,
        residual_scale,
        out_scale,
        torch.float32,
        config=Int8Config(16, 16, 32, split_k=split_k),
    )
    ref = _epilogue_ref(
        _conv_acc(x, wt, 1, 1, 1),
        scale,
        bias,
        activation,
        alpha,
        beta,
        residual,
        residual_scale,
        out_scale,
        1,
    )
    assert y.shape == ref.shape and y.dtype == ref.dtype
    assert y.is_contiguous(memory_format=CL)
    y = y.cpu()
    if activation in ("sigmoid", "silu"):
        if out_scale is None:
            torch.testing.assert_close(y, ref, rtol=1e-6, atol=1e-7)
        else:
            assert (y.int() - ref.int()).abs().max() <= 1
    else:
        assert torch.equal(y, ref)


@pytest.mark.parametrize("out_dtype", [torch.float16, torch.bfloat16])
def test_conv_half_outputs(out_dtype: torch.dtype, device: str) -> None:
    gen = torch.Generator().manual_seed(3)
    x = _rand_i8(1, 64, 4, 4, device=device, gen=gen).contiguous(memory_format=CL)
    wt = _rand_i8(32, 64, 1, 1, device=device, gen=gen)
    scale = torch.full((32,), 1e-3, device=device)
    y = conv2d_int8(x, pack_conv_weight(wt), scale, None, 1, 0, 1, "relu", out_dtype=out_dtype)
    ref = _epilogue_ref(_conv_acc(x, wt, 1, 0, 1), scale, None, "relu", 0, 0, None, None, None, 1)
    assert y.dtype == out_dtype
    if device == "cpu" and out_dtype == torch.bfloat16:
        # the interpreter truncates fp32 -> bf16 (numpy has no bf16); the GPU rounds to nearest
        torch.testing.assert_close(y.cpu().float(), ref, rtol=2**-7, atol=0)
    else:
        assert torch.equal(y.cpu(), ref.to(out_dtype))


@pytest.mark.parametrize("mnk", [(5, 24, 64), (33, 40, 96), (16, 16, 200)])
def test_gemm(mnk: tuple[int, int, int], device: str) -> None:
    m, n, k = mnk
    gen = torch.Generator().manual_seed(4)
    a = _rand_i8(m, k, device=device, gen=gen)
    b = _rand_i8(n, k, device=device, gen=gen)
    scale = (torch.rand(n, generator=gen) * 1e-3).to(device)
    bias = torch.randn(n, generator=gen).to(device)
    res = _rand_i8(m, n, device=device, gen=gen)
    acc = a.cpu().double() @ b.cpu().double().T
    for cfg in gemm_configs(m, n, k) + [Int8Config(16, 16, 32, split_k=2)]:
        y = gemm_int8(
            a,
            b,
            scale,
            bias,
            "relu",
            residual=res,
            residual_scale=0.5,
            out_scale=0.1,
            config=cfg,
        )
        ref = _epilogue_ref(acc, scale, bias, "relu", 0, 0, res, 0.5, 0.1, 1)
        assert y.shape == (m, n) and y.dtype == torch.int8
        assert torch.equal(y.cpu(), ref), cfg.name


@pytest.mark.parametrize(
    "case", [(1, 24, 7, 7, 3, 1, 1), (2, 40, 8, 6, 3, 2, 1), (1, 16, 9, 9, 5, 1, 2)]
)
def test_depthwise(case: tuple, device: str) -> None:
    n, c, h, w, r, stride, padding = case
    gen = torch.Generator().manual_seed(5)
    x = _rand_i8(n, c, h, w, device=device, gen=gen).contiguous(memory_format=CL)
    wt = _rand_i8(c, 1, r, r, device=device, gen=gen)
    scale = (torch.rand(c, generator=gen) * 1e-3).to(device)
    bias = torch.randn(c, generator=gen).to(device)
    y = depthwise_conv2d_int8(
        x, pack_depthwise_weight(wt), scale, bias, stride, padding, 1, "relu6", out_scale=0.05
    )
    acc = _conv_acc(x, wt, stride, padding, 1, groups=c)
    ref = _epilogue_ref(acc, scale, bias, "relu6", 0, 0, None, None, 0.05, 1)
    assert y.shape == ref.shape and y.is_contiguous(memory_format=CL)
    assert torch.equal(y.cpu(), ref)
    yf = depthwise_conv2d_int8(
        x, pack_depthwise_weight(wt), torch.ones(c, device=device), None, stride, padding, 1,
        out_dtype=torch.float32,
    )  # fmt: skip
    assert torch.equal(yf.cpu(), acc.float())


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
def test_quantize_dequantize(layout: str, device: str) -> None:
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(2, 5, 3, 7, generator=gen) * 3
    x[0, 0, 0, :4] = torch.tensor([0.25, 0.75, -0.25, 1e4])  # ties (scale 0.5) and saturation
    x = x.to(device)
    if layout == "channels_last":
        x = x.contiguous(memory_format=CL)
    elif layout == "strided":
        x = x[:, :, :, ::2]
    q = quantize(x, 0.5)
    ref = torch.clamp(torch.round(x.cpu() / 0.5), -128, 127).to(torch.int8)
    assert q.dtype == torch.int8 and q.shape == x.shape
    assert torch.equal(q.cpu(), ref)
    if layout == "channels_last":
        assert q.is_contiguous(memory_format=CL)
    d = dequantize(q, 0.5, torch.float16)
    assert d.dtype == torch.float16 and d.stride() == q.stride()
    assert torch.equal(d.cpu(), (ref.float() * 0.5).half())


def test_config_names_round_trip() -> None:
    shape = conv_shape(
        torch.empty(1, 512, 7, 7, device="meta"),
        torch.empty(512, 3, 3, 512, device="meta"),
        1,
        1,
        1,
    )
    configs = conv_configs(shape)
    assert any(c.split_k > 1 for c in configs)  # batch 1, M = 49: split-K candidates listed
    for cfg in configs + gemm_configs(4096, 1000, 2048):
        assert Int8Config.from_name(cfg.name) == cfg
    with pytest.raises(ValueError, match="Int8Config name"):
        Int8Config.from_name("fast")


def test_bad_inputs_are_clear_errors(device: str) -> None:
    gen = torch.Generator().manual_seed(7)
    x = _rand_i8(1, 16, 4, 4, device=device, gen=gen).contiguous(memory_format=CL)
    wp = pack_conv_weight(_rand_i8(8, 16, 1, 1, device=device, gen=gen))
    scale = torch.ones(8, device=device)
    with pytest.raises(ValueError, match="activation"):
        conv2d_int8(x, wp, scale, None, 1, 0, 1, "gelu")
    with pytest.raises(ValueError, match="int8"):
        conv2d_int8(x.float(), wp, scale, None, 1, 0, 1)
    with pytest.raises(ValueError, match="w_packed"):
        conv2d_int8(x, wp[:, :, :, :8], scale, None, 1, 0, 1)
    with pytest.raises(ValueError, match="scale"):
        conv2d_int8(x, wp, scale[:4], None, 1, 0, 1)
    with pytest.raises(ValueError, match="residual_scale"):
        conv2d_int8(x, wp, scale, None, 1, 0, 1, residual=torch.zeros_like(x[:, :8]))
    with pytest.raises(ValueError, match="residual"):
        conv2d_int8(x, wp, scale, None, 1, 0, 1, residual=torch.zeros(1, 8, 2, 2))
    with pytest.raises(ValueError, match="padding"):
        conv2d_int8(x, wp, scale, None, 1, (0, 0, 0), 1)
    assert set(ACTIVATIONS) == {
        "none",
        "relu",
        "relu6",
        "clip",
        "leaky_relu",
        "hard_swish",
        "sigmoid",
        "silu",
    }


# ResNet50 shapes on the GPU: (N, C, H, W, K, R, S, stride, padding)
GPU_CASES = [
    (1, 3, 224, 224, 64, 7, 7, 2, 3),
    (1, 64, 56, 56, 64, 3, 3, 1, 1),
    (8, 256, 56, 56, 128, 1, 1, 2, 0),
    (1, 512, 7, 7, 512, 3, 3, 1, 1),
    (32, 1024, 14, 14, 256, 1, 1, 1, 0),
    (1, 2048, 7, 7, 512, 1, 1, 1, 0),
]


@pytest.mark.gpu
@pytest.mark.parametrize("case", GPU_CASES, ids=lambda c: "x".join(map(str, c)))
def test_gpu_resnet50_shapes(case: tuple) -> None:
    n, c, h, w, k, r, s, stride, padding = case
    gen = torch.Generator().manual_seed(8)
    x = _rand_i8(n, c, h, w, device="cuda", gen=gen).contiguous(memory_format=CL)
    wt = _rand_i8(k, c, r, s, device="cuda", gen=gen)
    wp = pack_conv_weight(wt)
    scale = (torch.rand(k, generator=gen) * 1e-5).cuda()
    bias = torch.randn(k, generator=gen).cuda()
    acc = F.conv2d(x.double(), wt.double(), None, stride, padding)
    ref = _epilogue_ref(acc.cpu(), scale, bias, "relu", 0, 0, None, None, 0.05, 1)
    for cfg in conv_configs(conv_shape(x, wp, stride, padding, 1)):
        y = conv2d_int8(x, wp, scale, bias, stride, padding, 1, "relu", out_scale=0.05, config=cfg)
        assert torch.equal(y.cpu(), ref), cfg.name
        yf = conv2d_int8(
            x, wp, torch.ones_like(scale), None, stride, padding, 1, out_dtype=torch.float32,
            config=cfg,
        )  # fmt: skip
        assert torch.equal(yf.cpu(), acc.cpu().float()), cfg.name
