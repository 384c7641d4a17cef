"""Paddle importers: quantization ops (PaddleSlim / ``paddle.static.quantization`` formats).

Paddle's scales are abs-max values: an 8-bit quantized value ``q`` stands for
``q * scale / qmax`` with ``qmax = 2**(bit_length - 1) - 1`` (127), unlike ONNX's
``value = q * scale``. Paddle's quantize ops output the integers as float. The importers map:

- ``quantize_linear`` (X, Scale, ZeroPoint; zero point ignored, as Paddle's kernel does) to the
  canonical ``quantize_linear(x, scale / qmax, dtype=int8)``; ``dequantize_linear`` to
  ``dequantize_linear(x, scale / qmax)``. A QDQ pair so imported is what ``fluidrt.quant.qdq``
  folds into INT8 layers; an int8 weight behind ``dequantize_linear`` is constant-folded.
  ``only_observer`` pairs only record a range in Paddle and pass the tensor through unchanged.
- ``fake_quantize_dequantize_*`` (one op = quantize then dequantize) to the same pair.
- ``fake_quantize_*`` (integers as float out) to quantize_linear then a cast back to float;
  ``fake_dequantize_max_abs`` / ``fake_channel_wise_dequantize_max_abs`` to multiplications by
  ``scale / max_range``. These (the pre-2.3 split format, dequantizing after the conv) run with
  Paddle's numerics but do not fold into INT8 layers.

Rounding: ``round_type`` 0 (ties to even, clamp to [-qmax-1, qmax]) is exactly the canonical
op's; ``round_type`` 1 clips x to [-scale, scale] first (so [-qmax, qmax]) and rounds ties away
from zero, which differs from ties-to-even only when x * qmax / scale is exactly k + 0.5.
Only 8-bit quantization is supported (int8 is what INT8 engines run).
"""

from __future__ import annotations

import numpy as np

from fluidrt.errors import UnsupportedOpError
from fluidrt.frontends.paddle.importer import ImportContext, paddle_op
from fluidrt.frontends.paddle.source import SourceOp
from fluidrt.ir.graph import Value

# PIR positions of the slots, from Paddle's op definitions (phi_ops_map)
_PIR_SLOTS = {
    "X": 0,
    "Scale": 1,
    "ZeroPoint": 2,
    "InScale": 1,
    "Scales": 1,
    "Y": 0,
    "Out": 0,
    "OutScale": 1,
}


def _slot(op: SourceOp, name: str) -> str | int:
    return name if op.format_legacy else _PIR_SLOTS[name]


def _qmax(ctx: ImportContext, op: SourceOp) -> float:
    """2**(bit_length-1) - 1, checked against Paddle's qmin/qmax attributes."""
    bits = int(op.attrs.get("bit_length", 8))
    qmax = int(op.attrs.get("qmax", 127))
    qmin = int(op.attrs.get("qmin", -128))
    if bits != 8 or qmax != 127 or qmin != -128:
        raise UnsupportedOpError(
            f"{ctx.where()}: only 8-bit quantization (bit_length=8, qmin=-128, qmax=127) is "
            f"supported, got bit_length={bits}, qmin={qmin}, qmax={qmax}"
        )
    return float(2 ** (bits - 1) - 1)


def _step(ctx: ImportContext, scale: Value, qmax: float) -> Value:
    """The ONNX-style scale (one quantization step): abs-max scale / qmax, in float32."""
    data = ctx.const_value(scale)
    if data is not None:
        step = (np.asarray(data, dtype=np.float32) / np.float32(qmax)).astype(np.float32)
        return ctx.const(step.reshape(-1) if step.size > 1 else step.reshape(()), "qstep")
    flat = ctx.emit("reshape", [scale], {"shape": [-1]})
    return ctx.emit("div", [flat, ctx.const(np.float32(qmax), "qmax")])


def _axis(op: SourceOp, x: Value, scale: Value, key: str = "quant_axis") -> int:
    """The channel axis of a per-channel scale (Paddle's quant_axis; -1 = per tensor)."""
    axis = int(op.attrs.get(key, -1))
    n = int(np.prod(scale.shape)) if scale.shape and all(d > 0 for d in scale.shape) else None
    if axis < 0 or n == 1:
        return 1
    return axis


