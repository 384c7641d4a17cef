"""Malformed requests: each gets Triton's status code and a message that says what is wrong, and
the server stays healthy afterwards (checked after every test)."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import requests
import tritonclient.http as th
from tritonclient.utils import InferenceServerException

from tests.server.helpers import grpc_client, grpc_input, http_client, http_input

X = np.arange(8, dtype=np.float32).reshape(2, 4)


@pytest.fixture(autouse=True)
def stays_healthy(server):
    yield
    h = http_client(server)
    assert h.is_server_live() and h.is_server_ready()
    r = h.infer("affine", [http_input("x", X)])
    np.testing.assert_array_equal(r.as_numpy("v5"), X * 2 + 1)
    assert server.proc.poll() is None


def _post(server, path: str, body: bytes, headers: dict | None = None) -> requests.Response:
    return requests.post(
        f"http://{server.http}{path}", data=body, headers=headers or {}, timeout=30
    )


def _http_error(server, model: str, inputs: list, **kw) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as e:
        http_client(server).infer(model, inputs, **kw)
    return e.value


def _grpc_error(server, model: str, inputs: list, **kw) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as e:
        grpc_client(server).infer(model, inputs, **kw)
    return e.value


def test_bad_json(server):
    r = _post(server, "/v2/models/affine/infer", b'{"inputs": [ {"name": "x", ')
    assert r.status_code == 400
    assert "failed to parse the request JSON buffer" in r.json()["error"]
    r = _post(server, "/v2/models/affine/infer", b"[1, 2]")
    assert r.status_code == 400 and "must be an object" in r.json()["error"]
    r = _post(server, "/v2/models/affine/infer", json.dumps({"inputs": [{"name": "x"}]}).encode())
    assert r.status_code == 400 and "'name' and 'datatype'" in r.json()["error"]


def test_wrong_shape(server):
    bad = np.zeros((2, 5), np.float32)
    e = _http_error(server, "affine", [http_input("x", bad)])
    assert e.status() == "400"
    assert "unexpected shape for input 'x' for model 'affine'" in e.message()
    assert "Expected [-1,4] ([-1] + dims), got [2,5]" in e.message()
    e = _grpc_error(server, "affine", [grpc_input("x", bad)])
    assert e.status() == "StatusCode.INVALID_ARGUMENT" and "Expected [-1,4]" in e.message()
    e = _http_error(server, "affine", [http_input("x", np.zeros((4,), np.float32))])
    assert "Expected [-1,4]" in e.message() and "got [4]" in e.message()


def test_batch_too_large(server):
    e = _http_error(server, "affine", [http_input("x", np.zeros((17, 4), np.float32))])
    assert e.status() == "400" and "batch-size must be <= 16" in e.message()


def test_wrong_datatype(server):
    e = _http_error(server, "affine", [http_input("x", X.astype(np.float64))])
    assert e.status() == "400"
    assert "inference input 'x' data-type is 'FP64', but model 'affine' expects 'FP32'" in (
        e.message()
    )
    e = _grpc_error(server, "int_math", [grpc_input("x", np.zeros((1, 3), np.int32))])
    assert e.status() == "StatusCode.INVALID_ARGUMENT" and "expects 'INT64'" in e.message()


def test_unknown_model(server):
    e = _http_error(server, "nope", [http_input("x", X)])
    assert e.status() == "400"
    assert e.message() == "Request for unknown model: 'nope' is not found"
    e = _grpc_error(server, "nope", [grpc_input("x", X)])
    assert e.status() == "StatusCode.INVALID_ARGUMENT" and "'nope' is not found" in e.message()
    r = requests.get(f"http://{server.http}/v2/models/nope", timeout=10)
    assert r.status_code == 400 and "'nope' is not found" in r.json()["error"]
    assert not http_client(server).is_model_ready("nope")


def test_unknown_version(server):
    e = _http_error(server, "affine", [http_input("x", X)], model_version="9")
    assert e.status() == "404"
    assert e.message() == "Request for unknown model: 'affine' version 9 is not found"
    e = _grpc_error(server, "affine", [grpc_input("x", X)], model_version="9")
    assert e.status() == "StatusCode.NOT_FOUND"
    e = _http_error(server, "affine", [http_input("x", X)], model_version="abc")
    assert e.status() == "400" and "failed to parse model version 'abc'" in e.message()
    # a version on disk that the version policy does not serve
    e = _http_error(
        server, "small", [http_input("x", np.zeros((1, 3, 8, 8), np.float32))], model_version="1"
    )
    assert e.status() == "404" and "'small' version 1 is not found" in e.message()


def test_truncated_binary_body(server):
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [2, 4],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 32},
                }
            ],
        }
    ).encode()
    body = header + X.tobytes()[:16]
    r = _post(
        server,
        "/v2/models/affine/infer",
        body,
        {"Inference-Header-Content-Length": str(len(header))},
    )
    assert r.status_code == 400
    msg = r.json()["error"]
    assert "binary_data_size 32 runs past the end" in msg and "truncated" in msg
    # a header length longer than the body
    r = _post(
        server,
        "/v2/models/affine/infer",
        header,
        {"Inference-Header-Content-Length": str(len(header) + 100)},
    )
    assert r.status_code == 400 and "has only" in r.json()["error"]
    # binary data of the wrong size for the shape
    header2 = header.replace(b'"binary_data_size": 32', b'"binary_data_size": 16')
    r = _post(
        server,
        "/v2/models/affine/infer",
        header2 + X.tobytes()[:16],
        {"Inference-Header-Content-Length": str(len(header2))},
    )
    assert r.status_code == 400 and "needs 32 bytes" in r.json()["error"]
    # bytes left over after the last input
    r = _post(
        server,
        "/v2/models/affine/infer",
        header + X.tobytes() + b"xx",
        {"Inference-Header-Content-Length": str(len(header))},
    )
    assert r.status_code == 400 and "unexpected additional input data" in r.json()["error"]


def test_oversized_request(server):
    big = np.zeros((16, 4 * 8192), np.float32)  # 2 MiB against a 1 MiB limit
    e = _http_error(server, "affine", [http_input("x", big)])
    assert e.status() == "400"
    assert "exceeds the maximum allowed value of 1048576 bytes" in e.message()
    assert "--http-max-input-size" in e.message()
    # also when the body arrives without a Content-Length (chunked)
    r = requests.post(
        f"http://{server.http}/v2/models/affine/infer", data=iter([b"x" * 65536] * 20), timeout=30
    )
    assert r.status_code == 400 and "exceeds the maximum" in r.json()["error"]


def test_missing_and_unknown_tensors(server):
    e = _http_error(server, "concat", [http_input("a", np.zeros((1, 2), np.float32))])
    assert e.status() == "400" and "missing required input(s) ['b']" in e.message()
    e = _http_error(server, "affine", [http_input("y", X)])
    assert e.status() == "400" and "unexpected inference input 'y'" in e.message()
    e = _http_error(
        server, "affine", [http_input("x", X)], outputs=[th.InferRequestedOutput("nope")]
    )
    assert e.status() == "400" and "unexpected inference output 'nope'" in e.message()


def test_json_data_count_mismatch(server):
    body = json.dumps(
        {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3]}]}
    ).encode()
    r = _post(server, "/v2/models/affine/infer", body)
    assert r.status_code == 400 and "holds 3 element(s)" in r.json()["error"]


def test_unknown_endpoint_and_method(server):
    r = requests.get(f"http://{server.http}/v2/nothing/here", timeout=10)
    assert r.status_code == 404 and "unknown endpoint" in r.json()["error"]
    r = requests.get(f"http://{server.http}/v2/models/affine/infer", timeout=10)
    assert r.status_code in (404, 405) and "error" in r.json()


def test_queue_full_rejected_with_503(server):
    """max_queue_size 2 with a 1.5 s batching delay: the third queued request is refused."""
    h = http_client(server)
    results: list = []

    def send(k: int) -> None:
        c = http_client(server)
        try:
            r = c.infer("queued", [http_input("x", np.full((1, 4), k, np.float32))])
            results.append(("ok", k, r.as_numpy("v5")))
        except InferenceServerException as exc:
            results.append(("err", k, exc))

    before = h.get_inference_statistics("queued")["model_stats"][0]
    threads = [threading.Thread(target=send, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # both queued (the batcher holds them for 1.5 s)
        stats = requests.get(f"http://{server.metrics}/metrics", timeout=10).text
        line = [
            s
            for s in stats.splitlines()
            if s.startswith('nv_inference_pending_request_count{model="queued"')
        ]
        if line and line[0].endswith(" 2"):
            break
        time.sleep(0.02)
    e = _http_error(server, "queued", [http_input("x", X[:1])])
    assert e.status() == "503" and "Exceeds maximum queue size" in e.message()
    for t in threads:
        t.join(30)
    oks = sorted((k, out) for tag, k, out in results if tag == "ok")
    assert [k for k, _ in oks] == [0, 1]
    for k, out in oks:
        np.testing.assert_array_equal(out, np.full((1, 4), k * 2 + 1, np.float32))
    after = h.get_inference_statistics("queued")["model_stats"][0]
    assert after["execution_count"] - before["execution_count"] == 1  # one batch of two
    assert after["inference_count"] - before["inference_count"] == 2
    metrics = requests.get(f"http://{server.metrics}/metrics", timeout=10).text
    assert 'nv_inference_request_failure{model="queued",reason="REJECTED",version="1"} 1' in (
        metrics
    )
