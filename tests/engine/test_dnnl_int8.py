"""The ``dnnl_int8`` CPU tactic for ``qconv2d`` (oneDNN int8 convolution) against the reference
op (``fluidrt.ops.quantized``): shapes, groups, padding, activations, residual modes, outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fluidrt.engine import dnnl
from fluidrt.engine.inplace import DONATE, donatable_residuals
from fluidrt.engine.layers import candidate_tactics
from fluidrt.engine.runtime import prepare_layer
from fluidrt.ir.text import parse_graph
from fluidrt.ops.infer import infer_node
from fluidrt.ops.registry import get_op

pytestmark = pytest.mark.skipif(not dnnl.available(), reason="no oneDNN library")
CPU = torch.device("cpu")
QUANT = {"in_scale": 0.05, "out_scale": 0.1}


def _text(
    cin: int,
    cout: int,
    k: int,
    attrs: dict,
    bias: bool = True,
    residual: str | None = None,
    hw: tuple[int, int] = (9, 11),
    out: tuple[int, int] | None = None,
) -> str:
    g = attrs.get("groups", 1)
    consts = f"  %w: int8[{cout},{cin // g},{k},{k}] = const\n  %ws: float32[{cout}] = const\n"
    consts += f"  %b: float32[{cout}] = const\n" if bias else ""
    sig = f"%x: int8[N,{cin},{hw[0]},{hw[1]}]"
    ins = ["%x", "%w", "%ws", "%b" if bias else "_"]
    if residual is not None:
        dtype = "int8" if residual == "int8" else "float32"
        sig += f", %r: {dtype}[N,{cout},{out[0]},{out[1]}]"
        ins.append("%r")
    call = f"  %y = qconv2d({', '.join(ins)}) {json.dumps(attrs)}\n"
    return f"graph g({sig}) {{\n{consts}{call}  return %y\n}}"


def _graph(cin, cout, k, attrs, bias=True, residual=None, hw=(9, 11), seed=0):
    out = None
    if residual is not None:  # the output's spatial size, from the graph without a residual
        probe = _graph(cin, cout, k, attrs, bias, None, hw, seed)
        out = tuple(probe.nodes[0].outputs[0].shape[2:])
    g = parse_graph(_text(cin, cout, k, attrs, bias, residual, hw, out), infer=infer_node)
    rng = np.random.default_rng(seed)
    node = g.nodes[0]
    node.inputs[1].data = rng.integers(-127, 128, node.inputs[1].shape).astype(np.int8)
    node.inputs[2].data = rng.uniform(0.002, 0.02, node.inputs[2].shape).astype(np.float32)
    if bias:
        node.inputs[3].data = rng.standard_normal(node.inputs[3].shape).astype(np.float32)
    return g


def _feeds(g, batch: int, seed: int) -> list[torch.Tensor]:
    rng = np.random.default_rng(seed)
    feeds = []
    for v in g.inputs:
        shape = (batch, *v.shape[1:])
        if v.dtype == "int8":
            feeds.append(torch.from_numpy(rng.integers(-128, 128, shape).astype(np.int8)))
        else:
            feeds.append(torch.from_numpy(rng.standard_normal(shape).astype(np.float32)))
    # NHWC, as activations are between the engine's layers
    return [f.contiguous(memory_format=torch.channels_last) for f in feeds]


def _run(g, batch: int = 2, donate: bool = False, seed: int = 1):
    node = g.nodes[0]
    if donate:
        node.meta[DONATE] = True
    consts = {i: torch.from_numpy(v.data) for i, v in enumerate(node.inputs) if v and v.is_const}
    run = prepare_layer(node, "dnnl_int8", consts, CPU)
    feeds = _feeds(g, batch, seed)
    op = get_op("qconv2d")
    args = [feeds[0], consts[1], consts[2], consts.get(3)] + feeds[1:]
    want = op.impl(*[a if a is None else a.clone() for a in args], **op.resolve_attrs(node.attrs))
    layer_args = [feeds[0], None, None, None] + feeds[1:]
    (got,) = run(layer_args)
    return got, want, feeds


def _assert_close(got: torch.Tensor, want: torch.Tensor, exact: bool = True) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype
    if want.dtype == torch.int8:
        diff = (got.int() - want.int()).abs()
        # the same fp32 steps as the reference: bit-identical where the activation is exact,
        # a quantization step apart where oneDNN's transcendental approximations differ
        assert int(diff.max()) <= (0 if exact else 1)
        assert float((diff > 0).float().mean()) <= (0 if exact else 0.01)
    else:
        err = ((got - want).norm() / want.norm()).item()
        assert err <= (1e-6 if exact else 1e-5), err


ACTIVATIONS = [
    ("none", {}, True),
    ("relu", {}, True),
    ("leaky_relu", {"alpha": 0.2}, True),
    ("clip", {"min": 0.0, "max": 6.0}, True),
    ("clip", {"min": -1.0, "max": 2.0}, True),
    ("sigmoid", {}, False),
    ("silu", {}, False),
    ("tanh", {}, False),
]


@pytest.mark.parametrize(("activation", "act_attrs", "exact"), ACTIVATIONS)
@pytest.mark.parametrize("int8_out", [True, False])
def test_activations_and_outputs_match_the_reference(
    activation: str, act_attrs: dict, exact: bool, int8_out: bool
) -> None:
    attrs = {"activation": activation, "act_attrs": act_attrs, "pads": [1, 1, 1, 1], **QUANT}
    if not int8_out:
        del attrs["out_scale"]
    got, want, _ = _run(_graph(8, 16, 3, attrs))
    _assert_close(got, want, exact)


@pytest.mark.parametrize(
    "conv",
    [
        {"cin": 16, "cout": 32, "k": 1},
        {"cin": 64, "cout": 256, "k": 1, "strides": [2, 2]},
        {"cin": 3, "cout": 16, "k": 7, "strides": [2, 2], "pads": [3, 3, 3, 3]},
        {"cin": 8, "cout": 8, "k": 3, "strides": [2, 2], "pads": [0, 0, 1, 1]},
        {"cin": 8, "cout": 12, "k": 3, "pads": [2, 1, 0, 1], "dilations": [2, 1]},
        {"cin": 8, "cout": 12, "k": 3, "pads": [1, 1, 1, 1], "groups": 2},
        {"cin": 16, "cout": 16, "k": 3, "pads": [1, 1, 1, 1], "groups": 16},
        {"cin": 16, "cout": 16, "k": 3, "pads": [1, 1, 1, 1], "groups": 16, "strides": [2, 2]},
    ],
)
@pytest.mark.parametrize("bias", [True, False])
def test_shapes_padding_groups_match(conv: dict, bias: bool) -> None:
    conv = dict(conv)
    cin, cout, k = conv.pop("cin"), conv.pop("cout"), conv.pop("k")
    attrs = {"activation": "relu", "act_attrs": {}, **QUANT, **conv}
    got, want, _ = _run(_graph(cin, cout, k, attrs, bias=bias))
    _assert_close(got, want)


@pytest.mark.parametrize(
    ("residual", "int8_out"),
    [("int8", True), ("int8", False), ("float", True), ("float", False)],
)
@pytest.mark.parametrize("donate", [False, True])
def test_residuals(residual: str, int8_out: bool, donate: bool) -> None:
    attrs = {"activation": "relu", "act_attrs": {}, "pads": [1, 1, 1, 1], **QUANT}
    if residual == "int8":
        attrs["residual_scale"] = 0.07
    if not int8_out:
        del attrs["out_scale"]
    g = _graph(8, 16, 3, attrs, residual=residual)
    got, want, feeds = _run(g, donate=donate)
    _assert_close(got, want)
    r = feeds[1]
    writes_residual = donate and (int8_out == (residual == "int8"))
    # a donated residual of the output's type holds the result; otherwise it is left alone
    assert (got.data_ptr() == r.data_ptr()) == writes_residual


def test_batch_changes_make_a_primitive_per_shape() -> None:
    attrs = {"activation": "relu", "act_attrs": {}, "pads": [1, 1, 1, 1], **QUANT}
    g = _graph(8, 16, 3, attrs)
    node = g.nodes[0]
    consts = {i: torch.from_numpy(v.data) for i, v in enumerate(node.inputs) if v and v.is_const}
    run = prepare_layer(node, "dnnl_int8", consts, CPU)
    op = get_op("qconv2d")
    for batch in (1, 3, 1):
        (x,) = _feeds(g, batch, seed=batch)
        want = op.impl(x, consts[1], consts[2], consts[3], **op.resolve_attrs(node.attrs))
        (got,) = run([x, None, None, None])
        _assert_close(got, want)


def _offered(g, device: torch.device = CPU) -> bool:
    return "dnnl_int8" in [t.name for t in candidate_tactics(g.nodes[0], device)]


def test_offered_only_where_it_has_the_layers_meaning() -> None:
    base = {"activation": "relu", "act_attrs": {}, "pads": [1, 1, 1, 1], **QUANT}
    assert _offered(_graph(8, 16, 3, base))
    half_out = {**base, "out_dtype": "float16"}
    del half_out["out_scale"]
    assert not _offered(_graph(8, 16, 3, half_out))
    odd = {**base, "activation": "hard_swish", "act_attrs": {"threshold": 5.0, "scale": 6.0}}
    assert not _offered(_graph(8, 16, 3, odd))
    assert not _offered(_graph(8, 16, 3, base), torch.device("meta"))


def test_int8_residuals_are_donated_between_int8_convolutions() -> None:
    q = '"in_scale": 0.1, "out_scale": 0.1, "pads": [1, 1, 1, 1]'
    text = f"""
