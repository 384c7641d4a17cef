"""Elementwise-family Paddle layers exported as PIR and legacy programs: fluidrt vs Paddle
Inference (CPU), outputs compared by shape, dtype and value (integers and bools exactly)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import fluidrt
from fluidrt.frontends.paddle import registered_paddle_ops
from fluidrt.frontends.paddle.importer import import_program
from fluidrt.frontends.paddle.source import SourceOp, SourceProgram, SourceVar
from fluidrt.ops.executor import NativeExecutor
from tests.support.paddle_ref import FORMATS, export_layers, model_files, paddle_infer, rel_l2

pytest.importorskip("paddle")
layers_elementwise = pytest.importorskip("tests.frontends.layers_elementwise")

MODULE = "tests.frontends.layers_elementwise"
NAMES = list(layers_elementwise.CASES)
TOL = 1e-5


def _hard_swish_5_4_2(x: np.ndarray) -> list[np.ndarray]:
    x = x * np.float32(4.0)
    return [(x * np.clip(x + 2.0, 0.0, 5.0) / 4.0).astype(np.float32)]


# cases whose Paddle Inference result is wrong: checked against the op's formula instead
FORMULAS = {"hard_swish_attrs": _hard_swish_5_4_2}


@pytest.fixture(scope="module")
def exports():
    """fmt -> {factory: prefix or None}; each format is exported once, on first use."""
    cache: dict[str, dict[str, str | None]] = {}

    def get(fmt: str) -> dict[str, str | None]:
        if fmt not in cache:
            cache[fmt] = export_layers([f"{MODULE}:f_{n}" for n in NAMES], fmt)
        return cache[fmt]

    return get


def _inputs(name: str, batch: int, rng: np.random.Generator) -> list[np.ndarray]:
    _, specs, _ = layers_elementwise.CASES[name]
    arrays = []
    for shape, dtype, *kind in specs:
        dims = [batch if d == -1 else d for d in shape]
        if dtype.startswith("int"):
            arrays.append(rng.integers(-20, 21, size=dims).astype(dtype))
            continue
        x = rng.standard_normal(dims).astype(dtype)
        if kind == ["pos"]:
            x = np.abs(x) + np.float32(0.1)
        elif kind == ["unit"]:
            x = np.tanh(x)
        else:
            x.reshape(-1)[::7] = 0.0  # exact zeros: edges of relu, sign, shrinks, ...
        arrays.append(x)
    return arrays


def _check(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    """Shape and dtype first; integers and bools exactly; floats: the same NaN and inf
    positions, finite values by relative L2 <= TOL."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    if actual.dtype.kind in "iub":
        np.testing.assert_array_equal(actual, expected, err_msg=what)
        return
    a64, e64 = actual.astype(np.float64), expected.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(a64), np.isnan(e64), err_msg=f"{what}: NaN positions")
    np.testing.assert_array_equal(
        np.where(np.isinf(a64), a64, 0), np.where(np.isinf(e64), e64, 0), err_msg=f"{what}: infs"
    )
    finite = np.isfinite(e64)
    err = rel_l2(a64[finite], e64[finite])
    assert err <= TOL, f"{what}: relative L2 error {err:.3g} > {TOL:g}"


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", NAMES)
def test_elementwise_layer(exports, name: str, fmt: str) -> None:
    prefix = exports(fmt)[f"{MODULE}:f_{name}"]
    if prefix is None:
        pytest.skip(f"Paddle cannot export {name!r} as {fmt} (see the .failed file in .cache)")
    model, params = model_files(prefix, fmt)
    params = params if os.path.exists(params) else None
    predictor = fluidrt.create_predictor(fluidrt.Config(model, params))
    rng = np.random.default_rng(0)
    for batch in (1, 3):  # the batch dim is dynamic in every case
        inputs = _inputs(name, batch, rng)
        if name in FORMULAS:
            expected = FORMULAS[name](*inputs)
        else:
            expected = paddle_infer(model, params or "", inputs)
        actual = predictor.run(inputs)
        assert len(actual) == len(expected), f"{name}/{fmt}: number of outputs"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            _check(np.asarray(a), np.asarray(e), f"{name}/{fmt} batch {batch} output {i}")


def test_formula_cases_are_not_comparable() -> None:
    assert set(FORMULAS) == set(layers_elementwise.NOT_COMPARABLE)


