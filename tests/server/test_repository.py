"""The repository API (index, load, unload, config override), model states and failures, model
control modes and readiness, ONNX and plan models, statistics, metrics and clean shutdown."""

from __future__ import annotations

import json
import signal
import threading
import time

import numpy as np
import pytest
import requests
from tritonclient.utils import InferenceServerException

from tests.server.helpers import (
    ServerProcess,
    add_model,
    grpc_client,
    grpc_input,
    http_client,
    http_input,
    model_files,
)

X = np.arange(8, dtype=np.float32).reshape(2, 4)


def test_index_shows_failed_model_and_others_serve(server):
    h = http_client(server)
    index = {(m["name"], m.get("version")): m for m in h.get_model_repository_index()}
    broken = index[("broken", "1")]
    assert broken["state"] == "UNAVAILABLE"
    assert "not a valid PIR program" in broken["reason"]
    assert index[("affine", "1")]["state"] == "READY"
    assert index[("small", "3")]["state"] == "READY"
    ready = http_client(server).get_model_repository_index()
    assert all(m["state"] in ("READY", "UNAVAILABLE") for m in ready)
    r = requests.post(f"http://{server.http}/v2/repository/index", json={"ready": True}, timeout=10)
    assert {m["state"] for m in r.json()} == {"READY"}
    g = grpc_client(server).get_model_repository_index(as_json=True)
    states = {(m["name"], m.get("version")): m.get("state") for m in g["models"]}
    assert states[("broken", "1")] == "UNAVAILABLE" and states[("affine", "1")] == "READY"
    e = pytest.raises(
        InferenceServerException, http_client(server).infer, "broken", [http_input("x", X)]
    ).value
    assert e.status() == "404"
    assert e.message() == "Request for unknown model: 'broken' has no available versions"
    e = pytest.raises(
        InferenceServerException,
        http_client(server).infer,
        "broken",
        [http_input("x", X)],
        model_version="1",
    ).value
    assert e.status() == "503" and "'broken' version 1 is not at ready state" in e.message()


def test_unload_and_load(server):
    h, g = http_client(server), grpc_client(server)
    assert h.is_model_ready("affine_copy")
    h.unload_model("affine_copy")
    assert not h.is_model_ready("affine_copy")
    index = {m["name"]: m for m in h.get_model_repository_index()}
    assert index["affine_copy"]["state"] == "UNAVAILABLE"
    assert index["affine_copy"]["reason"] == "unloaded"
    e = pytest.raises(InferenceServerException, h.infer, "affine_copy", [http_input("x", X)]).value
    assert e.status() == "404" and "has no available versions" in e.message()
    g.load_model("affine_copy")
    assert g.is_model_ready("affine_copy")
    r = g.infer("affine_copy", [grpc_input("x", X)])
    np.testing.assert_array_equal(r.as_numpy("v5"), X * 2 + 1)
    # reload with a config override: max_batch_size 2, no dynamic batching
    h.load_model("affine_copy", config=json.dumps({"max_batch_size": 2}))
    assert h.get_model_config("affine_copy")["max_batch_size"] == 2
    assert "dynamic_batching" not in h.get_model_config("affine_copy")
    e = pytest.raises(
        InferenceServerException,
        h.infer,
        "affine_copy",
        [http_input("x", np.zeros((3, 4), np.float32))],
    ).value
    assert "batch-size must be <= 2" in e.message()
    h.load_model("affine_copy")  # back to the derived config
    assert h.get_model_config("affine_copy")["max_batch_size"] == 4


