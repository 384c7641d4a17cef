"""Which layers the Triton float tactics are offered for (no GPU needed: only the choice of
candidates; the kernels themselves are tested in tests/kernels and tests/gpu)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

# not importorskip: importing Triton here, before tests/kernels/conftest.py sets TRITON_INTERPRET,
# would compile triton.language for the GPU and break the interpreted kernel tests after it
if importlib.util.find_spec("triton") is None:
    pytest.skip("needs Triton", allow_module_level=True)

from fluidrt.engine.builder import concretize  # noqa: E402
from fluidrt.engine.layers import candidate_tactics  # noqa: E402
from fluidrt.engine.precision import lower_precision  # noqa: E402
from fluidrt.ir.text import parse_graph  # noqa: E402
from fluidrt.ops.infer import infer_node  # noqa: E402
from fluidrt.passes import run_passes  # noqa: E402
from fluidrt.settings import Settings  # noqa: E402

NET = """
graph net(%x: float32[N,256,56,56]) {
  %wd: float32[256,1,3,3] = const
  %d = conv2d(%x, %wd) {"pads": [1, 1, 1, 1], "groups": 256}
  %w1: float32[256,256,1,1] = const
  %c1 = conv2d(%d, %w1)
  %r1 = relu(%c1)
  %w2: float32[512,256,3,3] = const
  %c2 = conv2d(%r1, %w2) {"pads": [1, 1, 1, 1], "strides": [8, 8]}
  %r2 = relu(%c2)
  %p = adaptive_pool2d(%r2) {"mode": "avg", "output_size": [1, 1]}
  %f = flatten(%p) {"start": 1}
  %fw: float32[512,1000] = const
  %y = matmul(%f, %fw)
  return %y
}
"""
CUDA = torch.device("cuda")


def _offers(batch: int, precision: str | None) -> list[set[str]]:
    g = run_passes(parse_graph(NET, infer=infer_node), Settings())
    if precision:
        g = lower_precision(g, precision)
    g = concretize(g, batch)
    ops = ("conv2d", "fused_conv2d", "matmul", "fused_matmul")
    return [{t.name for t in candidate_tactics(n, CUDA)} for n in g.nodes if n.op in ops]


def test_half_engine_offers_triton_at_small_batch_or_where_the_gpu_would_idle() -> None:
    offers = _offers(1, "float16")
    depthwise, big, small, fc = ({n for n in v if n.startswith("triton_")} for v in offers)
    assert depthwise == {"triton_depthwise"}
    # at batch 1 every convolution is offered (a PDL chain can win where a kernel loses alone)
    assert big == small == {"triton_conv"}
    assert fc == {"triton_gemm"}
    # at batch 64 the library tiles fill the GPU (3136 pixels x 256 channels at batch 1 already
    # makes 196 tiles; 49 x 512 at batch 64, 392): left to the libraries
    at64 = _offers(64, "float16")
    assert "triton_conv" not in at64[1] | at64[2]


def test_plain_convolutions_are_offered_triton_at_any_batch() -> None:
    """A convolution with no ReLU to fuse (a ResNet projection) has no cuDNN fused call, only a
    plain convolution plus bias: the Triton kernel is timed against it even on a full GPU."""
    net = """
graph proj(%x: float32[N,256,56,56]) {
  %w: float32[512,256,1,1] = const
  %b: float32[512] = const
  %y = conv2d(%x, %w, %b) {"strides": [2, 2]}
  return %y
}
"""
    g = lower_precision(run_passes(parse_graph(net, infer=infer_node), Settings()), "float16")
    node = next(n for n in concretize(g, 256).nodes if n.op in ("conv2d", "fused_conv2d"))
    assert "triton_conv" in {t.name for t in candidate_tactics(node, CUDA)}


def test_fp32_engine_offers_only_the_depthwise_kernel() -> None:
    names = set().union(*_offers(1, None))
    assert "triton_depthwise" in names
    assert not names & {"triton_conv", "triton_gemm"}  # no TF32 tensor-core math in fp32


def test_split_k_variants_come_first_and_are_capped() -> None:
    g = concretize(
        lower_precision(run_passes(parse_graph(NET, infer=infer_node), Settings()), "float16"), 1
    )
    node = [n for n in g.nodes if n.op in ("conv2d", "fused_conv2d")][2]
    tac = next(t for t in candidate_tactics(node, CUDA) if t.name == "triton_conv")
    names = tac.names(node)
    assert 1 < len(names) <= 3
    assert "s1w" not in names[0]  # a split-K config leads


STEMS = """
graph stems(%x: float32[N,3,224,224]) {
  %w7: float32[64,3,7,7] = const
  %a = conv2d(%x, %w7) {"pads": [3, 3, 3, 3], "strides": [2, 2]}
  %w3: float32[32,3,3,3] = const
  %b = conv2d(%x, %w3) {"pads": [1, 1, 1, 1], "strides": [2, 2]}
  %c = conv2d(%x, %w3) {"pads": [1, 1, 1, 1]}
  %w16: float32[32,16,3,3] = const
  %d = conv2d(%a, %w16) {"pads": [1, 1, 1, 1], "strides": [2, 2], "groups": 4}
  return %a, %b, %c, %d
}
"""


def test_strided_few_channel_convolutions_are_offered_folding() -> None:
    g = lower_precision(run_passes(parse_graph(STEMS, infer=infer_node), Settings()), "float16")
    for batch in (1, 256):
        nodes = [n for n in concretize(g, batch).nodes if n.op in ("conv2d", "fused_conv2d")]
        offers = [{t.name for t in candidate_tactics(n, CUDA)} for n in nodes]
        # 7x7/2 and 3x3/2 on 3 channels fold to 12 channels; stride 1 and grouped ones do not
        assert ["triton_s2d" in o for o in offers] == [True, True, False, False]
        tac = next(t for t in candidate_tactics(nodes[0], CUDA) if t.name == "triton_s2d")
        names = tac.names(nodes[0])
        assert 1 <= len(names) <= 4 and all("s1w" in n for n in names)  # whole-K configs
    # decided without the batch (a dynamic-batch plan reloads with the same candidates)
    node = next(n for n in g.nodes if n.op in ("conv2d", "fused_conv2d"))
    assert "triton_s2d" in {t.name for t in candidate_tactics(node, CUDA)}
