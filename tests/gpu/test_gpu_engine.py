"""GPU: Triton kernels and fused CUDA tactics against the native path, CUDA graphs, clones."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from fluidrt.engine.model import PartitionedModel, partition_and_build
from fluidrt.errors import PlanError
from fluidrt.ir.text import parse_graph
from fluidrt.ops.executor import NativeExecutor
from fluidrt.ops.infer import infer_node
from fluidrt.passes import run_passes
from fluidrt.settings import PrecisionType, Settings

pytestmark = pytest.mark.gpu

NET = """
graph net(%x: float32[N,8,16,16]) {
  %w1: float32[16,8,3,3] = const
  %s: float32[16] = const
  %b: float32[16] = const
  %m: float32[16] = const
  %v: float32[16] = const [1.0, 2.0, 0.5, 1.0, 1.0, 1.0, 3.0, 1.0, 1, 2, 0.5, 1, 1, 1, 3, 1]
  %c1 = conv2d(%x, %w1) {"pads": [1, 1, 1, 1]}
  %n1 = batch_norm(%c1, %s, %b, %m, %v)
  %r1 = relu(%n1)
  %w2: float32[16,16,3,3] = const
  %c2 = conv2d(%r1, %w2) {"pads": [1, 1, 1, 1]}
  %a = add(%c2, %r1)
  %o = relu(%a)
  %h = hard_swish(%o)
  %g = sigmoid(%h)
  %q = mul(%g, %o)
  %p = adaptive_pool2d(%q) {"mode": "avg", "output_size": [1, 1]}
  %f = flatten(%p) {"start": 1}
  %fw: float32[16,10] = const
  %fb: float32[10] = const
  %mm = matmul(%f, %fw)
  %y = add(%mm, %fb)
  return %y
}
"""


def _graph():
    return run_passes(parse_graph(NET, infer=infer_node), Settings())


def _reference(x: np.ndarray) -> np.ndarray:
    g = parse_graph(NET, infer=infer_node)
    return NativeExecutor(g).run([torch.from_numpy(x)])[0].numpy()


def _model(precision=PrecisionType.Float32, batch=8, cuda_graph=True) -> PartitionedModel:
    s = Settings(
        use_engine=True, max_batch_size=batch, precision=precision, use_cuda_graph=cuda_graph
    )
    return partition_and_build(_graph(), s, torch.device("cuda"))


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(autouse=True)
def _no_tf32():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def test_fp32_engine_matches_native_and_uses_cuda_tactics() -> None:
    x = np.random.default_rng(0).standard_normal((4, 8, 16, 16)).astype(np.float32)
    model = _model()
    out = model.run([torch.from_numpy(x).cuda()])[0].cpu().numpy()
    assert _rel(out, _reference(x)) <= 1e-4
    tactics = set(model.engines[0].tactics.values())
    assert tactics & {"cudnn_fused", "triton_pointwise", "torch_channels_last", "linear"}


@pytest.mark.parametrize("precision", [PrecisionType.Half, PrecisionType.Bfloat16])
def test_reduced_precision_within_tolerance(precision) -> None:
    x = np.random.default_rng(1).standard_normal((8, 8, 16, 16)).astype(np.float32)
    out = _model(precision).run([torch.from_numpy(x).cuda()])[0].cpu().numpy()
    assert out.dtype == np.float32  # the engine's interface keeps fp32
    tol = 1e-2 if precision == PrecisionType.Half else 3e-2
    assert _rel(out, _reference(x)) <= tol


@pytest.mark.parametrize("precision", [PrecisionType.Half, PrecisionType.Bfloat16])
def test_layers_pinned_to_fp32_run_strict_fp32(precision) -> None:
    """Every layer pinned to fp32 in a reduced-precision engine: strict fp32 (no TF32, whose
    ~1e-3 would show here), even with the process's TF32 flags on."""
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    x = np.random.default_rng(2).standard_normal((8, 8, 16, 16)).astype(np.float32)
    g = _graph()
    s = Settings(use_engine=True, max_batch_size=8, precision=precision)
    s.precision_overrides = dict.fromkeys((n.name for n in g.nodes), "float32")
    model = partition_and_build(g, s, torch.device("cuda"))
    assert not model.engines[0].allow_tf32
    out = model.run([torch.from_numpy(x).cuda()])[0].cpu().numpy()
    assert _rel(out, _reference(x)) <= 1e-5