graph g(%x: int8[N,8,6,6]) {{
  %w: int8[8,8,3,3] = const
  %ws: float32[8] = const
  %a = qconv2d(%x, %w, %ws) {{{q}}}
  %b = qconv2d(%a, %w, %ws) {{{q}}}
  %c = qconv2d(%b, %w, %ws, _, %a) {{{q}, "residual_scale": 0.1}}
  return %c
}}"""
    g = parse_graph(text, infer=infer_node)
    assert donatable_residuals(g) == {g.nodes[2].name}


def test_an_int8_engine_on_dnnl_int8_matches_the_native_graph() -> None:
    """A chain of int8 convolutions whose last one adds (and is donated) the first one's output,
    ending in an fp32 output, run as an engine with every qconv2d on dnnl_int8: bit-identical to
    the native executor, the donated residual written in place."""
    from fluidrt.engine.builder import build_engine
    from fluidrt.ops.executor import NativeExecutor
    from fluidrt.settings import Settings

    q = '"in_scale": 0.1, "pads": [1, 1, 1, 1], "activation": "relu"'
    text = f"""
graph g(%x: int8[N,8,6,6]) {{
  %w: int8[8,8,3,3] = const
  %ws: float32[8] = const
  %b: float32[8] = const
  %a = qconv2d(%x, %w, %ws, %b) {{{q}, "out_scale": 0.1}}
  %c = qconv2d(%a, %w, %ws, %b) {{{q}, "out_scale": 0.1}}
  %d = qconv2d(%c, %w, %ws, %b, %a) {{{q}, "out_scale": 0.1, "residual_scale": 0.1}}
  %e = qconv2d(%d, %w, %ws, %b, %d) {{{q}, "residual_scale": 0.1}}
  return %e
}}"""

    def graph():
        g = parse_graph(text, infer=infer_node)
        rng = np.random.default_rng(0)
        g.values["w"].data = rng.integers(-127, 128, (8, 8, 3, 3)).astype(np.int8)
        g.values["ws"].data = rng.uniform(0.002, 0.01, 8).astype(np.float32)
        g.values["b"].data = rng.standard_normal(8).astype(np.float32)
        return g

    engine = build_engine(graph(), Settings(use_engine=True, max_batch_size=2), CPU)
    for node in engine.graph.nodes:
        assert node.op == "qconv2d"
        node.meta["tactic"] = "dnnl_int8"
    ctx = engine.create_execution_context()
    assert [n.name for n in engine.graph.nodes if n.meta.get(DONATE)] == [
        engine.graph.nodes[2].name
    ]
    (x,) = _feeds(graph(), 2, seed=3)
    (want,) = NativeExecutor(graph()).run([x])
    (got,) = ctx.run([x])
    assert got.dtype == torch.float32
    assert torch.equal(got, want)
