"""The int32 epilogue kernel and the cublas_int8 runners against ``fluidrt.ops.quantized``.

The kernel runs on CUDA, or on CPU in Triton's interpreter (conftest.py). It is compared with the
reference epilogue of ``fluidrt/ops/quantized.py`` on exact accumulators: int8 and float outputs
bit for bit, except sigmoid/silu (the kernel's exp is not torch's: within 1 LSB / 1e-5).

``torch._int_mm`` is CUDA's path; the runner tests pass an exact int32 matmul in its place (the
same ``int_mm`` parameter the tactic fills with ``torch._int_mm``), so weight packing, the NHWC
views and the epilogue wiring are checked here and the GPU test covers cuBLASLt itself.
"""

from __future__ import annotations

import pytest
import torch

from fluidrt.engine.int8_cublas import conv1x1_runner, gemm_runner, pack_weight
from fluidrt.engine.int8_tactics import triton_activation
from fluidrt.engine.layers import candidate_tactics
from fluidrt.ir.graph import Graph, Node
from fluidrt.kernels.int8_epilogue import int32_epilogue
from fluidrt.ops.infer import infer_node
from fluidrt.ops.quantized import epilogue
from fluidrt.ops.registry import get_op

CL = torch.channels_last
# canonical (activation, act_attrs) as qconv2d/qmatmul carry them
ACTS = [
    ("none", {}),
    ("relu", {}),
    ("clip", {"min": 0.0, "max": 6.0}),
    ("clip", {"min": -1.0, "max": 2.0}),
    ("leaky_relu", {"alpha": 0.1}),
    ("hard_swish", {}),
    ("sigmoid", {}),
    ("silu", {}),
    ("swish", {"beta": 1.0}),
]
INEXACT = {"sigmoid", "silu", "swish"}
OUTS = [(0.08, "float32"), (None, "float32"), (None, "float16")]