def test_cuda_graph_per_shape_and_outputs_not_aliased() -> None:
    model = _model(batch=8)
    xs = [
        np.random.default_rng(i).standard_normal((b, 8, 16, 16)).astype(np.float32)
        for i, b in enumerate((2, 8, 2))
    ]
    outs = [model.run([torch.from_numpy(x).cuda()])[0] for x in xs]
    for x, o in zip(xs, outs, strict=True):
        assert _rel(o.cpu().numpy(), _reference(x)) <= 1e-4
    ctx = model._runners[0]
    assert len(ctx._graphs) == 2  # one capture per input shape, reused for the third call


def test_replays_follow_the_callers_streams() -> None:
    """Replays run on the caller's stream; a run on another stream than the last waits for it
    (the static input is shared), and its outputs are ordered on the new stream."""
    model = _model(batch=8)
    xs = [
        np.random.default_rng(10 + i).standard_normal((8, 8, 16, 16)).astype(np.float32)
        for i in range(6)
    ]
    gpu = [torch.from_numpy(x).cuda() for x in xs]
    model.run([gpu[0]])  # capture
    streams = [torch.cuda.Stream() for _ in range(3)]
    torch.cuda.synchronize()
    outs = []
    for i, x in enumerate(gpu):
        s = streams[i % 3]
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            torch.cuda._sleep(2_000_000)  # the GPU lags the host: a race would show
            outs.append((s, model.run([x])[0]))
    for (s, o), x in zip(outs, xs, strict=True):
        s.synchronize()
        assert _rel(o.cpu().numpy(), _reference(x)) <= 1e-4


def test_a_reused_input_buffer_is_read_in_place() -> None:
    """The same device buffer twice in a row (share_external_data of a reused tensor): a second
    graph reads it in place, with no input copy; new contents written into the buffer (on a
    lagging stream) are what the next run sees; other buffers go through the copying graph; the
    caller's buffer is never written."""
    model = _model(batch=8)
    ctx = model._runners[0]
    rng = np.random.default_rng(20)
    xs = [rng.standard_normal((8, 8, 16, 16)).astype(np.float32) for _ in range(5)]
    buf = torch.empty(8, 8, 16, 16, device="cuda")
    other = torch.from_numpy(xs[4]).cuda()
    for i, x in enumerate(xs[:4]):
        torch.cuda._sleep(2_000_000)  # the GPU lags the host: a race would show
        buf.copy_(torch.from_numpy(x).cuda(), non_blocking=True)
        out = model.run([buf])[0]
        assert _rel(out.cpu().numpy(), _reference(x)) <= 1e-4, i
        assert np.array_equal(buf.cpu().numpy(), x)
        if i == 2:
            assert _rel(model.run([other])[0].cpu().numpy(), _reference(xs[4])) <= 1e-4
    (cap,) = ctx._graphs.values()
    assert cap.bound is not None and cap.bound[0][0][0] == buf.data_ptr()
    assert cap.binds_left == 3  # bound once: the detour through another buffer kept it


def test_plan_round_trip_and_foreign_device_plan() -> None:
    model = _model()
    data = model.serialize()
    again = PartitionedModel.deserialize(data, torch.device("cuda"), "mem")
    x = torch.randn(3, 8, 16, 16, device="cuda")
    torch.testing.assert_close(again.run([x])[0], model.run([x])[0])
    with pytest.raises(PlanError, match="another device"):
        PartitionedModel.deserialize(data, torch.device("cpu"), "mem")


