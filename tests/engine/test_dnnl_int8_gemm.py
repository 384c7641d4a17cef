"""``qmatmul`` on the ``dnnl_int8`` CPU tactic (a 1x1 oneDNN int8 convolution over [M, K, 1, 1])
against the reference op: ranks, dynamic rows, outputs, activations, residuals, no bias."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fluidrt.engine import dnnl
from fluidrt.engine.layers import candidate_tactics
from fluidrt.engine.runtime import prepare_layer
from fluidrt.ir.text import parse_graph
from fluidrt.ops.infer import infer_node
from fluidrt.ops.registry import get_op

pytestmark = pytest.mark.skipif(not dnnl.available(), reason="no oneDNN library")
CPU = torch.device("cpu")
K, N = 96, 40


def _graph(lead: list, attrs: dict, bias: bool = True, residual: str | None = None):
    dims = ", ".join(str(d) for d in lead)
    sig = f"%x: int8[{dims}, {K}]"
    consts = f"  %w: int8[{N},{K}] = const\n  %ws: float32[{N}] = const\n"
    consts += f"  %b: float32[{N}] = const\n" if bias else ""
    ins = ["%x", "%w", "%ws", "%b" if bias else "_"]
    if residual is not None:
        sig += f", %r: {'int8' if residual == 'int8' else 'float32'}[{dims}, {N}]"
        ins.append("%r")
    text = (
        f"graph g({sig}) {{\n{consts}  %y = qmatmul({', '.join(ins)}) {json.dumps(attrs)}\n"
        "  return %y\n}"
    )
    g = parse_graph(text, infer=infer_node)
    node = g.nodes[0]
    rng = np.random.default_rng(0)
    node.inputs[1].data = rng.integers(-127, 128, (N, K)).astype(np.int8)
    node.inputs[2].data = rng.uniform(0.002, 0.02, N).astype(np.float32)
    if bias:
        node.inputs[3].data = rng.standard_normal(N).astype(np.float32)
    return g


def _check(g, shape: tuple[int, ...]) -> None:
    node = g.nodes[0]
    consts = {i: torch.from_numpy(v.data) for i, v in enumerate(node.inputs) if v and v.is_const}
    run = prepare_layer(node, "dnnl_int8", consts, CPU)
    rng = np.random.default_rng(1)
    feeds = [torch.from_numpy(rng.integers(-128, 128, (*shape, K)).astype(np.int8))]
    for v in g.inputs[1:]:
        if v.dtype == "int8":
            feeds.append(torch.from_numpy(rng.integers(-128, 128, (*shape, N)).astype(np.int8)))
        else:
            feeds.append(torch.from_numpy(rng.standard_normal((*shape, N)).astype(np.float32)))
    op = get_op("qmatmul")
    want = op.impl(
        feeds[0], consts[1], consts[2], consts.get(3), *feeds[1:], **op.resolve_attrs(node.attrs)
    )
    (got,) = run([feeds[0], None, None, None, *feeds[1:]])
    assert got.shape == want.shape and got.dtype == want.dtype
    if want.dtype == torch.int8:
        assert torch.equal(got, want)
    else:
        assert ((got - want).norm() / want.norm()).item() <= 1e-6


INT8_OUT = {"in_scale": 0.05, "out_scale": 0.1}
FP32_OUT = {"in_scale": 0.05, "out_scale": None}


@pytest.mark.parametrize("lead", [[1], [7], ["N"], [2, 5]])
@pytest.mark.parametrize("quant", [INT8_OUT, FP32_OUT])
def test_gemm_matches_the_reference(lead: list, quant: dict) -> None:
    g = _graph(lead, {**quant, "activation": "relu"})
    shape = tuple(3 if d == "N" else d for d in lead)
    _check(g, shape)
    if "N" in lead:  # another row count: a second primitive
        _check(g, (5,))


@pytest.mark.parametrize("residual", ["int8", "float"])
@pytest.mark.parametrize("quant", [INT8_OUT, FP32_OUT])
def test_gemm_residuals_without_bias(residual: str, quant: dict) -> None:
    attrs = {**quant, "activation": "none"}
    if residual == "int8":
        attrs["residual_scale"] = 0.07
    _check(_graph([4], attrs, bias=False, residual=residual), (4,))


def test_gemm_offered_on_cpu_for_int8_inputs() -> None:
    node = _graph([1], {**INT8_OUT, "activation": "none"}).nodes[0]
    names = [t.name for t in candidate_tactics(node, CPU)]
    assert "dnnl_int8" in names
