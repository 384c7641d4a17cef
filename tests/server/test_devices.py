"""Devices of instances: ``enable_use_gpu(device_id)`` end to end, placements over several GPUs,
per-device execution statistics and their ``gpu_uuid`` metric labels. The GPU tests need CUDA
(the device-id one two GPUs); the rest checks the device objects on any machine."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import fluidrt
from fluidrt.inference import device_guard

pytest.importorskip("tritonclient.grpc")


def test_device_id_semantics():
    cfg = fluidrt.Config("m.onnx")
    cfg.enable_use_gpu(100, 1)
    assert cfg.settings.device == "cuda:1" and cfg.use_gpu() and cfg.gpu_device_id() == 1
    guard = device_guard(torch.device("cuda:1"))
    assert isinstance(guard, torch.cuda.device) and guard.idx == 1
    assert not isinstance(device_guard(torch.device("cpu")), torch.cuda.device)
    cfg.disable_gpu()
    assert cfg.settings.device == "cpu" and cfg.gpu_device_id() == 0


def test_placements_over_gpus(monkeypatch):
    from tritonclient.grpc import model_config_pb2 as mc

    from fluidrt.server.errors import ServerError
    from fluidrt.server.model import placements

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    cfg = mc.ModelConfig(name="m")
    cfg.instance_group.add(count=2, kind=mc.ModelInstanceGroup.KIND_GPU, gpus=[1, 0])
    cfg.instance_group.add(count=1, kind=mc.ModelInstanceGroup.KIND_GPU)
    cfg.instance_group.add(count=1, kind=mc.ModelInstanceGroup.KIND_CPU)
    got = [(p.device, p.count) for p in placements(cfg)]
    assert got == [("cuda:1", 2), ("cuda:0", 2), ("cuda:0", 1), ("cuda:1", 1), ("cpu", 1)]
    assert list(cfg.instance_group[1].gpus) == [0, 1]  # the completed config lists them
    bad = mc.ModelConfig(name="m")
    bad.instance_group.add(count=1, kind=mc.ModelInstanceGroup.KIND_GPU, gpus=[2])
    with pytest.raises(ServerError, match="names GPU 2, but only 2 are visible"):
        placements(bad)


def test_per_device_stats_and_metrics(monkeypatch):
    from fluidrt.server import metrics
    from fluidrt.server.model import Placement
    from fluidrt.server.stats import ModelStats

    stats = ModelStats()
    stats.execution(8, 2, 0, 10_000, 20_000, 3_000, "cuda:0")
    stats.execution(4, 1, 0, 10_000, 20_000, 3_000, "cuda:1")
    stats.execution(4, 4, 0, 10_000, 20_000, 3_000, "cuda:1")
    snap = stats.snapshot()
    assert snap["execution_count"] == 3 and snap["inference_count"] == 16
    assert snap["devices"]["cuda:1"][:3] == [2, 8, 5]
    monkeypatch.setattr(metrics, "gpu_uuid", lambda i: f"GPU-test-{i}")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    mv = SimpleNamespace(name="m", version=1, stats=stats, placements=[Placement("cuda:0", 1, "g")])
    core = SimpleNamespace(repo=SimpleNamespace(ready_versions=lambda: [mv]))
    text = metrics.render_metrics(core)
    assert 'nv_inference_exec_count{gpu_uuid="GPU-test-0",model="m",version="1"} 1' in text
    assert 'nv_inference_exec_count{gpu_uuid="GPU-test-1",model="m",version="1"} 2' in text
    assert 'nv_inference_count{gpu_uuid="GPU-test-1",model="m",version="1"} 8' in text
    # compute durations are charged per request: 5 requests x 20 us on cuda:1
    assert (
        'nv_inference_compute_infer_duration_us{gpu_uuid="GPU-test-1",model="m",version="1"} 100'
        in text
    )
    assert 'nv_inference_request_success{model="m",version="1"} 0' in text


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_predictor_on_second_gpu(tmp_path):
    """device_id=1: engines, outputs and the plan moved from GPU 0 all live on cuda:1."""
    pytest.importorskip("onnx")
    from fluidrt.server.model import predictor_on
    from tests.server.onnx_models import conv_net

    path = str(tmp_path / "net.onnx")
    conv_net(tmp_path / "net.onnx")
    x = np.random.default_rng(0).standard_normal((3, 3, 8, 8)).astype(np.float32)
    ref = fluidrt.create_predictor(fluidrt.Config(path)).run([x])[0]  # CPU, native

    def gpu_predictor(device_id: int) -> fluidrt.Predictor:
        cfg = fluidrt.Config(path)
        cfg.enable_use_gpu(100, device_id)
        cfg.enable_engine(max_batch_size=4, precision_mode=fluidrt.PrecisionType.Float32)
        return fluidrt.create_predictor(cfg)

    p1 = gpu_predictor(1)
    p0 = gpu_predictor(0)
    moved = predictor_on(p0, "cuda:1", path)
    for p in (p1, moved, moved.clone()):
        assert p.device == torch.device("cuda:1")
        assert p._runner.device == torch.device("cuda:1")
        for engine in p._runner.engines:
            assert {t.device for t in engine.device_constants().values()} <= {
                torch.device("cuda:1")
            }
        h = p.get_input_handle(p.get_input_names()[0])
        h.copy_from_cpu(x)
        p.run()
        out = p.get_output_handle(p.get_output_names()[0])
        assert out.to_torch().device == torch.device("cuda:1")
        np.testing.assert_allclose(out.copy_to_cpu(), ref, rtol=1e-4, atol=1e-4)
    assert torch.cuda.current_device() == 0  # the guard restored the caller's device
