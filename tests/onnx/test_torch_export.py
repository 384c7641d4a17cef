"""torchvision models exported by ``torch.onnx.export`` (TorchScript exporter, dynamic batch),
run through ``fluidrt.onnx.backend`` (engines on) against onnxruntime (CPU).

Skipped where torchvision is not installed. Random weights (nothing is downloaded). On a CUDA
machine the fluidrt side runs on the GPU. ``python tests/onnx/test_torch_export.py [names]``
prints a table instead.
"""

from __future__ import annotations

import io
import sys
import time

import numpy as np
import pytest
import torch

# name -> (constructor kwargs, input size)
MODELS: dict[str, tuple[dict, int]] = {
    "resnet18": ({}, 224),
    "mobilenet_v3_small": ({}, 224),
    "efficientnet_b0": ({}, 224),
    "shufflenet_v2_x1_0": ({}, 224),
    "squeezenet1_1": ({}, 224),
    "densenet121": ({}, 224),
    "regnet_y_400mf": ({}, 224),
    "googlenet": ({"aux_logits": False, "init_weights": True}, 224),
    "convnext_tiny": ({}, 224),
    "vit_b_16": ({}, 224),
    "swin_t": ({}, 224),
    "lraspp_mobilenet_v3_large": ({"weights_backbone": None}, 224),
}
OPSET = 17


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def export(name: str) -> bytes:
    import torchvision

    kwargs, _ = MODELS[name]
    torch.manual_seed(0)
    if name.startswith(("lraspp", "fcn", "deeplab")):
        model = getattr(torchvision.models.segmentation, name)(weights=None, **kwargs)
    else:
        model = getattr(torchvision.models, name)(weights=None, **kwargs)
    for m in model.modules():  # zero-initialised heads (ViT, Swin) would give all-zero outputs
        if isinstance(m, torch.nn.Linear) and not m.weight.any():
            torch.nn.init.normal_(m.weight, std=0.02)
    model.eval()
    size = MODELS[name][1]
    x = torch.randn(1, 3, size, size)
    f = io.BytesIO()
    torch.onnx.export(
        model,
        (x,),
        f,
        opset_version=OPSET,
        input_names=["x"],
        dynamic_axes={"x": {0: "batch"}},
        dynamo=False,
    )
    return f.getvalue()


def check(name: str, device: str) -> dict:
    import onnxruntime as ort

    import fluidrt.onnx.backend as backend

    data = export(name)
    size = MODELS[name][1]
    x = np.random.RandomState(0).standard_normal((1, 3, size, size)).astype(np.float32)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"x": x})
    t0 = time.perf_counter()
    rep = backend.prepare(data, device=device)
    build = time.perf_counter() - t0
    outs = rep.run([x])
    runner = rep.runner
    return {
        "model": name,
        "rel_l2": max(rel_l2(o, r) for o, r in zip(outs, ref, strict=True)),
        "build_s": round(build, 2),
        "engine_nodes": sum(len(e.graph.nodes) for e in runner.engines),
        "native_nodes": len(runner.native_reasons),
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_torchvision_export_matches_onnxruntime(name: str) -> None:
    pytest.importorskip("torchvision")
    pytest.importorskip("onnxruntime")
    device = "CUDA" if torch.cuda.is_available() else "CPU"
    result = check(name, device)
    # TF32 convolutions on CUDA round to 10 mantissa bits
    limit = 1e-5 if device == "CPU" else 3e-3
    assert result["rel_l2"] <= limit, result
    assert result["engine_nodes"] > 0, result


if __name__ == "__main__":
    device = "CUDA" if torch.cuda.is_available() else "CPU"
    for n in sys.argv[1:] or list(MODELS):
        try:
            r = check(n, device)
            print(
                f"{n:28s} rel_l2={r['rel_l2']:.2e} build={r['build_s']}s "
                f"engine={r['engine_nodes']} native={r['native_nodes']}",
                flush=True,
            )
        except Exception as exc:  # noqa: BLE001
            print(f"{n:28s} FAILED {type(exc).__name__}: {str(exc)[:400]}", flush=True)
