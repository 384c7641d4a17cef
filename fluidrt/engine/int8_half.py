"""An fp16 tactic for INT8 convolution layers: ``cudnn_fp16``.

INT8 is a permission, not an obligation (as in TensorRT): a ``qconv2d`` layer whose int8 kernels
are slower than fp16 on its real shape may run in fp16 instead (calibrated INT8 already keeps
image stems float, ``fluidrt.quant.lower``; this covers the int8 layers an explicitly quantized
model asks for, and any other shape where the tuner finds fp16 faster). The tactic dequantizes the
int8 input (``x_q * in_scale``), convolves in fp16 through cuDNN with the layer's dequantized
weights (``w_q * w_scale``) and its bias, ReLU and residual fused where cuDNN fuses them, and
requantizes the result (or casts it to the layer's float output dtype). The builder times it
beside the int8 tactics and keeps it only where it is faster.

Numerics: fp16 operands with fp32 accumulation instead of exact integer products; the requantized
output is within one quantization step of the exact layer nearly everywhere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fluidrt.engine.int8_tactics import qconv
from fluidrt.engine.layers import Runner, tactic
from fluidrt.ir.graph import Node
from fluidrt.ops.dtypes import to_torch
from fluidrt.ops.registry import get_op


def _applies(node: Node) -> bool:
    a = node.attrs
    pads = list(a.get("pads", [0, 0, 0, 0]))
    w = node.inputs[1].shape or ()
    return (
        a.get("activation", "none") in ("none", "relu")
        and a.get("auto_pad", "NOTSET") == "NOTSET"
        and len(pads) == 4
        and pads[:2] == pads[2:]
        and len(w) == 4
    )


@tactic(qconv, name="cudnn_fp16", devices=("cuda",), applies=_applies)
def _qconv_cudnn_fp16(node: Node, consts: dict[int, torch.Tensor], device: torch.device) -> Runner:
    from fluidrt.kernels.quantize import dequantize, quantize

    a = get_op(node.op).resolve_attrs(node.attrs)
    w_scale = consts[2].float().reshape(-1, 1, 1, 1)
    w = (consts[1].float() * w_scale).half().contiguous(memory_format=torch.channels_last)
    const_bias = consts[3].half().contiguous() if 3 in consts else None
    stride, dil = list(a["strides"]), list(a["dilations"])
    pad, groups = list(a["pads"][:2]), int(a["groups"])
    relu = a["activation"] == "relu"
    in_scale, out_scale, res_scale = a["in_scale"], a["out_scale"], a["residual_scale"]
    out_dtype = to_torch(a["out_dtype"])

    def run(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
        x = dequantize(args[0].contiguous(memory_format=torch.channels_last), in_scale)
        bias = const_bias
        if bias is None and len(args) > 3 and args[3] is not None:
            bias = args[3].half()
        res = args[4] if len(args) > 4 else None
        if res is not None:
            res = res.contiguous(memory_format=torch.channels_last)
            res = dequantize(res, res_scale) if res.dtype == torch.int8 else res.half()
        if res is not None and relu:
            y = torch.cudnn_convolution_add_relu(x, w, res, 1.0, bias, stride, pad, dil, groups)
        elif res is None and relu:
            y = torch.cudnn_convolution_relu(x, w, bias, stride, pad, dil, groups)
        else:
            y = F.conv2d(x, w, bias, stride, pad, dil, groups)
            if res is not None:
                y = y + res
        if out_scale is not None:
            return [quantize(y, out_scale)]
        return [y.to(out_dtype)]

    return run
