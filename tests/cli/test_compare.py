"""``fluidrt compare`` as a subprocess: output statistics, exit codes, and ``--layerwise`` naming
the layer whose weight was deliberately broken (``--inject-fault``, a hidden test hook)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.cli.conftest import assert_one_line_error


def test_compare_backends_pass(cli, models) -> None:
    pytest.importorskip("paddle")
    r = cli(
        "compare",
        models["cnn"],
        "--backends",
        "native,engine,engine-fp16,paddle",
        "--batch",
        "3",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "fluidrt.compare/1" and doc["passed"] is True
    assert doc["reference"] == "native"
    assert [x["backend"] for x in doc["results"]] == ["engine", "engine-fp16", "paddle"]
    for res in doc["results"]:
        logits, label = res["outputs"]
        assert logits["shape"] == [3, 10] and logits["passed"]
        for key in ("max_abs", "mean_abs", "max_rel", "mean_rel", "rel_l2"):
            assert key in logits
        assert logits["top1_agreement"] == 1.0
        assert label["mismatches"] == 0  # argmax output: compared exactly
    fp16 = doc["results"][1]
    assert fp16["atol"] == pytest.approx(1e-2)  # looser default for reduced precision
    assert doc["results"][0]["outputs"][0]["max_abs"] < 1e-4


def test_compare_fails_outside_tolerance(cli, models) -> None:
    r = cli(
        "compare", models["cnn"], "--backends", "native,engine-fp16", "--atol", "0", "--rtol", "0"
    )
    assert r.returncode == 1, r.stderr
    assert "engine-fp16 vs native: FAIL" in r.stdout and "FAILED" in r.stdout
    assert "max abs" in r.stdout and "rel L2" in r.stdout and "top-1" in r.stdout


def test_layerwise_names_the_layer_with_the_wrong_weight(cli, models) -> None:
    """Polygraphy's workflow: a wrong weight in one layer of one backend; --layerwise must
    report that layer as the first divergence, and every layer before it as matching."""
    r = cli(
        "compare",
        models["cnn"],
        "--backends",
        "native,engine",
        "--layerwise",
        "--inject-fault",
        "fault_target_w",
        "--json",
    )
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    assert doc["fault"]["backend"] == "engine" and doc["fault"]["weights"] == ["fault_target_w"]
    (lw,) = doc["layerwise"]
    first = lw["first_divergence"]
    assert first is not None
    assert "fault_target_w" in first["inputs"]  # the conv that reads the broken weight
    assert first["op"] in ("conv2d", "fused_conv2d")
    assert first["layer"] in doc["fault"]["layers"]
    layers = [row["layer"] for row in lw["layers"]]
    before = lw["layers"][: layers.index(first["layer"])]
    assert before and all(row["passed"] for row in before)
    # the text report names it too
    r = cli(
        "compare",
        models["cnn"],
        "--backends",
        "native,engine",
        "--layerwise",
        "--inject-fault",
        "fault_target_w",
    )
    assert r.returncode == 1
    assert f"first divergence: layer {first['layer']} ({first['op']}" in r.stdout


def test_layerwise_without_fault_passes(cli, models) -> None:
    r = cli(
        "compare",
        models["elementwise"],
        "--backends",
        "native,engine",
        "--layerwise",
        "--min-subgraph-size",
        "1",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    (lw,) = json.loads(r.stdout)["layerwise"]
    assert lw["first_divergence"] is None and lw["compared"] >= 1


def _mlp_onnx(path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
        for n, s in (("W1", (8, 16)), ("B1", (16,)), ("W2", (16, 4)))
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["h0"], name="fc1"),
        helper.make_node("Add", ["h0", "B1"], ["h1"], name="bias1"),
        helper.make_node("Relu", ["h1"], ["h2"], name="relu1"),
        helper.make_node("MatMul", ["h2", "W2"], ["h3"], name="fc2"),
        helper.make_node("Relu", ["h3"], ["y"], name="relu2"),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # readable by older onnxruntime releases too
    onnx.save(model, str(path))


def test_layerwise_onnx_against_onnxruntime(cli, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    try:
        from fluidrt.frontends.onnx import load_onnx_model  # noqa: F401
    except ImportError:
        pytest.skip("the ONNX frontend is not available")
    model = tmp_path / "mlp.onnx"
    _mlp_onnx(model)
    r = cli(
        "compare",
        model,
        "--backends",
        "onnxruntime,native-noopt,engine",
        "--layerwise",
        "--batch",
        "2",
        "--json",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["passed"] and doc["reference"] == "onnxruntime"
    noopt = next(lw for lw in doc["layerwise"] if lw["backend"] == "native-noopt")
    assert noopt["compared"] == 5  # every ONNX node output is matched by name
    # a wrong W1 in fluidrt: the first layer (fc1, MatMul) diverges
    r = cli(
        "compare",
        model,
        "--backends",
        "onnxruntime,native-noopt",
        "--layerwise",
        "--inject-fault",
        "W1@native-noopt",
        "--json",
    )
    assert r.returncode == 1, r.stderr
    first = json.loads(r.stdout)["layerwise"][0]["first_divergence"]
    assert first["value"] == "h0" and "W1" in first["inputs"]


def test_compare_errors(cli, models, built_plan) -> None:
    plan, _ = built_plan
    assert_one_line_error(
        cli("compare", models["cnn"], "--backends", "native,tensorrt"), "unknown backend 'tensorrt'"
    )
    assert_one_line_error(
        cli("compare", models["cnn"], "--backends", "native,onnxruntime"), "ONNX model"
    )
    assert_one_line_error(cli("compare", plan), "plan")
    assert_one_line_error(
        cli("compare", models["cnn"], "--backends", "native,paddle", "--layerwise"),
        "--layerwise",
        "Paddle",
    )
