"""Server pieces without a server: BYTES encoding, config parsing/completion/validation, version
policies, model file discovery, fluidrt options, and the dynamic batcher with a fake model."""

from __future__ import annotations

import struct
import threading
import time

import numpy as np
import pytest

pytest.importorskip("tritonclient.grpc")

from tritonclient.grpc import model_config_pb2 as mc  # noqa: E402

from fluidrt.server.config import (  # noqa: E402
    ModelIO,
    TensorInfo,
    complete_config,
    config_to_dict,
    fluidrt_options,
    load_config_file,
    locate_model_files,
    select_versions,
)
from fluidrt.server.errors import ServerError  # noqa: E402
from fluidrt.server.scheduler import BatchingPolicy, InferRequest, Scheduler  # noqa: E402
from fluidrt.server.stats import ModelStats  # noqa: E402
from fluidrt.server.types import (  # noqa: E402
    deserialize_bytes_tensor,
    serialize_bytes_tensor,
    tensor_from_bytes,
    tensor_from_json,
)


# ---- datatypes ------------------------------------------------------------------------------
def test_bytes_roundtrip_and_errors():
    arr = np.array([[b"ab", b""], [b"\x00\xff", "caf\u00e9"]], dtype=np.object_)
    raw = serialize_bytes_tensor(arr)
    assert raw[:6] == struct.pack("<I", 2) + b"ab"
    back = tensor_from_bytes(raw, "BYTES", [2, 2], "t")
    assert back.tolist() == [[b"ab", b""], [b"\x00\xff", "caf\u00e9".encode()]]
    with pytest.raises(ServerError, match="runs past the end"):
        deserialize_bytes_tensor(raw[:-1] + b"\x00\x00", None, "t")
    with pytest.raises(ServerError, match="claims 2 bytes"):
        deserialize_bytes_tensor(struct.pack("<I", 2) + b"a", None, "t")
    with pytest.raises(ServerError, match="holds 4 element"):
        tensor_from_bytes(raw, "BYTES", [5], "t")


def test_json_tensors():
    assert tensor_from_json([[1, 2], [3, 4]], "INT64", [2, 2], "t").dtype == np.int64
    np.testing.assert_array_equal(
        tensor_from_json([1, 2, 3, 4], "FP32", [2, 2], "t"), [[1, 2], [3, 4]]
    )
    with pytest.raises(ServerError, match="holds 3 element"):
        tensor_from_json([1, 2, 3], "FP32", [2, 2], "t")
    with pytest.raises(ServerError, match="true/false"):
        tensor_from_json([1, 0], "BOOL", [2], "t")
    assert tensor_from_json(["a", "b"], "BYTES", [2], "t").tolist() == [b"a", b"b"]
    with pytest.raises(ServerError, match="needs 16 bytes"):
        tensor_from_bytes(b"\0" * 12, "FP32", [4], "t")


# ---- config ---------------------------------------------------------------------------------
IO = ModelIO(
    inputs=[TensorInfo("x", "FP32", [-1, 3, 8, 8])],
    outputs=[TensorInfo("y", "FP32", [-1, 5])],
)


def _cfg(tmp_path, text: str | None, name: str = "m"):
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    if text is not None:
        (d / "config.pbtxt").write_text(text)
    return load_config_file(str(d), name)


def test_config_parse_errors(tmp_path):
    with pytest.raises(ServerError, match=r"config.pbtxt: .*max_batch_siz"):
        _cfg(tmp_path, "max_batch_siz: 3")
    with pytest.raises(ServerError, match="differs from the model's directory name 'm'"):
        _cfg(tmp_path, 'name: "other"')


def test_autocomplete(tmp_path):
    cfg, explicit = _cfg(tmp_path, None)
    assert not explicit
    complete_config(cfg, IO, "paddle", "v1", explicit)
    d = config_to_dict(cfg)
    assert d["max_batch_size"] == 4 and "dynamic_batching" in d
    assert d["input"][0]["dims"] == [3, 8, 8] and d["input"][0]["data_type"] == "TYPE_FP32"
    assert d["output"][0]["dims"] == [5]
    assert d["version_policy"] == {"latest": {"num_versions": 1}}
    assert d["platform"] == "fluidrt_paddle" and d["instance_group"][0]["count"] == 1
    # explicit max_batch_size 0: dims are the full shapes, no batching
    cfg, explicit = _cfg(tmp_path, "max_batch_size: 0")
    assert explicit
    complete_config(cfg, IO, "paddle", "v1", explicit)
    assert list(cfg.input[0].dims) == [-1, 3, 8, 8] and not cfg.HasField("dynamic_batching")