def _quantize(
    ctx: ImportContext, op: SourceOp, x: Value, scale: Value, axis: int, round_type: int
) -> Value:
    """Paddle's ClipAndFakeQuant as a canonical int8 quantize_linear."""
    qmax = _qmax(ctx, op)
    if round_type == 1:  # clip to [-scale, scale] first (per tensor or per channel)
        bound = scale
        if scale.shape and int(np.prod(scale.shape)) > 1:
            shape = [1] * (x.rank or 0)
            shape[axis] = -1
            bound = ctx.emit("reshape", [scale], {"shape": shape})
        x = ctx.emit("clip", [x, ctx.emit("neg", [bound]), bound])
    elif round_type != 0:
        raise UnsupportedOpError(f"{ctx.where()}: round_type={round_type} (expected 0 or 1)")
    return ctx.emit(
        "quantize_linear", [x, _step(ctx, scale, qmax)], {"axis": axis, "dtype": "int8"}
    )


def _dequantize(ctx: ImportContext, q: Value, scale: Value, axis: int, qmax: float) -> Value:
    return ctx.emit(
        "dequantize_linear", [q, _step(ctx, scale, qmax)], {"axis": axis, "dtype": "float32"}
    )


def _as_float(ctx: ImportContext, q: Value) -> Value:
    """Paddle's fake_quantize output: the integers, as float32."""
    return ctx.emit("cast", [q], {"dtype": "float32"})


def _abs_max(ctx: ImportContext, x: Value, axis: int | None) -> Value:
    """max|x| over the whole tensor, or per channel along ``axis`` (as a 1-D tensor)."""
    a = ctx.emit("abs", [x])
    if axis is None:
        return ctx.emit("reduce_max", [a], {"axes": None, "keepdim": False})
    r = x.rank or 0
    return ctx.emit("reduce_max", [a], {"axes": [d for d in range(r) if d != axis]})


# ---- quantize_linear / dequantize_linear (PaddleSlim, onnx_format) ---------------------------
@paddle_op("quantize_linear", "pd_op.quantize_linear")
def _quantize_linear(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, _slot(op, "X"))
    scale = ctx.input(op, _slot(op, "Scale"))
    if op.attrs.get("only_observer", False):
        out = x
    else:
        axis = _axis(op, x, scale)
        out = _quantize(ctx, op, x, scale, axis, int(op.attrs.get("round_type", 0)))
    ctx.bind(op, _slot(op, "Y"), out)
    ctx.bind(op, "OutScale" if op.format_legacy else 3, scale)


@paddle_op("dequantize_linear", "pd_op.dequantize_linear")
def _dequantize_linear(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, _slot(op, "X"))
    scale = ctx.input(op, _slot(op, "Scale"))
    if op.attrs.get("only_observer", False):
        out = x
    else:
        out = _dequantize(ctx, x, scale, _axis(op, x, scale), _qmax(ctx, op))
    ctx.bind(op, _slot(op, "Y"), out)
    ctx.bind(op, "OutScale" if op.format_legacy else 3, scale)


# ---- fake_quantize_* (integers out as float) -------------------------------------------------
def _fake_scale(ctx: ImportContext, op: SourceOp, x: Value, channel_axis: int | None) -> Value:
    """InScale when the op reads a calibrated scale (inference), else the tensor's abs-max."""
    if op.type.removeprefix("pd_op.") in _WITH_IN_SCALE and ctx.has_input(op, _slot(op, "InScale")):
        return ctx.input(op, _slot(op, "InScale"))
    return _abs_max(ctx, x, channel_axis)


_WITH_IN_SCALE = (
    "fake_quantize_moving_average_abs_max",
    "fake_quantize_range_abs_max",
    "fake_quantize_dequantize_moving_average_abs_max",
)


@paddle_op(
    "fake_quantize_abs_max",
    "pd_op.fake_quantize_abs_max",
    "fake_quantize_moving_average_abs_max",
    "pd_op.fake_quantize_moving_average_abs_max",
    "fake_quantize_range_abs_max",
    "pd_op.fake_quantize_range_abs_max",
)
def _fake_quantize(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, _slot(op, "X"))
    scale = _fake_scale(ctx, op, x, None)
    q = _quantize(ctx, op, x, scale, 1, int(op.attrs.get("round_type", 1)))
    ctx.bind(op, _slot(op, "Out"), _as_float(ctx, q))
    ctx.bind(op, _slot(op, "OutScale"), scale)


