"""GPU INT8: the Triton tactics of qconv2d/qmatmul vs the native reference (int8 outputs exact
or within 1 LSB), and an end-to-end INT8 ResNet50 vs FP32 (calibrated through Config)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from fluidrt.engine.layers import candidate_tactics
from fluidrt.ir.graph import Graph
from fluidrt.ops.infer import infer_node
from fluidrt.ops.registry import get_op

pytestmark = pytest.mark.gpu
CUDA = torch.device("cuda")
REPO = Path(__file__).resolve().parents[2]


def _node(op: str, shapes: dict, attrs: dict, residual: bool) -> tuple:
    g = Graph("q")
    gen = torch.Generator().manual_seed(0)
    x = g.add_input("x", shapes["x"], "int8")
    w = torch.randint(-127, 128, shapes["w"], generator=gen, dtype=torch.int8)
    k = shapes["w"][0]
    ws = (torch.rand(k, generator=gen) * 0.01 + 1e-3).numpy()
    b = torch.randn(k, generator=gen).numpy()
    ins = [x, g.add_const("w", w.numpy()), g.add_const("ws", ws), g.add_const("b", b)]
    if residual:
        ins.append(
            g.add_input("r", shapes["out"], "int8" if attrs.get("residual_scale") else "float32")
        )
    n = g.add_node(op, ins, attrs)
    infer_node(n)
    return g, n, gen


CASES = [
    (
        "qconv2d",
        {"x": (2, 64, 14, 14), "w": (128, 64, 3, 3), "out": (2, 128, 14, 14)},
        {"pads": [1, 1, 1, 1], "activation": "relu", "in_scale": 0.05, "out_scale": 0.2},
        False,
    ),
    (
        "qconv2d",
        {"x": (1, 3, 32, 32), "w": (16, 3, 7, 7), "out": (1, 16, 16, 16)},
        {
            "pads": [3, 3, 3, 3],
            "strides": [2, 2],
            "in_scale": 0.02,
            "out_scale": None,
            "out_dtype": "float16",
        },
        False,
    ),
    (
        "qconv2d",
        {"x": (4, 32, 8, 8), "w": (32, 32, 1, 1), "out": (4, 32, 8, 8)},
        {"activation": "relu", "in_scale": 0.05, "out_scale": 0.1, "residual_scale": 0.07},
        True,
    ),
    (
        "qconv2d",
        {"x": (2, 32, 16, 16), "w": (32, 1, 3, 3), "out": (2, 32, 16, 16)},
        {
            "pads": [1, 1, 1, 1],
            "groups": 32,
            "activation": "clip",
            "act_attrs": {"min": 0.0, "max": 6.0},
            "in_scale": 0.05,
            "out_scale": 0.05,
        },
        False,
    ),
    (
        "qmatmul",
        {"x": (8, 256), "w": (100, 256), "out": (8, 100)},
        {"in_scale": 0.03, "out_scale": None, "out_dtype": "float16"},
        False,
    ),
]


def _tactic_vs_reference(
    op: str, shapes: dict, attrs: dict, residual: bool, tactic: str, device: torch.device = CUDA
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(tactic output, reference output) of one layer on random int8 inputs; None where the
    tactic does not apply."""
    g, node, gen = _node(op, shapes, attrs, residual)
    tac = [t for t in candidate_tactics(node, device) if t.name == tactic]
    if not tac:
        return None
    consts = {
        i: torch.from_numpy(v.data.copy()).to(device)
        for i, v in enumerate(node.inputs)
        if v is not None and v.is_const
    }
    x = torch.randint(-128, 128, shapes["x"], generator=gen, dtype=torch.int8)
    args = [x, None, None, None]
    if residual:
        r = node.inputs[4]
        args.append(
            torch.randint(-128, 128, shapes["out"], generator=gen, dtype=torch.int8)
            if r.dtype == "int8"
            else torch.randn(shapes["out"], generator=gen)
        )
    dev_args = [a.to(device) if a is not None else consts.get(i) for i, a in enumerate(args)]
    got = tac[0].prepare(node, consts, device)(dev_args)[0].cpu()
    opdef = get_op(op)
    cpu_args = [a if a is not None else consts[i].cpu() for i, a in enumerate(args)]
    want = opdef.impl(*cpu_args, **opdef.resolve_attrs(node.attrs))
    assert got.dtype == want.dtype and got.shape == want.shape
    return got, want


