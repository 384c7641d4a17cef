"""GPU: the Triton float tactics (triton_conv with every config it would time, triton_depthwise,
triton_gemm) against the native fused layer, and an fp16 engine of a MobileNet-like block at
batch 1 whose build picks them, against the native fp32 network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fluidrt.engine.layers import candidate_tactics
from fluidrt.engine.model import partition_and_build
from fluidrt.engine.precision import lower_precision
from fluidrt.ir.text import parse_graph
from fluidrt.ops.executor import NativeExecutor
from fluidrt.ops.infer import infer_node
from fluidrt.ops.registry import get_op
from fluidrt.passes import run_passes
from fluidrt.settings import PrecisionType, Settings

pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs CUDA", allow_module_level=True)

NET = """
graph block(%x: float32[1,3,32,32]) {
  %w0: float32[32,3,3,3] = const
  %c0 = conv2d(%x, %w0) {"pads": [1, 1, 1, 1], "strides": [2, 2]}
  %r0 = relu(%c0)
  %wd: float32[32,1,3,3] = const
  %bd: float32[1,32,1,1] = const
  %cd = conv2d(%r0, %wd) {"pads": [1, 1, 1, 1], "groups": 32}
  %ad = add(%cd, %bd)
  %rd = clip(%ad) {"min": 0.0, "max": 6.0}
  %w1: float32[256,32,3,3] = const
  %c1 = conv2d(%rd, %w1) {"pads": [1, 1, 1, 1], "strides": [2, 2]}
  %r1 = relu(%c1)
  %w2: float32[256,256,3,3] = const
  %c2 = conv2d(%r1, %w2) {"pads": [1, 1, 1, 1]}
  %a2 = add(%c2, %r1)
  %r2 = relu(%a2)
  %p = adaptive_pool2d(%r2) {"mode": "avg", "output_size": [1, 1]}
  %f = flatten(%p) {"start": 1}
  %fw: float32[256,1000] = const
  %fb: float32[1000] = const
  %mm = matmul(%f, %fw)
  %y = add(%mm, %fb)
  return %y
}
"""
DEVICE = torch.device("cuda")


def _scaled_graph():
    """The network with He-scaled weights (the parser's random constants are N(0, 1))."""
    g = parse_graph(NET, infer=infer_node)
    for v in g.consts():
        if v.data.ndim == 4 and v.data.shape[1] * v.data.shape[2] * v.data.shape[3] > 1:
            fan_in = v.data.shape[1] * v.data.shape[2] * v.data.shape[3]
            v.data = (v.data * np.sqrt(2.0 / fan_in)).astype(np.float32)
        elif v.data.ndim == 2:
            v.data = (v.data * np.sqrt(1.0 / v.data.shape[0])).astype(np.float32)
    return g


def _half_graph(dtype: str):
    g = run_passes(_scaled_graph(), Settings())
    return lower_precision(g, dtype)


def _consts(node) -> dict[int, torch.Tensor]:
    out = {}
    for i, v in enumerate(node.inputs):
        if v is not None and v.is_const:
            t = torch.from_numpy(np.asarray(v.data, dtype=np.float32)).cuda()
            out[i] = (
                t.to(torch.float16 if v.dtype == "float16" else torch.bfloat16)
                if (v.dtype in ("float16", "bfloat16"))
                else t
            )
    return out


def _inputs(node, consts, gen) -> list:
    args = []
    for i, v in enumerate(node.inputs):
        if v is None:
            args.append(None)
        elif i in consts:
            args.append(consts[i])
        else:
            dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(v.dtype)
            t = torch.randn(*v.shape, generator=gen).to(dtype or torch.float32).cuda()
            args.append(t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t)
    return args


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_each_triton_tactic_matches_the_native_layer(dtype: str) -> None:
    g = _half_graph(dtype)
    seen = set()
    gen = torch.Generator().manual_seed(0)
    for node in g.nodes:
        for tac in candidate_tactics(node, DEVICE):
            if not tac.name.startswith("triton_") or tac.name == "triton_pointwise":
                continue
            consts = _consts(node)
            args = _inputs(node, consts, gen)
            op = get_op(node.op)
            ref = op.impl(
                *[a.double() if a is not None else None for a in args],
                **op.resolve_attrs(node.attrs),
            ).float()
            for name in tac.names(node):
                node.meta["tactic_variant"] = name.partition(":")[2] or None
                got = tac.prepare(node, consts, DEVICE)(args)[0]
                assert got.dtype == args[0].dtype
                err = (got.float() - ref).abs().max().item()
                eps = 2.0**-10 if dtype == "float16" else 2.0**-7
                assert err <= 2 * eps * ref.abs().max().item() + 1e-5, (name, node.name, err)
                seen.add(tac.name)
            node.meta.pop("tactic_variant", None)
    assert seen == {
        "triton_conv",
        "triton_depthwise",
        "triton_gemm",
        "triton_s2d",
        "triton_global_pool",
    }


def test_fp16_engine_at_batch_1_uses_triton_tactics_and_matches_fp32() -> None:
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    g = run_passes(_scaled_graph(), Settings())
    s = Settings(use_engine=True, max_batch_size=1, precision=PrecisionType.Half)
    model = partition_and_build(g, s, DEVICE)
    tactics = set(model.engines[0].tactics.values())
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1)).cuda()
    ref = NativeExecutor(_scaled_graph(), DEVICE).run([x])[0]
    for _ in range(2):  # capture, then replay
        out = model.run([x])[0]
    rel = ((out.float() - ref).norm() / ref.norm()).item()
    assert rel < 1e-2, (rel, tactics)
    # the depthwise layer has no library tactic that beats a per-channel stencil at batch 1
    assert any(t.startswith("triton_") and t != "triton_pointwise" for t in tactics), tactics


