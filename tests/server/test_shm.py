"""Triton's system shared memory extension with stock ``tritonclient.utils.shared_memory``, over
HTTP and gRPC; per-device execution metrics. ONNX models only (no Paddle needed)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import requests

from tests.server.helpers import ServerProcess, grpc_client, grpc_input, http_client, http_input

pytest.importorskip("tritonclient.grpc")
pytest.importorskip("aiohttp")
pytest.importorskip("onnx")
shm = pytest.importorskip("tritonclient.utils.shared_memory")

AFFINE_CFG = (
    "max_batch_size: 8\ndynamic_batching { max_queue_delay_microseconds: 500 }\n"
    "instance_group [ { count: 2 kind: KIND_CPU } ]\n"
)


@pytest.fixture(scope="module")
def onnx_server(tmp_path_factory):
    from tests.server.onnx_models import affine

    root = tmp_path_factory.mktemp("shm_repo")
    (root / "affine" / "1").mkdir(parents=True)
    affine(root / "affine" / "1" / "model.onnx")
    (root / "affine" / "config.pbtxt").write_text(AFFINE_CFG)
    with ServerProcess(root) as s:
        yield s


@pytest.fixture
def regions():
    """An input region (two tensors of [2, 4] FP32) and an output region, unlinked afterwards."""
    tag = f"{os.getpid()}_{os.urandom(3).hex()}"
    made = {
        "in": shm.create_shared_memory_region(f"in_{tag}", f"/fluidrt_in_{tag}", 64),
        "out": shm.create_shared_memory_region(f"out_{tag}", f"/fluidrt_out_{tag}", 96),
    }
    yield tag, made
    for h in made.values():
        shm.destroy_shared_memory_region(h)


def _x() -> np.ndarray:
    return np.arange(8, dtype=np.float32).reshape(2, 4) - 3


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_system_shared_memory_infer(onnx_server, regions, protocol):
    import tritonclient.grpc as tg
    import tritonclient.http as th
    from tritonclient.utils import InferenceServerException

    tag, h = regions
    mod = th if protocol == "http" else tg
    c = http_client(onnx_server) if protocol == "http" else grpc_client(onnx_server)
    c.unregister_system_shared_memory()
    x = _x()
    shm.set_shared_memory_region(h["in"], [x, x + 10])
    c.register_system_shared_memory(f"in_{tag}", f"/fluidrt_in_{tag}", 64)
    # the output region is registered from byte 16 of its object: 80 bytes
    c.register_system_shared_memory(f"out_{tag}", f"/fluidrt_out_{tag}", 80, offset=16)
    status = c.get_system_shared_memory_status()
    if protocol == "http":
        assert sorted(r["name"] for r in status) == [f"in_{tag}", f"out_{tag}"]
        assert {"name": f"out_{tag}", "key": f"/fluidrt_out_{tag}", "offset": 16,
                "byte_size": 80} in status  # fmt: skip
    else:
        assert sorted(status.regions) == [f"in_{tag}", f"out_{tag}"]
        assert status.regions[f"out_{tag}"].offset == 16

    # input: the second tensor of the input region; output at offset 8 of the output region
    i = mod.InferInput("x", [2, 4], "FP32")
    i.set_shared_memory(f"in_{tag}", 32, offset=32)
    o = mod.InferRequestedOutput("y", binary_data=True) if protocol == "http" else (
        mod.InferRequestedOutput("y"))  # fmt: skip
    o.set_shared_memory(f"out_{tag}", 40, offset=8)
    res = c.infer("affine", [i], outputs=[o])
    out = res.get_output("y")
    params = out["parameters"] if protocol == "http" else {
        k: v.string_param or v.int64_param for k, v in out.parameters.items()}  # fmt: skip
    assert params["shared_memory_region"] == f"out_{tag}"
    assert params["shared_memory_byte_size"] == 32
    got = shm.get_contents_as_numpy(h["out"], np.float32, [2, 4], offset=16 + 8)
    np.testing.assert_array_equal(got, (x + 10) * 2 + 1)

    # a shared memory input with an ordinary (binary) output (a new InferInput: the client's
    # set_shared_memory keeps an earlier offset when the new one is 0)
    i = mod.InferInput("x", [2, 4], "FP32")
    i.set_shared_memory(f"in_{tag}", 32)
    res = c.infer("affine", [i])
    np.testing.assert_array_equal(res.as_numpy("y"), x * 2 + 1)

    # errors: too small an output span, a span past the region, an unknown region, a size that
    # does not match the tensor, registering a name twice, a key that does not exist
    def fails(fn, *needles: str) -> None:
        with pytest.raises(InferenceServerException) as e:
            fn()
        for n in needles:
            assert n in str(e.value), str(e.value)

    o.set_shared_memory(f"out_{tag}", 16)
    fails(lambda: c.infer("affine", [i], outputs=[o]), "should be at least 32 bytes")
    o.set_shared_memory(f"out_{tag}", 40, offset=60)
    fails(lambda: c.infer("affine", [i], outputs=[o]), "Invalid offset + byte size")
    i.set_shared_memory("nope", 32)
    fails(lambda: c.infer("affine", [i]), "Unable to find shared memory region: 'nope'")
    i.set_shared_memory(f"in_{tag}", 28)
    fails(lambda: c.infer("affine", [i]), "unexpected size 28 bytes", "needs 32 bytes")
    fails(
        lambda: c.register_system_shared_memory(f"in_{tag}", f"/fluidrt_in_{tag}", 64),
        "already in manager",
    )
    fails(
        lambda: c.register_system_shared_memory("x", f"/fluidrt_missing_{tag}", 64),
        "Unable to open shared memory region",
    )
    fails(
        lambda: c.register_system_shared_memory("x", f"/fluidrt_in_{tag}", 64, offset=8),
        "exceeds the size",
    )

    c.unregister_system_shared_memory(f"in_{tag}")
    status = c.get_system_shared_memory_status()
    names = [r["name"] for r in status] if protocol == "http" else list(status.regions)
    assert names == [f"out_{tag}"]
    c.unregister_system_shared_memory()
    status = c.get_system_shared_memory_status()
    assert not (status if protocol == "http" else status.regions)


def test_region_status_and_cuda_shm(onnx_server):
    base = f"http://{onnx_server.http}/v2"
    r = requests.get(f"{base}/systemsharedmemory/region/none/status", timeout=10)
    assert r.status_code == 404
    assert "Unable to find system shared memory region: 'none'" in r.json()["error"]
    assert requests.get(f"{base}/cudasharedmemory/status", timeout=10).json() == []
    r = requests.post(f"{base}/cudasharedmemory/region/a/register", json={}, timeout=10)
    assert r.status_code == 501
    r = requests.post(f"{base}/systemsharedmemory/region/a/register", json={"k": 1}, timeout=10)
    assert r.status_code == 400 and "'key', 'byte_size'" in r.json()["error"]
    md = requests.get(base, timeout=10).json()
    assert "system_shared_memory" in md["extensions"]


def test_device_metrics(onnx_server):
    """Execution counters carry the executing device: CPU instances have no gpu_uuid label."""
    c = grpc_client(onnx_server)
    for _ in range(3):
        c.infer("affine", [grpc_input("x", _x())])
    text = requests.get(f"http://{onnx_server.metrics}/metrics", timeout=10).text
    lines = [line for line in text.splitlines() if line.startswith("nv_inference_exec_count{")]
    assert lines and all('model="affine",version="1"' in line for line in lines)
    assert not any("gpu_uuid" in line for line in lines)
    assert int(lines[0].split()[-1]) >= 1
    assert 'nv_inference_count{model="affine",version="1"}' in text
    http_client(onnx_server).infer("affine", [http_input("x", _x())])


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_perf_shared_memory(onnx_server, tmp_path, protocol):
    """``fluidrt perf --shared-memory system``: no errors, the server executed the requests, and
    the regions are unregistered and unlinked afterwards."""
    import json
    import subprocess
    import sys

    from tests.support.paddle_ref import REPO

    url = onnx_server.http if protocol == "http" else onnx_server.grpc
    out = tmp_path / "perf.json"
    cmd = [sys.executable, "-m", "fluidrt.cli", "perf", "-m", "affine", "-u", url, "-i", protocol]
    cmd += ["--concurrency-range", "4", "--requests", "40", "-r", "3", "--warmup", "0.1"]
    cmd += ["-b", "2", "--shared-memory", "system", "--output-shared-memory-size", "64"]
    r = subprocess.run(cmd + ["--json", str(out)], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "system shared memory" in r.stdout
    report = json.loads(out.read_text())
    assert report["shared_memory"] == "system"
    level = report["results"][0]
    assert level["errors"] == 0 and level["requests"] > 0
    # requests in flight when the server's counters are first read may already be counted
    # before the window: at most `concurrency` of them
    assert level["server"]["inference_count"] >= 2 * (level["requests"] - 4)
    assert http_client(onnx_server).get_system_shared_memory_status() == []
    assert not [f for f in os.listdir("/dev/shm") if f.startswith("fluidrt_perf_")]
