"""The ``dnnl`` CPU convolution tactic (oneDNN primitives through its C API) against the native
reference: shapes, padding, groups, every activation it claims, residuals, batches, threads."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch

from fluidrt.engine import dnnl
from fluidrt.engine.builder import build_engine
from fluidrt.engine.inplace import DONATE
from fluidrt.engine.layers import candidate_tactics
from fluidrt.engine.plan import Runtime
from fluidrt.engine.runtime import prepare_layer
from fluidrt.errors import PlanError
from fluidrt.ops.executor import NativeExecutor
from fluidrt.settings import Settings
from tests.support.graphs import seeded_graph

pytestmark = pytest.mark.skipif(not dnnl.available(), reason="no oneDNN library")
CPU = torch.device("cpu")


_graph = seeded_graph


def _conv_text(
    cin: int,
    cout: int,
    k: int,
    attrs: dict,
    bias: bool = True,
    residual: bool = False,
    hw: tuple[int, int] = (9, 11),
) -> str:
    g = attrs.get("groups", 1)
    ins = ["%x", "%w"] + (["%b"] if bias else (["%nb"] if residual else []))
    consts = f"  %w: float32[{cout},{cin // g},{k},{k}] = const\n"
    consts += f"  %b: float32[{cout}] = const\n" if bias else ""
    sig = f"%x: float32[N,{cin},{hw[0]},{hw[1]}]"
    if residual:
        sig += ", %r: float32[N,{},{},{}]"  # filled below from the inferred output shape
    body = f"  %y = fused_conv2d({', '.join(ins + (['%r'] if residual else []))}) "
    text = f"graph g({sig}) {{\n{consts}{body}{json.dumps(attrs)}\n  return %y\n}}"
    if residual:
        probe = _graph(_conv_text(cin, cout, k, attrs, bias, False, hw))
        _, c, h, w = probe.nodes[0].outputs[0].shape
        text = text.replace("{},{},{}", f"{c},{h},{w}")
    return text.replace("%nb", "_") if not bias else text


def _check(text: str, batch: int = 2, donate: bool = False, seed: int = 1) -> None:
    g = _graph(text)
    node = g.nodes[0]
    if donate:
        node.meta[DONATE] = True
    consts = {i: torch.from_numpy(v.data) for i, v in enumerate(node.inputs) if v and v.is_const}
    run = prepare_layer(node, "dnnl", consts, CPU)
    rng = np.random.default_rng(seed)
    feeds = [
        torch.from_numpy(rng.standard_normal((batch, *v.shape[1:])).astype(np.float32))
        for v in g.inputs
    ]
    (want,) = NativeExecutor(_graph(text)).run([f.clone() for f in feeds])
    args = [feeds[0], None, None] + ([feeds[1]] if len(feeds) > 1 else [])
    (got,) = run(args)
    assert got.shape == want.shape
    err = ((got - want).norm() / want.norm()).item()
    assert err <= 1e-5, err


ACTIVATIONS = [
    ("none", {}),
    ("relu", {}),
    ("leaky_relu", {"alpha": 0.2}),
    ("sigmoid", {}),
    ("tanh", {}),
    ("silu", {}),
    ("swish", {"beta": 1.5}),
    ("elu", {"alpha": 0.7}),
    ("gelu", {}),
    ("gelu", {"approximate": True}),
    ("hard_sigmoid", {"slope": 0.2, "offset": 0.5}),
    ("hard_swish", {}),
    ("clip", {"min": 0.0, "max": 6.0}),
    ("hard_tanh", {"min": -0.5, "max": 0.5}),
    ("mish", {}),
    ("softplus", {}),
]


@pytest.mark.parametrize(("activation", "act_attrs"), ACTIVATIONS)
def test_every_claimed_activation_matches(activation: str, act_attrs: dict) -> None:
    attrs = {"activation": activation, "act_attrs": act_attrs, "pads": [1, 1, 1, 1]}
    _check(_conv_text(8, 16, 3, attrs))


@pytest.mark.parametrize(
    "conv",
    [
        {"cin": 16, "cout": 32, "k": 1},
        {"cin": 3, "cout": 16, "k": 7, "strides": [2, 2], "pads": [3, 3, 3, 3]},
        {"cin": 8, "cout": 8, "k": 3, "strides": [2, 2], "pads": [0, 0, 1, 1]},
        {"cin": 8, "cout": 12, "k": 3, "pads": [2, 1, 0, 1], "dilations": [2, 1]},
        {"cin": 8, "cout": 12, "k": 3, "pads": [1, 1, 1, 1], "groups": 2},
        {"cin": 16, "cout": 16, "k": 3, "pads": [1, 1, 1, 1], "groups": 16},
        {"cin": 16, "cout": 32, "k": 3, "pads": [1, 1, 1, 1], "groups": 16, "strides": [2, 1]},
    ],
)
@pytest.mark.parametrize("bias", [True, False])
def test_shapes_padding_groups_match(conv: dict, bias: bool) -> None:
    conv = dict(conv)
    cin, cout, k = conv.pop("cin"), conv.pop("cout"), conv.pop("k")
    attrs = {"activation": "relu", "act_attrs": {}, **conv}
    _check(_conv_text(cin, cout, k, attrs, bias=bias))


@pytest.mark.parametrize("donate", [False, True])
@pytest.mark.parametrize("k", [1, 3])
def test_residual_read_or_accumulated_in_place(donate: bool, k: int) -> None:
    attrs = {"activation": "relu", "act_attrs": {}, "pads": [k // 2] * 4}
    _check(_conv_text(8, 8, k, attrs, residual=True), donate=donate)


def test_new_batch_sizes_get_their_own_primitive() -> None:
    attrs = {"activation": "relu", "act_attrs": {}, "pads": [1, 1, 1, 1]}
    text = _conv_text(8, 8, 3, attrs, residual=True)
    for batch in (1, 3, 2):
        _check(text, batch=batch, seed=batch)


def test_threads_run_one_layer_at_once() -> None:
    attrs = {"activation": "relu", "act_attrs": {}, "pads": [1, 1, 1, 1]}
    g = _graph(_conv_text(16, 16, 3, attrs, residual=True, hw=(28, 28)))
    node = g.nodes[0]
    consts = {i: torch.from_numpy(v.data) for i, v in enumerate(node.inputs) if v and v.is_const}
    run = prepare_layer(node, "dnnl", consts, CPU)
    ref = NativeExecutor(g)
    errors: list[float] = []

    def worker(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(20):
            x, r = (
                torch.from_numpy(rng.standard_normal((2, 16, 28, 28)).astype(np.float32))
                for _ in range(2)
            )
            (got,) = run([x, None, None, r])
            (want,) = ref.run([x, r])
            errors.append(((got - want).norm() / want.norm()).item())

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 80 and max(errors) <= 1e-5


@pytest.mark.parametrize(
    ("activation", "act_attrs"),
    [
        ("hard_swish", {"threshold": 5.0, "scale": 6.0, "offset": 3.0}),
        ("clip", {"min": -1.0}),
        ("softplus", {"threshold": 5.0}),
        ("prelu", {}),
    ],
)
def test_activations_without_an_exact_post_op_are_not_offered(
    activation: str, act_attrs: dict
) -> None:
    attrs = {"activation": activation, "act_attrs": act_attrs, "pads": [1, 1, 1, 1]}
    g = _graph(_conv_text(8, 8, 3, attrs))
    names = [t.name for t in candidate_tactics(g.nodes[0], CPU)]
    assert "dnnl" not in names and "torch" in names


def test_missing_library_is_reported_not_offered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(dnnl.LIBRARY_ENV, "/nonexistent/libdnnl.so.3")
    dnnl._load.cache_clear()
    try:
        assert not dnnl.available()
        assert "/nonexistent/libdnnl.so.3" in dnnl.unavailable_reason()
        g = _graph(_conv_text(8, 8, 3, {"activation": "relu", "act_attrs": {}}))
        assert "dnnl" not in [t.name for t in candidate_tactics(g.nodes[0], CPU)]
        with pytest.raises(dnnl.DnnlError, match="fluidrt\\[cpu\\]"):
            dnnl.version()
    finally:
        monkeypatch.delenv(dnnl.LIBRARY_ENV)
        dnnl._load.cache_clear()
    assert dnnl.available()


def test_engine_of_blocks_matches_and_can_choose_dnnl() -> None:
    conv = '"activation": "relu", "act_attrs": {}, "pads": [1, 1, 1, 1]'
    text = f"""
