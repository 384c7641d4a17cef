"""fp16/bf16 implicit-GEMM convolution, depthwise convolution and GEMM kernels against float64
references computed from the same (already rounded) half inputs.

The kernels accumulate in fp32 and round once to the output dtype, so each output is within
about one half-precision rounding of the exact result: the tolerance is two units of the output
dtype's epsilon relative to the output's magnitude. On CPU the kernels run in Triton's
interpreter (fp16 only: NumPy has no bfloat16) with small shapes; the ``gpu`` tests use the
shapes the tactics exist for (ResNet's late stages at batch 1, MobileNet's depthwise layers).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fluidrt.kernels.conv_half import (
    conv2d,
    conv2d_folded,
    conv_configs,
    conv_shape,
    depthwise_conv2d,
    folded_conv_shape,
    gemm,
    gemm_configs,
    pack_conv_weight,
    pack_depthwise_weight,
)
from fluidrt.kernels.space_to_depth import fold_weight, space_to_depth

CL = torch.channels_last
EPS = {torch.float16: 2.0**-10, torch.bfloat16: 2.0**-7, torch.float32: 2.0**-20}
ACTS = {
    "none": lambda y: y,
    "relu": torch.relu,
    "relu6": lambda y: y.clamp(0.0, 6.0),
    "leaky_relu": lambda y: torch.where(y >= 0, y, 0.1 * y),
    "hard_swish": lambda y: y * (y + 3.0).clamp(0.0, 6.0) / 6.0,
    "sigmoid": torch.sigmoid,
    "silu": lambda y: y * torch.sigmoid(y),
}


def _rand(*shape: int, dtype: torch.dtype, device: str, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(*shape, generator=gen).to(dtype).to(device)


def _close(out: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype) -> None:
    out, ref = out.detach().cpu().double(), ref.double()
    assert out.shape == ref.shape
    err = (out - ref).abs().max().item()
    bound = 2 * EPS[dtype] * ref.abs().max().item() + 1e-6
    assert err <= bound, f"max error {err:.3g} > {bound:.3g}"


def _ref_conv(x, w, bias, stride, pad, dil, groups, act, residual):
    y = F.conv2d(x.cpu().double(), w.cpu().double(), None, stride, pad, dil, groups)
    if bias is not None:
        y = y + bias.cpu().double().view(1, -1, 1, 1)
    if residual is not None:
        y = y + residual.cpu().double()
    return ACTS[act](y)


def _alpha(act: str) -> dict:
    return {"act_alpha": 0.1} if act == "leaky_relu" else {}


# (n, c, h, w, k, r, s, stride, pad, dilation): GEMM path, strided 1x1, 3x3, 3-channel stem
CPU_CONVS = [
    (1, 32, 5, 5, 16, 1, 1, 1, 0, 1),
    (2, 32, 6, 6, 16, 1, 1, 2, 0, 1),
    (1, 32, 5, 5, 16, 3, 3, 1, 1, 1),
    (1, 3, 7, 7, 16, 3, 3, 2, 1, 1),
    (1, 32, 7, 7, 16, 3, 3, 1, 2, 2),
]


@pytest.mark.parametrize("geom", CPU_CONVS, ids=lambda g: "x".join(map(str, g)))
def test_conv2d_fp16(device: str, geom: tuple) -> None:
    n, c, h, w, k, r, s, stride, pad, dil = geom
    gen = torch.Generator().manual_seed(0)
    x = _rand(n, c, h, w, dtype=torch.float16, device=device, gen=gen).contiguous(memory_format=CL)
    wt = _rand(k, c, r, s, dtype=torch.float16, device=device, gen=gen) * 0.2
    bias = torch.randn(k, generator=gen).to(device)
    out = conv2d(x, pack_conv_weight(wt), bias, stride, pad, dil, activation="relu")
    assert out.dtype == torch.float16 and out.is_contiguous(memory_format=CL)
    _close(out, _ref_conv(x, wt, bias, stride, pad, dil, 1, "relu", None), torch.float16)


def test_conv2d_split_k_and_epilogues(device: str) -> None:
    gen = torch.Generator().manual_seed(1)
    x = _rand(1, 64, 4, 4, dtype=torch.float16, device=device, gen=gen).contiguous(memory_format=CL)
    wt = _rand(32, 64, 3, 3, dtype=torch.float16, device=device, gen=gen) * 0.1
    res = _rand(1, 32, 4, 4, dtype=torch.float16, device=device, gen=gen)
    shape = conv_shape(x, pack_conv_weight(wt), 1, 1, 1)
    configs = conv_configs(shape, half=True)
    assert any(c.split_k > 1 for c in configs), configs  # 16 pixels, 576-long reduction
    for config in configs[:2]:
        for act in ("none", "leaky_relu", "hard_swish", "silu"):
            out = conv2d(
                x,
                pack_conv_weight(wt),
                None,
                1,
                1,
                residual=res,
                config=config,
                activation=act,
                **_alpha(act),
            )
            ref = _ref_conv(x, wt, None, 1, 1, 1, 1, act, res)
            _close(out, ref, torch.float16)


# (n, c, h, w, k, kernel, stride, pad): ResNet's and MobileNet's stems (small), uneven taps
FOLDED = [
    (2, 3, 19, 17, 16, 7, 2, 3),
    (1, 3, 15, 15, 8, 3, 2, 1),
    (1, 3, 16, 16, 8, 3, 2, 0),
    (1, 1, 11, 13, 8, 5, 3, 2),
]


def _folded(x, wt, bias, kernel, stride, pad, config=None, residual=None, act="relu"):
    y = space_to_depth(x, kernel, stride, pad, out_dtype=wt.dtype)
    packed = pack_conv_weight(fold_weight(wt.float(), stride).to(wt.dtype))
    return conv2d_folded(y, packed, bias, act, residual=residual, config=config)


@pytest.mark.parametrize("geom", FOLDED, ids=lambda g: "x".join(map(str, g)))
def test_conv2d_folded_equals_the_strided_convolution(device: str, geom: tuple) -> None:
    n, c, h, w, k, kernel, stride, pad = geom
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(n, c, h, w, generator=gen).to(device)  # fp32 NCHW: the network input
    wt = _rand(k, c, kernel, kernel, dtype=torch.float16, device=device, gen=gen) * 0.2
    bias = torch.randn(k, generator=gen).to(device)
    out = _folded(x, wt, bias, kernel, stride, pad)
    assert out.dtype == torch.float16 and out.is_contiguous(memory_format=CL)
    ref = _ref_conv(x.half(), wt, bias, stride, pad, 1, 1, "relu", None)
    _close(out, ref, torch.float16)


def test_conv2d_folded_refuses_mismatched_weights(device: str) -> None:
    y = space_to_depth(torch.zeros(1, 3, 8, 8, device=device), 3, 2, 1)
    with pytest.raises(ValueError, match="w_packed: expected"):
        conv2d_folded(y, torch.zeros(8, 2, 2, 8, dtype=torch.float16, device=device), None)


def test_depthwise_fp16_and_fp32(device: str) -> None:
    gen = torch.Generator().manual_seed(2)
    for dtype in (torch.float16, torch.float32):
        for stride in (1, 2):
            x = _rand(2, 24, 7, 7, dtype=dtype, device=device, gen=gen).contiguous(memory_format=CL)
            wt = _rand(24, 1, 3, 3, dtype=dtype, device=device, gen=gen)
            bias = torch.randn(24, generator=gen).to(device)
            out = depthwise_conv2d(
                x, pack_depthwise_weight(wt), bias, stride, 1, activation="relu6"
            )
            assert out.dtype == dtype
            _close(out, _ref_conv(x, wt, bias, stride, 1, 1, 24, "relu6", None), dtype)


def test_gemm_fp16_split_k(device: str) -> None:
    gen = torch.Generator().manual_seed(3)
    a = _rand(2, 256, dtype=torch.float16, device=device, gen=gen)
    b = _rand(40, 256, dtype=torch.float16, device=device, gen=gen) * 0.1
    bias = torch.randn(40, generator=gen).to(device)
    configs = gemm_configs(2, 40, 256, half=True)
    for config in configs[:2]:
        out = gemm(a, b, bias, config=config)
        ref = a.cpu().double() @ b.cpu().double().t() + bias.cpu().double()
        _close(out, ref, torch.float16)


def test_gemm_writes_float32_when_asked(device: str) -> None:
    gen = torch.Generator().manual_seed(8)
    a = _rand(3, 128, dtype=torch.float16, device=device, gen=gen)
    b = _rand(24, 128, dtype=torch.float16, device=device, gen=gen) * 0.1
    bias = torch.randn(24, generator=gen).to(device)
    out = gemm(a, b, bias, out_dtype=torch.float32)
    assert out.dtype == torch.float32
    ref = a.cpu().double() @ b.cpu().double().t() + bias.cpu().double()
    _close(out, ref, torch.float32 if device == "cuda" else torch.float16)


def test_bad_inputs_are_clear_errors(device: str) -> None:
    x = torch.zeros(1, 8, 4, 4, dtype=torch.float16, device=device)
    with pytest.raises(ValueError, match="w_packed: expected a 4-D tensor"):
        conv2d(x, torch.zeros(8, 3, 3, 8, dtype=torch.float32, device=device), None, 1, 1)
    with pytest.raises(ValueError, match="x: expected a 4-D tensor"):
        conv2d(x.float(), torch.zeros(8, 3, 3, 8, device=device), None, 1, 1)
    with pytest.raises(ValueError, match="bias: expected"):
        conv2d(x, torch.zeros(8, 3, 3, 8, dtype=torch.float16, device=device), x[0, 0], 1, 1)


# --------------------------------------------------------------------------------------------
# GPU: the shapes the tactics are for, both half dtypes, every config the tactic would time
GPU_CONVS = [
    (1, 512, 7, 7, 512, 3, 3, 1, 1, 1),  # ResNet50 stage 4, batch 1
    (1, 1024, 14, 14, 2048, 1, 1, 2, 0, 1),  # its strided projection
    (1, 256, 14, 14, 1024, 1, 1, 1, 0, 1),  # GEMM path
    (4, 3, 224, 224, 32, 3, 3, 2, 1, 1),  # MobileNet stem
    (2, 768, 17, 17, 192, 1, 7, 1, 0, 1),  # Inception's 1x7 (asymmetric kernel)
]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("geom", GPU_CONVS, ids=lambda g: "x".join(map(str, g)))
def test_conv2d_gpu_every_config(geom: tuple, dtype: torch.dtype) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    n, c, h, w, k, r, s, stride, pad, dil = geom
    pad = (0, 3) if (r, s) == (1, 7) else pad
    gen = torch.Generator().manual_seed(4)
    x = _rand(n, c, h, w, dtype=dtype, device="cuda", gen=gen).contiguous(memory_format=CL)
    wt = _rand(k, c, r, s, dtype=dtype, device="cuda", gen=gen) * (2.0 / (c * r * s)) ** 0.5
    bias = torch.randn(k, generator=gen).cuda()
    packed = pack_conv_weight(wt)
    ref = None
    for config in conv_configs(conv_shape(x, packed, stride, pad, dil), half=True)[:4]:
        out = conv2d(x, packed, bias, stride, pad, dil, activation="relu", config=config)
        if ref is None:
            ref = _ref_conv(x, wt, bias, stride, pad, dil, 1, "relu", None)
        _close(out, ref, dtype)


GPU_FOLDED = [
    (5, 3, 224, 224, 64, 7, 2, 3),  # ResNet stem
    (2, 3, 299, 299, 32, 3, 2, 0),  # Inception stem
    (3, 3, 224, 224, 32, 3, 2, 1),  # MobileNet stem
]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("geom", GPU_FOLDED, ids=lambda g: "x".join(map(str, g)))
def test_conv2d_folded_gpu_every_config(geom: tuple, dtype: torch.dtype) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    n, c, h, w, k, kernel, stride, pad = geom
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(n, c, h, w, generator=gen).cuda()
    wt = _rand(k, c, kernel, kernel, dtype=dtype, device="cuda", gen=gen) * 0.1
    bias = torch.randn(k, generator=gen).cuda()
    y = space_to_depth(x, kernel, stride, pad, out_dtype=dtype)
    packed = pack_conv_weight(fold_weight(wt.float(), stride).to(dtype))
    ref = _ref_conv(x.to(dtype), wt, bias, stride, pad, 1, 1, "relu", None)
    for config in conv_configs(folded_conv_shape(y, packed), half=True)[:4]:
        _close(conv2d_folded(y, packed, bias, "relu", config=config), ref, dtype)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
def test_depthwise_gpu(dtype: torch.dtype) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    gen = torch.Generator().manual_seed(5)
    for n, c, h, stride in ((1, 32, 112, 1), (8, 128, 56, 2), (1, 1024, 7, 1)):
        x = _rand(n, c, h, h, dtype=dtype, device="cuda", gen=gen).contiguous(memory_format=CL)
        wt = _rand(c, 1, 3, 3, dtype=dtype, device="cuda", gen=gen) * 0.3
        res = _rand(
            n, c, (h - 1) // stride + 1, (h - 1) // stride + 1, dtype=dtype, device="cuda", gen=gen
        )
        out = depthwise_conv2d(x, pack_depthwise_weight(wt), None, stride, 1, residual=res)
        _close(out, _ref_conv(x, wt, None, stride, 1, 1, c, "none", res), dtype)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_gemm_gpu_fc_shapes(dtype: torch.dtype) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    gen = torch.Generator().manual_seed(6)
    for m in (1, 5, 10):
        a = _rand(m, 2048, dtype=dtype, device="cuda", gen=gen)
        b = _rand(1000, 2048, dtype=dtype, device="cuda", gen=gen) * 0.03
        bias = torch.randn(1000, generator=gen).cuda()
        ref = a.cpu().double() @ b.cpu().double().t() + bias.cpu().double()
        for config in gemm_configs(m, 1000, 2048, half=True)[:4]:
            _close(gemm(a, b, bias, config=config), ref, dtype)