def test_config_validation_messages(tmp_path):
    cfg, ex = _cfg(
        tmp_path, 'max_batch_size: 8\ninput [{name: "x" data_type: TYPE_FP32 dims: [3, 9, 8]}]'
    )
    with pytest.raises(
        ServerError,
        match=r"\[-1\] \+ dims = \[-1, 3, 9, 8\] in the config, but "
        r"the model's shape is \[-1, 3, 8, 8\]",
    ):
        complete_config(cfg, IO, "paddle", "v1", ex)
    cfg, ex = _cfg(tmp_path, 'input [{name: "x" data_type: TYPE_INT64 dims: [3, 8, 8]}]')
    with pytest.raises(
        ServerError, match="is TYPE_INT64 in the config, but the model's is TYPE_FP32"
    ):
        complete_config(cfg, IO, "paddle", "v1", ex)
    cfg, ex = _cfg(tmp_path, 'input [{name: "z" data_type: TYPE_FP32 dims: [3, 8, 8]}]')
    with pytest.raises(ServerError, match=r"unknown: \['z'\]; missing: \['x'\]"):
        complete_config(cfg, IO, "paddle", "v1", ex)
    cfg, ex = _cfg(tmp_path, "max_batch_size: 4\ndynamic_batching { preferred_batch_size: [8] }")
    with pytest.raises(ServerError, match="preferred_batch_size 8 must be in 1..max_batch_size"):
        complete_config(cfg, IO, "paddle", "v1", ex)
    fixed = ModelIO(inputs=[TensorInfo("x", "FP32", [1, 3])], outputs=[])
    cfg, ex = _cfg(tmp_path, "max_batch_size: 4")
    with pytest.raises(ServerError, match="fixed first dimension 1"):
        complete_config(cfg, fixed, "paddle", "v1", ex)
    cfg, ex = _cfg(tmp_path, 'backend: "python"')
    with pytest.raises(ServerError, match="backend 'python' is not served by fluidrt"):
        locate_model_files(str(tmp_path), cfg)


def test_version_policy(tmp_path):
    cfg = mc.ModelConfig(name="m")
    assert select_versions(cfg, [1, 2, 5]) == [5]
    cfg.version_policy.latest.num_versions = 2
    assert select_versions(cfg, [1, 2, 5]) == [2, 5]
    cfg.version_policy.all.SetInParent()
    assert select_versions(cfg, [1, 2, 5]) == [1, 2, 5]
    cfg.version_policy.specific.versions.extend([5, 1])
    assert select_versions(cfg, [1, 2, 5]) == [1, 5]
    cfg.version_policy.specific.versions.append(7)
    with pytest.raises(ServerError, match=r"asks for version\(s\) \[7\]"):
        select_versions(cfg, [1, 2, 5])


def test_locate_model_files(tmp_path):
    cfg = mc.ModelConfig(name="m")
    v = tmp_path / "1"
    v.mkdir()
    (v / "net.json").write_text("{}")
    (v / "net.pdiparams").write_bytes(b"")
    f = locate_model_files(str(v), cfg)
    assert (f.kind, f.model.endswith("net.json"), f.params.endswith("net.pdiparams")) == (
        "paddle",
        True,
        True,
    )
    (v / "inference.pdmodel").write_bytes(b"")
    assert locate_model_files(str(v), cfg).model.endswith("inference.pdmodel")
    (v / "model.onnx").write_bytes(b"")
    assert locate_model_files(str(v), cfg).kind == "onnx"
    cfg.backend = "paddle"
    assert locate_model_files(str(v), cfg).kind == "paddle"
    cfg.backend = ""
    cfg.platform = "fluidrt_plan"
    with pytest.raises(ServerError, match="expected a fluidrt plan"):
        locate_model_files(str(v), cfg)
    (v / "x.plan").write_bytes(b"")
    assert locate_model_files(str(v), cfg).kind == "plan"
    w = tmp_path / "2"
    w.mkdir()
    (w / "a.json").write_text("{}")
    (w / "b.json").write_text("{}")
    with pytest.raises(ServerError, match="several Paddle programs"):
        locate_model_files(str(w), mc.ModelConfig(name="m"))


def test_fluidrt_options(tmp_path):
    cfg, _ = _cfg(
        tmp_path,
        """
parameters { key: "cpu_threads" value: { string_value: "2" } }
optimization { execution_accelerators { cpu_execution_accelerator: [ {
  name: "fluidrt" parameters { key: "precision_mode" value: "FP16" }
  parameters { key: "max_batch_size" value: "16" } } ] } }
""",
    )
    o = fluidrt_options(cfg)
    assert o.enable_engine and o.precision == 2 and o.engine_max_batch_size == 16
    assert o.cpu_threads == 2
    cfg, _ = _cfg(tmp_path, 'parameters { key: "precision" value: { string_value: "fp64" } }')
    with pytest.raises(ServerError, match="precision='fp64' is not valid"):
        fluidrt_options(cfg)
    cfg, _ = _cfg(
        tmp_path,
        "optimization { execution_accelerators { "
        'gpu_execution_accelerator: [ { name: "openvino" } ] } }',
    )
    with pytest.raises(ServerError, match="'openvino' is not available"):
        fluidrt_options(cfg)


