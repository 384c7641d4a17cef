"""The ONNX frontend: files, external data, shape folding, opset semantics and errors."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import fluidrt
import fluidrt.onnx.backend as backend
from fluidrt.errors import ConfigError, ModelFormatError, UnsupportedOpError
from fluidrt.frontends.onnx import MAX_OPSET, load_onnx_model, registered_onnx_ops

ort = pytest.importorskip("onnxruntime")


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def ort_run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def make_model(nodes, inputs, outputs, inits=(), opset: int = 17, **kw) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], **kw)
    model.ir_version = min(model.ir_version, 8)
    return model


def cnn_with_shape_chain(opset: int = 13) -> onnx.ModelProto:
    """Conv -> Relu -> Shape/Gather/Unsqueeze/Concat -> Reshape -> MatMul, dynamic batch."""
    rng = np.random.RandomState(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    fc = numpy_helper.from_array(rng.standard_normal((64, 5)).astype(np.float32), "fc")
    idx = numpy_helper.from_array(np.asarray(0, np.int64), "idx")
    minus1 = numpy_helper.from_array(np.asarray([-1], np.int64), "minus1")
    axes = numpy_helper.from_array(np.asarray([0], np.int64), "axes")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Shape", ["r"], ["s"]),
        helper.make_node("Gather", ["s", "idx"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["r", "target"], ["flat"]),
        helper.make_node("MatMul", ["flat", "fc"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 5])
    return make_model(nodes, [x], [y], [w, fc, idx, minus1, axes], opset=opset)


# ---- loading ------------------------------------------------------------------------------------
def test_config_runs_onnx_model_with_engine(tmp_path) -> None:  # noqa: ANN001
    model = cnn_with_shape_chain()
    path = tmp_path / "cnn.onnx"
    onnx.save(model, path)
    x = np.random.RandomState(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    (ref,) = ort_run(model, {"x": x})
    cfg = fluidrt.Config(str(path))
    cfg.enable_engine(max_batch_size=2, min_subgraph_size=1)
    pred = fluidrt.create_predictor(cfg)
    assert pred.get_input_names() == ["x"] and pred.get_output_names() == ["y"]
    (out,) = pred.run([x])
    assert rel_l2(out, ref) <= 1e-5
    # the shape chain was folded: one engine, no native nodes
    assert pred._runner.native_reasons == {}, pred.summary()


def test_shape_chain_folds_with_symbolic_batch() -> None:
    graph = load_onnx_model(cnn_with_shape_chain())
    assert graph.inputs[0].shape == ("N", 3, 8, 8)
    ops = [n.op for n in graph.nodes]
    assert "shape" not in ops and "gather" not in ops and "concat" not in ops, ops
    reshape = next(n for n in graph.nodes if n.op == "reshape")
    assert len(reshape.inputs) == 1 and reshape.attrs["shape"] in ([0, -1], [-1, 64])
    assert graph.outputs[0].shape == ("N", 5)
    # and the batch still varies at run time (engines off)
    model = cnn_with_shape_chain()
    for batch in (1, 3):
        x = np.random.RandomState(batch).standard_normal((batch, 3, 8, 8)).astype(np.float32)
        (out,) = backend.prepare(model, use_engine=False).run(x)
        assert rel_l2(out, ort_run(model, {"x": x})[0]) <= 1e-5


def test_runtime_shape_chain_when_not_foldable() -> None:
    """Reshape to a shape that mixes two dynamic dims: computed at run time, still correct."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Slice", ["s", "st", "en"], ["hw"]),
        helper.make_node("ReduceProd", ["hw"], ["n"], keepdims=1),
        helper.make_node("Concat", ["n", "minus1"], ["t"], axis=0),
        helper.make_node("Reshape", ["x", "t"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.asarray(v, np.int64), k)
        for k, v in (("st", [0]), ("en", [2]), ("minus1", [-1]))
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["a", "b", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    model = make_model(nodes, [x], [y], inits, opset=13)
    xv = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    out = backend.prepare(model).run([xv])[0]
    np.testing.assert_array_equal(out, xv.reshape(6, 4))


def test_external_data_with_relative_path(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    model = cnn_with_shape_chain()
    x = np.random.RandomState(2).standard_normal((1, 3, 8, 8)).astype(np.float32)
    (ref,) = ort_run(model, {"x": x})
    sub = tmp_path / "model_dir"
    sub.mkdir()
    path = sub / "model.onnx"
    onnx.save(
        model,
        path,
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    assert (sub / "weights.bin").is_file()
    monkeypatch.chdir(tmp_path)  # the data path is relative to the model file, not the cwd
    out = fluidrt.create_predictor(fluidrt.Config(os.path.join("model_dir", "model.onnx")))
    assert rel_l2(out.run([x])[0], ref) <= 1e-5
    os.remove(sub / "weights.bin")
    with pytest.raises(ModelFormatError, match="external data"):
        load_onnx_model(str(path))


def test_constant_nodes_and_initializer_inputs() -> None:
    nodes = [
        helper.make_node("Constant", [], ["two"], value_float=2.0),
        helper.make_node(
            "Constant",
            [],
            ["vec"],
            value=numpy_helper.from_array(np.asarray([1.0, 2.0, 3.0], np.float32)),
        ),
        helper.make_node("Mul", ["x", "two"], ["m"]),
        helper.make_node("Add", ["m", "vec"], ["a"]),
        helper.make_node("Add", ["a", "bias"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    bias_in = helper.make_tensor_value_info("bias", TensorProto.FLOAT, [3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    bias = numpy_helper.from_array(np.full(3, 10, np.float32), "bias")
    model = make_model(nodes, [x, bias_in], [y], [bias], opset=17)
    rep = backend.prepare(model)
    assert rep.input_names == ["x"]  # an input with an initializer is that constant
    xv = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(rep.run({"x": xv}).y, xv * 2 + [1, 2, 3] + 10)


@pytest.mark.parametrize("opset,axis", [(11, 1), (13, 1), (11, 2), (9, 0)])
def test_softmax_opset_semantics(opset: int, axis: int) -> None:
    """Before opset 13, Softmax/LogSoftmax see the input as 2-D [prod(:axis), prod(axis:)]."""
    for op in ("Softmax", "LogSoftmax", "Hardmax"):
        node = helper.make_node(op, ["x"], ["y"], axis=axis)
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 4])
        model = make_model([node], [x], [y], opset=opset)
        xv = np.random.RandomState(opset + axis).standard_normal((2, 3, 4)).astype(np.float32)
        out = backend.prepare(model).run(xv)[0]
        np.testing.assert_allclose(out, ort_run(model, {"x": xv})[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("ceil_mode,include_pad", [(0, 0), (1, 0), (1, 1), (0, 1)])
def test_pooling_ceil_mode_and_padding(ceil_mode: int, include_pad: int) -> None:
    for op in ("MaxPool", "AveragePool"):
        attrs = {
            "kernel_shape": [3, 3],
            "strides": [2, 2],
            "pads": [1, 0, 1, 1],
            "ceil_mode": ceil_mode,
        }
        if op == "AveragePool":
            attrs["count_include_pad"] = include_pad
        node = helper.make_node(op, ["x"], ["y"], **attrs)
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 7])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
        model = make_model([node], [x], [y], opset=19)
        xv = np.random.RandomState(3).standard_normal((1, 2, 8, 7)).astype(np.float32)
        out = backend.prepare(model).run(xv)[0]
        np.testing.assert_allclose(out, ort_run(model, {"x": xv})[0], rtol=1e-5, atol=1e-6)


def test_opset_resolution_picks_the_importer_version() -> None:
    ops = registered_onnx_ops()
    assert ops["Squeeze"] == [1, 13] and ops["Softmax"] == [1, 13]
    assert len(ops) > 150, len(ops)
    for opset in (11, 13):  # attribute axes (11) and input axes (13)
        if opset < 13:
            node = helper.make_node("ReduceSum", ["x"], ["y"], axes=[1], keepdims=0)
            inits = []
        else:
            node = helper.make_node("ReduceSum", ["x", "ax"], ["y"], keepdims=0)
            inits = [numpy_helper.from_array(np.asarray([1], np.int64), "ax")]
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
        model = make_model([node], [x], [y], inits, opset=opset)
        np.testing.assert_allclose(
            backend.prepare(model).run(np.ones((2, 3), np.float32))[0], [3.0, 3.0]
        )


# ---- the backend API ---------------------------------------------------------------------------
def test_backend_api_forms(tmp_path) -> None:  # noqa: ANN001
    nodes = [
        helper.make_node("Add", ["a", "b"], ["sum"]),
        helper.make_node("Mul", ["a", "b"], ["prod"]),
    ]
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [3]) for n in "ab"]
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [3]) for n in ("sum", "prod")]
    model = make_model(nodes, ins, outs)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    a, b = np.arange(3, dtype=np.float32), np.full(3, 2, np.float32)
    rep = backend.prepare(str(path), device="CPU", precision="fp32")
    r1 = rep.run([a, b])
    r2 = rep.run({"b": b, "a": a})
    assert r1.sum.tolist() == r1[0].tolist() == r2["sum"].tolist() == [2, 3, 4]
    assert r1.prod.tolist() == [0, 2, 4]
    assert backend.run_model(model, [a, b])[1].tolist() == [0, 2, 4]
    (res,) = backend.run_node(helper.make_node("Relu", ["x"], ["y"]), [np.asarray([-1.0, 2.0])])
    assert res.tolist() == [0.0, 2.0]
    assert backend.supports_device("CPU")
    assert backend.supports_device("CUDA") == __import__("torch").cuda.is_available()
    for prec in ("fp16", "bf16", fluidrt.PrecisionType.Half):
        assert backend.prepare(model, precision=prec).run([a, b])[0].shape == (3,)
    with pytest.raises(ConfigError, match="precision"):
        backend.prepare(model, precision="fp7")
    with pytest.raises(fluidrt.InputError, match="missing"):
        rep.run({"a": a})


# ---- bad input ----------------------------------------------------------------------------------
def test_garbage_bytes_file(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "garbage.onnx"
    path.write_bytes(b"\xff\xfe this is not a protobuf \x00\x01" * 10)
    with pytest.raises(ModelFormatError, match="garbage.onnx: not a valid ONNX model"):
        fluidrt.create_predictor(fluidrt.Config(str(path)))
    path.write_bytes(b"")
    with pytest.raises(ModelFormatError, match="empty"):
        load_onnx_model(str(path))
    with pytest.raises(ModelFormatError, match="not found"):
        load_onnx_model(str(tmp_path / "missing.onnx"))


def test_truncated_file(tmp_path) -> None:  # noqa: ANN001
    data = cnn_with_shape_chain().SerializeToString()
    for cut in (len(data) // 2, len(data) - 7, 40):
        path = tmp_path / f"cut{cut}.onnx"
        path.write_bytes(data[:cut])
        with pytest.raises(ModelFormatError, match="not a valid ONNX model|cannot be read"):
            fluidrt.create_predictor(fluidrt.Config(str(path)))


def test_unsupported_ops_listed_at_once_with_counts() -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("FancyOp", ["a"], ["b"]),
        helper.make_node("FancyOp", ["b"], ["c"]),
        helper.make_node("StringNormalizer", ["c"], ["d"]),
        helper.make_node("Inverse", ["d"], ["y"], domain="com.microsoft"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    model = make_model(nodes, [x], [y])
    with pytest.raises(UnsupportedOpError) as info:
        load_onnx_model(model)
    msg = str(info.value)
    assert "3 op type(s) are not supported" in msg
    assert "FancyOp x2" in msg and "StringNormalizer x1" in msg
    assert "com.microsoft::Inverse (domain not imported by the model) x1" in msg
    assert info.value.ops["FancyOp"] == 2


@pytest.mark.parametrize("opset", [5, MAX_OPSET + 1])
def test_unsupported_opset(opset: int) -> None:
    node = helper.make_node("Relu", ["x"], ["y"])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    graph = helper.make_graph([node], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    with pytest.raises(UnsupportedOpError, match=rf"opset {opset} \(fluidrt imports opsets"):
        load_onnx_model(model)


def test_op_introduced_after_the_models_opset() -> None:
    node = helper.make_node("Gelu", ["x"], ["y"])  # Gelu is opset 20
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    model = make_model([node], [x], [y], opset=17)
    with pytest.raises(UnsupportedOpError, match=r"Gelu \(opset 17; supported from opset 20\)"):
        load_onnx_model(model)


def test_errors_name_the_node() -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="first"),
        helper.make_node("Add", ["a", "ghost"], ["y"], name="adder"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    with pytest.raises(ModelFormatError, match=r"node #1 'adder' \(Add\): reads 'ghost'"):
        load_onnx_model(make_model(nodes, [x], [y]))
    node = helper.make_node("Pad", ["x", "p", "", "ax"], ["y"], name="padder")
    ins = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
        helper.make_tensor_value_info("p", TensorProto.INT64, [2]),
        helper.make_tensor_value_info("ax", TensorProto.INT64, [1]),
    ]
    with pytest.raises(UnsupportedOpError, match=r"node #0 'padder' \(Pad\)"):
        load_onnx_model(make_model([node], ins, [y], opset=18))
    xs = helper.make_tensor_value_info("x", TensorProto.STRING, [2])
    with pytest.raises(UnsupportedOpError, match="input 'x': element type string"):
        load_onnx_model(make_model([helper.make_node("Identity", ["x"], ["y"])], [xs], [y]))


def test_docs_list_every_onnx_op() -> None:
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "onnx.md").read_text()
    section = text.split("### Supported ONNX ops")[1].split("Not supported:")[0]
    ops = registered_onnx_ops()
    missing = [op for op in ops if not re.search(rf"(?<![\w:]){re.escape(op)}\b", section)]
    assert not missing, f"docs/onnx.md does not list {missing}"
    assert f"{len(ops)} op types" in section
