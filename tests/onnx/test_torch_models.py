"""Small ViT-like and CNN models exported by ``torch.onnx.export`` (dynamic batch), run by fluidrt
with engines on against onnxruntime: what torch's exporter emits for attention, LayerNorm, GELU,
class tokens (Shape/Gather/Expand/Concat), squeeze-excite, hardswish, upsampling."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import fluidrt
import fluidrt.onnx.backend as backend

ort = pytest.importorskip("onnxruntime")


class TinyViT(nn.Module):
    def __init__(self, dim: int = 32, depth: int = 2, heads: int = 4, classes: int = 10) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 8, 8)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.1)
        self.pos = nn.Parameter(torch.randn(1, 17, dim) * 0.1)
        layer = nn.TransformerEncoderLayer(
            dim, heads, dim * 2, dropout=0.1, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x).flatten(2).transpose(1, 2)
        cls = self.cls.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos
        x = self.norm(self.encoder(x))
        return self.head(x[:, 0])


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.Hardswish())
        self.dw = nn.Sequential(
            nn.Conv2d(16, 16, 3, 1, 1, groups=16), nn.BatchNorm2d(16), nn.ReLU6()
        )
        self.se = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(16, 4, 1),
            nn.ReLU(),
            nn.Conv2d(4, 16, 1),
            nn.Hardsigmoid(),
        )
        self.pool = nn.MaxPool2d(3, 2, 0, ceil_mode=True)  # 16 -> 8, last window partial
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.head = nn.Linear(32 * 16 * 16, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.stem(x)
        z = self.dw(y)
        z = z * self.se(z)
        p = self.pool(z)
        u = self.up(p)
        cat = torch.cat([u, y], 1)
        logits = self.head(torch.flatten(cat, 1))
        return torch.softmax(logits, -1), cat.mean(dim=(2, 3))


class WindowAttention(nn.Module):
    """Swin-style shifted windows: view/permute into windows (batch * windows), attention with a
    per-window mask, back, roll: shape arithmetic on the dynamic batch (B * nW, B // nW)."""

    def __init__(self, dim: int = 16, window: int = 4, heads: int = 2) -> None:
        super().__init__()
        self.ws, self.heads = window, heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.register_buffer("mask", torch.randn(4, window * window, window * window))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, H, W, C]
        b, h, w, c = x.shape
        ws = self.ws
        x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
        x = x.reshape(-1, ws * ws, c)
        bn, n, _ = x.shape
        qkv = self.qkv(x).reshape(bn, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * 0.5
        nw = self.mask.shape[0]
        attn = attn.view(bn // nw, nw, self.heads, n, n) + self.mask.unsqueeze(1).unsqueeze(0)
        attn = attn.view(-1, self.heads, n, n).softmax(-1)
        y = self.proj((attn @ v).transpose(1, 2).reshape(bn, n, c))
        y = y.view(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
        return torch.roll(y, shifts=(2, 2), dims=(1, 2))


def export(model: nn.Module, x: torch.Tensor, opset: int) -> bytes:
    torch.manual_seed(0)
    model.eval()
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x,),
            f,
            opset_version=opset,
            input_names=["x"],
            dynamic_axes={"x": {0: "batch"}},
            dynamo=False,
        )
    return f.getvalue()


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


@pytest.mark.parametrize(
    "make,opset",
    [(TinyViT, 14), (TinyViT, 17), (TinyCNN, 11), (TinyCNN, 13), (TinyCNN, 17)],
    ids=["vit-14", "vit-17", "cnn-11", "cnn-13", "cnn-17"],
)
def test_torch_export_matches_onnxruntime(make: type, opset: int) -> None:
    torch.manual_seed(0)
    model = make()
    data = export(model, torch.randn(2, 3, 32, 32), opset)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        x = np.random.RandomState(batch).standard_normal((batch, 3, 32, 32)).astype(np.float32)
        refs = sess.run(None, {"x": x})
        rep = backend.prepare(data, max_batch_size=3)
        outs = rep.run([x])
        for o, r in zip(outs, refs, strict=True):
            assert o.shape == r.shape
            assert rel_l2(o, r) <= 1e-5, (batch, rel_l2(o, r))
    engines = rep.runner.engines
    assert engines and sum(len(e.graph.nodes) for e in engines) > 10


def test_window_attention_dynamic_batch() -> None:
    torch.manual_seed(0)
    data = export(WindowAttention(), torch.randn(2, 8, 8, 16), 17)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    rep = backend.prepare(data, max_batch_size=3)
    for batch in (1, 3):
        x = np.random.RandomState(batch).standard_normal((batch, 8, 8, 16)).astype(np.float32)
        (ref,) = sess.run(None, {"x": x})
        assert rel_l2(rep.run([x])[0], ref) <= 1e-5
    assert rep.runner.native_reasons == {}, rep.summary()  # batch arithmetic folded


def test_vit_through_config(tmp_path) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    data = export(TinyViT(), torch.randn(1, 3, 32, 32), 17)
    path = tmp_path / "vit.onnx"
    path.write_bytes(data)
    cfg = fluidrt.Config(str(path))
    cfg.enable_engine(min_subgraph_size=1)
    x = np.random.RandomState(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    (out,) = fluidrt.create_predictor(cfg).run([x])
    (ref,) = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert rel_l2(out, ref) <= 1e-5
