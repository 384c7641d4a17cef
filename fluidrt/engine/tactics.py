"""Engine layers and their tactics on torch: the reference kernel, channels-last, oneDNN fused.

Each tactic's ``prepare(node, consts, device)`` does the one-time work (weight layout, prepacking)
and returns ``run(args) -> outputs``. ``consts`` maps input index -> tensor for constant inputs.
"""

from __future__ import annotations

from typing import Any

import torch

from fluidrt.engine.inplace import DONATE
from fluidrt.engine.layers import Runner, register_layer, tactic
from fluidrt.ir.graph import Node
from fluidrt.ops.registry import get_op

# ---------------------------------------------------------------------------------------------
# layers
conv = register_layer("conv2d", "fused_conv2d")
conv_transpose = register_layer("conv2d_transpose")
gemm = register_layer("matmul", "fused_matmul")
pool = register_layer("pool2d", "adaptive_pool2d")
norm = register_layer(
    "batch_norm", "layer_norm", "group_norm", "instance_norm", "lrn", "softmax", "log_softmax"
)
resize = register_layer("resize")
reduce = register_layer("reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod")
elementwise = register_layer(
    "add",
    "sub",
    "mul",
    "div",
    "pow",
    "max",
    "min",
    "neg",
    "abs",
    "exp",
    "log",
    "sqrt",
    "rsqrt",
    "reciprocal",
    "square",
    "sin",
    "cos",
    "tanh",
    "sigmoid",
    "erf",
    "floor",
    "ceil",
    "relu",
    "clip",
    "leaky_relu",
    "elu",
    "selu",
    "celu",
    "gelu",
    "silu",
    "swish",
    "hard_swish",
    "hard_sigmoid",
    "hard_tanh",
    "mish",
    "softplus",
    "softsign",
    "log_sigmoid",
    "prelu",
    "scale",
    "fused_elementwise",
)
cast = register_layer("cast")
movement = register_layer(
    "identity",
    "reshape",
    "flatten",
    "transpose",
    "squeeze",
    "unsqueeze",
    "concat",
    "split",
    "slice",
    "gather",
    "pad",
    "expand",
    "tile",
    "stack",
    "unstack",
    "flip",
    float_only=False,
)


def _bound_impl(node: Node) -> Any:
    opdef = get_op(node.op)
    attrs = opdef.resolve_attrs(node.attrs)
    return opdef.impl, attrs


def _as_list(out: Any) -> list[torch.Tensor]:
    return list(out) if isinstance(out, (tuple, list)) else [out]


