"""Plan cache keys of INT8 configs cover the calibration settings and the calibration table."""

from __future__ import annotations

from pathlib import Path

import torch

import fluidrt
from fluidrt.engine.cache import PlanCache
from fluidrt.quant.flow import table_location


def _model(tmp_path: Path) -> str:
    path = str(tmp_path / "net.onnx")
    torch.onnx.export(
        torch.nn.Conv2d(3, 4, 3).eval(), (torch.zeros(1, 3, 8, 8),), path, dynamo=False
    )
    return path


def _config(model: str, cache: str, **calib: object) -> fluidrt.Config:
    cfg = fluidrt.Config(model)
    cfg.disable_gpu()
    cfg.enable_tensorrt_engine(
        precision_mode=fluidrt.PrecisionType.Int8, use_static=True, use_calib_mode=True
    )
    cfg.set_optim_cache_dir(cache)
    cfg.set_calibration(**calib)
    return cfg


def test_int8_plan_key_covers_calibration(tmp_path: Path) -> None:
    model, cache = _model(tmp_path), str(tmp_path / "cache")
    cpu = torch.device("cpu")

    def key(**calib: object) -> str:
        return PlanCache.for_config(_config(model, cache, **calib), cpu).path

    base = key(algorithm="entropy")
    assert base == key(algorithm="entropy")
    others = [
        key(algorithm="minmax"),
        key(algorithm="percentile", percentile=99.9),
        key(algorithm="entropy", num_inputs=200),
        key(algorithm="entropy", sensitivity_threshold=0.05),
    ]
    assert len({base, *others}) == 5
    assert key(algorithm="percentile", percentile=99.9) != key(
        algorithm="percentile", percentile=99.99
    )
    # the calibration table's content is part of the key
    table, _ = table_location(_config(model, cache, algorithm="entropy"))
    Path(table).parent.mkdir(parents=True, exist_ok=True)
    Path(table).write_text("table A\n")
    with_a = key(algorithm="entropy")
    Path(table).write_text("table B\n")
    assert len({base, with_a, key(algorithm="entropy")}) == 3