graph g(%x: float32[N,8,14,14]) {{
  %w0: float32[16,8,3,3] = const
  %w1: float32[16,16,3,3] = const
  %w2: float32[16,16,1,1] = const
  %b: float32[16] = const
  %a = fused_conv2d(%x, %w0, %b) {{{conv}}}
  %h = fused_conv2d(%a, %w1, %b) {{{conv}}}
  %c = fused_conv2d(%h, %w2, %b, %a) {{"activation": "relu", "act_attrs": {{}}}}
  %p = adaptive_pool2d(%c) {{"mode": "avg", "output_size": [1, 1]}}
  return %p
}}"""
    g = _graph(text)
    assert all("dnnl" in [t.name for t in candidate_tactics(n, CPU)] for n in g.nodes[:3])
    engine = build_engine(_graph(text), Settings(use_engine=True, max_batch_size=2), CPU)
    x = torch.from_numpy(np.random.default_rng(5).standard_normal((2, 8, 14, 14)).astype("f4"))
    (got,) = engine.create_execution_context().run([x])
    (want,) = NativeExecutor(_graph(text)).run([x])
    assert ((got - want).norm() / want.norm()).item() <= 1e-5


def test_plan_with_dnnl_layers_round_trips_and_names_a_missing_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = _conv_text(8, 8, 3, {"activation": "relu", "act_attrs": {}, "pads": [1, 1, 1, 1]})
    engine = build_engine(_graph(text), Settings(use_engine=True, max_batch_size=2), CPU)
    engine.graph.nodes[0].meta["tactic"] = "dnnl"
    data = engine.serialize()
    x = torch.from_numpy(np.random.default_rng(6).standard_normal((2, 8, 9, 11)).astype("f4"))
    (got,) = Runtime("cpu").deserialize(data).create_execution_context().run([x])
    (want,) = NativeExecutor(_graph(text)).run([x])
    assert ((got - want).norm() / want.norm()).item() <= 1e-5
    monkeypatch.setenv(dnnl.LIBRARY_ENV, "/nonexistent/libdnnl.so.3")
    dnnl._load.cache_clear()
    try:
        with pytest.raises(PlanError, match="tactic 'dnnl'.*no oneDNN library.*nonexistent"):
            Runtime("cpu").deserialize(data).create_execution_context()
    finally:
        monkeypatch.delenv(dnnl.LIBRARY_ENV)
        dnnl._load.cache_clear()


def test_worker_threads_use_torchs_thread_count() -> None:
    """oneDNN takes the calling thread's OpenMP thread count; a thread that never called torch
    would run it on every core whatever torch.set_num_threads said."""
    import ctypes
    import os

    path = os.path.join(os.path.dirname(torch.__file__), "lib", "libgomp.so.1")
    if not os.path.exists(path):
        pytest.skip("torch is not built with its own libgomp")
    gomp = ctypes.CDLL(path)
    attrs = {"activation": "relu", "act_attrs": {}, "pads": [1, 1, 1, 1]}
    g = _graph(_conv_text(8, 8, 3, attrs))
    node = g.nodes[0]
    consts = {i: torch.from_numpy(v.data) for i, v in enumerate(node.inputs) if v and v.is_const}
    run = prepare_layer(node, "dnnl", consts, CPU)
    seen: list[int] = []
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:

        def worker() -> None:
            run([torch.randn(2, 8, 9, 11), None, None])
            seen.append(gomp.omp_get_max_threads())

        t = threading.Thread(target=worker)
        t.start()
        t.join()
    finally:
        torch.set_num_threads(before)
    assert seen == [1]


POOLS = [
    {"mode": "max", "kernel": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
    {"mode": "max", "kernel": [2, 2], "strides": [2, 2]},
    {"mode": "max", "kernel": [3, 3], "strides": [1, 1], "pads": [0, 1, 1, 0]},
    {"mode": "avg", "kernel": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1]},
    {
        "mode": "avg",
        "kernel": [3, 3],
        "strides": [1, 1],
        "pads": [1, 1, 1, 1],
        "count_include_pad": True,
    },
    {"mode": "avg", "kernel": [2, 3], "strides": [2, 1], "pads": [1, 0, 0, 1]},
]


def _pool_text(attrs: dict) -> str:
    return f"""
