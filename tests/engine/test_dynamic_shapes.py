"""Dynamic shapes: engines valid over min..max (tuned at opt), shape collection into Paddle's
shape_range_info.pbtxt, tuned builds from it, out-of-range errors and runtime rebuilds, plans."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import torch

import fluidrt
import fluidrt.engine.model as engine_model
from fluidrt.engine.cache import PlanCache
from fluidrt.engine.model import PartitionedModel
from fluidrt.engine.shape_range import (
    ShapeCollector,
    ShapeRange,
    ShapeRangeError,
    TensorShapeInfo,
    format_shape_range_info,
    parse_shape_range_info,
    read_shape_range_info,
)
from fluidrt.errors import ConfigError, InputError
from tests.support.paddle_ref import assert_close, export_layers, model_files, paddle_infer

SEG = "tests.engine.layers_dynamic:tiny_seg"
MOBILENET = "tests.engine.layers_dynamic:mobilenet_v3_small"
MIN, OPT, MAX = [1, 3, 16, 16], [1, 3, 32, 32], [2, 3, 64, 64]
SIZES = [(1, 3, 16, 16), (1, 3, 24, 40), (2, 3, 64, 64)]


@pytest.fixture(scope="module")
def seg() -> tuple[str, str]:
    return model_files(export_layers([SEG], "pir")[SEG], "pir")


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts engine builds (one entry per build_engine call)."""
    calls: list[int] = []
    real = engine_model.build_engine

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine_model, "build_engine", counting)
    return calls


