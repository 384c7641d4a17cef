"""Programmatic dependent launch: chains of fluidrt's Triton kernels, each reading what the one
before wrote and buffers reused as the memory planner reuses them, captured in a CUDA graph and
replayed, give exactly what the same chain gives launched without PDL."""

from __future__ import annotations

import pytest
import torch

# fluidrt.kernels.* import Triton and define its kernels: only inside the tests, never at
# collection (tests/kernels must see TRITON_INTERPRET=1 before any kernel is defined)

pytestmark = pytest.mark.gpu
CUDA = torch.device("cuda")


def _chain(x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    from fluidrt.kernels.int8_conv import conv2d_int8
    from fluidrt.kernels.pool import pool2d_nhwc
    from fluidrt.kernels.quantize import dequantize, quantize

    scale1 = torch.full((w1.shape[0],), 0.002, device=CUDA)
    scale2 = torch.full((w2.shape[0],), 0.003, device=CUDA)
    q = quantize(x, 0.05)
    y = conv2d_int8(q, w1, scale1, None, 1, 1, 1, activation="relu", out_scale=0.04)
    y = pool2d_nhwc(y.float(), [3, 3], [2, 2], [1, 1], "max", True)
    q2 = quantize(y, 0.04)
    # a residual read by the next layer: one more producer whose output must be complete
    z = conv2d_int8(
        q2,
        w2,
        scale2,
        None,
        1,
        0,
        1,
        activation="relu",
        residual=q2,
        residual_scale=0.04,
        out_scale=0.05,
    )
    return dequantize(z, 0.05, torch.float16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("batch", [1, 8])
def test_pdl_chain_in_cuda_graph_matches_plain_launches(batch, monkeypatch):
    from fluidrt.kernels import pdl
    from fluidrt.kernels.int8_conv import pack_conv_weight

    gen = torch.Generator().manual_seed(batch)
    x = torch.randn(batch, 64, 28, 28, generator=gen).to(CUDA)
    x = x.contiguous(memory_format=torch.channels_last)
    w1 = pack_conv_weight(
        torch.randint(-127, 128, (64, 64, 3, 3), generator=gen, dtype=torch.int8)
    ).to(CUDA)
    w2 = pack_conv_weight(
        torch.randint(-127, 128, (64, 64, 1, 1), generator=gen, dtype=torch.int8)
    ).to(CUDA)

    monkeypatch.setenv("FLUIDRT_PDL", "0")
    assert not pdl.enabled(CUDA)
    expected = _chain(x, w1, w2)
    torch.cuda.synchronize()

    monkeypatch.setenv("FLUIDRT_PDL", "1")
    if torch.cuda.get_device_capability()[0] < 9:
        assert not pdl.enabled(CUDA)
        pytest.skip("PDL needs sm90 or later")
    assert pdl.enabled(CUDA)
    stream = torch.cuda.Stream()
    static_x = x.clone()
    with torch.cuda.stream(stream):
        for _ in range(2):  # compile and warm up outside the capture
            _chain(static_x, w1, w2)
        stream.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream):
            out = _chain(static_x, w1, w2)
    for _ in range(20):
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(out, expected)
    # new input through the same graph: every kernel waits for the previous one's writes
    x2 = torch.randn_like(x)
    static_x.copy_(x2)
    graph.replay()
    torch.cuda.synchronize()
    monkeypatch.setenv("FLUIDRT_PDL", "0")
    assert torch.equal(out, _chain(x2, w1, w2))


def test_pdl_off_without_cuda_or_when_disabled(monkeypatch):
    from fluidrt.kernels import pdl

    assert pdl.launch_options(torch.device("cpu")) == {"PDL": False}
    monkeypatch.setenv("FLUIDRT_PDL", "0")
    assert not pdl.enabled(CUDA)