graph g(%x: float32[N,8,9,11]) {{
  %y = pool2d(%x) {json.dumps(attrs)}
  return %y
}}"""


@pytest.mark.parametrize("attrs", POOLS)
def test_pooling_matches(attrs: dict) -> None:
    text = _pool_text(attrs)
    node = _graph(text).nodes[0]
    assert "dnnl" in [t.name for t in candidate_tactics(node, CPU)]
    run = prepare_layer(node, "dnnl", {}, CPU)
    for batch in (2, 1):
        x = torch.from_numpy(np.random.default_rng(batch).standard_normal((batch, 8, 9, 11)))
        x = x.float()
        (want,) = NativeExecutor(_graph(text)).run([x])
        (got,) = run([x])
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "attrs",
    [
        {
            "mode": "max",
            "kernel": [3, 3],
            "strides": [2, 2],
            "ceil_mode": True,
        },
        {"mode": "avg", "kernel": [2, 2], "strides": [2, 2], "pads": [2, 2, 2, 2]},
        {"mode": "max", "kernel": [3, 3], "auto_pad": "SAME_UPPER"},
    ],
)
def test_pooling_outside_the_common_rules_is_left_to_the_reference(attrs: dict) -> None:
    node = _graph(_pool_text(attrs)).nodes[0]
    assert "dnnl" not in [t.name for t in candidate_tactics(node, CPU)]
