"""Importers of ONNX scans, sorting, contractions, attention, losses, quantization, sampling."""

from __future__ import annotations

from fluidrt.frontends.onnx.context import OnnxContext, OnnxNode
from fluidrt.frontends.onnx.importer import onnx_dtype
from fluidrt.frontends.onnx.ops.common import emit_dynamic
from fluidrt.frontends.onnx.registry import onnx_op
from fluidrt.ir.graph import Value


def _scan(ctx: OnnxContext, node: OnnxNode, op: str) -> Value:
    attrs = {
        "exclusive": bool(node.attrs.get("exclusive", 0)),
        "reverse": bool(node.attrs.get("reverse", 0)),
    }
    return emit_dynamic(ctx, op, ctx.input(node, 0), attrs, [("axis", "int", ctx.input(node, 1))])


@onnx_op("CumSum", since=11)
def _cumsum(ctx: OnnxContext, node: OnnxNode) -> Value:
    return _scan(ctx, node, "cumsum")


@onnx_op("CumProd", since=26)
def _cumprod(ctx: OnnxContext, node: OnnxNode) -> Value:
    return _scan(ctx, node, "cumprod")


def _topk(ctx: OnnxContext, node: OnnxNode, k: int | Value) -> list[Value]:
    attrs = {
        "axis": int(node.attrs.get("axis", -1)),
        "largest": bool(node.attrs.get("largest", 1)),
        "sorted": bool(node.attrs.get("sorted", 1)),
    }
    x = ctx.input(node, 0)
    if isinstance(k, int):
        return ctx.emit("topk", [x], {"k": k, **attrs})
    return emit_dynamic(ctx, "topk", x, attrs, [("k", "int", k)], outputs=2)


@onnx_op("TopK", since=1)
def _topk_attr(ctx: OnnxContext, node: OnnxNode) -> list[Value]:
    return _topk(ctx, node, int(node.attrs["k"]))


@onnx_op("TopK", since=10)
def _topk_input(ctx: OnnxContext, node: OnnxNode) -> list[Value]:
    return _topk(ctx, node, ctx.input(node, 1))


@onnx_op("Einsum", since=12)
def _einsum(ctx: OnnxContext, node: OnnxNode) -> Value:
    vals = [v for v in ctx.inputs(node) if v is not None]
    return ctx.emit("einsum", vals, {"equation": str(node.attrs["equation"])})


# ---- attention --------------------------------------------------------------------------------
@onnx_op("Attention", since=23)
def _attention(ctx: OnnxContext, node: OnnxNode) -> list[Value]:
    a = node.attrs
    sp = a.get("softmax_precision")
    attrs = {
        "scale": None if a.get("scale") is None else float(a["scale"]),
        "is_causal": bool(a.get("is_causal", 0)),
        "q_num_heads": None if a.get("q_num_heads") is None else int(a["q_num_heads"]),
        "kv_num_heads": None if a.get("kv_num_heads") is None else int(a["kv_num_heads"]),
        "softcap": float(a.get("softcap", 0.0)),
        "qk_matmul_output_mode": int(a.get("qk_matmul_output_mode", 0)),
        "softmax_dtype": onnx_dtype(int(sp), ctx.where()) if sp else None,
        "left_window_size": int(a.get("left_window_size", -1)),
        "right_window_size": int(a.get("right_window_size", -1)),
    }
    ins = [ctx.optional(node, i) for i in range(min(len(node.inputs), 7))]
    while ins and ins[-1] is None:
        ins.pop()
    return ctx.emit("attention", ins, attrs)


# ---- losses -----------------------------------------------------------------------------------
def _loss_attrs(node: OnnxNode) -> dict:
    ignore = node.attrs.get("ignore_index")
    return {
        "reduction": str(node.attrs.get("reduction", "mean")),
        "ignore_index": None if ignore is None else int(ignore),
    }


@onnx_op("NegativeLogLikelihoodLoss", since=12)
def _nll_loss(ctx: OnnxContext, node: OnnxNode) -> Value:
    ins = [v for v in ctx.inputs(node)]
    return ctx.emit("nll_loss", ins, _loss_attrs(node))


@onnx_op("SoftmaxCrossEntropyLoss", since=12)
def _sce_loss(ctx: OnnxContext, node: OnnxNode) -> list[Value]:
    ins = [v for v in ctx.inputs(node)]
    return ctx.emit("softmax_cross_entropy", ins, _loss_attrs(node))


# ---- quantization -----------------------------------------------------------------------------
def _q_attrs(ctx: OnnxContext, node: OnnxNode) -> dict:
    return {
        "axis": int(node.attrs.get("axis", 1)),
        "block_size": int(node.attrs.get("block_size", 0)),
    }


