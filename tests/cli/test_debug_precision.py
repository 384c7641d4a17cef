"""``fluidrt debug-precision``: trials, the pin list it prints, the JSON report, errors."""

from __future__ import annotations

import json

from tests.cli.conftest import assert_one_line_error


def test_debug_precision_finds_a_pin_list_that_meets_the_bar(cli, models, tmp_path) -> None:
    out = tmp_path / "report.json"
    args = ["debug-precision", models["cnn"], "--batch", "3", "--feeds", "2"]
    r = cli(*args, "--max-rel-l2", "1e-5", "--out", out)
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["met"] and doc["fp32_layers"] and doc["precision"] == "float16"
    assert doc["fp32_layers"] == doc["layers"][::-1][: len(doc["fp32_layers"])]
    pins = ",".join(f"{n}:fp32" for n in doc["fp32_layers"])
    assert f"--layer-precision {pins}" in r.stdout
    assert "fp32 layers" in r.stdout and "layers in fp32" in r.stderr  # table and progress
    # a loose bar needs nothing pinned; an unreachable one exits 1
    r3 = cli(*args, "--max-rel-l2", "0.5", "--min-top1", "0")
    assert r3.returncode == 0 and "nothing to pin" in r3.stdout, r3.stdout
    r4 = cli(*args, "--max-rel-l2", "0.5", "--min-top1", "1.5")
    assert r4.returncode == 1 and "not met" in r4.stdout, r4.stdout


def test_debug_precision_errors(cli, models, built_plan) -> None:
    plan, _ = built_plan
    assert_one_line_error(cli("debug-precision", plan), "plan")
    assert_one_line_error(cli("debug-precision", models["cnn"], "--feeds", "0"), "--feeds")