@paddle_op("fake_channel_wise_quantize_abs_max", "pd_op.fake_channel_wise_quantize_abs_max")
def _fake_channel_quantize(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, _slot(op, "X"))
    axis = int(op.attrs.get("quant_axis", 0))
    scale = _abs_max(ctx, x, axis)
    q = _quantize(ctx, op, x, scale, axis, int(op.attrs.get("round_type", 1)))
    ctx.bind(op, _slot(op, "Out"), _as_float(ctx, q))
    ctx.bind(op, _slot(op, "OutScale"), scale)


# ---- fake_quantize_dequantize_* (a QDQ pair in one op) ---------------------------------------
@paddle_op(
    "fake_quantize_dequantize_abs_max",
    "pd_op.fake_quantize_dequantize_abs_max",
    "fake_quantize_dequantize_moving_average_abs_max",
    "pd_op.fake_quantize_dequantize_moving_average_abs_max",
)
def _fake_qdq(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, _slot(op, "X"))
    scale = _fake_scale(ctx, op, x, None)
    q = _quantize(ctx, op, x, scale, 1, int(op.attrs.get("round_type", 1)))
    ctx.bind(op, _slot(op, "Out"), _dequantize(ctx, q, scale, 1, _qmax(ctx, op)))
    ctx.bind(op, _slot(op, "OutScale"), scale)


@paddle_op(
    "fake_channel_wise_quantize_dequantize_abs_max",
    "pd_op.fake_channel_wise_quantize_dequantize_abs_max",
)
def _fake_channel_qdq(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, _slot(op, "X"))
    axis = int(op.attrs.get("quant_axis", 0))
    scale = _abs_max(ctx, x, axis)
    q = _quantize(ctx, op, x, scale, axis, int(op.attrs.get("round_type", 1)))
    ctx.bind(op, _slot(op, "Out"), _dequantize(ctx, q, scale, axis, _qmax(ctx, op)))
    ctx.bind(op, _slot(op, "OutScale"), scale)


# ---- fake_dequantize_* -----------------------------------------------------------------------
def _scaled(ctx: ImportContext, x: Value, scale: Value, divisor: float, axis: int | None) -> Value:
    """x * scale / divisor, the scale per tensor or per channel along ``axis``."""
    factor = ctx.emit("div", [scale, ctx.const(np.float32(divisor), "max_range")])
    n = int(np.prod(scale.shape)) if scale.shape else 1
    if axis is not None and n != 1:
        shape = [1] * (x.rank or 0)
        shape[axis] = -1
        factor = ctx.emit("reshape", [factor], {"shape": shape})
    else:
        factor = ctx.emit("reshape", [factor], {"shape": []})
    return ctx.emit("mul", [x, factor])


@paddle_op("fake_dequantize_max_abs", "pd_op.fake_dequantize_max_abs")
def _fake_dequantize(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, _slot(op, "X"))
    scale = ctx.input(op, _slot(op, "Scale"))
    out = _scaled(ctx, x, scale, float(op.attrs["max_range"]), None)
    ctx.bind(op, _slot(op, "Out"), out)


@paddle_op("fake_channel_wise_dequantize_max_abs", "pd_op.fake_channel_wise_dequantize_max_abs")
def _fake_channel_dequantize(ctx: ImportContext, op: SourceOp) -> None:
    """One scale: per channel along quant_axis. Two (weight and activation, after a conv or
    mul): the first per channel along x_num_col_dims, the second per tensor."""
    x = ctx.input(op, _slot(op, "X"))
    scales = ctx.inputs(op, _slot(op, "Scales"))
    bits = [int(b) for b in op.attrs.get("quant_bits", [8] * len(scales))]
    if len(scales) not in (1, 2) or len(bits) < len(scales):
        raise UnsupportedOpError(
            f"{ctx.where()}: expected 1 or 2 scales with as many quant_bits, got "
            f"{len(scales)} scale(s) and quant_bits={bits}"
        )
    if len(scales) == 1:
        axis = int(op.attrs.get("quant_axis", 0))
    else:
        axis = int(op.attrs.get("x_num_col_dims", 1))
    out = _scaled(ctx, x, scales[0], float(2 ** (bits[0] - 1) - 1), axis)
    if len(scales) == 2:
        out = _scaled(ctx, out, scales[1], float(2 ** (bits[1] - 1) - 1), None)
    ctx.bind(op, _slot(op, "Out"), out)
