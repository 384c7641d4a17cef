"""In-process tests of the CLI's helpers: shape strings, error statistics, latency statistics,
the timing loop, the progress bar and the partition drawing (no Graphviz needed)."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from fluidrt.cli.bench import Phases, latency_stats, stability_warnings, time_phases
from fluidrt.cli.common import CliError, ProgressBar, parse_layer_precision, parse_shapes
from fluidrt.cli.compare import compare_arrays
from fluidrt.graphviz import partition_diagram, to_dot, to_svg, write_graph


def test_parse_shapes() -> None:
    assert parse_shapes("x:1x3x224x224,y:1x10") == {"x": (1, 3, 224, 224), "y": (1, 10)}
    assert parse_shapes("input:0:2X4") == {"input:0": (2, 4)}  # names may contain ':'
    assert parse_shapes("s:") == {"s": ()}
    for bad in ("", "x", "x:1xx2", "x:0x3", "x:-1x3", ":1x2", "x:1,x:2", "x:1.5"):
        with pytest.raises(CliError):
            parse_shapes(bad)


def test_parse_layer_precision() -> None:
    assert parse_layer_precision("softmax:fp32,conv1:fp16") == {
        "softmax": "float32",
        "conv1": "float16",
    }
    with pytest.raises(CliError):
        parse_layer_precision("softmax:int4")


def test_compare_arrays_statistics() -> None:
    e = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]], dtype=np.float32)
    a = e + np.array([[0.0, 0.0, 0.5], [0.0, 0.0, 0.0]], dtype=np.float32)
    d = compare_arrays(a, e, atol=0.1, rtol=0.0)
    assert not d["passed"] and d["mismatches"] == 1
    assert d["max_abs"] == pytest.approx(0.5) and d["max_rel"] == pytest.approx(0.5 / 3)
    assert d["rel_l2"] == pytest.approx(0.5 / np.linalg.norm(e))
    assert d["top1_agreement"] == 1.0
    assert compare_arrays(a, e, atol=0.5, rtol=0.0)["passed"]
    assert not compare_arrays(a[:1], e, 1, 1)["passed"]  # shape mismatch
    ints = compare_arrays(np.array([1, 2, 3]), np.array([1, 2, 4]), 10, 10)
    assert not ints["passed"] and ints["mismatches"] == 1  # integers compare exactly
    nan = compare_arrays(np.array([np.nan, 1.0]), np.array([0.0, 1.0]), 1, 1)
    assert not nan["passed"] and nan["nan_mismatches"] == 1
    swapped = compare_arrays(np.array([[0.0, 1.0]]), np.array([[1.0, 0.0]]), 2, 2)
    assert swapped["top1_agreement"] == 0.0


def test_latency_stats_and_warnings() -> None:
    s = latency_stats([0.001] * 99 + [0.010])
    assert s["min"] == pytest.approx(1.0) and s["max"] == pytest.approx(10.0)
    assert s["median"] == pytest.approx(1.0) and s["p99"] > s["p95"]
    assert s["cv"] > 0.1
    warns = stability_warnings(s, 100, 1.0)
    assert any("coefficient of variation" in w for w in warns)
    assert any("only 3" in w for w in stability_warnings(latency_stats([0.001] * 3), 3, 1.0))
    assert stability_warnings(latency_stats([0.001] * 200), 200, 1.0) == []


def test_time_phases_counts_and_splits() -> None:
    calls = {"h2d": 0, "compute": 0, "d2h": 0}

    def count(key, value=None):
        def fn(*_):
            calls[key] += 1
            return value

        return fn

    phases = Phases(count("h2d", [1]), count("compute", [2]), count("d2h"), lambda: None)
    raw = time_phases(phases, warmup_s=0.0, iterations=7, duration_s=None, transfers=True)
    assert raw["iterations"] == 7 and len(raw["total"]) == 7
    assert all(t >= c for t, c in zip(raw["total"], raw["compute"], strict=True))
    assert calls["compute"] == 8  # one untimed run first
    raw = time_phases(phases, 0.0, None, 0.01, transfers=False)
    assert raw["iterations"] >= 10  # --duration runs at least 10 iterations
    assert all(h == 0 for h in raw["h2d"])


def test_progress_bar_without_terminal() -> None:
    out = io.StringIO()
    bar = ProgressBar(out)
    for i in range(4):
        bar("tuning layers", i, 3)
    bar.close()
    assert out.getvalue().count("tuning layers: 3/3") == 1


def _model():
    from fluidrt.engine.model import partition_and_build
    from fluidrt.ir.graph import Graph
    from fluidrt.ops.infer import infer_graph
    from fluidrt.settings import Settings

    g = Graph("tiny")
    x = g.add_input("x", ("N", 4), "float32")
    w = g.add_const("w", np.ones(4, dtype=np.float32))
    a = g.add_node("mul", [x, w], name="scale_it")
    r = g.add_node("relu", [a.outputs[0]], name="act")
    am = g.add_node("argmax", [r.outputs[0]], {"axis": 1}, name="pick")
    g.outputs = [r.outputs[0], am.outputs[0]]
    infer_graph(g)
    s = Settings(use_engine=True, min_subgraph_size=1)
    return partition_and_build(g, s, torch.device("cpu"))


def test_partition_drawing_dot_and_builtin_svg(tmp_path, monkeypatch) -> None:
    model = _model()
    d = partition_diagram(model, "tiny")
    kinds = sorted(n.kind for n in d.nodes)
    assert kinds.count("engine") == 1 and kinds.count("native") >= 1
    dot = to_dot(d)
    assert '"seg0"' in dot and "2 layers" in dot and "argmax" in dot and "#a8dc8f" in dot
    root = ET.fromstring(to_svg(d))
    assert root.tag.endswith("svg")
    monkeypatch.setenv("FLUIDRT_DOT", "none")
    assert write_graph(model, str(tmp_path / "g.svg")) == "builtin"
    ET.parse(tmp_path / "g.svg")
    assert write_graph(model, str(tmp_path / "g.dot")) == "dot"
    from fluidrt.errors import FluidrtError

    with pytest.raises(FluidrtError, match="Graphviz"):
        write_graph(model, str(tmp_path / "g.png"))
