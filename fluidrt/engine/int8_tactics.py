"""Engine layers and tactics for INT8: qconv2d, qmatmul and the quantize/dequantize borders.

Tactics (the builder times the ones that apply and keeps the fastest):
- ``torch``: the canonical reference (float64 integer accumulation, exact).
- ``fp32_sim``: the same arithmetic with the integer products summed by an fp32 convolution/GEMM
  (exact while partial sums stay below 2**24; beyond that within fp32 rounding).
- ``x86_int8`` (CPU): torch's quantized convolution (fbgemm/oneDNN x86 engine, prepacked int8
  weights). Symmetric int8 activations map onto its quint8 with zero point 128; requantized
  int8 output with ReLU or no activation, no residual.
- ``triton_int8`` (CUDA): the int8 implicit-GEMM kernels in ``fluidrt.kernels.int8_conv``.
- ``triton`` (CUDA, quantize/dequantize borders): one pass of ``fluidrt.kernels.quantize``.
- ``chunked`` (CPU, quantize/dequantize borders): the reference's arithmetic over cache-sized
  chunks of the tensor's memory through one float32 scratch buffer, with no int64 temporaries.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import torch

from fluidrt.engine.layers import Runner, register_layer, tactic
from fluidrt.ir.graph import Node
from fluidrt.ops.dtypes import to_torch
from fluidrt.ops.quantized import epilogue, layer_scale
from fluidrt.ops.registry import get_op


def _border_check(node: Node) -> tuple[bool, str]:
    a = node.attrs
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        zp = node.inputs[2]
        if not zp.is_const or zp.data.any():
            return False, "zero point is not 0 (only symmetric int8 runs in engines)"
    scale = node.inputs[1]
    if scale is None or not scale.is_const or scale.data.size != 1:
        return False, "only a constant per-tensor scale runs in engines"
    if node.op == "quantize_linear" and a.get("dtype") != "int8":
        return False, f"quantizes to {a.get('dtype')}, engines use int8"
    if node.op == "dequantize_linear" and node.inputs[0].dtype != "int8":
        return False, f"dequantizes {node.inputs[0].dtype}, engines use int8"
    return True, ""


INT8_OPS = ("qconv2d", "qmatmul", "quantize_linear", "dequantize_linear")
qconv = register_layer("qconv2d", float_only=False)
qgemm = register_layer("qmatmul", float_only=False)
qborder = register_layer(
    "quantize_linear", "dequantize_linear", float_only=False, check=_border_check
)


def _attrs(node: Node) -> dict:
    return get_op(node.op).resolve_attrs(node.attrs)


@tactic(qconv, qgemm, qborder, name="torch")
def _reference(node: Node, consts: dict[int, torch.Tensor], device: torch.device) -> Runner:
    impl, attrs = get_op(node.op).impl, _attrs(node)

    def run(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
        return [impl(*args, **attrs)]

    return run


@tactic(qborder, name="triton", devices=("cuda",))
def _border_triton(node: Node, consts: dict[int, torch.Tensor], device: torch.device) -> Runner:
    """quantize_linear / dequantize_linear as one Triton pass (``fluidrt.kernels.quantize``: the
    same fp32 division or product and round-half-even as the reference, bit for bit) instead of
    the reference's chain of torch kernels and fp32 temporaries."""
    from fluidrt.kernels.quantize import dequantize, quantize

    scale = float(consts[1].reshape(-1)[0].item())
    if node.op == "quantize_linear":

        def run_quantize(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
            return [quantize(args[0], scale)]

        return run_quantize
    dtype = to_torch(node.outputs[0].dtype)

    def run_dequantize(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
        return [dequantize(args[0], scale, dtype)]

    return run_dequantize


CHUNK = 1 << 20  # elements per pass of the ``chunked`` border tactic (a 4 MiB scratch buffer)
_scratch = threading.local()


def _dense_flat(t: torch.Tensor) -> torch.Tensor | None:
    """A 1-D view of a dense tensor's memory in memory order (any dimension order), or None
    where the tensor has gaps or overlaps."""
    order = sorted(range(t.dim()), key=lambda d: t.stride(d), reverse=True)
    p = t.permute(order)
    return p.view(-1) if p.is_contiguous() else None


def _buffer(n: int) -> torch.Tensor:
    buf = getattr(_scratch, "buf", None)
    if buf is None:
        with torch.inference_mode(False):  # a normal tensor: usable in and out of inference mode
            buf = _scratch.buf = torch.empty(CHUNK, dtype=torch.float32)
    return buf[:n]


@tactic(qborder, name="chunked", devices=("cpu",))
def _border_chunked(node: Node, consts: dict[int, torch.Tensor], device: torch.device) -> Runner:
    """quantize_linear / dequantize_linear on the CPU: per chunk of ``CHUNK`` elements, the
    reference's fp32 division (or product), round-half-even and saturation in a scratch buffer
    that stays in cache, then one converting copy. Bit-identical to ``torch``; for a ResNet-sized
    activation ~15x faster than the reference's full-size fp32 and int64 temporaries."""
    scale = consts[1].reshape(()).to(torch.float32)
    prepared = _reference(node, consts, device)

    def reference(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
        return prepared([consts.get(i) if a is None else a for i, a in enumerate(args)])

    def chunks(
        args: list[torch.Tensor | None], dtype: torch.dtype, step: Any
    ) -> list[torch.Tensor]:
        x = args[0]
        xv = _dense_flat(x)
        if xv is None:
            return reference(args)
        out = torch.empty_like(x, dtype=dtype)  # a dense input's strides, so the same order
        ov = _dense_flat(out)
        n = xv.numel()
        for start in range(0, n, CHUNK):
            stop = min(n, start + CHUNK)
            step(xv[start:stop], _buffer(stop - start), ov[start:stop])
        return [out]

    if node.op == "quantize_linear":

        def quantize(src: torch.Tensor, buf: torch.Tensor, dst: torch.Tensor) -> None:
            torch.div(src, scale, out=buf)
            buf.round_().clamp_(-128, 127)
            dst.copy_(buf)

        def run_quantize(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
            x = args[0]
            if x.dtype != torch.float32:
                return reference(args)
            return chunks(args, torch.int8, quantize)

        return run_quantize
    dtype = to_torch(node.outputs[0].dtype)

    def dequantize(src: torch.Tensor, buf: torch.Tensor, dst: torch.Tensor) -> None:
        torch.mul(src, scale, out=buf)
        dst.copy_(buf)

    def run_dequantize(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
        return chunks(args, dtype, dequantize)

    return run_dequantize


def _epilogue_kw(a: dict) -> dict:
    return {
        "activation": a["activation"],
        "act_attrs": a["act_attrs"],
        "out_scale": a["out_scale"],
        "residual_scale": a["residual_scale"],
        "out_dtype": a["out_dtype"],
    }


@tactic(qconv, name="fp32_sim")
def _qconv_fp32(node: Node, consts: dict[int, torch.Tensor], device: torch.device) -> Runner:
    a = _attrs(node)
    w = consts[1].float().contiguous(memory_format=torch.channels_last)
    scale = layer_scale(a["in_scale"], consts[2])
    conv = get_op("conv2d").impl
    conv_kw = {k: a[k] for k in ("strides", "pads", "dilations", "groups", "auto_pad")}
    kw = _epilogue_kw(a)

    def run(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
        x = args[0].float().contiguous(memory_format=torch.channels_last)
        acc = conv(x, w, None, **conv_kw)
        bias = args[3] if len(args) > 3 else None
        res = args[4] if len(args) > 4 else None
        return [epilogue(acc, scale, bias, res, channel_dim=1, **kw)]

    return run


@tactic(qgemm, name="fp32_sim")
def _qgemm_fp32(node: Node, consts: dict[int, torch.Tensor], device: torch.device) -> Runner:
    a = _attrs(node)
    w = consts[1].float().contiguous()
    scale = layer_scale(a["in_scale"], consts[2])
    kw = _epilogue_kw(a)

    def run(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
        acc = torch.nn.functional.linear(args[0].float(), w)
        bias = args[3] if len(args) > 3 else None
        res = args[4] if len(args) > 4 else None
        return [epilogue(acc, scale, bias, res, channel_dim=acc.dim() - 1, **kw)]

    return run


# ---------------------------------------------------------------------------------------------
# CPU: torch's quantized convolution (x86 engine: fbgemm + oneDNN)
def _x86_applies(node: Node) -> bool:
    a = node.attrs
    pads = list(a.get("pads", [0, 0, 0, 0]))
    return (
        "x86" in torch.backends.quantized.supported_engines
        and a.get("out_scale") is not None
        and a.get("activation", "none") in ("none", "relu")
        and (len(node.inputs) < 5 or node.inputs[4] is None)
        and pads[:2] == pads[2:]
        and (len(node.inputs) < 4 or node.inputs[3] is None or node.inputs[3].is_const)
    )


def _to_quint8(x: torch.Tensor, scale: float) -> torch.Tensor:
    u = (x.to(torch.int16) + 128).to(torch.uint8).contiguous(memory_format=torch.channels_last)
    return torch._make_per_tensor_quantized_tensor(u, scale, 128)


@tactic(qconv, name="x86_int8", devices=("cpu",), applies=_x86_applies)
def _qconv_x86(node: Node, consts: dict[int, torch.Tensor], device: torch.device) -> Runner:
    a = _attrs(node)
    torch.backends.quantized.engine = "x86"
    k = consts[1].shape[0]
    wq = torch._make_per_channel_quantized_tensor(
        consts[1], consts[2].double(), torch.zeros(k, dtype=torch.long), 0
    )
    bias = consts.get(3)
    packed = torch.ops.quantized.conv2d_prepack(
        wq,
        bias.float() if bias is not None else None,
        list(a["strides"]),
        list(a["pads"][:2]),
        list(a["dilations"]),
        int(a["groups"]),
    )
    op = (
        torch.ops.quantized.conv2d_relu if a["activation"] == "relu" else torch.ops.quantized.conv2d
    )
    in_scale, out_scale = float(a["in_scale"]), float(a["out_scale"])

    def run(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
        y = op(_to_quint8(args[0], in_scale), packed, out_scale, 128)
        return [(y.int_repr().to(torch.int16) - 128).to(torch.int8)]

    return run


# ---------------------------------------------------------------------------------------------
# CUDA: Triton int8 kernels (fluidrt.kernels.int8_conv); absent Triton, the tactic never applies
_TRITON_ACTS = ("none", "relu", "relu6", "clip", "leaky_relu", "hard_swish", "sigmoid", "silu")


def _kernels():
    try:
        from fluidrt.kernels import int8_conv
    except ImportError:
        return None
    return int8_conv


def triton_activation(activation: str, act_attrs: dict) -> tuple[str, float, float] | None:
    """The kernel's activation name and scalars for a canonical activation, or None."""
    if activation == "clip":
        lo, hi = act_attrs.get("min", float("-inf")), act_attrs.get("max", float("inf"))
        if lo == 0.0 and hi == 6.0:
            return "relu6", 0.0, 0.0
        return "clip", float(lo), float(hi)
    if activation == "leaky_relu":
        return "leaky_relu", float(act_attrs.get("alpha", 0.01)), 0.0
    if activation == "hard_swish" and act_attrs:
        return None
    if activation == "swish" and act_attrs.get("beta", 1.0) == 1.0:
        return "silu", 0.0, 0.0
    return (activation, 0.0, 0.0) if activation in _TRITON_ACTS else None


def _triton_applies(node: Node) -> bool:
    a = node.attrs
    if (
        _kernels() is None
        or triton_activation(a.get("activation", "none"), a.get("act_attrs", {})) is None
    ):
        return False
    if node.op == "qconv2d":
        pads = list(a.get("pads", [0, 0, 0, 0]))
        return (int(a.get("groups", 1)) == 1 or _depthwise(node)) and pads[:2] == pads[2:]
    return node.inputs[0].rank == 2


def _depthwise(node: Node) -> bool:
    groups = int(node.attrs.get("groups", 1))
    w = node.inputs[1].shape or ()
    return groups > 1 and len(w) == 4 and w[0] == groups and w[1] == 1


def _kernel_epilogue(a: dict) -> dict:
    """The epilogue keywords of the Triton int8 kernels for a qconv2d / qmatmul node's attrs."""
    act, alpha, beta = triton_activation(a["activation"], a["act_attrs"])
    return {
        "activation": act,
        "act_alpha": alpha,
        "act_beta": beta,
        "residual_scale": a["residual_scale"],
        "out_scale": a["out_scale"],
        "out_dtype": _out_dtype(a),
    }


def _out_dtype(a: dict) -> torch.dtype:
    from fluidrt.ops.dtypes import to_torch

    return torch.int8 if a["out_scale"] is not None else to_torch(a["out_dtype"])


def meta_tensor(shape: Any) -> torch.Tensor | None:
    if shape is None or not all(isinstance(d, int) for d in shape):
        return None
    return torch.empty(shape, device="meta")


def _qconv_variants(node: Node) -> list[str]:
    """Kernel configs worth timing for this convolution's concrete shape (builder only)."""
    kernels = _kernels()
    x, w = meta_tensor(node.inputs[0].shape), meta_tensor(node.inputs[1].shape)
    if kernels is None or x is None or w is None or int(node.attrs.get("groups", 1)) != 1:
        return []
    a = node.attrs
    shape = kernels.conv_shape(
        x, w.permute(0, 2, 3, 1), a["strides"], a["pads"][:2], a["dilations"]
    )
    return [c.name for c in kernels.conv_configs(shape)]


def _qgemm_variants(node: Node) -> list[str]:
    kernels = _kernels()
    a, b = node.inputs[0].shape, node.inputs[1].shape
    if kernels is None or meta_tensor(a) is None or meta_tensor(b) is None or len(a) != 2:
        return []
    return [c.name for c in kernels.gemm_configs(a[0], b[0], a[1])]


def _config(kernels: Any, node: Node) -> Any:
    """The kernel config the builder chose (``triton_int8:<config>``), or the heuristic one."""
    name = node.meta.get("tactic_variant")
    return kernels.Int8Config.from_name(name) if name else None


@tactic(
    qconv,
    name="triton_int8",
    devices=("cuda",),
    applies=_triton_applies,
    variants=_qconv_variants,
)
def _qconv_triton(node: Node, consts: dict[int, torch.Tensor], device: torch.device) -> Runner:
    kernels = _kernels()
    a = _attrs(node)
    if int(a["groups"]) == 1:
        w = kernels.pack_conv_weight(consts[1])
        conv = functools.partial(kernels.conv2d_int8, config=_config(kernels, node))
    else:
        w, conv = kernels.pack_depthwise_weight(consts[1]), kernels.depthwise_conv2d_int8
    scale = layer_scale(a["in_scale"], consts[2]).contiguous()
    bias = consts[3].float().contiguous() if 3 in consts else None
    epi = _kernel_epilogue(a)
    stride, dil = tuple(a["strides"]), tuple(a["dilations"])
    pad = tuple(a["pads"][:2])

    def run(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
        x = args[0].contiguous(memory_format=torch.channels_last)
        res = args[4] if len(args) > 4 else None
        if res is not None:
            res = res.contiguous(memory_format=torch.channels_last)
        b = bias if bias is not None or len(args) < 4 or args[3] is None else args[3].float()
        return [conv(x, w, scale, b, stride, pad, dil, residual=res, **epi)]

    return run


@tactic(
    qgemm,
    name="triton_int8",
    devices=("cuda",),
    applies=_triton_applies,
    variants=_qgemm_variants,
)
def _qgemm_triton(node: Node, consts: dict[int, torch.Tensor], device: torch.device) -> Runner:
    kernels = _kernels()
    a = _attrs(node)
    config = _config(kernels, node)
    w = consts[1].contiguous()
    scale = layer_scale(a["in_scale"], consts[2]).contiguous()
    bias = consts[3].float().contiguous() if 3 in consts else None
    epi = _kernel_epilogue(a)

    def run(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
        b = bias if bias is not None or len(args) < 4 or args[3] is None else args[3].float()
        res = args[4] if len(args) > 4 else None
        return [
            kernels.gemm_int8(args[0].contiguous(), w, scale, b, residual=res, config=config, **epi)
        ]

    return run


import fluidrt.engine.int8_cublas  # noqa: E402, F401  (cublas_int8: torch._int_mm + epilogue)
import fluidrt.engine.int8_half  # noqa: E402, F401  (cudnn_fp16: an fp16 layer inside INT8 engines)
