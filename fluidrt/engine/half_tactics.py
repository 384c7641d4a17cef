"""CUDA tactics on Triton kernels for float layers: ``triton_conv``, ``triton_depthwise`` and
``triton_gemm`` (``fluidrt.kernels.conv_half``).

Offered where the libraries leave the GPU idle, and timed against them like any tactic:
- ``triton_conv`` (fp16/bf16, groups 1): convolutions whose output is too small to fill the GPU
  with library tiles (64x64 output tiles for fewer than half the SMs: the late stages at small
  batch), stems with few input channels, and convolutions cuDNN has no fused call for (no ReLU:
  ResNet's projection shortcuts; other activations), whose library call is a plain convolution
  plus bias and a separate activation (at
  batch 256 on an H200, 0.7 ms for ResNet50's first projection, where the int8 kernel takes
  0.17 ms), and every convolution up to batch 16, where a PDL chain of Triton kernels can beat
  library kernels that win alone (``fluidrt.engine.chains``); variants are split-K and whole-K
  tile configs.
- ``triton_s2d`` (fp16/bf16): strided convolutions with few input channels (image stems), folded
  by space-to-depth into stride-1 convolutions with contiguous reduction blocks; library kernels
  take a slow path on 3 channels (cuDNN: ~29 us for ResNet50's stem at batch 5 on an H200,
  where the folded one takes about half, transform included).
- ``triton_depthwise`` (fp16/bf16/fp32, groups == channels): every depthwise convolution.
- ``triton_gemm`` (fp16/bf16): fully connected layers (constant weight) with few rows.
The epilogue (bias, residual, activation) runs in fp32 on the accumulator.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from fluidrt.engine.int8_tactics import meta_tensor, triton_activation
from fluidrt.engine.layers import Runner, tactic
from fluidrt.engine.tactics import conv, cudnn_fuses, gemm
from fluidrt.ir.graph import Node
from fluidrt.ops.dtypes import to_torch
from fluidrt.ops.fused import CONV_ATTRS

SMS = 132  # H100/H200 SXM: one wave of 64x64 output tiles
CHAIN_BATCH = 16  # up to this batch every fp16/bf16 convolution is offered the Triton kernel
MAX_VARIANTS = 3  # configs timed per layer: each distinct one is a Triton compile at build
_HALF = ("float16", "bfloat16")


def _kernels() -> Any:
    try:
        from fluidrt.kernels import conv_half
    except ImportError:  # no Triton: these tactics never apply
        return None
    return conv_half


def _conv_attrs(node: Node) -> dict:
    return {**CONV_ATTRS, **node.attrs}


def _epilogue_ok(node: Node) -> bool:
    a = node.attrs
    return triton_activation(a.get("activation", "none"), a.get("act_attrs", {})) is not None


def _static_weight(node: Node, rank: int) -> bool:
    w = node.inputs[1] if len(node.inputs) > 1 else None
    return w is not None and w.is_const and len(w.shape or ()) == rank


def _const_bias(node: Node) -> bool:
    b = node.inputs[2] if len(node.inputs) > 2 else None
    return b is None or (b.is_const and b.data.ndim == 1)


def _conv_common(node: Node) -> bool:
    a = _conv_attrs(node)
    pads = list(a["pads"])
    x = node.inputs[0]
    res = node.inputs[3] if len(node.inputs) > 3 else None
    return (
        node.op in ("conv2d", "fused_conv2d")
        and _kernels() is not None
        and a["auto_pad"] == "NOTSET"
        and pads[:2] == pads[2:]
        and _static_weight(node, 4)
        and _const_bias(node)
        and x is not None
        and x.rank == 4
        and (res is None or res.shape == node.outputs[0].shape)
        and _epilogue_ok(node)
    )


def _conv_shape(node: Node) -> Any:
    """The kernel's ConvShape for the node's concrete shapes, or None while symbolic."""
    x, w = meta_tensor(node.inputs[0].shape), meta_tensor(node.inputs[1].shape)
    if x is None or w is None:
        return None
    a = _conv_attrs(node)
    return _kernels().conv_shape(
        x, w.permute(0, 2, 3, 1), a["strides"], a["pads"][:2], a["dilations"]
    )


def _underfilled(m: int, n: int) -> bool:
    """Fewer 64x64 output tiles than half the SMs: library tiling leaves most of the GPU idle."""
    return -(-m // 64) * -(-n // 64) < SMS // 2


def _conv_applies(node: Node) -> bool:
    if not _conv_common(node) or int(_conv_attrs(node)["groups"]) != 1:
        return False
    if node.outputs[0].dtype not in _HALF:
        return False
    shape = _conv_shape(node)
    if shape is None:
        return True  # decided when the layer is timed on its concrete shape
    underfilled = _underfilled(shape.n * shape.p * shape.q, shape.k)
    # without a cuDNN fused call the library's only offer is a plain convolution plus bias; at
    # small batches a kernel that loses alone by a little can still win chained to its
    # neighbours by PDL (fluidrt.engine.chains)
    return shape.c < 16 or not cudnn_fuses(node) or underfilled or shape.n <= CHAIN_BATCH


def _pick(configs: list) -> list[str]:
    """Up to MAX_VARIANTS configs: split-K ones first (what these layers are offered for)."""
    split = [c for c in configs if c.split_k > 1]
    whole = [c for c in configs if c.split_k == 1]
    return [c.name for c in (split[: MAX_VARIANTS - 1] + whole)[:MAX_VARIANTS]]


def _conv_variants(node: Node) -> list[str]:
    shape = _conv_shape(node)
    if shape is None:
        return []
    return _pick(_kernels().conv_configs(shape, half=True))


def _config(node: Node) -> Any:
    name = node.meta.get("tactic_variant")
    return _kernels().Int8Config.from_name(name) if name else None


def _epilogue(node: Node) -> dict:
    a = node.attrs
    act, alpha, beta = triton_activation(a.get("activation", "none"), a.get("act_attrs", {}))
    return {"activation": act, "act_alpha": alpha, "act_beta": beta}


def _conv_runner(node: Node, consts: dict[int, torch.Tensor], w: torch.Tensor, fn: Any) -> Runner:
    a = _conv_attrs(node)
    bias = consts[2].float().contiguous() if 2 in consts else None
    stride, pad, dil = tuple(a["strides"]), tuple(a["pads"][:2]), tuple(a["dilations"])
    epi = _epilogue(node)

    def run(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
        x = args[0].contiguous(memory_format=torch.channels_last)
        res = args[3] if len(args) > 3 else None
        if res is not None:
            res = res.contiguous(memory_format=torch.channels_last)
        return [fn(x, w, bias, stride, pad, dil, residual=res, **epi)]

    return run


@tactic(conv, name="triton_conv", devices=("cuda",), applies=_conv_applies, variants=_conv_variants)
def _triton_conv(node: Node, consts: dict[int, torch.Tensor], device: torch.device) -> Runner:
    kernels = _kernels()
    w = kernels.pack_conv_weight(consts[1])
    return _conv_runner(node, consts, w, functools.partial(kernels.conv2d, config=_config(node)))


STEM_FOLDED_CHANNELS = 32  # fold strided convolutions whose C * stride_h * stride_w is this or less
STEM_VARIANTS = 4  # whole-K configs timed for a folded stem


def _stem_applies(node: Node) -> bool:
    """A strided convolution with few input channels (an image stem): folded by space-to-depth
    into a stride-1 convolution whose reduction blocks are contiguous (``conv2d_folded``)."""
    if not _conv_common(node) or node.outputs[0].dtype not in _HALF:
        return False
    a = _conv_attrs(node)
    (sh, sw), c = tuple(a["strides"]), node.inputs[0].shape[1]
    return (
        int(a["groups"]) == 1
        and tuple(a["dilations"]) == (1, 1)
        and max(sh, sw) > 1
        and isinstance(c, int)
        and c * sh * sw <= STEM_FOLDED_CHANNELS
    )


def _stem_shape(node: Node) -> Any:
    """The folded convolution's ConvShape for the node's concrete shapes, or None."""
    n, c, h, w = node.inputs[0].shape
    k, _, r, s = node.inputs[1].shape
    if not all(isinstance(d, int) for d in (n, h, w)):
        return None
    a, kernels = _conv_attrs(node), _kernels()
    f = kernels.folded_shape(c, h, w, (r, s), a["strides"], a["pads"][:2])
    y = meta_tensor((n, f.channels, f.height, f.width))
    return kernels.folded_conv_shape(y, meta_tensor((k, f.taps_h, f.taps_w, f.channels)))


def _stem_variants(node: Node) -> list[str]:
    shape = _stem_shape(node)
    if shape is None:
        return []
    whole = [c for c in _kernels().conv_configs(shape, half=True) if c.split_k == 1]
    return [c.name for c in whole[:STEM_VARIANTS]]


@tactic(conv, name="triton_s2d", devices=("cuda",), applies=_stem_applies, variants=_stem_variants)
def _triton_s2d(node: Node, consts: dict[int, torch.Tensor], device: torch.device) -> Runner:
    kernels = _kernels()
    a = _conv_attrs(node)
    stride, pad = tuple(a["strides"]), tuple(a["pads"][:2])
    w = consts[1]
    kernel = tuple(w.shape[2:])
    packed = kernels.pack_conv_weight(kernels.fold_weight(w, stride))
    bias = consts[2].float().contiguous() if 2 in consts else None
    config, epi = _config(node), _epilogue(node)

    def run(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
        y = kernels.space_to_depth(args[0], kernel, stride, pad, out_dtype=w.dtype)
        res = args[3] if len(args) > 3 else None
        if res is not None:
            res = res.contiguous(memory_format=torch.channels_last)
        return [kernels.conv2d_folded(y, packed, bias, residual=res, config=config, **epi)]

    return run


def _depthwise_applies(node: Node) -> bool:
    if not _conv_common(node):
        return False
    groups = int(_conv_attrs(node)["groups"])
    w = node.inputs[1].shape
    return (
        groups > 1
        and w[0] == groups
        and w[1] == 1
        and node.inputs[0].shape[1] == groups
        and node.outputs[0].dtype in ("float32", *_HALF)
    )


@tactic(conv, name="triton_depthwise", devices=("cuda",), applies=_depthwise_applies)
def _triton_depthwise(node: Node, consts: dict[int, torch.Tensor], device: torch.device) -> Runner:
    kernels = _kernels()
    w = kernels.pack_depthwise_weight(consts[1])
    return _conv_runner(node, consts, w, kernels.depthwise_conv2d)


def _gemm_applies(node: Node) -> bool:
    a = node.attrs
    x = node.inputs[0]
    res = node.inputs[3] if len(node.inputs) > 3 else None
    if (
        node.op not in ("matmul", "fused_matmul")
        or _kernels() is None
        or a.get("trans_a", False)
        or not _static_weight(node, 2)
        or not _const_bias(node)
        or x is None
        or (x.rank or 0) < 2
        or node.outputs[0].dtype not in _HALF
        or (res is not None and res.shape != node.outputs[0].shape)
        or not _epilogue_ok(node)
    ):
        return False
    b = node.inputs[2] if len(node.inputs) > 2 else None
    n = node.inputs[1].shape[0 if a.get("trans_b", False) else 1]
    if b is not None and b.data.shape != (n,):
        return False
    rows = _rows(node)
    return rows is None or _underfilled(rows, n)


def _rows(node: Node) -> int | None:
    shape = node.inputs[0].shape
    if not all(isinstance(d, int) for d in shape):
        return None
    rows = 1
    for d in shape[:-1]:
        rows *= d
    return rows


def _gemm_variants(node: Node) -> list[str]:
    rows = _rows(node)
    if rows is None:
        return []
    k, n = node.inputs[1].shape[::-1] if node.attrs.get("trans_b", False) else node.inputs[1].shape
    return _pick(_kernels().gemm_configs(rows, n, k, half=True))


@tactic(gemm, name="triton_gemm", devices=("cuda",), applies=_gemm_applies, variants=_gemm_variants)
def _triton_gemm(node: Node, consts: dict[int, torch.Tensor], device: torch.device) -> Runner:
    kernels = _kernels()
    w = consts[1] if node.attrs.get("trans_b", False) else consts[1].t()
    w = w.contiguous()  # [N, K]
    bias = consts[2].float().contiguous() if 2 in consts else None
    config, epi = _config(node), _epilogue(node)
    n = w.shape[0]
    # the engine's output cast folded into the epilogue (fluidrt.engine.runtime.absorbed_casts)
    out_dtype = to_torch(node.meta["write_dtype"]) if "write_dtype" in node.meta else None

    def run(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
        x = args[0]
        lead = x.shape[:-1]
        res = args[3] if len(args) > 3 else None
        if res is not None:
            res = res.reshape(-1, n)
        y = kernels.gemm(
            x.reshape(-1, x.shape[-1]).contiguous(),
            w,
            bias,
            residual=res,
            config=config,
            out_dtype=out_dtype,
            **epi,
        )
        return [y.reshape(*lead, n)]

    return run