@onnx_op("QuantizeLinear", since=10)
def _quantize(ctx: OnnxContext, node: OnnxNode) -> Value:
    x, scale, zp = ctx.input(node, 0), ctx.input(node, 1), ctx.optional(node, 2)
    out = node.attrs.get("output_dtype")
    dtype = zp.dtype if zp is not None else (onnx_dtype(int(out), ctx.where()) if out else "uint8")
    if dtype not in ("uint8", "int8", "int16"):
        raise ctx.unsupported(f"QuantizeLinear to {dtype} is not supported")
    if node.attrs.get("precision"):
        raise ctx.unsupported("QuantizeLinear's precision attribute is not supported")
    ins = [x, scale] + ([zp] if zp is not None else [])
    return ctx.emit("quantize_linear", ins, {**_q_attrs(ctx, node), "dtype": dtype})


@onnx_op("DequantizeLinear", since=10)
def _dequantize(ctx: OnnxContext, node: OnnxNode) -> Value:
    x, scale, zp = ctx.input(node, 0), ctx.input(node, 1), ctx.optional(node, 2)
    out = node.attrs.get("output_dtype")
    dtype = onnx_dtype(int(out), ctx.where()) if out else None
    ins = [x, scale] + ([zp] if zp is not None else [])
    return ctx.emit("dequantize_linear", ins, {**_q_attrs(ctx, node), "dtype": dtype})


# ---- sampling and windows ---------------------------------------------------------------------
_GRID_MODES = {
    "bilinear": "bilinear",
    "linear": "bilinear",
    "nearest": "nearest",
    "bicubic": "bicubic",
    "cubic": "bicubic",
}


@onnx_op("GridSample", since=16)
def _grid_sample(ctx: OnnxContext, node: OnnxNode) -> Value:
    mode = str(node.attrs.get("mode", "bilinear"))
    if mode not in _GRID_MODES:
        raise ctx.unsupported(f"GridSample mode {mode!r} is not supported")
    attrs = {
        "mode": _GRID_MODES[mode],
        "padding_mode": str(node.attrs.get("padding_mode", "zeros")),
        "align_corners": bool(node.attrs.get("align_corners", 0)),
    }
    return ctx.emit("grid_sample", [ctx.input(node, 0), ctx.input(node, 1)], attrs)


def _window(kind: str):  # noqa: ANN202
    def importer(ctx: OnnxContext, node: OnnxNode) -> Value:
        dtype = onnx_dtype(int(node.attrs.get("output_datatype", 1)), ctx.where())
        attrs = {"kind": kind, "periodic": bool(node.attrs.get("periodic", 1)), "dtype": dtype}
        return ctx.emit("window", [ctx.input(node, 0)], attrs)

    return importer


onnx_op("HannWindow", since=17)(_window("hann"))
onnx_op("HammingWindow", since=17)(_window("hamming"))
onnx_op("BlackmanWindow", since=17)(_window("blackman"))


# ---- recurrent layers -------------------------------------------------------------------------
def _recurrent(cell: str, n_outputs: int):  # noqa: ANN202
    def importer(ctx: OnnxContext, node: OnnxNode) -> list[Value]:
        a = node.attrs
        if int(a.get("input_forget", 0)):
            raise ctx.unsupported("LSTM with input_forget=1 is not supported")
        names = a.get("activations")
        alphas, betas = list(a.get("activation_alpha") or []), list(a.get("activation_beta") or [])
        acts = None
        if names:
            acts = [
                [n, alphas[i] if i < len(alphas) else None, betas[i] if i < len(betas) else None]
                for i, n in enumerate(names)
            ]
        attrs = {
            "cell": cell,
            "hidden_size": int(a["hidden_size"]),
            "direction": str(a.get("direction", "forward")),
            "activations": acts,
            "clip": None if a.get("clip") is None else float(a["clip"]),
            "linear_before_reset": bool(a.get("linear_before_reset", 0)),
            "layout": int(a.get("layout", 0)),
        }
        ins = [ctx.optional(node, i) for i in range(min(len(node.inputs), 8))]
        while ins and ins[-1] is None:
            ins.pop()
        outs = ctx.emit("recurrent", ins, attrs)
        return outs[:n_outputs]

    return importer


onnx_op("RNN", since=7)(_recurrent("rnn", 2))
onnx_op("GRU", since=7)(_recurrent("gru", 2))
onnx_op("LSTM", since=7)(_recurrent("lstm", 3))