@pytest.mark.parametrize("op,shapes,attrs,residual", CASES)
def test_triton_int8_tactic_matches_reference(op, shapes, attrs, residual) -> None:
    pair = _tactic_vs_reference(op, shapes, attrs, residual, "triton_int8")
    assert pair is not None, "triton_int8 tactic does not apply"
    got, want = pair
    if want.dtype == torch.int8:
        assert (got.int() - want.int()).abs().max() <= 1
    else:
        torch.testing.assert_close(got.float(), want.float(), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("op,shapes,attrs,residual", [c for c in CASES if c[0] == "qconv2d"])
def test_cudnn_fp16_tactic_close_to_reference(op, shapes, attrs, residual) -> None:
    """The fp16 fallback of an INT8 convolution: within one quantization step of the exact
    layer nearly everywhere (fp16 operands instead of exact integer products)."""
    pair = _tactic_vs_reference(op, shapes, attrs, residual, "cudnn_fp16")
    if attrs.get("activation", "none") not in ("none", "relu"):
        assert pair is None, "cudnn_fp16 offered for an activation cuDNN does not fuse"
        return
    assert pair is not None, "cudnn_fp16 tactic does not apply"
    got, want = pair
    if want.dtype == torch.int8:
        diff = (got.int() - want.int()).abs()
        assert diff.max() <= 2 and (diff > 1).float().mean() < 1e-3
    else:
        err = (got.float() - want.float()).norm() / want.float().norm()
        assert err < 1e-2


@pytest.mark.parametrize("op", ["quantize_linear", "dequantize_linear"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_triton_border_tactic_is_bit_exact(op: str, dtype: str) -> None:
    """quantize_linear / dequantize_linear in one Triton pass: the reference's numbers exactly,
    ties (x / scale = k + 0.5) and saturation included, channels-last kept."""
    g = Graph("q")
    shape = (2, 8, 5, 6)
    x = g.add_input("x", shape, "int8" if op == "dequantize_linear" else dtype)
    scale = g.add_const("s", np.array([0.05], dtype=np.float32))
    zp = g.add_const("z", np.zeros(1, dtype=np.int8))
    attrs = {"dtype": "int8"} if op == "quantize_linear" else {"dtype": dtype}
    node = g.add_node(op, [x, scale, zp], attrs)
    infer_node(node)
    tac = [t for t in candidate_tactics(node, CUDA) if t.name == "triton"]
    assert tac, "triton border tactic not offered"
    gen = torch.Generator().manual_seed(0)
    if op == "quantize_linear":
        v = torch.randn(shape, generator=gen) * 5
        v.view(-1)[:20] = (torch.arange(20) - 10 + 0.5) * 0.05  # exact ties
        v.view(-1)[20:24] = torch.tensor([100.0, -100.0, 6.35, -6.4])  # saturation
        v = v.to(getattr(torch, dtype))
    else:
        v = torch.randint(-128, 128, shape, generator=gen, dtype=torch.int8)
    v = v.contiguous(memory_format=torch.channels_last)
    consts = {1: torch.tensor([0.05], device=CUDA), 2: torch.zeros(1, dtype=torch.int8).to(CUDA)}
    got = tac[0].prepare(node, consts, CUDA)([v.to(CUDA), consts[1], consts[2]])[0]
    opdef = get_op(op)
    want = opdef.impl(v, consts[1].cpu(), consts[2].cpu(), **opdef.resolve_attrs(node.attrs))
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert got.dtype == want.dtype and torch.equal(got.cpu(), want)


@pytest.mark.slow
def test_int8_resnet50_end_to_end(tmp_path: Path) -> None:
    """Calibrate ResNet50 through Config (entropy, 500 inputs) on the GPU; INT8 vs FP32 on 500
    held-out crops: top-1 agreement >= 99%; batch-1/256 latency printed beside FP16."""
    import fluidrt
    from fluidrt.data import calibration_images

    model = REPO / ".cache" / "models" / "pir" / "resnet50"
    if not (model / "model.json").exists():
        pytest.skip("run tools/export_models.py --models resnet50 first")

    def config(precision, **kw):
        cfg = fluidrt.Config(str(model / "model.json"), str(model / "model.pdiparams"))
        cfg.enable_use_gpu(256, 0)
        cfg.enable_tensorrt_engine(
            max_batch_size=kw.get("batch", 50), precision_mode=precision, use_calib_mode=True
        )
        cfg.set_optim_cache_dir(str(tmp_path))
        return cfg

    calib, evals = calibration_images(500, split="calib"), calibration_images(500, split="eval")
    fp32 = fluidrt.create_predictor(config(fluidrt.PrecisionType.Float32))
    ref = np.concatenate([fp32.run([evals[i : i + 50]])[0] for i in range(0, 500, 50)])
    t0 = time.perf_counter()
    int8 = fluidrt.create_predictor(config(fluidrt.PrecisionType.Int8))
    for i in range(0, 500, 50):
        int8.run([calib[i : i + 50]])
    print(f"calibration + INT8 build: {time.perf_counter() - t0:.1f} s")
    print(int8.summary())
    out = np.concatenate([int8.run([evals[i : i + 50]])[0] for i in range(0, 500, 50)])
    agree = float((out.argmax(1) == ref.argmax(1)).mean())
    print(
        f"INT8 vs FP32 top-1 agreement {agree:.4f}, rel L2 "
        f"{np.linalg.norm(out - ref) / np.linalg.norm(ref):.4f}"
    )
    assert agree >= 0.99
    assert any(f.startswith("trt_calib_") for f in os.listdir(tmp_path))
