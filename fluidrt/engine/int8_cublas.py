"""CUDA INT8 tactic ``cublas_int8``: cuBLASLt int8 GEMM (``torch._int_mm``) + one epilogue kernel.

For 1x1, stride-1, unpadded, groups-1 ``qconv2d`` and 2-D ``qmatmul``: the NHWC int8 input is
viewed as ``a[M, K]`` (M = N*H*W pixels, K = input channels; no copy), multiplied by the weight
packed once to ``w_t[K, N]`` (a column-major view of the contiguous ``[N, K]`` weight, the layout
cuBLASLt's int8 kernels take without a copy) into an int32 ``acc[M, N]``, which
``fluidrt.kernels.int8_epilogue.int32_epilogue`` finishes into the channels_last output the
``triton_int8`` tactic produces (bit-identical to it for the same accumulator). On ResNet50's 1x1
convolutions cuBLASLt is 2-3x faster than the Triton implicit GEMM at batch 256.

``torch._int_mm`` needs M > 16 and K, N multiples of 8 (checked in ``applies``). The runners
take the int32 matmul as a parameter (``int_mm``) so the rest can be exercised on CPU with an
exact stand-in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from fluidrt.engine.int8_tactics import (
    _attrs,
    _kernel_epilogue,
    _kernels,
    qconv,
    qgemm,
    triton_activation,
)
from fluidrt.engine.layers import Runner, tactic
from fluidrt.ir.graph import Node
from fluidrt.ops.quantized import layer_scale

# (a[M, K] int8, w_t[K, N] int8) -> int32 [M, N]
IntMM = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _epilogue_kernel() -> Any:
    if _kernels() is None:
        return None
    from fluidrt.kernels import int8_epilogue

    return int8_epilogue


def _dims_ok(m: Any, k: Any, n: Any) -> bool:
    """torch._int_mm's limits: M > 16 rows, K and N positive multiples of 8."""
    ints = all(isinstance(d, int) for d in (m, k, n))
    return ints and m > 16 and k > 0 and k % 8 == 0 and n > 0 and n % 8 == 0


def _common_applies(node: Node) -> bool:
    a = node.attrs
    return (
        hasattr(torch, "_int_mm")
        and _epilogue_kernel() is not None
        and triton_activation(a.get("activation", "none"), a.get("act_attrs", {})) is not None
        and node.inputs[1].is_const
        and node.inputs[2].is_const
    )


def _conv_applies(node: Node) -> bool:
    a, x, w = node.attrs, node.inputs[0].shape, node.inputs[1].shape
    if not _common_applies(node) or x is None or w is None or len(x) != 4 or len(w) != 4:
        return False
    if tuple(w[2:]) != (1, 1) or int(a.get("groups", 1)) != 1:
        return False
    if list(a.get("strides", [1, 1])) != [1, 1] or any(list(a.get("pads", [0, 0, 0, 0]))):
        return False
    if a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        return False
    # the fewest rows any batch size gives: a symbolic batch is at least 1
    h, wd = x[2], x[3]
    if not isinstance(h, int) or not isinstance(wd, int):
        return False
    rows = (x[0] if isinstance(x[0], int) else 1) * h * wd
    return _dims_ok(rows, w[1], w[0])


def _gemm_applies(node: Node) -> bool:
    x, w = node.inputs[0].shape, node.inputs[1].shape
    if not _common_applies(node) or x is None or w is None or len(x) != 2 or len(w) != 2:
        return False
    return _dims_ok(x[0], x[1], w[0])


def pack_weight(w: torch.Tensor) -> torch.Tensor:
    """int8 weights [N, K] or [N, K, 1, 1] -> w_t [K, N], the transpose of a contiguous [N, K]."""
    if w.dtype != torch.int8 or w.dim() not in (2, 4) or (w.dim() == 4 and w.shape[2:] != (1, 1)):
        raise ValueError(f"w: expected int8 [N, K] or [N, K, 1, 1], got {w.dtype} {tuple(w.shape)}")
    return w.reshape(w.shape[0], w.shape[1]).contiguous().t()


class _Epilogue:
    """The node's epilogue arguments, resolved once in prepare."""

    def __init__(self, node: Node, consts: dict[int, torch.Tensor]) -> None:
        a = _attrs(node)
        self.scale = layer_scale(a["in_scale"], consts[2]).contiguous()
        self.bias = consts[3].float().contiguous() if 3 in consts else None
        self.kw = _kernel_epilogue(a)
        self.dtype = self.kw["out_dtype"]  # int8 when requantizing
        self.launch = _epilogue_kernel().int32_epilogue

    def __call__(
        self,
        acc: torch.Tensor,
        args: list[torch.Tensor | None],
        residual: torch.Tensor | None,
        out: torch.Tensor,
    ) -> None:
        bias = self.bias
        if bias is None and len(args) > 3 and args[3] is not None:
            bias = args[3].float().contiguous()
        self.launch(acc, self.scale, bias, residual=residual, out=out, **self.kw)


def _mm(int_mm: IntMM, a: torch.Tensor, w_t: torch.Tensor) -> torch.Tensor:
    if a.shape[0] <= 16:
        raise ValueError(f"cublas_int8: torch._int_mm needs more than 16 rows, got {a.shape[0]}")
    return int_mm(a, w_t)


def _nhwc_rows(t: torch.Tensor) -> torch.Tensor:
    """The [N*H*W, C] view of a channels_last tensor."""
    return t.permute(0, 2, 3, 1).view(-1, t.shape[1])


def conv1x1_runner(
    node: Node, consts: dict[int, torch.Tensor], int_mm: IntMM | None = None
) -> Runner:
    """The runner of a 1x1 ``qconv2d`` (channels_last int8 in, channels_last out)."""
    w_t = pack_weight(consts[1])
    epi = _Epilogue(node, consts)
    int_mm = int_mm or torch._int_mm

    def run(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
        x = args[0].contiguous(memory_format=torch.channels_last)
        n, _, h, w = x.shape
        out = torch.empty(
            (n, w_t.shape[1], h, w),
            device=x.device,
            dtype=epi.dtype,
            memory_format=torch.channels_last,
        )
        res = args[4] if len(args) > 4 else None
        if res is not None:
            res = _nhwc_rows(res.contiguous(memory_format=torch.channels_last))
        epi(_mm(int_mm, _nhwc_rows(x), w_t), args, res, _nhwc_rows(out))
        return [out]

    return run


def gemm_runner(node: Node, consts: dict[int, torch.Tensor], int_mm: IntMM | None = None) -> Runner:
    """The runner of a 2-D ``qmatmul`` ([M, K] int8 in, [M, N] out)."""
    w_t = pack_weight(consts[1])
    epi = _Epilogue(node, consts)
    int_mm = int_mm or torch._int_mm

    def run(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
        a = args[0].contiguous()
        out = torch.empty((a.shape[0], w_t.shape[1]), device=a.device, dtype=epi.dtype)
        res = args[4] if len(args) > 4 else None
        epi(_mm(int_mm, a, w_t), args, res.contiguous() if res is not None else None, out)
        return [out]

    return run


@tactic(qconv, name="cublas_int8", devices=("cuda",), applies=_conv_applies)
def _qconv_cublas(node: Node, consts: dict[int, torch.Tensor], device: torch.device) -> Runner:
    return conv1x1_runner(node, consts)


@tactic(qgemm, name="cublas_int8", devices=("cuda",), applies=_gemm_applies)
def _qgemm_cublas(node: Node, consts: dict[int, torch.Tensor], device: torch.device) -> Runner:
    return gemm_runner(node, consts)