STEM = """
graph stem(%x: float32[N,3,64,64]) {
  %w: float32[16,3,7,7] = const
  %b: float32[16] = const
  %c = conv2d(%x, %w, %b) {"pads": [3, 3, 3, 3], "strides": [2, 2]}
  %r = relu(%c)
  return %r
}
"""


def test_folded_stem_reads_the_fp32_input_itself() -> None:
    """With the folded stem chosen, the input's fp32->fp16 cast runs no kernel: the
    space-to-depth transform reads the fp32 tensor (same rounding, same result)."""
    from fluidrt.engine.runtime import ExecutionContext, _pass_through

    g = run_passes(parse_graph(STEM, infer=infer_node), Settings())
    s = Settings(
        use_engine=True, max_batch_size=4, precision=PrecisionType.Half, min_subgraph_size=1
    )
    (engine,) = partition_and_build(g, s, DEVICE).engines
    conv = next(n for n in engine.graph.nodes if n.op in ("conv2d", "fused_conv2d"))
    conv.meta["tactic"] = "triton_s2d"
    ctx = ExecutionContext(engine)
    casts = [st for st in ctx._steps if st[3].op == "cast"]
    assert casts and casts[0][0] is _pass_through
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(3)).cuda()
    ref = NativeExecutor(parse_graph(STEM, infer=infer_node), DEVICE).run([x])[0]
    for _ in range(3):  # capture, bind, replay bound
        out = ctx.run([x])[0]
    rel = ((out.float() - ref).norm() / ref.norm()).item()
    assert rel < 1e-2, rel


def test_the_classifier_gemm_writes_the_fp32_output() -> None:
    """With the Triton GEMM chosen for the last layer, the engine's output cast runs no
    kernel: the GEMM's fp32 epilogue result is written as fp32."""
    from fluidrt.engine.runtime import ExecutionContext, _pass_through

    g = run_passes(_scaled_graph(), Settings())
    s = Settings(use_engine=True, max_batch_size=1, precision=PrecisionType.Half)
    (engine,) = partition_and_build(g, s, DEVICE).engines
    fc = next(n for n in engine.graph.nodes if n.op in ("matmul", "fused_matmul"))
    fc.meta["tactic"] = "triton_gemm"
    ctx = ExecutionContext(engine)
    (cast,) = [st for st in ctx._steps if st[3].op == "cast" and st[3].inputs[0].producer is fc]
    assert cast[0] is _pass_through and fc.meta["write_dtype"] == "float32"
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(4)).cuda()
    ref = NativeExecutor(_scaled_graph(), DEVICE).run([x])[0]
    for _ in range(2):
        out = ctx.run([x])[0]
    assert out.dtype == torch.float32
    assert ((out - ref).norm() / ref.norm()).item() < 1e-2
