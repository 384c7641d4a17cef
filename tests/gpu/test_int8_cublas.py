"""GPU INT8: the cublas_int8 tactic (torch._int_mm + int32 epilogue) on ResNet50's 1x1 shapes and
its FC layer, against the native reference (int8 within 1 LSB, floats 2e-3) and bit for bit
against the triton_int8 tactic (both accumulate exactly; the epilogue steps are the same)."""

from __future__ import annotations

import pytest
import torch

from fluidrt.engine.layers import candidate_tactics
from fluidrt.ir.graph import Graph, Node
from fluidrt.ops.infer import infer_node
from fluidrt.ops.registry import get_op

pytestmark = pytest.mark.gpu
CUDA = torch.device("cuda")
Q = {"in_scale": 0.05, "out_scale": 0.1}

# (op, x shape, weight shape, attrs, residual dtype): ResNet50 bottleneck 1x1 convs (the
# expanding ones take the int8 shortcut + relu) and the FC layer
CASES = [
    ("qconv2d", (2, 64, 56, 56), (256, 64, 1, 1), {**Q, "residual_scale": 0.07}, "int8"),
    ("qconv2d", (2, 256, 56, 56), (64, 256, 1, 1), {**Q, "activation": "relu"}, None),
    ("qconv2d", (2, 1024, 14, 14), (256, 1024, 1, 1), {**Q, "activation": "relu"}, None),
    ("qconv2d", (1, 512, 7, 7), (2048, 512, 1, 1), {**Q, "residual_scale": 0.07}, "int8"),
    (
        "qconv2d",
        (1, 2048, 7, 7),
        (512, 2048, 1, 1),
        {"in_scale": 0.02, "out_scale": None, "out_dtype": "float16", "activation": "silu"},
        "float32",
    ),
    ("qmatmul", (32, 2048), (1000, 2048), {"in_scale": 0.03, "out_scale": None}, None),
]


def _node(op: str, x: tuple, w: tuple, attrs: dict, residual: str | None) -> Node:
    g = Graph("q")
    gen = torch.Generator().manual_seed(0)
    ins = [
        g.add_input("x", x, "int8"),
        g.add_const("w", torch.randint(-127, 128, w, generator=gen, dtype=torch.int8).numpy()),
        g.add_const("ws", (torch.rand(w[0], generator=gen) * 0.01 + 1e-3).numpy()),
        g.add_const("b", torch.randn(w[0], generator=gen).numpy()),
    ]
    if residual is not None:
        out = (x[0], w[0], *x[2:]) if op == "qconv2d" else (x[0], w[0])
        ins.append(g.add_input("r", out, residual))
    node = g.add_node(op, ins, attrs)
    infer_node(node)
    return node


@pytest.mark.parametrize("op,x,w,attrs,residual", CASES)
def test_cublas_int8_matches_reference_and_triton(op, x, w, attrs, residual) -> None:
    node = _node(op, x, w, attrs, residual)
    tactics = {t.name: t for t in candidate_tactics(node, CUDA)}
    assert "cublas_int8" in tactics, "cublas_int8 tactic does not apply"
    consts = {
        i: torch.from_numpy(v.data.copy()).to(CUDA)
        for i, v in enumerate(node.inputs)
        if v is not None and v.is_const
    }
    gen = torch.Generator().manual_seed(1)
    xq = torch.randint(-128, 128, x, generator=gen, dtype=torch.int8)
    if op == "qconv2d":
        xq = xq.contiguous(memory_format=torch.channels_last)
    args = [xq.to(CUDA), consts[1], consts[2], consts[3]]
    if residual is not None:
        shape = tuple(node.inputs[4].shape)
        r = (
            torch.randint(-128, 128, shape, generator=gen, dtype=torch.int8)
            if residual == "int8"
            else torch.randn(shape, generator=gen)
        )
        args.append(r.to(CUDA))
    got = tactics["cublas_int8"].prepare(node, consts, CUDA)(args)[0]
    triton = tactics["triton_int8"].prepare(node, consts, CUDA)(args)[0]
    torch.cuda.synchronize()
    if op == "qconv2d":
        assert got.is_contiguous(memory_format=torch.channels_last)
    assert got.dtype == triton.dtype and got.shape == triton.shape
    assert torch.equal(got, triton), (got.float() - triton.float()).abs().max()

    opdef = get_op(op)
    want = opdef.impl(*[a.cpu() for a in args], **opdef.resolve_attrs(node.attrs))
    got = got.cpu()
    assert got.dtype == want.dtype and got.shape == want.shape
    if want.dtype == torch.int8:
        assert (got.int() - want.int()).abs().max() <= 1
    else:
        torch.testing.assert_close(got.float(), want.float(), rtol=2e-3, atol=2e-3)
