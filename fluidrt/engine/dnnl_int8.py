"""CPU INT8 convolutions on oneDNN's int8 primitives (``fluidrt.engine.dnnl``): ``dnnl_int8``.

A ``qconv2d`` layer runs as one oneDNN convolution on int8 NHWC activations and int8 weights
(reordered once into the primitive's blocked layout; VNNI/AMX kernels where the CPU has them):
the dequantization (input scale times each output channel's weight scale), bias, residual,
activation and requantization run in the primitive, in the order ``fluidrt.ops.quantized``
specifies. An int8 residual of an int8 layer is accumulated through oneDNN's sum post-op scaled
by ``residual_scale``: in place when the residual is donated (``fluidrt.engine.inplace``), else
into a copy of it; for an fp32 output it is dequantized first (as the reference does). An fp32
residual is summed in place when donated, else read as a second fp32 source. Offered for int8
or fp32 outputs and activations with an exact oneDNN post-op (``dnnl_tactics``); the builder
times it against the other ``qconv2d`` tactics.

A ``qmatmul`` (a[..., K] @ w[N, K]^T, a classifier or a transformer's projection) runs as the same
primitive: a 1x1 convolution over [M, K, 1, 1], which is that GEMM with the same epilogue.
"""

from __future__ import annotations

import math

import torch

from fluidrt.engine import dnnl
from fluidrt.engine.dnnl_tactics import conv_primitives, eltwise_post_op, missing_library
from fluidrt.engine.inplace import DONATE
from fluidrt.engine.int8_tactics import qconv, qgemm
from fluidrt.engine.layers import Runner, tactic
from fluidrt.ir.graph import Node
from fluidrt.ops.quantized import RESIDUAL
from fluidrt.ops.registry import get_op


def _residual(node: Node) -> str | None:
    """None (no residual), "int8" or "float"."""
    if len(node.inputs) <= RESIDUAL or node.inputs[RESIDUAL] is None:
        return None
    return "int8" if node.inputs[RESIDUAL].dtype == "int8" else "float"


def _applies(node: Node) -> bool:
    a = node.attrs
    x, w = node.inputs[0], node.inputs[1]
    if x.dtype != "int8" or len(x.shape or ()) != 4 or a.get("auto_pad", "NOTSET") != "NOTSET":
        return False
    if not (w.is_const and len(w.shape or ()) == 4):
        return False
    return _epilogue_applies(node)


def _gemm_applies(node: Node) -> bool:
    x, w = node.inputs[0], node.inputs[1]
    if x.dtype != "int8" or len(x.shape or ()) < 2 or not (w.is_const and len(w.shape) == 2):
        return False
    return _epilogue_applies(node)


def _epilogue_applies(node: Node) -> bool:
    a = node.attrs
    if not node.inputs[2].is_const:
        return False
    if len(node.inputs) > 3 and node.inputs[3] is not None and not node.inputs[3].is_const:
        return False
    int8_out = a.get("out_scale") is not None
    if not int8_out and a.get("out_dtype", "float32") != "float32":
        return False
    residual = _residual(node)
    if residual == "int8" and a.get("residual_scale") is None:
        return False
    if residual == "float" and node.inputs[RESIDUAL].dtype != "float32":
        return False
    if eltwise_post_op(a.get("activation", "none"), a.get("act_attrs", {})) is False:
        return False
    return dnnl.available()


@tactic(qconv, name="dnnl_int8", devices=("cpu",), applies=_applies, missing=missing_library)
def _qconv_dnnl(node: Node, consts: dict[int, torch.Tensor], device: torch.device) -> Runner:
    return _runner(node, consts, consts[1], None)


@tactic(qgemm, name="dnnl_int8", devices=("cpu",), applies=_gemm_applies, missing=missing_library)
def _qgemm_dnnl(node: Node, consts: dict[int, torch.Tensor], device: torch.device) -> Runner:
    n, k = consts[1].shape
    shape = node.inputs[0].shape
    static = all(isinstance(d, int) and d > 0 for d in shape)
    rows = math.prod(shape[:-1]) if static else "M"  # "M": no primitive until a shape comes
    conv = _runner(node, consts, consts[1].reshape(n, k, 1, 1), (rows, k, 1, 1))

    def run(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
        x = args[0]
        lead = x.shape[:-1]
        flat = list(args)
        flat[0] = x.reshape(-1, k, 1, 1)
        if len(flat) > RESIDUAL and flat[RESIDUAL] is not None:
            flat[RESIDUAL] = flat[RESIDUAL].reshape(-1, n, 1, 1)
        (y,) = conv(flat)
        return [y.reshape(*lead, n)]

    return run


def _runner(
    node: Node,
    consts: dict[int, torch.Tensor],
    weight: torch.Tensor,
    static_shape: tuple[int, ...] | None,
) -> Runner:
    """The int8 convolution over NCHW-shaped, NHWC-stored tensors (``static_shape``: the input
    shape to make a primitive for at build, where it is not the node's input's)."""
    a = get_op(node.op).resolve_attrs(node.attrs)
    eltwise = eltwise_post_op(a["activation"], a["act_attrs"])
    residual = _residual(node)
    int8_out = a["out_scale"] is not None
    donated = bool(node.meta.get(DONATE))
    # how the residual gets in: summed into the output buffer by oneDNN's sum post-op (an int8
    # residual of an int8 output, scaled by residual_scale: the donated residual itself or a
    # copy; an fp32 output: the residual dequantized as the reference does, or a donated fp32
    # residual), else read as a second fp32 source
    dequantize = residual == "int8" and not int8_out
    accumulate = residual == "int8" or (residual == "float" and not int8_out and donated)
    in_place = accumulate and donated and not dequantize
    res_scale = float(a["residual_scale"]) if residual == "int8" else 1.0
    quant = dnnl.Int8(
        float(a["in_scale"]),
        consts[2].float(),
        float(a["out_scale"]) if int8_out else None,
        res_scale if residual == "int8" and int8_out else 1.0,
    )
    res_factor = torch.tensor(res_scale, dtype=torch.float32)
    out_dtype = torch.int8 if int8_out else torch.float32

    prims = conv_primitives(
        node,
        weight,
        consts.get(3),
        eltwise,
        accumulate,
        residual is not None and not accumulate,
        quant,
        static_shape,
    )

    def run(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
        x = args[0].contiguous(memory_format=torch.channels_last)
        prim, nhwc = prims.get(tuple(x.shape))
        if residual is None:
            y = torch.empty(nhwc, dtype=out_dtype).permute(0, 3, 1, 2)
            prim(x, y)
            return [y]
        r = args[RESIDUAL].contiguous(memory_format=torch.channels_last)
        if accumulate:
            if dequantize:
                y = r.float() * res_factor
            else:
                y = r if in_place else r.clone(memory_format=torch.channels_last)
            prim(x, y)
            return [y]
        y = torch.empty(nhwc, dtype=out_dtype).permute(0, 3, 1, 2)
        prim(x, y, r)
        return [y]

    return run