def test_clones_run_concurrently() -> None:
    import fluidrt
    from fluidrt.inference import Predictor

    model = _model()
    cfg = fluidrt.Config()
    cfg.enable_use_gpu(100, 0)
    base = Predictor(cfg, runner=model)
    preds = [base] + [base.clone() for _ in range(3)]
    xs = [
        np.random.default_rng(10 + i).standard_normal((4, 8, 16, 16)).astype(np.float32)
        for i in range(4)
    ]
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        for _ in range(20):
            results[i] = preds[i].run([xs[i]])[0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, x in enumerate(xs):
        assert _rel(results[i], _reference(x)) <= 1e-4


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_triton_pointwise_kernel(layout: str, dtype: torch.dtype) -> None:
    from triton.testing import do_bench

    from fluidrt.kernels.pointwise import PointwiseKernel
    from fluidrt.ops.fused import fused_elementwise

    steps = [
        ["mul", ["i0", "i1"], {}],
        ["hard_swish", ["s0"], {}],
        ["add", ["s1", "i2"], {}],
        ["clip", ["s2"], {"min": -1.0, "max": 4.0}],
        ["sigmoid", ["s3"], {}],
    ]
    a = torch.randn(8, 64, 28, 28, device="cuda", dtype=dtype)
    if layout == "channels_last":
        a = a.contiguous(memory_format=torch.channels_last)
    b = torch.randn(1, 64, 1, 1, device="cuda", dtype=dtype)  # broadcast per channel
    c = torch.randn(8, 64, 28, 28, device="cuda", dtype=dtype)
    kernel = PointwiseKernel(steps, 3)
    got = kernel(a, b, c)
    ref = fused_elementwise(a.float(), b.float(), c.float(), steps=steps).to(dtype)
    assert got.shape == ref.shape and got.dtype == ref.dtype
    torch.testing.assert_close(
        got,
        ref,
        rtol=1e-2 if dtype == torch.float16 else 1e-5,
        atol=1e-3 if dtype == torch.float16 else 1e-6,
    )
    ms_triton = do_bench(lambda: kernel(a, b, c))
    ms_torch = do_bench(lambda: fused_elementwise(a, b, c, steps=steps))
    print(
        f"pointwise {layout} {dtype}: triton {ms_triton * 1e3:.1f} us, "
        f"torch {ms_torch * 1e3:.1f} us"
    )


def test_cudnn_fused_tactic_matches_native() -> None:
    from fluidrt.engine.layers import candidate_tactics

    g = _graph()
    conv = next(n for n in g.nodes if n.op == "fused_conv2d" and len(n.inputs) > 3)
    tac = next(t for t in candidate_tactics(conv, torch.device("cuda")) if t.name == "cudnn_fused")
    consts = {
        i: torch.from_numpy(v.data).cuda()
        for i, v in enumerate(conv.inputs)
        if v is not None and v.is_const
    }
    x = torch.randn(2, 16, 16, 16, device="cuda")
    r = torch.randn(2, 16, 16, 16, device="cuda")
    args = [x, consts[1], consts.get(2), r]
    got = tac.prepare(conv, consts, torch.device("cuda"))(args)[0]
    from fluidrt.ops.registry import get_op

    op = get_op("fused_conv2d")
    ref = op.impl(*args, **op.resolve_attrs(conv.attrs))
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode,include", [("max", False), ("avg", False), ("avg", True)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_triton_pool_nhwc(mode: str, include: bool, dtype: torch.dtype) -> None:
    from triton.testing import do_bench

    from fluidrt.kernels.pool import pool2d_nhwc
    from fluidrt.ops.registry import get_op

    op = get_op("pool2d")
    for shape, k, s, p in [
        ((8, 288, 35, 35), 3, 1, 1),
        ((8, 192, 71, 71), 3, 2, 0),
        ((2, 3, 9, 7), 2, 2, 1),
    ]:
        x = torch.randn(shape, device="cuda", dtype=dtype).contiguous(
            memory_format=torch.channels_last
        )
        attrs = op.resolve_attrs(
            {
                "mode": mode,
                "kernel": [k, k],
                "strides": [s, s],
                "pads": [p, p, p, p],
                "count_include_pad": include,
            }
        )
        ref = op.impl(x.float(), **attrs).to(dtype)
        got = pool2d_nhwc(x, [k, k], [s, s], [p, p, p, p], mode, include)
        assert got.shape == ref.shape and got.dtype == ref.dtype
        torch.testing.assert_close(
            got,
            ref,
            rtol=1e-3 if dtype == torch.float16 else 1e-5,
            atol=1e-3 if dtype == torch.float16 else 1e-6,
        )
    x = torch.randn(64, 288, 35, 35, device="cuda", dtype=dtype).contiguous(
        memory_format=torch.channels_last
    )
    ms_triton = do_bench(lambda: pool2d_nhwc(x, [3, 3], [1, 1], [1, 1, 1, 1], mode, include))
    ms_torch = do_bench(
        lambda: op.impl(
            x,
            **op.resolve_attrs(
                {
                    "mode": mode,
                    "kernel": [3, 3],
                    "strides": [1, 1],
                    "pads": [1, 1, 1, 1],
                    "count_include_pad": include,
                }
            ),
        )
    )
    print(
        f"pool {mode} include={include} {dtype}: triton {ms_triton * 1e3:.1f} us, "
        f"torch {ms_torch * 1e3:.1f} us"
    )


def test_handles_pinned_copies_and_bound_outputs() -> None:
    import fluidrt
    from fluidrt.inference import Predictor

    cfg = fluidrt.Config()
    cfg.enable_use_gpu(100, 0)
    pred = Predictor(cfg, runner=_model())
    x = np.random.default_rng(3).standard_normal((4, 8, 16, 16)).astype(np.float32)
    h = pred.get_input_handle(pred.get_input_names()[0])
    out_name = pred.get_output_names()[0]
    for _ in range(3):  # the pinned buffers are reused between runs
        h.copy_from_cpu(x)
        pred.run()
        got = pred.get_output_handle(out_name).copy_to_cpu()
        assert _rel(got, _reference(x)) <= 1e-4
    bound = torch.empty(4, 10, device="cuda")
    pred.get_output_handle(out_name).share_external_data(bound)
    h.share_external_data(torch.from_numpy(x).cuda())
    pred.run()
    assert _rel(bound.cpu().numpy(), _reference(x)) <= 1e-4


def test_fp32_engine_is_strict_fp32_even_with_tf32_defaults_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # torch's cuDNN default; engines must not care (restored after the test for the others)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", True)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    x = np.random.default_rng(5).standard_normal((8, 8, 16, 16)).astype(np.float32)
    out = _model(batch=8).run([torch.from_numpy(x).cuda()])[0].cpu().numpy()
    assert _rel(out, _reference(x)) <= 1e-5
    assert torch.backends.cudnn.allow_tf32  # the user's setting is restored


BRANCHES = """
graph branches(%x: float32[N,8,16,16]) {
  %w: float32[16,8,3,3] = const
  %w1: float32[8,16,1,1] = const
  %w3: float32[8,8,3,3] = const
  %s = conv2d(%x, %w) {"pads": [1, 1, 1, 1]}
  %r = relu(%s)
  %a = conv2d(%r, %w1)
  %b = conv2d(%r, %w1)
  %rb = relu(%b)
  %b2 = conv2d(%rb, %w3) {"pads": [1, 1, 1, 1]}
  %c = conv2d(%r, %w1)
  %p = pool2d(%c) {"mode": "max", "kernel": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1]}
  %y = concat(%a, %b2, %p) {"axis": 1}
  %z = sigmoid(%y)
  return %z
}
"""


@pytest.mark.parametrize("aux", [2, -1])
@pytest.mark.parametrize("precision", [PrecisionType.Float32, PrecisionType.Half])
def test_parallel_branches_on_auxiliary_streams(aux: int, precision) -> None:
    g = run_passes(parse_graph(BRANCHES, infer=infer_node), Settings())
    s = Settings(use_engine=True, max_batch_size=4, precision=precision, max_aux_streams=aux)
    model = partition_and_build(g, s, torch.device("cuda"))
    engine = model.engines[0]
    if aux > 0:
        assert engine.aux_streams == aux and model._runners[0]._lanes.lanes > 1
    ref_graph = parse_graph(BRANCHES, infer=infer_node)
    tol = 1e-4 if precision == PrecisionType.Float32 else 1e-2
    for seed, batch in enumerate((4, 2, 4, 4)):
        x = np.random.default_rng(20 + seed).standard_normal((batch, 8, 16, 16)).astype("f4")
        want = NativeExecutor(ref_graph).run([torch.from_numpy(x)])[0].numpy()
        s2 = torch.cuda.Stream()
        with torch.cuda.stream(s2):
            torch.cuda._sleep(1_000_000)
            got = model.run([torch.from_numpy(x).cuda()])[0]
        s2.synchronize()
        assert _rel(got.cpu().numpy(), want) <= tol
    again = PartitionedModel.deserialize(model.serialize(), torch.device("cuda"), "plan")
    assert again.engines[0].aux_streams == engine.aux_streams