# ---- dynamic batcher ------------------------------------------------------------------------
class FakeInstance:
    """x -> x + 1, recording every executed batch size; optionally slow."""

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[int] = []
        self.delay = delay
        self.lock = threading.Lock()

    def execute(self, feeds):
        x = feeds["x"]
        with self.lock:
            self.batches.append(len(x))
        if self.delay:
            time.sleep(self.delay)
        t = time.monotonic_ns()
        return {"y": x + 1}, t, t


def _submit(sched: Scheduler, x: np.ndarray, results: dict, key):
    done = threading.Event()

    def cb(outs, err):
        results[key] = err if err is not None else outs["y"]
        done.set()

    sched.submit(InferRequest({"x": x}, len(x), (x.shape[1:],), cb))
    return done


def test_batcher_waits_for_delay_and_prefers_sizes():
    inst = FakeInstance()
    pol = BatchingPolicy(max_batch_size=8, dynamic=True, preferred=(4,), max_delay_ns=300_000_000)
    s = Scheduler("t", [inst], pol, ModelStats())
    s.start()
    results: dict = {}
    evs = [_submit(s, np.full((1, 2), i, np.float32), results, i) for i in range(4)]
    for e in evs:  # 4 rows make the preferred size: sent at once, not after 300 ms
        assert e.wait(0.25)
    assert inst.batches == [4]
    t0 = time.monotonic()
    e = _submit(s, np.zeros((3, 2), np.float32), results, "late")
    assert e.wait(2)
    assert time.monotonic() - t0 >= 0.25  # waited for the delay
    assert inst.batches == [4, 3]
    for i in range(4):
        np.testing.assert_array_equal(results[i], np.full((1, 2), i + 1, np.float32))
    assert s.stop(5)


def test_batcher_max_size_and_shape_groups():
    inst = FakeInstance(delay=0.05)
    pol = BatchingPolicy(max_batch_size=4, dynamic=True, max_delay_ns=50_000_000)
    stats = ModelStats()
    s = Scheduler("t", [inst], pol, stats)
    results: dict = {}
    evs = [_submit(s, np.full((3, 2), i, np.float32), results, i) for i in range(3)]
    evs.append(_submit(s, np.zeros((1, 5), np.float32), results, "other-shape"))
    evs += [_submit(s, np.full((1, 2), 9, np.float32), results, f"one{i}") for i in range(2)]
    s.start()
    for e in evs:
        assert e.wait(5)
    # 3+3 > 4: each 3-row request alone; a different shape never joins a batch
    assert inst.batches[:3] == [3, 3, 3]
    assert sorted(inst.batches[3:]) == [1, 2]
    snap = stats.snapshot()
    assert snap["inference_count"] == 12 and snap["execution_count"] == 5
    assert results["other-shape"].shape == (1, 5)
    assert s.stop(5)


def test_batcher_queue_limit_timeout_and_stop():
    inst = FakeInstance()
    pol = BatchingPolicy(
        max_batch_size=8, dynamic=True, max_delay_ns=10**9, max_queue_size=2, default_timeout_ns=0
    )
    s = Scheduler("t", [inst], pol, ModelStats())
    results: dict = {}
    _submit(s, np.zeros((1, 2), np.float32), results, 0)
    _submit(s, np.zeros((1, 2), np.float32), results, 1)
    with pytest.raises(ServerError, match="Exceeds maximum queue size") as e:
        _submit(s, np.zeros((1, 2), np.float32), results, 2)
    assert e.value.http_status == 503 and e.value.grpc_status == "UNAVAILABLE"
    s.start()
    assert s.stop(5)  # stopping dispatches what is queued at once, without the 1 s delay
    assert inst.batches == [2] and set(results) == {0, 1}
    with pytest.raises(ServerError, match="unloading"):
        _submit(s, np.zeros((1, 2), np.float32), results, 3)
    # per-request deadlines expire in the queue
    pol = BatchingPolicy(max_batch_size=8, dynamic=True, max_delay_ns=2 * 10**8)
    s = Scheduler("t", [FakeInstance()], pol, ModelStats())
    done = threading.Event()
    out = {}

    def cb(outs, err):
        out["err"] = err
        done.set()

    s.submit(
        InferRequest(
            {"x": np.zeros((1, 2))}, 1, ((2,),), cb, deadline_ns=time.monotonic_ns() + 50_000_000
        )
    )
    s.start()
    assert done.wait(2) and "timeout expired" in str(out["err"])
    assert s.stop(5)


def test_batcher_failure_reaches_every_request():
    class Boom(FakeInstance):
        def execute(self, feeds):
            raise RuntimeError("kernel exploded")

    pol = BatchingPolicy(max_batch_size=8, dynamic=True, max_delay_ns=50_000_000)
    s = Scheduler("t", [Boom()], pol, ModelStats())
    results: dict = {}
    evs = [_submit(s, np.zeros((1, 2), np.float32), results, i) for i in range(3)]
    s.start()
    for e in evs:
        assert e.wait(5)
    assert all(isinstance(results[i], ServerError) for i in range(3))
    assert results[0].code == "INTERNAL" and "kernel exploded" in results[0].message
    assert s.stop(5)
