"""``fluidrt build`` and ``fluidrt run`` as subprocesses on small exported Paddle models."""

from __future__ import annotations

import json

import numpy as np

from fluidrt.engine.plan import MAGIC
from tests.cli.conftest import assert_one_line_error
from tests.support.paddle_ref import assert_close, paddle_infer


def test_build_prints_summary_and_writes_plan(built_plan) -> None:
    plan, r = built_plan
    out = r.stdout
    assert plan.read_bytes().startswith(MAGIC)
    assert "built 1 engine(s) with" in out
    assert "plan written to" in out and str(plan) in out
    # per layer: fused ops, precision, tactic; memory; native node with its reason
    assert "fused_conv2d" in out and "conv2d+bias+relu" in out
    assert "precision" in out and "tactic" in out and "fp32" in out
    assert "activation arena" in out and "without reuse" in out
    assert "argmax" in out and "no engine layer for op 'argmax'" in out
    assert "fusions:" in out
    # progress on stderr, not stdout
    assert "tuning layers" in r.stderr and "tuning layers" not in out
    assert not list(plan.parent.glob(".tmp-*")), "atomic write left a temporary file"


def test_build_fp16_json_and_batch_range(cli, models, tmp_path) -> None:
    r = cli(
        "build",
        models["cnn"],
        "--precision",
        "fp16",
        "--min-shapes",
        "image:1x3x16x16",
        "--opt-shapes",
        "image:2x3x16x16",
        "--max-shapes",
        "image:3x3x16x16",
        "--save-plan",
        tmp_path / "fp16.plan",
        "--json",
        "-",
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "fluidrt.inspect/1" and doc["precision"] == "fp16"
    engine = next(s for s in doc["segments"] if s["kind"] == "engine")
    assert engine["max_batch_size"] == 3  # a batch-only range becomes the engine's max batch
    precisions = {la["precision"] for la in engine["layers"]}
    assert "fp16" in precisions
    assert doc["build"]["plan_bytes"] > 0 and (tmp_path / "fp16.plan").exists()


def test_build_refuses_unsupported_options(cli, models, tmp_path) -> None:
    r = cli(
        "build",
        models["cnn"],
        "--min-shapes",
        "image:1x3x16x16",
        "--opt-shapes",
        "image:1x3x32x32",
        "--max-shapes",
        "image:1x3x64x64",
    )
    assert_one_line_error(r, "'image' dim 2", "fixes it to 16")  # dynamic dims need a model's -1
    r = cli("build", models["cnn"], "--precision", "int8", "--calib-data", tmp_path)
    assert_one_line_error(r, "no images or .npy arrays")  # an empty calibration directory


def test_run_plan_saves_outputs(cli, built_plan, models, tmp_path) -> None:
    plan, _ = built_plan
    outs, ins = tmp_path / "out.npz", tmp_path / "in.npz"
    r = cli("run", plan, "--batch", "3", "--save-outputs", outs, "--save-inputs", ins)
    assert r.returncode == 0, r.stderr
    assert "v32" in r.stdout and "[3, 10]" in r.stdout and "float32" in r.stdout
    assert "min" in r.stdout and "mean" in r.stdout and "nan" in r.stdout
    got = np.load(outs)
    inputs = np.load(ins)
    assert list(inputs.files) == ["image"] and inputs["image"].shape == (3, 3, 16, 16)
    params = models["cnn"][: -len(".json")] + ".pdiparams"
    expected = paddle_infer(models["cnn"], params, [inputs["image"]])
    assert_close(got[got.files[0]], expected[0], 1e-5, "plan logits vs Paddle")
    np.testing.assert_array_equal(got[got.files[1]], expected[1])
    # the same inputs natively, from the model, give the same outputs
    r = cli(
        "run",
        models["cnn"],
        "--no-engine",
        "--inputs",
        ins,
        "--save-outputs",
        tmp_path / "native.npz",
    )
    assert r.returncode == 0, r.stderr
    assert "engines off" in r.stdout
    native = np.load(tmp_path / "native.npz")
    assert_close(native[native.files[0]], got[got.files[0]], 1e-5, "native vs plan")


def test_run_shapes_and_errors(cli, models, built_plan) -> None:
    plan, _ = built_plan
    r = cli("run", models["elementwise"], "--shapes", "x:2x3x4")
    assert r.returncode == 0, r.stderr
    assert "[2, 3, 4]" in r.stdout
    assert_one_line_error(
        cli("run", models["elementwise"], "--shapes", "x:2xAx4"),
        "--shapes",
        "not a positive integer",
    )
    assert_one_line_error(cli("run", plan, "--precision", "fp16"), "--precision", "plan")