def test_load_errors(server):
    h = http_client(server)
    e = pytest.raises(InferenceServerException, h.load_model, "no_such_model").value
    assert e.status() == "400" and "no model directory 'no_such_model'" in e.message()
    e = pytest.raises(InferenceServerException, h.load_model, "broken").value
    assert e.status() == "400" and "load failed for model 'broken'" in e.message()
    bad = json.dumps({"input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [5]}]})
    e = pytest.raises(InferenceServerException, h.load_model, "affine_copy", config=bad).value
    assert "has [-1] + dims = [-1, 5] in the config, but the model's shape is [-1, 4]" in (
        e.message()
    )
    assert h.is_model_ready("affine_copy")  # a failed reload keeps the old version serving


def test_statistics_and_metrics(server):
    h, g = http_client(server), grpc_client(server)
    before = h.get_inference_statistics("affine")["model_stats"][0]
    for _ in range(3):
        h.infer("affine", [http_input("x", X)])
    stats = h.get_inference_statistics("affine")["model_stats"]
    assert len(stats) == 1
    s = stats[0]
    assert s["name"] == "affine" and s["version"] == "1"
    assert (
        s["inference_stats"]["success"]["count"]
        == before["inference_stats"]["success"]["count"] + 3
    )
    assert s["inference_count"] - before["inference_count"] == 6
    for k in ("queue", "compute_input", "compute_infer", "compute_output"):
        assert s["inference_stats"][k]["ns"] > 0
    assert any(b["batch_size"] == 2 for b in s["batch_stats"])
    assert len(h.get_inference_statistics()["model_stats"]) >= 5
    gs = g.get_inference_statistics("affine", as_json=True)["model_stats"][0]
    assert int(gs["inference_count"]) >= s["inference_count"]
    text = requests.get(f"http://{server.metrics}/metrics", timeout=10).text
    for name in (
        "nv_inference_request_success",
        "nv_inference_request_failure",
        "nv_inference_count",
        "nv_inference_exec_count",
        "nv_inference_request_duration_us",
        "nv_inference_queue_duration_us",
        "nv_inference_compute_input_duration_us",
        "nv_inference_compute_infer_duration_us",
        "nv_inference_compute_output_duration_us",
        "nv_inference_pending_request_count",
    ):
        assert f"# TYPE {name} " in text, name
        assert f'{name}{{model="affine",' in text, name
    line = next(
        x
        for x in text.splitlines()
        if x.startswith('nv_inference_count{model="affine",version="1"}')
    )
    assert int(line.split()[-1]) >= s["inference_count"]
    e = pytest.raises(InferenceServerException, h.get_inference_statistics, "nope").value
    assert e.status() == "400"


def test_none_mode_and_strict_readiness(tmp_path, models):
    add_model(tmp_path, "affine", model_files(models["affine"]))
    (tmp_path / "broken" / "1").mkdir(parents=True)
    (tmp_path / "broken" / "1" / "model.json").write_text("nope")
    with ServerProcess(tmp_path) as s:
        h = http_client(s)
        assert h.is_server_live()
        assert not h.is_server_ready()  # strict readiness: 'broken' failed to load
        assert h.is_model_ready("affine")
        np.testing.assert_array_equal(
            h.infer("affine", [http_input("x", X)]).as_numpy("v5"), X * 2 + 1
        )
        e = pytest.raises(InferenceServerException, h.unload_model, "affine").value
        assert e.status() == "503" and "model control mode 'none'" in e.message()
        assert s.stop(signal.SIGINT) == 0
    assert "failed to load 'broken' version 1" in s.log
    assert sum("loaded model 'affine' version 1" in line for line in s.log.splitlines()) == 1


def _onnx_affine(path) -> None:
    pytest.importorskip("onnx")
    from tests.server.onnx_models import affine

    affine(path)


def _plan(prefix: str, path) -> bool:
    import fluidrt

    cfg = fluidrt.Config(prefix + ".json", prefix + ".pdiparams")
    cfg.enable_engine(max_batch_size=8, min_subgraph_size=1)
    runner = getattr(fluidrt.create_predictor(cfg), "_runner", None)
    if not hasattr(runner, "serialize"):
        return False
    path.write_bytes(runner.serialize())
    return True


def test_onnx_and_plan_models_explicit_mode(tmp_path, models):
    (tmp_path / "onnx_affine" / "1").mkdir(parents=True)
    _onnx_affine(tmp_path / "onnx_affine" / "1" / "model.onnx")
    (tmp_path / "onnx_affine" / "config.pbtxt").write_text(
        'backend: "onnxruntime"\nmax_batch_size: 8\ndynamic_batching { }\n'
    )
    (tmp_path / "plan_small" / "1").mkdir(parents=True)
    has_plan = _plan(models["small_net"], tmp_path / "plan_small" / "1" / "model.plan")
    add_model(tmp_path, "later", model_files(models["affine"]))
    with ServerProcess(
        tmp_path,
        "--model-control-mode",
        "explicit",
        "--load-model",
        "onnx_affine",
        "--load-model",
        "plan_small",
    ) as s:
        h = http_client(s)
        assert h.is_server_ready()
        r = h.infer("onnx_affine", [http_input("x", X)])
        np.testing.assert_array_equal(r.as_numpy("y"), X * 2 + 1)
        assert h.get_model_metadata("onnx_affine")["platform"] == "onnxruntime"
        index = {m["name"]: m for m in h.get_model_repository_index()}
        assert index["later"] == {"name": "later"}  # present, never loaded
        assert not h.is_model_ready("later")
        h.load_model("later")
        assert h.is_model_ready("later")
        if has_plan:
            import fluidrt

            x = np.random.default_rng(0).standard_normal((3, 3, 8, 8)).astype(np.float32)
            r = h.infer("plan_small", [http_input("x", x)])
            pred = fluidrt.create_predictor(
                fluidrt.Config(models["small_net"] + ".json", models["small_net"] + ".pdiparams")
            )
            np.testing.assert_allclose(r.as_numpy("v15"), pred.run([x])[0], rtol=1e-4, atol=1e-5)
            assert h.get_model_config("plan_small")["platform"] == "fluidrt_plan"


def test_shutdown_drains_in_flight_requests(tmp_path, models):
    """A request held 1.5 s by the batcher still gets its answer when the server is stopped."""
    add_model(
        tmp_path,
        "slow",
        model_files(models["affine"]),
        "max_batch_size: 4\ndynamic_batching { max_queue_delay_microseconds: 1500000 }\n",
    )
    s = ServerProcess(tmp_path)
    try:
        got: list = []

        def call() -> None:
            try:
                r = grpc_client(s).infer("slow", [grpc_input("x", X)])
                got.append(r.as_numpy("v5"))
            except Exception as exc:  # noqa: BLE001
                got.append(exc)

        t = threading.Thread(target=call)
        t.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = requests.get(f"http://{s.metrics}/metrics", timeout=10).text
            if 'nv_inference_pending_request_count{model="slow",version="1"} 1' in text:
                break
            time.sleep(0.02)
        s.proc.send_signal(signal.SIGTERM)
        t.join(30)
        assert s.proc.wait(30) == 0
        assert len(got) == 1 and isinstance(got[0], np.ndarray), got
        np.testing.assert_array_equal(got[0], X * 2 + 1)
        assert "server stopped" in s.log
    finally:
        s.stop()
