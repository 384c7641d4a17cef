"""The ``chunked`` CPU tactic for quantize_linear / dequantize_linear against the reference op:
bit-identical on ties, saturation, every memory order, tensors larger than one chunk."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fluidrt.engine import int8_tactics
from fluidrt.engine.runtime import prepare_layer
from fluidrt.ir.text import parse_graph
from fluidrt.ops.infer import infer_node
from fluidrt.ops.registry import get_op

CPU = torch.device("cpu")
SCALE = 0.05


def _node(op: str, shape: str, src: str, dst: str):
    attrs = '{"axis": 1, "dtype": "int8"}' if op == "quantize_linear" else '{"axis": 1}'
    text = (
        f"graph g(%x: {src}[{shape}]) {{\n  %s: float32[] = const\n"
        f"  %y = {op}(%x, %s) {attrs}\n  return %y\n}}"
    )
    g = parse_graph(text, infer=infer_node)
    node = g.nodes[0]
    node.inputs[1].data = np.array(SCALE, dtype=np.float32)
    assert node.outputs[0].dtype == dst
    return node


def _both(node, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    consts = {1: torch.from_numpy(node.inputs[1].data)}
    run = prepare_layer(node, "chunked", consts, CPU)
    (got,) = run([x, None])
    op = get_op(node.op)
    want = op.impl(x, consts[1], **op.resolve_attrs(node.attrs))
    return got, want


def _inputs(shape: tuple[int, ...]) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g) * 4
    flat = x.view(-1)
    # exact ties (round half to even), values that saturate both ways, zeros
    flat[:8] = torch.tensor([0.025, 0.075, -0.025, -0.125, 7.0, -7.0, 0.0, 6.375])
    return x


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "transposed", "strided"])
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (3, 64, 80, 80)])  # the second > one chunk
def test_quantize_is_bit_identical(layout: str, shape: tuple[int, ...]) -> None:
    node = _node("quantize_linear", "N,C,H,W", "float32", "int8")
    x = _inputs(shape)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "transposed":
        x = x.transpose(2, 3)
    elif layout == "strided":  # not dense: the reference path
        x = x[:, :, ::2]
    got, want = _both(node, x)
    assert got.dtype == torch.int8 and got.shape == want.shape
    assert torch.equal(got, want)
    if layout != "strided":
        assert got.stride() == x.stride()


def test_quantize_chunk_boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(int8_tactics, "CHUNK", 64)
    monkeypatch.setattr(int8_tactics, "_scratch", type(int8_tactics._scratch)())
    node = _node("quantize_linear", "N,C", "float32", "int8")
    x = _inputs((7, 29))  # 203 elements: three full chunks and a partial one
    got, want = _both(node, x)
    assert torch.equal(got, want)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_dequantize_is_bit_identical(layout: str) -> None:
    node = _node("dequantize_linear", "N,C,H,W", "int8", "float32")
    g = torch.Generator().manual_seed(1)
    x = torch.randint(-128, 128, (3, 64, 80, 80), dtype=torch.int8, generator=g)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    got, want = _both(node, x)
    assert got.dtype == torch.float32 and torch.equal(got, want)
    assert got.stride() == x.stride()


def test_scratch_made_in_inference_mode_works_outside_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(int8_tactics, "_scratch", type(int8_tactics._scratch)())
    node = _node("quantize_linear", "N,C", "float32", "int8")
    x = _inputs((4, 9))
    with torch.inference_mode():
        got, want = _both(node, x)
    assert torch.equal(got, want)
    got, want = _both(node, x)
    assert torch.equal(got, want)
