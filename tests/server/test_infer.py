"""Inference over HTTP (binary and JSON) and gRPC (raw and typed contents) against a local
Predictor on the same inputs; datatypes FP32, FP16, INT64, BYTES (rejected as a model input,
produced by the classification extension)."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tg
import tritonclient.http as th
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.server.helpers import grpc_client, grpc_input, http_client, http_input, local_predictor


@pytest.fixture(scope="module")
def local(models):
    cache = {}

    def get(name: str):
        if name not in cache:
            cache[name] = local_predictor(models[name])
        return cache[name]

    return get


def test_health_and_server_metadata(server):
    h, g = http_client(server), grpc_client(server)
    assert h.is_server_live() and h.is_server_ready()
    assert g.is_server_live() and g.is_server_ready()
    md = h.get_server_metadata()
    assert md["name"] == "fluidrt" and "binary_tensor_data" in md["extensions"]
    assert g.get_server_metadata().name == "fluidrt"


def test_model_metadata_and_config(server):
    h, g = http_client(server), grpc_client(server)
    md = h.get_model_metadata("affine")
    assert md["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert md["outputs"] == [{"name": "v5", "datatype": "FP32", "shape": [-1, 4]}]
    assert md["versions"] == ["1"]
    gmd = g.get_model_metadata("affine", as_json=True)
    assert gmd["inputs"][0]["shape"] == ["-1", "4"]  # int64 in proto JSON
    cfg = h.get_model_config("affine")
    assert cfg["max_batch_size"] == 16 and cfg["input"][0]["dims"] == [4]
    assert cfg["dynamic_batching"]["max_queue_delay_microseconds"] == 1000
    assert cfg["instance_group"][0]["count"] == 2
    assert cfg["instance_group"][0]["kind"] == "KIND_CPU"
    assert g.get_model_config("affine").config.max_batch_size == 16
    # derived config: no config.pbtxt, Triton-style auto-complete
    auto = h.get_model_config("int_math")
    assert auto["max_batch_size"] == 4 and auto["backend"] == "fluidrt"
    assert [o["name"] for o in auto["output"]] == ["v5", "v8"]
    assert auto["output"][0]["data_type"] == "TYPE_INT64"
    assert "dynamic_batching" in auto
    nb = h.get_model_metadata("nobatch")
    assert nb["inputs"][0]["shape"] == [-1, 4]
    assert h.get_model_config("nobatch")["max_batch_size"] == 0


@pytest.mark.parametrize("binary", [True, False])
def test_http_fp32(server, local, binary):
    h = http_client(server)
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    r = h.infer(
        "affine",
        [http_input("x", x, binary)],
        outputs=[th.InferRequestedOutput("v5", binary_data=binary)],
        request_id="req-7",
    )
    assert r.get_response()["id"] == "req-7"
    assert r.get_response()["model_version"] == "1"
    want = local("affine").run([x])[0]
    np.testing.assert_array_equal(r.as_numpy("v5"), want)
    params = r.get_output("v5").get("parameters", {})
    assert ("binary_data_size" in params) == binary


def test_http_compressed(server, local):
    h = http_client(server)
    x = np.random.default_rng(2).standard_normal((2, 4)).astype(np.float32)
    r = h.infer(
        "affine",
        [http_input("x", x)],
        request_compression_algorithm="gzip",
        response_compression_algorithm="deflate",
    )
    np.testing.assert_array_equal(r.as_numpy("v5"), local("affine").run([x])[0])


def test_grpc_raw_fp32_two_inputs(server, local):
    g = grpc_client(server)
    rng = np.random.default_rng(3)
    a = rng.standard_normal((5, 2)).astype(np.float32)
    b = rng.standard_normal((5, 3)).astype(np.float32)
    r = g.infer("concat", [grpc_input("a", a), grpc_input("b", b)])
    want = local("concat_relu").run([a, b])[0]
    np.testing.assert_array_equal(r.as_numpy("v6"), want)
    # also over HTTP, JSON in, binary out
    h = http_client(server)
    r = h.infer("concat", [http_input("a", a, False), http_input("b", b, False)])
    np.testing.assert_array_equal(r.as_numpy("v6"), want)


def test_grpc_typed_contents(server, local):
    """Inputs as InferTensorContents (fp32_contents / int64_contents) instead of raw bytes."""
    x = np.random.default_rng(4).standard_normal((2, 4)).astype(np.float32)
    with grpc.insecure_channel(server.grpc) as ch:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(ch)
        req = service_pb2.ModelInferRequest(model_name="affine")
        t = req.inputs.add(name="x", datatype="FP32", shape=[2, 4])
        t.contents.fp32_contents.extend(x.reshape(-1).tolist())
        resp = stub.ModelInfer(req, timeout=30)
        out = np.frombuffer(resp.raw_output_contents[0], np.float32).reshape(2, 4)
        np.testing.assert_array_equal(out, local("affine").run([x])[0])
        xi = np.arange(6, dtype=np.int64).reshape(2, 3) - 3
        req = service_pb2.ModelInferRequest(model_name="int_math")
        t = req.inputs.add(name="x", datatype="INT64", shape=[2, 3])
        t.contents.int64_contents.extend(xi.reshape(-1).tolist())
        resp = stub.ModelInfer(req, timeout=30)
        names = [o.name for o in resp.outputs]
        y = np.frombuffer(resp.raw_output_contents[names.index("v5")], np.int64).reshape(2, 3)
        np.testing.assert_array_equal(y, local("int_math").run([xi])[0])


@pytest.mark.parametrize("proto", ["http", "http-json", "grpc"])
def test_int64_two_outputs(server, local, proto):
    x = np.random.default_rng(5).integers(-1000, 1000, (4, 3)).astype(np.int64)
    if proto == "grpc":
        r = grpc_client(server).infer("int_math", [grpc_input("x", x)])
    else:
        binary = proto == "http"
        r = http_client(server).infer(
            "int_math",
            [http_input("x", x, binary)],
            outputs=[th.InferRequestedOutput(n, binary_data=binary) for n in ("v5", "v8")],
        )
    want = local("int_math").run([x])
    assert r.as_numpy("v5").dtype == np.int64
    np.testing.assert_array_equal(r.as_numpy("v5"), want[0])
    np.testing.assert_array_equal(r.as_numpy("v8"), want[1])


@pytest.mark.parametrize("proto", ["http", "http-json", "grpc"])
def test_fp16(server, local, proto):
    x = np.random.default_rng(6).standard_normal((3, 4)).astype(np.float16)
    if proto == "grpc":
        r = grpc_client(server).infer("half", [grpc_input("x", x)])
    else:
        binary = proto == "http"
        r = http_client(server).infer(
            "half",
            [http_input("x", x, binary)],
            outputs=[th.InferRequestedOutput("v7", binary_data=binary)],
        )
    out = r.as_numpy("v7")
    want = local("half").run([x])[0]
    assert want.dtype == np.float16
    np.testing.assert_array_equal(out.astype(np.float16), want)
    if proto != "http-json":
        assert out.dtype == np.float16


def test_bytes_input_rejected(server):
    x = np.array([[b"a", b"b", b"c", b"d"]], dtype=np.object_)
    with pytest.raises(InferenceServerException) as e:
        http_client(server).infer("affine", [http_input("x", x, True, "BYTES")])
    assert e.value.status() == "400"
    assert "data-type is 'BYTES', but model 'affine' expects 'FP32'" in e.value.message()
    with pytest.raises(InferenceServerException) as e:
        grpc_client(server).infer("affine", [grpc_input("x", x, "BYTES")])
    assert "StatusCode.INVALID_ARGUMENT" in e.value.status()
    assert "expects 'FP32'" in e.value.message()
    assert http_client(server).is_server_live()


@pytest.mark.parametrize("proto", ["http", "http-json", "grpc"])
def test_classification_bytes_output(server, local, proto):
    """The classification extension returns BYTES "value:index:label" strings."""
    x = np.random.default_rng(7).standard_normal((2, 3, 8, 8)).astype(np.float32)
    if proto == "grpc":
        r = grpc_client(server).infer(
            "small", [grpc_input("x", x)], outputs=[tg.InferRequestedOutput("v15", class_count=3)]
        )
    else:
        binary = proto == "http"
        r = http_client(server).infer(
            "small",
            [http_input("x", x, binary)],
            outputs=[th.InferRequestedOutput("v15", binary_data=binary, class_count=3)],
        )
    out = r.as_numpy("v15")
    assert out.shape == (2, 3)
    scores = local("small_net").run([x])[0]
    labels = ["cat", "dog", "bird", "fish", "frog"]
    for row, srow in zip(out, scores, strict=True):
        top = np.argsort(-srow)[:3]
        for item, idx in zip(row, top, strict=True):
            text = item.decode() if isinstance(item, bytes) else str(item)
            value, index, label = text.split(":")
            assert int(index) == idx and label == labels[idx]
            assert abs(float(value) - srow[idx]) < 1e-5


def test_versions(server, local):
    """version_policy latest 2 of versions 1..3: 2 and 3 served, 3 by default."""
    h = http_client(server)
    assert h.get_model_metadata("small")["versions"] == ["2", "3"]
    assert h.is_model_ready("small", "3") and h.is_model_ready("small", "2")
    assert not h.is_model_ready("small", "1")
    x = np.random.default_rng(8).standard_normal((1, 3, 8, 8)).astype(np.float32)
    r = h.infer("small", [http_input("x", x)])
    assert r.get_response()["model_version"] == "3"
    r = h.infer("small", [http_input("x", x)], model_version="2")
    assert r.get_response()["model_version"] == "2"
    np.testing.assert_allclose(
        r.as_numpy("v15"), local("small_net").run([x])[0], rtol=1e-5, atol=1e-6
    )


def test_no_batching_model(server, local):
    """max_batch_size 0: dims are the whole shape; requests are never combined."""
    x = np.random.default_rng(9).standard_normal((7, 4)).astype(np.float32)
    r = http_client(server).infer("nobatch", [http_input("x", x)])
    np.testing.assert_array_equal(r.as_numpy("v5"), local("affine").run([x])[0])


def test_dynamic_batch_mixed_sizes(server, local):
    """Concurrent requests of batch 1..5 are concatenated and split back correctly."""
    import concurrent.futures as cf

    rng = np.random.default_rng(10)
    reqs = []
    for i in range(40):
        n = 1 + i % 5
        reqs.append(
            (
                rng.standard_normal((n, 2)).astype(np.float32),
                rng.standard_normal((n, 3)).astype(np.float32),
            )
        )
    g = grpc_client(server)
    before = g.get_inference_statistics("concat", as_json=True)["model_stats"][0]

    def one(ab):
        a, b = ab
        return g.infer("concat", [grpc_input("a", a), grpc_input("b", b)]).as_numpy("v6")

    with cf.ThreadPoolExecutor(10) as pool:
        outs = list(pool.map(one, reqs))
    pred = local("concat_relu")
    for (a, b), out in zip(reqs, outs, strict=True):
        np.testing.assert_array_equal(out, pred.run([a, b])[0])
    after = g.get_inference_statistics("concat", as_json=True)["model_stats"][0]
    n_inf = int(after["inference_count"]) - int(before.get("inference_count", 0))
    n_exec = int(after["execution_count"]) - int(before.get("execution_count", 0))
    assert n_inf == sum(len(a) for a, _ in reqs)
    assert n_exec < len(reqs), "requests were never batched"


def test_grpc_stream(server, local):
    """ModelStreamInfer: every request answered (in completion order), errors in-band."""
    import queue

    got: queue.Queue = queue.Queue()
    g = grpc_client(server)
    g.start_stream(callback=lambda result, error: got.put((result, error)))
    rng = np.random.default_rng(11)
    xs = {f"s{i}": rng.standard_normal((1 + i % 3, 4)).astype(np.float32) for i in range(12)}
    for rid, x in xs.items():
        g.async_stream_infer("affine", [grpc_input("x", x)], request_id=rid)
    g.async_stream_infer(
        "affine", [grpc_input("x", np.zeros((1, 5), np.float32))], request_id="bad"
    )
    results, errors = {}, []
    for _ in range(len(xs) + 1):
        result, error = got.get(timeout=30)
        if error is not None:
            errors.append(error)
        else:
            results[result.get_response().id] = result.as_numpy("v5")
    g.stop_stream()
    assert len(errors) == 1 and "Expected [-1,4]" in str(errors[0])
    assert set(results) == set(xs)
    for rid, x in xs.items():
        np.testing.assert_array_equal(results[rid], local("affine").run([x])[0])
