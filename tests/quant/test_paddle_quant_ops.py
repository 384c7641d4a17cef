"""Paddle quantization importers (both formats) vs Paddle's own kernels (``paddle._C_ops``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from fluidrt.frontends.paddle.importer import import_program
from fluidrt.frontends.paddle.source import SourceOp, SourceProgram, SourceVar
from fluidrt.ops.executor import NativeExecutor

paddle = pytest.importorskip("paddle")

X = np.random.default_rng(0).standard_normal((2, 4, 3, 3)).astype(np.float32)
X[0, 0, 0, :2] = [3.0, -3.0]  # beyond the calibrated scale: exercises the clipping
S = np.array([1.5], np.float32)
CH = np.linspace(1.0, 2.0, 4).astype(np.float32)


def _run(
    op_type: str,
    slots: list[tuple[str, str]],
    consts: dict[str, np.ndarray],
    attrs: dict[str, Any],
    legacy: bool,
    out_slot: str = "Out",
) -> np.ndarray:
    """Import one op (ProgramDesc named slots or PIR positions) and run it natively on X."""
    vars_ = {"x": SourceVar("x", "float32", list(X.shape))}
    for name, arr in consts.items():
        vars_[name] = SourceVar(name, str(arr.dtype), list(arr.shape), persistable=True)
    inputs = {
        (s if legacy else str(i)): [n] if isinstance(n, str) else n
        for i, (s, n) in enumerate(slots)
    }
    outputs = {(out_slot if legacy else "0"): ["y"]}
    vars_["y"] = SourceVar("y", "float32", None)
    t = op_type if legacy else f"pd_op.{op_type}"
    program = SourceProgram(
        "test",
        "pdmodel" if legacy else "pir",
        vars_,
        [SourceOp(t, inputs, outputs, attrs, 0)],
        ["x"],
        ["y"],
    )
    graph = import_program(program, consts)
    return NativeExecutor(graph, "cpu").run([torch.from_numpy(X)])[0].numpy()


def _ref(name: str, *args: Any) -> np.ndarray:
    out = getattr(paddle._C_ops, name)(*args)
    return np.asarray(out[0] if isinstance(out, (tuple, list)) else out)


x_t = paddle.to_tensor(X)
s_t = paddle.to_tensor(S)

CASES = [
    ("fake_quantize_abs_max", [("X", "x")], {}, {"bit_length": 8, "round_type": 1}, (x_t, 8, 1)),
    (
        "fake_quantize_dequantize_abs_max",
        [("X", "x")],
        {},
        {"bit_length": 8, "round_type": 1},
        (x_t, 8, 1),
    ),
    (
        "fake_quantize_moving_average_abs_max",
        [("X", "x"), ("InScale", "s")],
        {"s": S},
        {"bit_length": 8, "round_type": 1, "is_test": True, "moving_rate": 0.9},
        (x_t, s_t, None, None, 0.9, 8, True, 1),
    ),
    (
        "fake_quantize_range_abs_max",
        [("X", "x"), ("InScale", "s")],
        {"s": S},
        {"bit_length": 8, "round_type": 0, "is_test": True, "window_size": 10000},
        (x_t, s_t, None, 10000, 8, True, 0),
    ),
    (
        "fake_quantize_dequantize_moving_average_abs_max",
        [("X", "x"), ("InScale", "s")],
        {"s": S},
        {"bit_length": 8, "round_type": 1, "is_test": True, "moving_rate": 0.9},
        (x_t, s_t, None, None, 0.9, 8, True, 1),
    ),
    (
        "fake_channel_wise_quantize_abs_max",
        [("X", "x")],
        {},
        {"bit_length": 8, "round_type": 1, "quant_axis": 0, "is_test": False},
        (x_t, 8, 1, 0, False),
    ),
    (
        "fake_channel_wise_quantize_dequantize_abs_max",
        [("X", "x")],
        {},
        {"bit_length": 8, "round_type": 0, "quant_axis": 1},
        (x_t, 8, 0, 1),
    ),
    (
        "fake_dequantize_max_abs",
        [("X", "x"), ("Scale", "s")],
        {"s": S},
        {"max_range": 127.0},
        (x_t, s_t, 127.0),
    ),
    (
        "fake_channel_wise_dequantize_max_abs",
        [("X", "x"), ("Scales", ["c", "s"])],
        {"c": CH, "s": S},
        {"quant_bits": [8, 8], "quant_axis": 0, "x_num_col_dims": 1},
        (x_t, [paddle.to_tensor(CH), s_t], [8, 8], 0, 1),
    ),
    (
        "fake_channel_wise_dequantize_max_abs",
        [("X", "x"), ("Scales", ["c"])],
        {"c": CH[:2]},
        {"quant_bits": [8], "quant_axis": 0, "x_num_col_dims": 1},
        (x_t, [paddle.to_tensor(CH[:2])], [8], 0, 1),
    ),
]


@pytest.mark.parametrize("legacy", [True, False], ids=["pdmodel", "pir"])
@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{len(c[1][-1][1])}" for c in CASES])
def test_fake_quant_ops_match_paddle(case: tuple, legacy: bool) -> None:
    op_type, slots, consts, attrs, args = case
    got = _run(op_type, slots, consts, attrs, legacy)
    np.testing.assert_allclose(got, _ref(op_type, *args), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("legacy", [True, False], ids=["pdmodel", "pir"])
@pytest.mark.parametrize("axis", [-1, 1])
def test_quantize_dequantize_linear_match_paddle(legacy: bool, axis: int) -> None:
    scale = S if axis < 0 else CH
    attrs = {"quant_axis": axis, "bit_length": 8, "qmin": -128, "qmax": 127, "round_type": 0}
    attrs |= {"is_test": True, "only_observer": False}
    slots = [("X", "x"), ("Scale", "s"), ("ZeroPoint", "z")]
    consts = {"s": scale, "z": np.zeros(scale.shape, np.int32)}
    s_t, z_t = paddle.to_tensor(scale), paddle.to_tensor(consts["z"])
    kw = ("quant_axis", axis, "bit_length", 8, "qmin", -128, "qmax", 127, "round_type", 0)
    legacy_ops = paddle._legacy_C_ops
    q = _run("quantize_linear", slots, consts, attrs, legacy, "Y")
    ref_q = np.asarray(legacy_ops.quantize_linear(x_t, s_t, z_t, *kw, "is_test", True))
    np.testing.assert_array_equal(q, ref_q)
    ref_dq = np.asarray(legacy_ops.dequantize_linear(x_t, s_t, z_t, *kw))
    np.testing.assert_allclose(
        _run("dequantize_linear", slots, consts, attrs, legacy, "Y"), ref_dq, rtol=1e-6, atol=1e-7
    )
