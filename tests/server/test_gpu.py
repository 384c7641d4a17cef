"""KIND_GPU instances (needs CUDA): placement in the config, GPU engines, concurrent clients on
two GPU instances; ONNX models only, so it runs where Paddle is not installed."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import requests

from tests.server.helpers import ServerProcess, grpc_client, grpc_input

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs CUDA", allow_module_level=True)
pytest.importorskip("onnx")


def test_gpu_instances(tmp_path):
    import fluidrt
    from tests.server.onnx_models import affine, conv_net

    n_gpu = torch.cuda.device_count()
    (tmp_path / "affine" / "1").mkdir(parents=True)
    affine(tmp_path / "affine" / "1" / "model.onnx")
    (tmp_path / "affine" / "config.pbtxt").write_text(
        "max_batch_size: 8\ndynamic_batching { max_queue_delay_microseconds: 500 }\n"
        "instance_group [ { count: 2 kind: KIND_GPU } ]\n"
    )
    (tmp_path / "net" / "1").mkdir(parents=True)
    conv_net(tmp_path / "net" / "1" / "model.onnx")
    (tmp_path / "net" / "config.pbtxt").write_text(
        "max_batch_size: 8\ndynamic_batching { }\n"
        "instance_group [ { count: 1 kind: KIND_GPU gpus: [ 0 ] }, { count: 1 kind: KIND_CPU } ]\n"
        "optimization { execution_accelerators { gpu_execution_accelerator: [ "
        '{ name: "fluidrt" parameters { key: "precision_mode" value: "FP32" } } ] } }\n'
    )
    with ServerProcess(tmp_path) as s:
        base = f"http://{s.http}"
        cfg = requests.get(f"{base}/v2/models/affine/config", timeout=30).json()
        assert cfg["instance_group"][0]["kind"] == "KIND_GPU"
        assert cfg["instance_group"][0]["gpus"] == list(range(n_gpu))
        assert f"{2 * n_gpu}x cuda" in s.log or "2x cuda:0" in s.log
        # JSON over HTTP (no geventhttpclient needed) and raw over gRPC
        x = np.arange(8, dtype=np.float32).reshape(2, 4)
        body = {
            "inputs": [
                {"name": "x", "shape": [2, 4], "datatype": "FP32", "data": x.reshape(-1).tolist()}
            ]
        }
        r = requests.post(f"{base}/v2/models/affine/infer", data=json.dumps(body), timeout=30)
        assert r.status_code == 200, r.text
        out = np.array(r.json()["outputs"][0]["data"], np.float32).reshape(2, 4)
        np.testing.assert_array_equal(out, x * 2 + 1)
        cpu = fluidrt.create_predictor(fluidrt.Config(str(tmp_path / "net" / "1" / "model.onnx")))
        rng = np.random.default_rng(0)
        xs = [rng.standard_normal((1 + i % 4, 3, 8, 8)).astype(np.float32) for i in range(64)]
        results: dict[int, np.ndarray] = {}
        errors: list = []

        def worker(k: int) -> None:
            g = grpc_client(s)
            for i in range(k, len(xs), 8):
                try:
                    results[i] = g.infer("net", [grpc_input("x", xs[i])]).as_numpy("y")
                    a = g.infer("affine", [grpc_input("x", x)]).as_numpy("y")
                    np.testing.assert_array_equal(a, x * 2 + 1)
                except Exception as exc:  # noqa: BLE001
                    errors.append(exc)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors[:3]
        for i, xi in enumerate(xs):
            np.testing.assert_allclose(results[i], cpu.run([xi])[0], rtol=1e-3, atol=1e-4)
        stats = requests.get(f"{base}/v2/models/net/stats", timeout=30).json()["model_stats"][0]
        assert stats["inference_count"] == sum(len(x_) for x_ in xs)
