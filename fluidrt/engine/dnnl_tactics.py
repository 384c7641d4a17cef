"""CPU convolution and pooling on oneDNN primitives made at build time (``fluidrt.engine.dnnl``).

The ``dnnl`` tactic offers every static fp32 convolution whose fused activation has a oneDNN
eltwise post-op of the same meaning; bias, residual add (in place when the residual is donated,
``fluidrt.engine.inplace``) and activation run inside the convolution. Activations are NHWC. A
primitive is made per input shape (the first run of a new batch size makes its own).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from fluidrt.engine import dnnl
from fluidrt.engine.inplace import DONATE
from fluidrt.engine.layers import Runner, tactic
from fluidrt.engine.tactics import _static_conv, conv, pool
from fluidrt.ir.graph import Node
from fluidrt.ops.registry import get_op


def eltwise_post_op(activation: str, act_attrs: dict[str, Any]) -> dnnl.Eltwise | None | bool:
    """oneDNN's post-op for a fused activation: an Eltwise, None for no activation, False when
    oneDNN has no op of exactly this meaning."""
    if activation == "none":
        return None
    a = get_op(activation).resolve_attrs(act_attrs)
    simple = {"relu": dnnl.RELU, "sigmoid": dnnl.LOGISTIC, "tanh": dnnl.TANH, "mish": dnnl.MISH}
    if activation in simple:
        return dnnl.Eltwise(simple[activation])
    if activation == "leaky_relu":
        return dnnl.Eltwise(dnnl.RELU, float(a["alpha"]))
    if activation == "elu":
        return dnnl.Eltwise(dnnl.ELU, float(a["alpha"]))
    if activation == "silu":
        return dnnl.Eltwise(dnnl.SWISH, 1.0)
    if activation == "swish":
        return dnnl.Eltwise(dnnl.SWISH, float(a["beta"]))
    if activation == "gelu":
        return dnnl.Eltwise(dnnl.GELU_TANH if a["approximate"] else dnnl.GELU_ERF)
    if activation == "hard_sigmoid":
        return dnnl.Eltwise(dnnl.HARDSIGMOID, float(a["slope"]), float(a["offset"]))
    if activation == "hard_swish":
        # x * clamp(x + offset, 0, threshold) / scale == x * clamp(x / s + o / s, 0, 1) iff t == s
        s, t, o = float(a["scale"]), float(a["threshold"]), float(a["offset"])
        return dnnl.Eltwise(dnnl.HARDSWISH, 1.0 / s, o / s) if t == s and s > 0 else False
    if activation in ("clip", "hard_tanh"):
        lo, hi = float(a["min"]), float(a["max"])
        if lo == 0.0 and hi == float("inf"):
            return dnnl.Eltwise(dnnl.RELU)
        finite = abs(lo) != float("inf") and abs(hi) != float("inf")
        return dnnl.Eltwise(dnnl.CLIP, lo, hi) if finite else False
    if activation == "softplus":
        # linear past the threshold: log1p(exp(t)) - t < 2^-24 * t for t >= 20
        beta, threshold = float(a["beta"]), float(a["threshold"])
        return dnnl.Eltwise(dnnl.SOFT_RELU, beta) if beta > 0 and threshold >= 20 else False
    return False


def _applies(node: Node) -> bool:
    if not _static_conv(node) or node.outputs[0].dtype != "float32":
        return False
    if node.inputs[0].dtype != "float32" or len(node.inputs[0].shape or ()) != 4:
        return False
    if len(node.inputs) > 2 and node.inputs[2] is not None and not node.inputs[2].is_const:
        return False
    a = node.attrs
    if eltwise_post_op(a.get("activation", "none"), a.get("act_attrs", {})) is False:
        return False
    return dnnl.available()


def nhwc_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    n, c, h, w = shape
    return (h * w * c, 1, w * c, c)


class PerShape:
    """A layer's primitive for each input shape it meets, made on first sight (at build for a
    static shape, so oneDNN's refusal shows there). ``make(x_shape, y_shape)`` builds one over
    NHWC tensors; ``out(x_shape)`` is the NCHW output shape."""

    def __init__(
        self,
        make: Callable[[tuple[int, ...], tuple[int, ...]], Any],
        out: Callable[[tuple[int, ...]], tuple[int, ...]],
        static_shape: Any,
    ) -> None:
        self._make, self._out = make, out
        self._prims: dict[tuple[int, ...], tuple[Any, tuple[int, ...]]] = {}
        if all(isinstance(d, int) and d > 0 for d in static_shape):
            self.get(tuple(static_shape))

    def get(self, shape: tuple[int, ...]) -> tuple[Any, tuple[int, ...]]:
        """(primitive, NHWC output shape to allocate) for an NCHW-shaped input."""
        entry = self._prims.get(shape)
        if entry is None:
            n, c, h, w = y = self._out(shape)
            entry = self._prims[shape] = (self._make(shape, y), (n, h, w, c))
        return entry


def _empty_like_output(nhwc: tuple[int, ...]) -> torch.Tensor:
    """An fp32 output tensor, NCHW-shaped over NHWC storage (channels-last)."""
    return torch.empty(nhwc, dtype=torch.float32).permute(0, 3, 1, 2)


def missing_library() -> str:
    return "" if dnnl.available() else f"no oneDNN library: {dnnl.unavailable_reason()}"


def conv_primitives(
    node: Node,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    eltwise: dnnl.Eltwise | None,
    accumulate: bool,
    residual: bool,
    int8: dnnl.Int8 | None = None,
    static_shape: Any = None,
) -> PerShape:
    """A convolution layer's oneDNN primitives per input shape, over NHWC tensors (geometry
    from the node's attributes; see ``dnnl.Conv2d`` for the rest). ``static_shape``: the NCHW
    input shape to make a primitive for at once, where it is not the node's input's."""
    a = node.attrs
    stride = tuple(int(s) for s in a.get("strides", [1, 1]))
    dil = tuple(int(d) for d in a.get("dilations", [1, 1]))
    groups = int(a.get("groups", 1))
    pads = tuple(int(p) for p in a.get("pads", [0, 0, 0, 0]))
    pt, pl, pb, pr = pads
    co, _, kh, kw = weight.shape

    def out(shape: tuple[int, ...]) -> tuple[int, ...]:
        n, _, h, w = shape
        ho = (h + pt + pb - dil[0] * (kh - 1) - 1) // stride[0] + 1
        wo = (w + pl + pr - dil[1] * (kw - 1) - 1) // stride[1] + 1
        return (n, co, ho, wo)

    def make(x: tuple[int, ...], y: tuple[int, ...]) -> dnnl.Conv2d:
        return dnnl.Conv2d(
            x,
            nhwc_strides(x),
            y,
            nhwc_strides(y),
            weight,
            bias,
            stride,
            pads,
            dil,
            groups,
            eltwise,
            accumulate=accumulate,
            residual=residual,
            int8=int8,
        )

    return PerShape(make, out, node.inputs[0].shape if static_shape is None else static_shape)


@tactic(conv, name="dnnl", devices=("cpu",), applies=_applies, missing=missing_library)
def _conv_dnnl(node: Node, consts: dict[int, torch.Tensor], device: torch.device) -> Runner:
    a = node.attrs
    eltwise = eltwise_post_op(a.get("activation", "none"), a.get("act_attrs", {}))
    has_residual = len(node.inputs) > 3 and node.inputs[3] is not None
    accumulate = bool(has_residual and node.meta.get(DONATE))
    prims = conv_primitives(
        node, consts[1], consts.get(2), eltwise, accumulate, has_residual and not accumulate
    )

    def run(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
        x = args[0].contiguous(memory_format=torch.channels_last)
        prim, nhwc = prims.get(tuple(x.shape))
        if accumulate:
            y = args[3].contiguous(memory_format=torch.channels_last)
            prim(x, y)
            return [y]
        y = _empty_like_output(nhwc)
        if has_residual:
            prim(x, y, args[3].contiguous(memory_format=torch.channels_last))
        else:
            prim(x, y)
        return [y]

    return run


def _pool_geometry(node: Node) -> tuple | None:
    """(algorithm, kernel, strides, pads) when oneDNN's pooling has the op's exact meaning: 2-D,
    fp32, floor mode (no window overhanging the padding) and no window mostly in the padding,
    which is where Paddle's rules and every library's agree. Decided without the spatial sizes,
    so a dynamic-shape engine's plan finds the same tactic at load."""
    a = node.attrs
    x = node.inputs[0]
    if node.op != "pool2d" or x.dtype != "float32" or node.outputs[0].dtype != "float32":
        return None
    if len(x.shape or ()) != 4 or a.get("auto_pad", "NOTSET") != "NOTSET":
        return None
    if a.get("ceil_mode") or "kernel" not in a:
        return None
    mode = a.get("mode", "max")
    if mode == "max":
        alg = dnnl.POOL_MAX
    elif mode == "avg":
        alg = (
            dnnl.POOL_AVG_INCLUDE_PADDING
            if a.get("count_include_pad")
            else dnnl.POOL_AVG_EXCLUDE_PADDING
        )
    else:
        return None
    kernel = [int(k) for k in a["kernel"]]
    strides = [int(s) for s in a.get("strides", [1, 1])]
    pads = [int(p) for p in a.get("pads", [0, 0, 0, 0])]
    if len(kernel) != 2 or len(strides) != 2 or len(pads) != 4:
        return None
    if any(2 * max(pb, pe) > k for k, pb, pe in zip(kernel, pads[:2], pads[2:], strict=True)):
        return None
    return alg, tuple(kernel), tuple(strides), tuple(pads)


def _pool_applies(node: Node) -> bool:
    return _pool_geometry(node) is not None and dnnl.available()


@tactic(pool, name="dnnl", devices=("cpu",), applies=_pool_applies, missing=missing_library)
def _pool_dnnl(node: Node, consts: dict[int, torch.Tensor], device: torch.device) -> Runner:
    alg, kernel, strides, pads = _pool_geometry(node)

    def out(shape: tuple[int, ...]) -> tuple[int, ...]:
        n, c, h, w = shape
        ho = (h + pads[0] + pads[2] - kernel[0]) // strides[0] + 1
        wo = (w + pads[1] + pads[3] - kernel[1]) // strides[1] + 1
        return (n, c, ho, wo)

    def make(x: tuple[int, ...], y: tuple[int, ...]) -> dnnl.Pool2d:
        return dnnl.Pool2d(x, nhwc_strides(x), y, nhwc_strides(y), alg, kernel, strides, pads)

    prims = PerShape(make, out, node.inputs[0].shape)

    def run(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
        x = args[0].contiguous(memory_format=torch.channels_last)
        prim, nhwc = prims.get(tuple(x.shape))
        y = _empty_like_output(nhwc)
        prim(x, y)
        return [y]

    return run
