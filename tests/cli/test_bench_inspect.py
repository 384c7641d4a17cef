"""``fluidrt bench`` and ``fluidrt inspect`` as subprocesses."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

from tests.cli.conftest import assert_one_line_error

LATENCY_KEYS = {"min", "max", "mean", "median", "p90", "p95", "p99", "std", "cv"}


def test_bench_plan_export_json_and_profile(cli, built_plan, tmp_path) -> None:
    plan, _ = built_plan
    out = tmp_path / "bench.json"
    r = cli(
        "bench",
        plan,
        "--batch",
        "2",
        "--iterations",
        "20",
        "--warmup",
        "0",
        "--export-json",
        out,
        "--dump-profile",
    )
    assert r.returncode == 0, r.stderr
    text = r.stdout
    for needle in (
        "Throughput:",
        "qps",
        "samples/s",
        "percentile(99%)",
        "H2D Latency",
        "Compute Time",
        "D2H Latency",
        "Per-layer profile",
        "fused_conv2d",
    ):
        assert needle in text, needle
    doc = json.loads(out.read_text())
    assert doc["schema"] == "fluidrt.bench/1"
    assert doc["iterations"] == 20 and doc["batch"] == 2 and doc["kind"] == "plan"
    assert set(doc["latency_ms"]) == {"total", "h2d", "compute", "d2h"}
    for stats in doc["latency_ms"].values():
        assert LATENCY_KEYS <= set(stats)
        assert stats["min"] <= stats["median"] <= stats["p99"] <= stats["max"]
    t = doc["throughput"]
    assert t["qps"] > 0 and t["samples_per_second"] == pytest.approx(2 * t["qps"])
    rows = doc["profile"]
    assert rows and {"name", "op", "segment", "calls", "mean_ms", "total_ms", "percent"} <= set(
        rows[0]
    )
    assert sum(r["percent"] for r in rows) == pytest.approx(100.0, abs=0.5)
    assert {r["op"] for r in rows} >= {"fused_conv2d", "argmax"}
    assert doc["paddle"] is None


def test_bench_compare_paddle_no_transfers_and_warnings(cli, models) -> None:
    pytest.importorskip("paddle")
    r = cli(
        "bench",
        models["elementwise"],
        "--iterations",
        "5",
        "--warmup",
        "0",
        "--no-data-transfers",
        "--compare-paddle",
    )
    assert r.returncode == 0, r.stderr
    assert "Paddle Inference" in r.stdout and "fluidrt vs Paddle Inference" in r.stdout
    assert "H2D Latency" not in r.stdout and "data transfers excluded" in r.stdout
    assert "warning: only 5 timed iteration(s)" in r.stderr


def test_bench_errors(cli, models, built_plan) -> None:
    plan, _ = built_plan
    r = cli("bench", plan, "--iterations", "5", "--duration", "1")
    assert r.returncode == 2 and "not allowed with argument" in r.stderr
    assert "Traceback" not in r.stderr
    assert_one_line_error(
        cli("bench", plan, "--compare-paddle"), "--compare-paddle", "Paddle model"
    )
    assert_one_line_error(cli("bench", models["cnn"], "--cuda-graph"), "CUDA")


def test_inspect_plan_json(cli, built_plan) -> None:
    plan, _ = built_plan
    r = cli("inspect", plan, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "fluidrt.inspect/1" and doc["kind"] == "plan"
    assert {"format", "fluidrt", "torch", "device", "device_name", "precision"} <= set(
        doc["fingerprint"]
    )
    assert [i["name"] for i in doc["inputs"]] == ["image"]
    assert doc["inputs"][0]["shape"] == ["N", 3, 16, 16]
    assert len(doc["outputs"]) == 2
    kinds = [s["kind"] for s in doc["segments"]]
    assert kinds == ["engine", "native"]
    engine, native = doc["segments"]
    assert engine["max_batch_size"] == 4
    assert engine["memory"]["arena_bytes"] <= engine["memory"]["total_bytes"]
    fused = {la["op"]: la["fused"] for la in engine["layers"]}
    assert fused["fused_conv2d"] == ["conv2d", "bias", "relu"]
    assert all(la["tactic"] and la["precision"] == "fp32" for la in engine["layers"])
    assert native["nodes"][0]["op"] == "argmax"
    assert "no engine layer" in native["nodes"][0]["reason"]
    assert doc["summary"]["engines"] == 1 and doc["summary"]["native_nodes"] == 1


def test_inspect_text_and_graph_without_graphviz(cli, built_plan, tmp_path) -> None:
    plan, _ = built_plan
    svg = tmp_path / "g.svg"
    r = cli("inspect", plan, "--graph", svg, env={"FLUIDRT_DOT": "none"})
    assert r.returncode == 0, r.stderr
    assert "segment 0: engine" in r.stdout and "why native" in r.stdout
    assert "fingerprint:" in r.stdout and "built-in layout" in r.stdout
    root = ET.parse(svg).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    classes = [g.get("class") for g in root.iter(f"{ns}g")]
    assert "node engine" in classes and "node native" in classes and "edge" in classes
    texts = " ".join(t.text or "" for t in root.iter(f"{ns}text"))
    layers = re.search(r"engine engine0: (\d+) layers", r.stdout).group(1)
    assert f"{layers} layers" in texts and "argmax" in texts
    # PNG needs Graphviz: refused in one line when it is not there
    assert_one_line_error(
        cli("inspect", plan, "--graph", tmp_path / "g.png", env={"FLUIDRT_DOT": "none"}), "Graphviz"
    )


def test_inspect_model_dot_graph(cli, models, tmp_path) -> None:
    dot = tmp_path / "g.dot"
    r = cli("inspect", models["elementwise"], "--graph", dot, "--min-subgraph-size", "1")
    assert r.returncode == 0, r.stderr
    text = dot.read_text()
    assert text.startswith("digraph") and '"seg0"' in text and "engine" in text
    assert '"in:x"' in text and "->" in text