# ---------------------------------------------------------------------------------------------
# the reference tactic: every layer can run its canonical implementation
@tactic(
    conv,
    conv_transpose,
    gemm,
    pool,
    norm,
    resize,
    reduce,
    elementwise,
    cast,
    movement,
    name="torch",
)
def _torch(node: Node, consts: dict[int, torch.Tensor], device: torch.device) -> Runner:
    impl, attrs = _bound_impl(node)

    def run(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
        return _as_list(impl(*args, **attrs))

    return run


# ---------------------------------------------------------------------------------------------
# convolution: channels-last weights, and oneDNN's fused conv + bias + activation (+ residual)
def _static_conv(node: Node) -> bool:
    return (
        node.attrs.get("auto_pad", "NOTSET") == "NOTSET"
        and node.inputs[1] is not None
        and node.inputs[1].is_const
        and len(node.inputs[1].shape or ()) == 4
    )


@tactic(conv, name="torch_channels_last", applies=_static_conv)
def _conv_channels_last(
    node: Node, consts: dict[int, torch.Tensor], device: torch.device
) -> Runner:
    impl, attrs = _bound_impl(node)
    w = consts[1].contiguous(memory_format=torch.channels_last)

    def run(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
        x = args[0].contiguous(memory_format=torch.channels_last)
        rest = list(args[2:])
        if len(rest) > 1 and rest[1] is not None:
            rest[1] = rest[1].contiguous(memory_format=torch.channels_last)
        return [impl(x, w, *rest, **attrs)]

    return run


# oneDNN post-ops fusable into the convolution, with the scalars they take
_ONEDNN_UNARY = {
    "none": ("none", lambda a: []),
    "relu": ("relu", lambda a: []),
    "sigmoid": ("sigmoid", lambda a: []),
    "tanh": ("tanh", lambda a: []),
    "silu": ("swish", lambda a: []),
    "hard_swish": ("hardswish", lambda a: []),
    "leaky_relu": ("leaky_relu", lambda a: [a.get("alpha", 0.01)]),
    "clip": ("hardtanh", lambda a: [a.get("min", float("-inf")), a.get("max", float("inf"))]),
    "gelu": ("gelu", lambda a: []),
}


def _onednn_post_op(node: Node) -> tuple[str, list, str]:
    """oneDNN's (attr, scalars, algorithm) for the node's fused activation; the algorithm
    argument picks exact (erf) GELU and is empty for the others."""
    attr, scalars_of = _ONEDNN_UNARY[node.attrs.get("activation", "none")]
    return attr, scalars_of(node.attrs.get("act_attrs", {})), "none" if attr == "gelu" else ""


def _onednn_activation_ok(node: Node) -> bool:
    """The fused activation has a oneDNN post-op with the same meaning."""
    act = node.attrs.get("activation", "none")
    a = node.attrs.get("act_attrs", {})
    if act not in _ONEDNN_UNARY or (act == "hard_swish" and a):
        return False
    if act == "gelu" and a.get("approximate"):
        return False
    if act == "clip":  # hardtanh needs finite bounds
        return abs(a.get("min", float("-inf"))) != float("inf") and abs(
            a.get("max", float("inf"))
        ) != float("inf")
    return True


def _onednn_applies(node: Node) -> bool:
    if not _static_conv(node) or not torch.backends.mkldnn.is_available():
        return False
    pads = node.attrs.get("pads", [0, 0, 0, 0])
    return (
        _onednn_activation_ok(node) and pads[:2] == pads[2:] and node.outputs[0].dtype == "float32"
    )


@tactic(conv, name="onednn_fused", devices=("cpu",), applies=_onednn_applies)
def _conv_onednn(node: Node, consts: dict[int, torch.Tensor], device: torch.device) -> Runner:
    a = node.attrs
    stride = list(a.get("strides", [1, 1]))
    dil = list(a.get("dilations", [1, 1]))
    groups = int(a.get("groups", 1))
    pad = list(a.get("pads", [0, 0, 0, 0]))[:2]
    in_shape = [int(d) if isinstance(d, int) else 1 for d in node.inputs[0].shape]
    w = torch._C._nn.mkldnn_reorder_conv2d_weight(
        consts[1].contiguous().to_mkldnn(), pad, stride, dil, groups, in_shape
    )
    bias = consts.get(2)
    attr, scalars, alg = _onednn_post_op(node)
    has_residual = len(node.inputs) > 3 and node.inputs[3] is not None
    pointwise = torch.ops.mkldnn._convolution_pointwise

    if not has_residual:

        def run(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
            x = args[0].contiguous(memory_format=torch.channels_last)
            b = bias if bias is not None else (args[2] if len(args) > 2 else None)
            return [pointwise(x, w, b, pad, stride, dil, groups, attr, scalars, alg)]

        return run
    unary = None if attr == "none" else attr
    if node.meta.get(DONATE):
        # the residual is dead after this layer (fluidrt.engine.inplace): accumulate into it
        # with oneDNN's sum post-op rather than reading it as a second source
        inplace = torch.ops.mkldnn._convolution_pointwise_.binary

        def run_inplace(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
            x = args[0].contiguous(memory_format=torch.channels_last)
            r = args[3].contiguous(memory_format=torch.channels_last)
            b = bias if bias is not None else args[2]
            inplace(r, x, w, b, pad, stride, dil, groups, "add", None, unary, scalars, alg)
            return [r]

        return run_inplace

    def run_residual(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
        x = args[0].contiguous(memory_format=torch.channels_last)
        r = args[3].contiguous(memory_format=torch.channels_last)
        b = bias if bias is not None else args[2]
        return [
            pointwise.binary(x, r, w, b, pad, stride, dil, groups, "add", None, unary, scalars, alg)
        ]

    return run_residual


# ---------------------------------------------------------------------------------------------
# GEMM with a constant weight: pre-transposed weight through F.linear (one BLAS call + bias)
def _weight_gemm(node: Node) -> bool:
    b = node.inputs[1]
    return (
        b is not None
        and b.is_const
        and len(b.shape or ()) == 2
        and not node.attrs.get("trans_a", False)
        and (len(node.inputs) < 4 or node.inputs[3] is None)
    )


@tactic(gemm, name="linear", applies=_weight_gemm)
def _gemm_linear(node: Node, consts: dict[int, torch.Tensor], device: torch.device) -> Runner:
    from fluidrt.ops.fused import apply_activation

    w = consts[1] if node.attrs.get("trans_b", False) else consts[1].t()
    w = w.contiguous()
    bias = consts.get(2)
    act = node.attrs.get("activation", "none")
    act_attrs = node.attrs.get("act_attrs", {})
    linear = torch.nn.functional.linear

    def run(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
        b = bias if bias is not None else (args[2] if len(args) > 2 else None)
        return [apply_activation(linear(args[0], w, b), act, act_attrs)]

    return run


def _onednn_linear_applies(node: Node) -> bool:
    if not _weight_gemm(node) or not torch.backends.mkldnn.is_available():
        return False
    return (
        _onednn_activation_ok(node)
        and node.outputs[0].dtype == "float32"
        and node.inputs[0].dtype == "float32"
    )


@tactic(gemm, name="onednn_linear", devices=("cpu",), applies=_onednn_linear_applies)
def _gemm_onednn(node: Node, consts: dict[int, torch.Tensor], device: torch.device) -> Runner:
    """oneDNN inner product on a weight reordered once into its blocked layout, activation
    fused as a post-op."""
    w = consts[1].t() if not node.attrs.get("trans_b", False) else consts[1]
    w = w.contiguous()
    packed = torch.ops.mkldnn._reorder_linear_weight(w, 1)
    bias = consts.get(2)
    attr, scalars, alg = _onednn_post_op(node)
    linear = torch.ops.mkldnn._linear_pointwise
    n_out = w.shape[0]

    def run(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
        x = args[0]
        b = bias if bias is not None else (args[2] if len(args) > 2 else None)
        y = linear(x.reshape(-1, x.shape[-1]).contiguous(), packed, b, attr, scalars, alg)
        return [y.reshape(*x.shape[:-1], n_out)]

    return run


# ---------------------------------------------------------------------------------------------
# CUDA: cuDNN's fused convolution + bias + ReLU and convolution + residual add + ReLU
def cudnn_fuses(node: Node) -> bool:
    """Whether cuDNN has a fused call for this convolution (bias + ReLU, or + residual + ReLU)."""
    if node.op != "fused_conv2d" or not _static_conv(node):
        return False
    if node.attrs.get("activation") != "relu" or node.attrs.get("act_attrs"):
        return False
    pads = node.attrs.get("pads", [0, 0, 0, 0])
    return pads[:2] == pads[2:] and node.outputs[0].dtype in ("float32", "float16", "bfloat16")


@tactic(conv, name="cudnn_fused", devices=("cuda",), applies=cudnn_fuses)
def _conv_cudnn_fused(node: Node, consts: dict[int, torch.Tensor], device: torch.device) -> Runner:
    a = node.attrs
    stride = list(a.get("strides", [1, 1]))
    dil = list(a.get("dilations", [1, 1]))
    groups = int(a.get("groups", 1))
    pad = list(a.get("pads", [0, 0, 0, 0]))[:2]
    w = consts[1].contiguous(memory_format=torch.channels_last)
    bias = consts.get(2)
    has_residual = len(node.inputs) > 3 and node.inputs[3] is not None

    def run(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
        x = args[0].contiguous(memory_format=torch.channels_last)
        b = bias if bias is not None else args[2]
        if has_residual:
            z = args[3].contiguous(memory_format=torch.channels_last)
            return [torch.cudnn_convolution_add_relu(x, w, z, 1.0, b, stride, pad, dil, groups)]
        return [torch.cudnn_convolution_relu(x, w, b, stride, pad, dil, groups)]

    return run


# ---------------------------------------------------------------------------------------------
# CUDA: a generated Triton kernel per fused elementwise chain (one read, one write)
def _pointwise_applies(node: Node) -> bool:
    from fluidrt.kernels.pointwise import MAX_RANK, supported

    return (
        node.op == "fused_elementwise"
        and supported(node.attrs.get("steps", []))
        and all(v is not None and (v.rank or 0) <= MAX_RANK for v in node.inputs)
        and node.outputs[0].dtype in ("float32", "float16", "bfloat16")
    )


@tactic(elementwise, name="triton_pointwise", devices=("cuda",), applies=_pointwise_applies)
def _triton_pointwise(node: Node, consts: dict[int, torch.Tensor], device: torch.device) -> Runner:
    from fluidrt.kernels.pointwise import PointwiseKernel
    from fluidrt.ops.dtypes import to_torch

    kernel = PointwiseKernel(node.attrs["steps"], len(node.inputs))
    out_dtype = to_torch(node.outputs[0].dtype)

    def run(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
        return [kernel(*args, out_dtype=out_dtype)]

    return run


# ---------------------------------------------------------------------------------------------
# CUDA: Triton pooling over channels-last tensors
def _pool_nhwc_applies(node: Node) -> bool:
    a = node.attrs
    x = node.inputs[0]
    if node.op != "pool2d" or x is None or x.rank != 4 or a.get("auto_pad", "NOTSET") != "NOTSET":
        return False
    kernel = list(a.get("kernel", []))
    pads = list(a.get("pads", [0, 0, 0, 0]))
    if len(kernel) != 2 or pads[:2] != pads[2:] or a.get("ceil_mode", False):
        return False
    if any(2 * p > k for p, k in zip(pads[:2], kernel, strict=True)):
        return False  # a window wholly in the padding: leave those corners to the reference
    return a.get("mode") in ("max", "avg") and node.outputs[0].dtype in (
        "float32",
        "float16",
        "bfloat16",
    )


@tactic(pool, name="triton_pool_nhwc", devices=("cuda",), applies=_pool_nhwc_applies)
def _triton_pool(node: Node, consts: dict[int, torch.Tensor], device: torch.device) -> Runner:
    from fluidrt.kernels.pool import pool2d_nhwc

    a = node.attrs
    kernel, strides, pads = a["kernel"], a.get("strides", [1, 1]), a.get("pads", [0, 0, 0, 0])
    mode, include = a["mode"], bool(a.get("count_include_pad", False))

    def run(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
        x = args[0].contiguous(memory_format=torch.channels_last)
        return [pool2d_nhwc(x, kernel, strides, pads, mode, include)]

    return run


def _global_pool_applies(node: Node) -> bool:
    x = node.inputs[0]
    size = node.attrs.get("output_size")
    sizes = [size] if isinstance(size, int) else list(size or [])
    return (
        node.op == "adaptive_pool2d"
        and x is not None
        and x.rank == 4
        and len(sizes) in (1, 2)
        and all(s == 1 for s in sizes)
        and node.attrs.get("mode") in ("max", "avg")
        and node.outputs[0].dtype in ("float32", "float16", "bfloat16")
    )


@tactic(pool, name="triton_global_pool", devices=("cuda",), applies=_global_pool_applies)
def _triton_global_pool(
    node: Node, consts: dict[int, torch.Tensor], device: torch.device
) -> Runner:
    from fluidrt.kernels.pool import global_pool_nhwc

    mode = node.attrs["mode"]

    def run(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
        return [global_pool_nhwc(args[0], mode)]

    return run
