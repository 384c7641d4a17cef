"""``fluidrt perf`` against the test server: a report per concurrency level, CSV and JSON."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from tests.support.paddle_ref import REPO


def _perf(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fluidrt.cli", "perf", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("proto", ["http", "grpc"])
def test_perf_reports(server, tmp_path, proto):
    url = server.http if proto == "http" else server.grpc
    out_csv, out_json = tmp_path / "p.csv", tmp_path / "p.json"
    r = _perf(
        "-m",
        "concat",
        "-u",
        url,
        "-i",
        proto,
        "--concurrency-range",
        "1:5:4",
        "-p",
        "300",
        "-r",
        "3",
        "--warmup",
        "0.2",
        "-b",
        "2",
        "-f",
        str(out_csv),
        "--json",
        str(out_json),
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Concurrency: 1, throughput:" in r.stdout and "Concurrency: 5," in r.stdout
    report = json.loads(out_json.read_text())
    assert [lvl["concurrency"] for lvl in report["results"]] == [1, 5]
    assert report["inputs"] == {"a": [2, 2], "b": [2, 3]}
    for lvl in report["results"]:
        assert lvl["requests"] > 0 and lvl["errors"] == 0
        assert lvl["throughput_infer_per_sec"] > 0
        lat = lvl["latency_us"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"]
        srv = lvl["server"]
        assert srv["request_count"] > 0 and srv["avg_compute_infer_us"] > 0
        assert srv["avg_batch_size"] >= 2  # every request carries 2 rows
    rows = list(csv.DictReader(out_csv.open()))
    assert [row["Concurrency"] for row in rows] == ["1", "5"]
    assert float(rows[1]["Inferences/Second"]) > 0


def test_perf_errors(server, capsys):
    """One line on stderr and exit 1, no traceback (run in-process: they fail before any load)."""
    from fluidrt.cli.main import main

    assert main(["perf", "-m", "nope", "-u", server.http, "-p", "100"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fluidrt: error:") and "'nope'" in err and "Traceback" not in err
    assert err.count("\n") == 1
    assert main(["perf", "-m", "affine", "-u", server.http, "--concurrency-range", "4:2"]) == 1
    assert "--concurrency-range" in capsys.readouterr().err
    assert main(["perf", "-m", "affine", "-u", server.http, "-b", "99", "-p", "100"]) == 1
    assert "exceeds max_batch_size 16" in capsys.readouterr().err
    assert main(["perf", "-m", "affine", "-u", "127.0.0.1:1", "-p", "100"]) == 1
    assert "127.0.0.1:1" in capsys.readouterr().err
