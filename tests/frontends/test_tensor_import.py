"""Tensor-family Paddle layers exported as PIR and legacy programs: fluidrt vs Paddle Inference."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import fluidrt
from tests.frontends import layers_tensor
from tests.support.paddle_ref import FORMATS, assert_close, export_layers, model_files, paddle_infer

pytest.importorskip("paddle")

MODULE = "tests.frontends.layers_tensor"
NAMES = list(layers_tensor.CASES)


@pytest.fixture(scope="module")
def exports():
    """fmt -> {factory: prefix or None}; each format is exported once, on first use."""
    cache: dict[str, dict[str, str | None]] = {}

    def get(fmt: str) -> dict[str, str | None]:
        if fmt not in cache:
            cache[fmt] = export_layers([f"{MODULE}:f_{n}" for n in NAMES], fmt)
        return cache[fmt]

    return get


def _inputs(specs, batch: int, rng: np.random.Generator) -> list[np.ndarray]:
    arrays = []
    for shape, dtype in specs:
        dims = [(batch if i == 0 else 3 + batch) if d == -1 else d for i, d in enumerate(shape)]
        if dtype.startswith("int"):
            arrays.append(rng.integers(0, 5, size=dims).astype(dtype))
        else:
            arrays.append(rng.standard_normal(dims).astype(dtype))
    return arrays


def _reference(model: str, params: str | None, inputs: list[np.ndarray], onednn: bool):
    if onednn:
        return paddle_infer(model, params or "", inputs)
    import paddle.inference as pi

    cfg = pi.Config(model, params or "")
    cfg.disable_gpu()
    cfg.disable_mkldnn()
    cfg.set_cpu_math_library_num_threads(2)
    cfg.disable_glog_info()
    pred = pi.create_predictor(cfg)
    for name, arr in zip(pred.get_input_names(), inputs, strict=True):
        handle = pred.get_input_handle(name)
        handle.reshape(arr.shape)
        handle.copy_from_cpu(np.ascontiguousarray(arr))
    pred.run()
    return [pred.get_output_handle(n).copy_to_cpu() for n in pred.get_output_names()]


def _check(actual: np.ndarray, expected: np.ndarray, tol: float, what: str) -> None:
    if tol == 0.0:
        assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
        assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
        np.testing.assert_array_equal(actual, expected, err_msg=what)
    else:
        assert_close(actual, expected, tol, what)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", NAMES)
def test_tensor_layer(exports, name: str, fmt: str) -> None:
    prefix = exports(fmt)[f"{MODULE}:f_{name}"]
    if prefix is None:
        pytest.skip(f"Paddle cannot export {name!r} as {fmt} (see the .failed file in .cache)")
    model, params = model_files(prefix, fmt)
    params = params if os.path.exists(params) else None
    _, specs, tol, *rest = layers_tensor.CASES[name]
    onednn = (rest[0] if rest else {}).get("onednn", True)
    predictor = fluidrt.create_predictor(fluidrt.Config(model, params))
    dynamic = any(-1 in shape for shape, _ in specs)
    rng = np.random.default_rng(0)
    for batch in (1, 3) if dynamic else (1,):
        inputs = _inputs(specs, batch, rng)
        expected = _reference(model, params, inputs, onednn)
        actual = predictor.run(inputs)
        assert len(actual) == len(expected)
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            _check(a, e, tol, f"{name}/{fmt} batch {batch} output {i}")


# ---- synthetic programs: ops Paddle 3.3 can no longer export, and run-time shape operands ----


def _program(ops: list[tuple], feeds: dict, fetches: list[str], fmt: str = "pdmodel"):
    """A SourceProgram of ``(type, inputs, outputs, attrs)`` ops; feeds: name -> (shape, dtype)."""
    from fluidrt.frontends.paddle.source import SourceOp, SourceProgram, SourceVar

    vars_ = {n: SourceVar(n, d, list(s)) for n, (s, d) in feeds.items()}
    src_ops = [SourceOp(t, i, o, a, k) for k, (t, i, o, a) in enumerate(ops)]
    return SourceProgram("synthetic", fmt, vars_, src_ops, list(feeds), fetches)


def _run(program, *inputs: np.ndarray):
    from fluidrt.frontends.paddle.importer import import_program
    from fluidrt.ops.executor import NativeExecutor

    graph = import_program(program, {})
    graph.verify()
    outs = NativeExecutor(graph).run([torch.from_numpy(x) for x in inputs])
    return graph, [o.numpy() for o in outs]


def test_legacy_ops_without_a_paddle_33_kernel():
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 5)).astype("float32")
    ops = [
        ("pad2d", {"X": ["x"]}, {"Out": ["p1"]}, {"paddings": [1, 0, 2, 1], "mode": "reflect"}),
        (
            "pad2d",
            {"X": ["x"], "Paddings": []},
            {"Out": ["p2"]},
            {"paddings": [0, 2, 1, 1], "mode": "constant", "pad_value": 2.5, "data_format": "NHWC"},
        ),
        ("pad2d", {"X": ["x"]}, {"Out": ["p3"]}, {"paddings": [2, 1, 0, 2], "mode": "edge"}),
        ("unsqueeze", {"X": ["x"]}, {"Out": ["u"]}, {"axes": [1, -1]}),
        ("squeeze", {"X": ["u"]}, {"Out": ["s"]}, {"axes": [1, 5]}),
        ("flatten", {"X": ["x"]}, {"Out": ["f"]}, {"axis": 2}),
        ("fill_zeros_like", {"X": ["x"]}, {"Out": ["z"]}, {}),
        ("expand_as_v2", {"X": ["x"]}, {"Out": ["e"]}, {"target_shape": [3, 2, 3, 4, 5]}),
    ]
    fetches = ["p1", "p2", "p3", "s", "f", "z", "e"]
    graph, outs = _run(_program(ops, {"x": ([-1, 3, 4, 5], "float32")}, fetches), x)
    expected = [
        np.pad(x, [(0, 0), (0, 0), (1, 0), (2, 1)], mode="reflect"),
        np.pad(x, [(0, 0), (0, 2), (1, 1), (0, 0)], constant_values=2.5),
        np.pad(x, [(0, 0), (0, 0), (2, 1), (0, 2)], mode="edge"),
        x,
        x.reshape(6, 20),
        np.zeros_like(x),
        np.broadcast_to(x, (3, 2, 3, 4, 5)),
    ]
    for a, e in zip(outs, expected, strict=True):
        _check(a, e, 0.0, "legacy")
    assert graph.outputs[4].shape == ("N*3", 20)


def test_one_hot_v1():
    ids = np.array([[1], [0], [3]], dtype="int64")
    ops = [("one_hot", {"X": ["ids"]}, {"Out": ["o"]}, {"depth": 4, "dtype": 5})]
    _, (out,) = _run(_program(ops, {"ids": ([-1, 1], "int64")}, ["o"]), ids)
    _check(out, np.eye(4, dtype="float32")[ids[:, 0]], 0.0, "one_hot")


def test_reshape_from_a_feed_shape_runs_at_run_time():
    x = np.arange(24, dtype="float32").reshape(2, 12)
    ops = [("reshape2", {"X": ["x"], "Shape": ["s"]}, {"Out": ["y"]}, {"shape": []})]
    feeds = {"x": ([-1, 12], "float32"), "s": ([3], "int64")}
    graph, (out,) = _run(_program(ops, feeds, ["y"]), x, np.array([0, 3, -1], dtype="int64"))
    _check(out, x.reshape(2, 3, 4), 0.0, "reshape")
    assert graph.nodes[-1].op == "reshape" and len(graph.nodes[-1].inputs) == 2


def test_pir_reshape_from_a_vector_of_scalars_becomes_static():
    x = np.arange(36, dtype="float32").reshape(3, 12)
    ops = [
        ("pd_op.shape64", {"0": ["x"]}, {"0": ["s"]}, {}),
        ("pd_op.full_int_array", {}, {"0": ["b"]}, {"value": [0], "dtype": "int64"}),
        ("pd_op.full_int_array", {}, {"0": ["e"]}, {"value": [1], "dtype": "int64"}),
        (
            "pd_op.slice",
            {"0": ["s"], "1": ["b"], "2": ["e"]},
            {"0": ["n"]},
            {"axes": [0], "decrease_axis": [0]},
        ),
        ("pd_op.full", {}, {"0": ["c"]}, {"shape": [], "value": 12.0, "dtype": "int64"}),
        # the shape operand is a builtin.combine vector [n, e, c], as the PIR reader expands it
        ("pd_op.reshape", {"0": ["x"], "1": ["n", "e", "c"]}, {"0": ["y"]}, {}),
    ]
    program = _program(ops, {"x": ([-1, 12], "float32")}, ["y"], fmt="pir")
    graph, (out,) = _run(program, x)
    _check(out, x.reshape(3, 1, 12), 0.0, "reshape")
    reshape = next(n for n in graph.nodes if n.op == "reshape")
    assert reshape.attrs["shape"] == [0, 1, 12] and len(reshape.inputs) == 1
    assert graph.outputs[0].shape == ("N", 1, 12)