def _x(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _config(files: tuple[str, str], **engine) -> fluidrt.Config:
    cfg = fluidrt.Config(*files)
    cfg.set_cpu_math_library_num_threads(2)
    cfg.enable_engine(**{"max_batch_size": 2, **engine})
    return cfg


def _ranged(files: tuple[str, str], **engine) -> fluidrt.Config:
    cfg = _config(files, **engine)
    cfg.set_trt_dynamic_shape_info({"x": MIN}, {"x": MAX}, {"x": OPT})
    return cfg


def _check(pred: fluidrt.Predictor, files: tuple[str, str], x: np.ndarray) -> None:
    ref = paddle_infer(*files, [x], onednn=False)
    for got, want in zip(pred.run([x]), ref, strict=True):
        assert_close(got, want, 1e-5, f"input {x.shape}")


def test_one_build_serves_three_sizes_within_the_range(seg, builds) -> None:
    pred = fluidrt.create_predictor(_ranged(seg))
    engines = pred._runner.engines
    assert len(builds) == len(engines) >= 2  # an engine also runs after the native upsample
    assert all(e.ranges for e in engines)
    assert pred._runner.ranges["x"] == ShapeRange(tuple(MIN), tuple(OPT), tuple(MAX))
    for i, shape in enumerate(SIZES):
        _check(pred, seg, _x(shape, i))
    assert len(builds) == len(engines)  # no rebuild


def test_out_of_range_input_is_a_clear_error(seg) -> None:
    pred = fluidrt.create_predictor(_ranged(seg))
    with pytest.raises(InputError) as err:
        pred.run([_x((1, 3, 80, 16))])
    msg = str(err.value)
    assert "'x'" in msg and "[1, 3, 80, 16]" in msg and "16..64" in msg and "dim 2 is 80" in msg
    with pytest.raises(InputError, match="dim 0 is 3, range 1..2"):
        pred.run([_x((3, 3, 16, 16))])


def test_range_validation_errors(seg) -> None:
    cfg = _config(seg)
    with pytest.raises(ConfigError, match="no opt shape"):
        cfg.set_trt_dynamic_shape_info({"x": MIN}, {"x": MAX}, {})
    with pytest.raises(ConfigError, match="min <= opt <= max"):
        cfg.set_trt_dynamic_shape_info({"x": MIN}, {"x": MAX}, {"x": [1, 3, 8, 32]})
    with pytest.raises(ConfigError, match="different ranks"):
        cfg.set_trt_dynamic_shape_info({"x": MIN}, {"x": MAX}, {"x": [1, 3, 32]})
    bad = [
        ({"x": [1, 3, 16]}, {"x": [1, 3, 16]}, {"x": [1, 3, 16]}, "rank 3"),
        ({"x": [1, 4, 16, 16]}, {"x": [1, 4, 64, 64]}, {"x": [1, 4, 32, 32]}, "fixes it to 3"),
        ({"y": MIN}, {"y": MAX}, {"y": OPT}, "'y', which is not an input"),
    ]
    for lo, hi, opt, match in bad:
        cfg = _config(seg)
        cfg.set_trt_dynamic_shape_info(lo, hi, opt)
        with pytest.raises(ConfigError, match=match):
            fluidrt.create_predictor(cfg)


def test_collect_then_tuned_build_then_runtime_rebuild(seg, builds, tmp_path, caplog) -> None:
    path = str(tmp_path / "shape_range_info.pbtxt")
    cfg = _config(seg)
    cfg.collect_shape_range_info(path)
    assert cfg.shape_range_info_collected() and cfg.shape_range_info_path() == path
    pred = fluidrt.create_predictor(cfg)
    assert not builds  # collection runs natively
    for i, shape in enumerate([(1, 3, 16, 24), (1, 3, 32, 32), (1, 3, 32, 32)]):
        _check(pred, seg, _x(shape, i))
    infos = read_shape_range_info(path)
    assert infos["x"].shape == ShapeRange((1, 3, 16, 24), (1, 3, 32, 32), (1, 3, 32, 32))
    assert len(infos) > 10  # every tensor, not only the input

    cfg = _config(seg)
    cfg.enable_tuned_dynamic_shape(path, allow_build_at_runtime=True)
    pred = fluidrt.create_predictor(cfg)
    built = len(builds)
    assert built >= 2
    _check(pred, seg, _x((1, 3, 20, 28)))
    assert len(builds) == built
    with caplog.at_level(logging.WARNING, logger="fluidrt.engine.model"):
        _check(pred, seg, _x((1, 3, 48, 20)))
    assert len(builds) > built
    warning = "\n".join(r.getMessage() for r in caplog.records)
    assert "'x'" in warning and "[1, 3, 48, 20]" in warning
    assert "[1, 3, 16..32, 24..32]" in warning and "[1, 3, 16..48, 20..32]" in warning
    assert read_shape_range_info(path)["x"].shape == ShapeRange(
        (1, 3, 16, 20), (1, 3, 32, 32), (1, 3, 48, 32)
    )
    rebuilt = len(builds)
    _check(pred, seg, _x((1, 3, 40, 30)))  # inside the widened range: no new build
    assert len(builds) == rebuilt

    cfg = _config(seg)
    cfg.enable_tuned_dynamic_shape(path, allow_build_at_runtime=False)
    pred = fluidrt.create_predictor(cfg)
    with pytest.raises(ShapeRangeError, match="range 16..48"):
        pred.run([_x((1, 3, 64, 20))])


def test_tuned_build_from_a_file_paddle_collected(seg, tmp_path) -> None:
    import paddle.inference as pi

    path = str(tmp_path / "paddle_shapes.pbtxt")
    cfg = pi.Config(*seg)
    cfg.disable_gpu()
    cfg.disable_mkldnn()
    cfg.disable_glog_info()
    cfg.collect_shape_range_info(path)
    pred = pi.create_predictor(cfg)
    for shape in [(1, 3, 16, 16), (2, 3, 48, 40), (1, 3, 32, 32), (1, 3, 32, 32)]:
        h = pred.get_input_handle("x")
        h.reshape(shape)
        h.copy_from_cpu(np.zeros(shape, np.float32))
        pred.run()
    del pred
    text = open(path).read()
    infos = parse_shape_range_info(text, path)
    assert format_shape_range_info(infos) == text  # Paddle's text, byte for byte
    assert infos["x"].shape == ShapeRange((1, 3, 16, 16), (1, 3, 32, 32), (2, 3, 48, 40))
    cfg = _config(seg)
    cfg.enable_tuned_dynamic_shape(path, allow_build_at_runtime=False)
    ours = fluidrt.create_predictor(cfg)
    assert len(ours._runner.engines) >= 2
    for i, shape in enumerate([(2, 3, 48, 40), (1, 3, 24, 16)]):
        _check(ours, seg, _x(shape, i))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("shape_range_info {\n  name: x\n}", "expected a quoted tensor name"),
        ('shape_range_info {\n  name: "x"\n  min_shape: 1\n', "expected '}'"),
        ('shape_info {\n  name: "x"\n}', "unknown top-level field 'shape_info'"),
        ('shape_range_info {\n  name: "x"\n  mid_shape: 1\n}', "unknown field 'mid_shape'"),
        ("shape_range_info {\n  min_shape: 1\n  max_shape: 1\n  opt_shape: 1\n}", "no name"),
        (
            'shape_range_info {\n  name: "x"\n  min_shape: 1\n  max_shape: 2\n}',
            "different ranks",
        ),
        (
            'shape_range_info {\n  name: "x"\n  min_shape: 4\n  max_shape: 2\n  opt_shape: 3\n}',
            "min <= opt <= max",
        ),
        ('shape_range_info {\n  name: "x" @\n}', r":2: malformed shape range file near '@'"),
    ],
)
def test_malformed_shape_file_is_a_clear_error(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_shape_range_info(text, "bad.pbtxt")


def test_missing_shape_file_is_a_clear_error(seg, tmp_path) -> None:
    cfg = _config(seg)
    cfg.enable_tuned_dynamic_shape(str(tmp_path / "nope.pbtxt"))
    with pytest.raises(ConfigError, match="does not exist; record it first"):
        fluidrt.create_predictor(cfg)


def test_collector_takes_the_most_frequent_shape_as_opt_and_shape_tensor_values() -> None:
    c = ShapeCollector()
    for shape in [(1, 8), (4, 2), (2, 8), (4, 2)]:
        c.observe("t", torch.zeros(shape))
    c.observe("s", torch.tensor([3, 5]))
    c.observe("s", torch.tensor([7, 1]))
    infos = c.infos()
    assert infos["t"] == TensorShapeInfo(ShapeRange((1, 2), (4, 2), (4, 8)))
    assert infos["s"].value == ShapeRange((3, 1), (3, 5), (7, 5))
    assert parse_shape_range_info(format_shape_range_info(infos)) == infos


def test_plans_record_ranges_and_cache_key_covers_them(seg, builds, tmp_path) -> None:
    cfg = _ranged(seg, use_static=True)
    cfg.set_optim_cache_dir(str(tmp_path))
    other = _config(seg, use_static=True)
    other.set_optim_cache_dir(str(tmp_path))
    other.set_trt_dynamic_shape_info({"x": MIN}, {"x": [2, 3, 96, 96]}, {"x": OPT})
    key = PlanCache.for_config(cfg, torch.device("cpu")).path
    assert key != PlanCache.for_config(other, torch.device("cpu")).path
    pred = fluidrt.create_predictor(cfg)
    built = len(builds)
    plan = pred._runner.serialize()
    loaded = PartitionedModel.deserialize(plan, torch.device("cpu"), "mem")
    assert loaded.ranges == pred._runner.ranges
    assert [e.ranges for e in loaded.engines] == [e.ranges for e in pred._runner.engines]
    with pytest.raises(ShapeRangeError):
        loaded.run([torch.zeros(1, 3, 80, 16)])

    again = fluidrt.create_predictor(cfg)  # from the optim cache: no build
    assert len(builds) == built
    _check(again, seg, _x((1, 3, 24, 24)))
    # a cached plan whose ranges do not cover the config's is rebuilt, not trusted
    wider = {"x": ShapeRange(tuple(MIN), tuple(OPT), (2, 3, 96, 96))}
    assert PlanCache(key, torch.device("cpu")).load(wider) is None
    assert PlanCache(key, torch.device("cpu")).load(pred._runner.ranges) is not None


@pytest.mark.slow
def test_mobilenet_v3_small_two_sizes_with_the_engine() -> None:
    files = model_files(export_layers([MOBILENET], "pir")[MOBILENET], "pir")
    assert os.path.exists(files[0])
    cfg = _config(files)
    cfg.set_trt_dynamic_shape_info(
        {"x": [1, 3, 64, 64]}, {"x": [1, 3, 160, 160]}, {"x": [1, 3, 128, 128]}
    )
    pred = fluidrt.create_predictor(cfg)
    assert pred._runner.engines
    for i, shape in enumerate([(1, 3, 96, 128), (1, 3, 160, 64)]):
        _check(pred, files, _x(shape, i))


@pytest.mark.slow  # four CLI processes: ~30 s on a shared 2-core machine
def test_cli_builds_over_trtexec_style_ranges_and_runs_the_plan_at_two_sizes(seg, tmp_path) -> None:
    from tests.cli.conftest import run_cli

    plan = tmp_path / "seg.plan"
    ranges = ["--min-shapes", "x:1x3x16x16", "--opt-shapes", "x:1x3x32x32"]
    r = run_cli("build", seg[0], *ranges, "--max-shapes", "x:2x3x64x64", "--save-plan", plan)
    assert r.returncode == 0, r.stderr
    for shape in ("1x3x24x40", "2x3x64x48"):
        ins, outs = tmp_path / f"in{shape}.npz", tmp_path / f"out{shape}.npz"
        r = run_cli(
            "run", plan, "--shapes", f"x:{shape}", "--save-inputs", ins, "--save-outputs", outs
        )
        assert r.returncode == 0, r.stderr
        x = np.load(ins)["x"]
        assert x.shape == tuple(int(d) for d in shape.split("x"))
        got = np.load(outs)
        assert_close(got[got.files[0]], paddle_infer(*seg, [x], onednn=False)[0], 1e-5, shape)
    r = run_cli("run", plan, "--shapes", "x:1x3x80x16")
    assert r.returncode != 0 and "outside the dynamic shape range" in r.stderr
    assert "dim 2 is 80, range 16..64" in r.stderr
