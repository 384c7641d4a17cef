"""``fluidrt build --int8 --calibrator ... --calib-inputs N --calib-data DIR``."""

from __future__ import annotations

import shutil

import numpy as np

from tests.cli.conftest import assert_one_line_error


def test_build_int8_with_calibrator_and_count(cli, models, tmp_path) -> None:
    data = tmp_path / "calib"
    data.mkdir()
    rng = np.random.default_rng(0)
    np.save(data / "batch.npy", rng.standard_normal((24, 3, 16, 16)).astype(np.float32))
    model = tmp_path / "model.json"  # a private copy: the table goes to <model dir>/_opt_cache
    shutil.copy(models["cnn"], model)
    shutil.copy(models["cnn"][: -len(".json")] + ".pdiparams", tmp_path / "model.pdiparams")
    r = cli(
        "build",
        model,
        "--int8",
        "--calibrator",
        "minmax",
        "--calib-inputs",
        "16",
        "--calib-data",
        data,
        "--max-batch",
        "8",
    )
    assert r.returncode == 0, r.stderr
    assert "int8" in r.stdout.lower(), r.stdout
    tables = [p for p in (tmp_path / "_opt_cache").glob("trt_calib_*") if p.suffix != ".json"]
    assert tables and "minmax" in tables[0].read_text().splitlines()[0]


def test_calibration_flags_need_int8(cli, models, tmp_path) -> None:
    r = cli("build", models["cnn"], "--calibrator", "entropy")
    assert_one_line_error(r, "--calibrator only applies with --int8")
    r = cli("build", models["cnn"], "--int8", "--calib-inputs", "0")
    assert_one_line_error(r, "--calib-inputs 0")
