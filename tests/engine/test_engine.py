"""Engines through the public API: partitioning, native fallback, plans, the optim cache."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

import fluidrt
from fluidrt.engine.model import PartitionedModel
from fluidrt.errors import ConfigError, InputError, PlanError
from tests.support.paddle_ref import assert_close, export_layers, model_files, paddle_infer

SPLIT = "tests.engine.layers_engine:split_by_cumsum"
RESIDUAL = "tests.engine.layers_engine:residual"


@pytest.fixture(scope="module")
def models() -> dict[str, tuple[str, str]]:
    prefixes = export_layers([SPLIT, RESIDUAL], "pir")
    return {k: model_files(v, "pir") for k, v in prefixes.items()}


def _predictor(files: tuple[str, str], **engine) -> fluidrt.Predictor:
    cfg = fluidrt.Config(*files)
    cfg.set_cpu_math_library_num_threads(2)
    disabled = engine.pop("disabled", None)
    cfg.enable_engine(**{"max_batch_size": 4, **engine})
    if disabled:
        cfg.exp_disable_engine_ops(disabled)
    return fluidrt.create_predictor(cfg)


def _x(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _kinds(pred: fluidrt.Predictor) -> list[str]:
    return ["engine" if hasattr(s, "layout") else "native" for s in pred._runner.segments]


def test_engine_native_engine_split_matches_paddle(models) -> None:
    pred = _predictor(models[SPLIT])
    assert _kinds(pred) == ["engine", "native", "engine"]
    summary = pred.summary()
    assert "cumsum" in summary and "no engine layer" in summary
    x = _x((3, 3, 16, 16))
    (ref,) = paddle_infer(*models[SPLIT], [x])
    assert_close(pred.run([x])[0], ref, 1e-5)


def test_min_subgraph_size_keeps_small_clusters_native(models) -> None:
    pred = _predictor(models[SPLIT], min_subgraph_size=4)
    # the head is 3 fused convs (native now), the tail scale, conv, pool, flatten, fc (5 nodes)
    assert _kinds(pred) == ["native", "engine"]
    assert "min_subgraph_size=4" in pred.summary()
    x = _x((2, 3, 16, 16))
    (ref,) = paddle_infer(*models[SPLIT], [x])
    assert_close(pred.run([x])[0], ref, 1e-5)


def test_exp_disable_engine_ops_by_op_type(models) -> None:
    # a canonical op name, and a Paddle op type that reached the engine fused (matmul + bias)
    pred = _predictor(models[SPLIT], disabled=["adaptive_pool2d", "matmul"], min_subgraph_size=1)
    assert _kinds(pred) == ["engine", "native", "engine", "native", "engine", "native"]
    assert pred.summary().count("disabled by exp_disable_engine_ops") == 2
    x = _x((1, 3, 16, 16))
    (ref,) = paddle_infer(*models[SPLIT], [x])
    assert_close(pred.run([x])[0], ref, 1e-5)


def test_whole_residual_block_is_one_engine_with_fusions(models) -> None:
    # fused, the block is 2 nodes: below the default min_subgraph_size=3 it would stay native
    assert _kinds(_predictor(models[RESIDUAL])) == ["native"]
    pred = _predictor(models[RESIDUAL], min_subgraph_size=1)
    assert _kinds(pred) == ["engine"]
    engine = pred._runner.engines[0]
    ops = [n.op for n in engine.graph.nodes]
    assert ops == ["fused_conv2d", "fused_conv2d"]  # bn folded, relu and residual fused
    x = _x((4, 4, 8, 8))
    (ref,) = paddle_infer(*models[RESIDUAL], [x])
    assert_close(pred.run([x])[0], ref, 1e-5)


def test_max_batch_size_is_enforced(models) -> None:
    pred = _predictor(models[RESIDUAL], max_batch_size=2, min_subgraph_size=1)
    with pytest.raises(InputError, match="max_batch_size=2"):
        pred.run([_x((3, 4, 8, 8))])


def test_workspace_limit_is_a_clear_error(models) -> None:
    with pytest.raises(ConfigError, match="workspace_size"):
        _predictor(models[RESIDUAL], workspace_size=1024, min_subgraph_size=1)


def test_plan_round_trip_and_bad_plans(models) -> None:
    pred = _predictor(models[SPLIT])
    data = pred._runner.serialize()
    again = PartitionedModel.deserialize(data, torch.device("cpu"), "plan")
    x = torch.from_numpy(_x((2, 3, 16, 16)))
    torch.testing.assert_close(again.run([x])[0], pred._runner.run([x])[0])
    with pytest.raises(PlanError, match="truncated"):
        PartitionedModel.deserialize(data[: len(data) // 2], torch.device("cpu"), "plan")
    altered = bytearray(data)
    altered[-100] ^= 0xFF
    with pytest.raises(PlanError, match="altered"):
        PartitionedModel.deserialize(bytes(altered), torch.device("cpu"), "plan")
    with pytest.raises(PlanError, match="bad magic"):
        PartitionedModel.deserialize(b"garbage" * 10, torch.device("cpu"), "plan")
    foreign = data.replace(b'"device": "cpu"', b'"device": "gpu"', 1)  # same length
    with pytest.raises(PlanError, match="another device or version"):
        PartitionedModel.deserialize(foreign, torch.device("cpu"), "plan")


def test_use_static_cache_loads_without_building_and_keys_on_weights(models, tmp_path) -> None:
    model_file, params_file = models[RESIDUAL]
    for f in (model_file, params_file):
        shutil.copy(f, tmp_path)
    files = (
        str(tmp_path / os.path.basename(model_file)),
        str(tmp_path / os.path.basename(params_file)),
    )
    first = _predictor(files, use_static=True, min_subgraph_size=1)
    cache_dir = tmp_path / "_opt_cache"
    plans = sorted(cache_dir.glob("*.plan"))
    assert len(plans) == 1
    x = _x((2, 4, 8, 8))
    second = _predictor(files, use_static=True, min_subgraph_size=1)
    np.testing.assert_array_equal(second.run([x])[0], first.run([x])[0])
    assert sorted(cache_dir.glob("*.plan")) == plans  # loaded, not rebuilt
    # a corrupt entry is rebuilt, never trusted
    plans[0].write_bytes(plans[0].read_bytes()[:100])
    third = _predictor(files, use_static=True, min_subgraph_size=1)
    np.testing.assert_array_equal(third.run([x])[0], first.run([x])[0])
    assert plans[0].stat().st_size > 100
    # changing one weight (same shapes, same names) changes the key
    data = bytearray(open(files[1], "rb").read())
    data[-4:] = np.float32(123.0).tobytes()
    open(files[1], "wb").write(bytes(data))
    _predictor(files, use_static=True, min_subgraph_size=1)
    assert len(list(cache_dir.glob("*.plan"))) == 2


def test_int8_without_calibration_or_qdq_is_a_clear_error(models) -> None:
    # Int8 with use_calib_mode=False needs an explicitly quantized model
    with pytest.raises(ConfigError, match="quantiz"):
        _predictor(
            models[RESIDUAL],
            precision_mode=fluidrt.PrecisionType.Int8,
            use_calib_mode=False,
            min_subgraph_size=1,
        )