def _assert_matches(got: torch.Tensor, want: torch.Tensor, activation: str) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    if activation not in INEXACT:
        assert torch.equal(got.cpu(), want), (got.cpu().float() - want.float()).abs().max()
    elif want.dtype == torch.int8:
        assert (got.cpu().int() - want.int()).abs().max() <= 1
    else:
        torch.testing.assert_close(got.cpu().float(), want.float(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("out_scale,out_dtype", OUTS)
@pytest.mark.parametrize("residual", [None, "int8", "float"])
@pytest.mark.parametrize("activation,act_attrs", ACTS)
def test_epilogue_matches_reference(
    device: str, activation: str, act_attrs: dict, residual: str | None, out_scale, out_dtype
) -> None:
    gen = torch.Generator().manual_seed(0)
    m, n = 37, 24  # partial tiles in both directions
    acc = torch.randint(-(2**20), 2**20, (m, n), generator=gen, dtype=torch.int32)
    scale = (torch.rand(n, generator=gen) + 0.5) * 4e-6
    bias = torch.randn(n, generator=gen)
    res, res_scale = None, None
    if residual == "int8":
        res = torch.randint(-128, 128, (m, n), generator=gen, dtype=torch.int8)
        res_scale = 0.03
    elif residual == "float":
        res = torch.randn(m, n, generator=gen) * 3
    act, alpha, beta = triton_activation(activation, act_attrs)
    got = int32_epilogue(
        acc.to(device),
        scale.to(device),
        bias.to(device),
        activation=act,
        act_alpha=alpha,
        act_beta=beta,
        residual=res.to(device) if res is not None else None,
        residual_scale=res_scale,
        out_scale=out_scale,
        out_dtype=getattr(torch, out_dtype),
    )
    want = epilogue(
        acc.double(),
        scale,
        bias,
        res,
        activation=activation,
        act_attrs=act_attrs,
        out_scale=out_scale,
        residual_scale=res_scale,
        out_dtype=out_dtype,
        channel_dim=1,
    )
    _assert_matches(got, want, activation)


def test_epilogue_rounds_half_to_even_into_strided_out(device: str) -> None:
    """Ties (acc odd, scale 0.5, out_scale 1) round to even; ``out`` is a channels_last view."""
    acc = torch.arange(-300, 300, 2, dtype=torch.int32).add_(1).reshape(50, 6)
    out = torch.empty((2, 6, 5, 5), dtype=torch.int8, device=device, memory_format=CL)
    out2d = out.permute(0, 2, 3, 1).view(50, 6)
    scale = torch.full((6,), 0.5)
    int32_epilogue(acc.to(device), scale.to(device), None, out_scale=1.0, out=out2d)
    want = torch.round(acc.double() * 0.5).clamp(-128, 127).to(torch.int8)
    assert torch.equal(out2d.cpu(), want)
    assert out.is_contiguous(memory_format=CL)


def test_epilogue_rejects_bad_arguments(device: str) -> None:
    acc = torch.zeros((20, 8), dtype=torch.int32, device=device)
    scale = torch.ones(8, device=device)
    with pytest.raises(ValueError, match="acc: expected a 2-D int32"):
        int32_epilogue(acc.float(), scale, None)
    with pytest.raises(ValueError, match=r"scale: expected float32 \[8\]"):
        int32_epilogue(acc, scale[:4], None)
    with pytest.raises(ValueError, match="residual_scale: required"):
        int32_epilogue(acc, scale, None, residual=acc.to(torch.int8))
    with pytest.raises(ValueError, match="out: expected torch.int8"):
        int32_epilogue(acc, scale, None, out_scale=0.1, out=acc.float())
    with pytest.raises(ValueError, match="unit column stride"):
        int32_epilogue(acc.t().contiguous().t(), scale, None)


# ---------------------------------------------------------------------------------------------
# the cublas_int8 runners with an exact int32 matmul in place of torch._int_mm


class ExactIntMM:
    """int32 a @ w_t through float64 (exact for int8 products); records what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, a: torch.Tensor, w_t: torch.Tensor) -> torch.Tensor:
        assert a.dtype == w_t.dtype == torch.int8
        self.calls.append((a, w_t))
        return (a.cpu().double() @ w_t.cpu().double()).to(torch.int32).to(a.device)


def _node(op: str, x: tuple, w: tuple, attrs: dict, residual: str | None = None) -> Node:
    g = Graph("q")
    gen = torch.Generator().manual_seed(1)
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


def _run(node: Node, runner_fn, x: torch.Tensor, res: torch.Tensor | None, device: str):
    consts = {
        i: torch.from_numpy(v.data.copy()).to(device)
        for i, v in enumerate(node.inputs)
        if v is not None and v.is_const
    }
    int_mm = ExactIntMM()
    args = [x.to(device), consts[1], consts[2], consts[3]]
    if res is not None:
        args.append(res.to(device))
    got = runner_fn(node, consts, int_mm)(args)[0]
    opdef = get_op(node.op)
    cpu_args = [a.cpu() for a in args]
    want = opdef.impl(*cpu_args, **opdef.resolve_attrs(node.attrs))
    return got, want, int_mm, args


CONV_CASES = [
    ({"activation": "relu", "in_scale": 0.05, "out_scale": 0.1, "residual_scale": 0.07}, "int8"),
    ({"in_scale": 0.02, "out_scale": None, "out_dtype": "float16"}, "float32"),
    (
        {"activation": "hard_swish", "in_scale": 0.03, "out_scale": None, "out_dtype": "float32"},
        None,
    ),
]


@pytest.mark.parametrize("attrs,residual", CONV_CASES)
def test_conv1x1_runner_matches_reference(device: str, attrs: dict, residual: str | None) -> None:
    node = _node("qconv2d", (2, 16, 5, 3), (24, 16, 1, 1), attrs, residual)
    gen = torch.Generator().manual_seed(2)
    x = torch.randint(-128, 128, (2, 16, 5, 3), generator=gen, dtype=torch.int8)
    x = x.contiguous(memory_format=CL)
    res = None
    if residual == "int8":
        res = torch.randint(-128, 128, (2, 24, 5, 3), generator=gen, dtype=torch.int8)
    elif residual == "float32":
        res = torch.randn(2, 24, 5, 3, generator=gen)
    got, want, int_mm, args = _run(node, conv1x1_runner, x, res, device)
    _assert_matches(got, want, attrs.get("activation", "none"))
    assert got.is_contiguous(memory_format=CL)
    ((a, w_t),) = int_mm.calls
    assert a.shape == (30, 16) and a.data_ptr() == args[0].data_ptr()  # a view, no copy
    assert w_t.shape == (16, 24) and w_t.stride() == (1, 16)  # column-major [K, N]
    assert torch.equal(w_t.cpu(), args[1].cpu().reshape(24, 16).t())


def test_conv1x1_runner_takes_nchw_input(device: str) -> None:
    attrs = {"activation": "relu", "in_scale": 0.05, "out_scale": 0.1}
    node = _node("qconv2d", (1, 8, 6, 4), (16, 8, 1, 1), attrs)
    x = torch.randint(-128, 128, (1, 8, 6, 4), generator=torch.Generator().manual_seed(3))
    got, want, _, _ = _run(node, conv1x1_runner, x.to(torch.int8), None, device)
    _assert_matches(got, want, "relu")


@pytest.mark.parametrize("activation", ["silu", "none"])
def test_gemm_runner_matches_reference(device: str, activation: str) -> None:
    attrs = {"activation": activation, "in_scale": 0.03, "out_scale": None, "residual_scale": 0.1}
    node = _node("qmatmul", (20, 32), (40, 32), attrs, "int8")
    gen = torch.Generator().manual_seed(4)
    x = torch.randint(-128, 128, (20, 32), generator=gen, dtype=torch.int8)
    res = torch.randint(-128, 128, (20, 40), generator=gen, dtype=torch.int8)
    got, want, int_mm, _ = _run(node, gemm_runner, x, res, device)
    _assert_matches(got, want, activation)
    ((_, w_t),) = int_mm.calls
    assert w_t.shape == (32, 40) and w_t.stride() == (1, 32)


CUDA = torch.device("cuda")


@pytest.mark.parametrize(
    "op,x,w,attrs,ok",
    [
        ("qconv2d", (1, 64, 7, 7), (256, 64, 1, 1), {}, True),
        ("qconv2d", ("N", 64, 5, 5), (256, 64, 1, 1), {}, True),  # >= 25 rows at any batch
        ("qconv2d", ("N", 64, 4, 4), (256, 64, 1, 1), {}, False),  # batch 1 gives 16 rows
        ("qconv2d", (2, 64, 4, 4), (256, 64, 1, 1), {}, True),
        ("qconv2d", (1, 64, 7, 7), (256, 64, 3, 3), {"pads": [1, 1, 1, 1]}, False),
        ("qconv2d", (1, 64, 8, 8), (256, 64, 1, 1), {"strides": [2, 2]}, False),
        ("qconv2d", (1, 64, 8, 8), (256, 64, 1, 1), {"pads": [1, 1, 1, 1]}, False),
        ("qconv2d", (1, 64, 8, 8), (256, 32, 1, 1), {"groups": 2}, False),
        ("qconv2d", (1, 60, 8, 8), (256, 60, 1, 1), {}, False),  # K % 8
        ("qconv2d", (1, 64, 8, 8), (100, 64, 1, 1), {}, False),  # N % 8
        ("qconv2d", (1, 64, 8, 8), (64, 64, 1, 1), {"activation": "tanh"}, False),
        ("qmatmul", (32, 2048), (1000, 2048), {}, True),
        ("qmatmul", (16, 2048), (1000, 2048), {}, False),
        ("qmatmul", ("M", 2048), (1000, 2048), {}, False),
    ],
)
def test_cublas_applies(op: str, x: tuple, w: tuple, attrs: dict, ok: bool) -> None:
    node = _node(op, x, w, {"in_scale": 0.1, "out_scale": 0.1, **attrs})
    names = [t.name for t in candidate_tactics(node, CUDA)]
    assert ("cublas_int8" in names) == ok, names
    assert "cublas_int8" not in [t.name for t in candidate_tactics(node, torch.device("cpu"))]


def test_pack_weight_layout_and_errors() -> None:
    w = torch.arange(24, dtype=torch.int8).reshape(4, 6, 1, 1)
    w_t = pack_weight(w)
    assert w_t.shape == (6, 4) and w_t.stride() == (1, 6)
    assert torch.equal(w_t, w.reshape(4, 6).t())
    with pytest.raises(ValueError, match=r"w: expected int8 \[N, K\] or \[N, K, 1, 1\]"):
        pack_weight(torch.zeros(4, 6, 3, 3, dtype=torch.int8))
    with pytest.raises(ValueError, match="got torch.float32"):
        pack_weight(torch.zeros(4, 6))