def test_inplace_variants_are_registered() -> None:
    """PIR's in-place ops (trailing ``_``) share their out-of-place importer."""
    ops = registered_paddle_ops()
    for base in ("relu", "add", "scale", "clip", "sigmoid", "multiply", "exp", "cast", "pow"):
        assert ops[f"pd_op.{base}_"] is ops[f"pd_op.{base}"], base


# ---- hand-built programs: inputs Paddle's exporter only writes as constants ---------------


def _run_program(ops, vars_, feeds, fetches, inputs):
    fmt = "pir" if ops[0][0].startswith("pd_op.") else "pdmodel"
    program = SourceProgram(
        path="synthetic",
        format=fmt,
        vars={n: SourceVar(n, d, s) for n, (d, s) in vars_.items()},
        ops=[SourceOp(t, i, o, a, k) for k, (t, i, o, a) in enumerate(ops)],
        feeds=feeds,
        fetches=fetches,
    )
    graph = import_program(program, {})
    graph.verify()
    outs = NativeExecutor(graph).run([torch.from_numpy(a) for a in inputs])
    return [o.numpy() for o in outs]


X = np.random.default_rng(3).standard_normal((2, 3)).astype(np.float32)
S = np.array([1.5], np.float32)
V = {"x": ("float32", [-1, 3]), "s": ("float32", [1]), "t": ("float32", [1])}


@pytest.mark.parametrize("after", [True, False])
def test_scale_with_runtime_factor(after: bool) -> None:
    ops = [
        (
            "pd_op.scale",
            {"0": ["x"], "1": ["s"]},
            {"0": ["y"]},
            {"bias": 0.5, "bias_after_scale": after},
        )
    ]
    (y,) = _run_program(ops, V, ["x", "s"], ["y"], [X, S])
    expected = X * 1.5 + 0.5 if after else (X + 0.5) * 1.5
    np.testing.assert_allclose(y, expected, rtol=1e-6)


def test_clip_with_runtime_bounds() -> None:
    ops = [("pd_op.clip", {"0": ["x"], "1": ["s"], "2": ["t"]}, {"0": ["y"]}, {})]
    lo, hi = np.array([-0.3], np.float32), np.array([0.4], np.float32)
    (y,) = _run_program(ops, V, ["x", "s", "t"], ["y"], [X, lo, hi])
    np.testing.assert_array_equal(y, np.clip(X, -0.3, 0.4))


def test_legacy_pow_with_runtime_factor_tensor() -> None:
    ops = [("pow", {"X": ["x"], "FactorTensor": ["s"]}, {"Out": ["y"]}, {"factor": 1.0})]
    (y,) = _run_program(ops, V, ["x", "s"], ["y"], [np.abs(X), S])
    np.testing.assert_allclose(y, np.abs(X) ** 1.5, rtol=1e-6)


def test_pir_int_divide_declared_float_is_true_division() -> None:
    vars_ = {"a": ("int32", [-1, 3]), "b": ("int32", [3]), "y": ("float32", [-1, 3])}
    ops = [("pd_op.divide", {"0": ["a"], "1": ["b"]}, {"0": ["y"]}, {})]
    a = np.array([[7, -7, 5]], np.int32)
    b = np.array([2, 2, -3], np.int32)
    (y,) = _run_program(ops, vars_, ["a", "b"], ["y"], [a, b])
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, a / b, rtol=1e-6)


def test_legacy_int_divide_truncates() -> None:
    vars_ = {"a": ("int32", [-1, 3]), "b": ("int32", [3]), "y": ("int32", [-1, 3])}
    ops = [("elementwise_div", {"X": ["a"], "Y": ["b"]}, {"Out": ["y"]}, {"axis": -1})]
    a = np.array([[7, -7, 5]], np.int32)
    b = np.array([2, 2, -3], np.int32)
    (y,) = _run_program(ops, vars_, ["a", "b"], ["y"], [a, b])
    np.testing.assert_array_equal(y, np.array([[3, -3, -1]], np.int32))


def test_fluid_v1_isfinite_reduces_to_one_flag() -> None:
    ops = [
        ("isfinite", {"X": ["x"]}, {"Out": ["f"]}, {}),
        ("isnan", {"X": ["x"]}, {"Out": ["n"]}, {}),
    ]
    x = X.copy()
    x[0, 1] = np.nan
    f, n = _run_program(ops, V, ["x"], ["f", "n"], [x])
    assert f.shape == (1,) and f.dtype == np.bool_ and not f[0]
    assert n.shape == (1,) and n[0]
