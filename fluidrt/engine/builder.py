"""The build phase of one engine: concrete shapes, tactic selection by timing, memory plan.

For each layout the engine could use (NCHW, and channels-last when it has convolutions), the
builder runs the subgraph once with the reference tactic to get real activations, times every
candidate tactic of every layer on them, keeps the fastest, then times the whole engine; the
faster layout wins. Choices are recorded in each node's ``meta["tactic"]``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from fluidrt.engine.fingerprint import device_identity, fingerprint
from fluidrt.engine.inplace import mark_donations
from fluidrt.engine.int8_tactics import INT8_OPS
from fluidrt.engine.layers import Tactic, candidate_tactics
from fluidrt.engine.memory import plan_memory
from fluidrt.engine.precision import lower_precision
from fluidrt.engine.ranges import RANGE_BATCH, fp16_unsafe_layers
from fluidrt.engine.runtime import Engine, const_tensor, library_flags
from fluidrt.engine.shape_range import ShapeRange
from fluidrt.engine.timing import interleaved_times, time_engines
from fluidrt.engine.timing_cache import TimingCache, layer_signature
from fluidrt.ir.graph import Graph, Node
from fluidrt.ops.dtypes import to_torch
from fluidrt.ops.infer import concrete_shape, infer_graph
from fluidrt.settings import PrecisionType, Settings

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]


GRAPH_TIMING_SPAN_S = 2e-4  # calls captured per timing graph: about this much GPU work


def _gpu_time(fn: Callable[[], Any], repeat: int) -> float:
    """GPU seconds per call of a layer's tactic, as it will run inside the engine's CUDA graph:
    a few calls captured in one graph, the replay timed with CUDA events (median of ``repeat``).
    Wall-clock timing would charge each tactic its launch cost, which a graph replay does not
    pay: Triton's Python launcher then loses every small layer to a library call."""
    fn()  # compiles, autotunes the libraries' algorithms for this shape
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    estimate = max(start.elapsed_time(end) / 1e3, 1e-6)
    reps = max(1, min(20, int(GRAPH_TIMING_SPAN_S / estimate)))
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            for _ in range(reps):
                fn()
    except Exception as exc:  # not capturable: back-to-back eager calls between events
        log.debug("timing without a CUDA graph (%s)", exc)
        torch.cuda.synchronize()
        start.record()
        for _ in range(repeat):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / repeat
    times = []
    for _ in range(repeat):
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3 / reps)
    del graph
    times.sort()
    return times[len(times) // 2]


def _tuned_libraries(device: torch.device, allow_tf32: bool) -> Any:
    """On CUDA, cuDNN times its own algorithms for each shape while tactics are timed."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    return library_flags(allow_tf32)


def concretize(graph: Graph, batch: int, shapes: dict[str, tuple[int, ...]] | None = None) -> Graph:
    """A copy of ``graph`` with the inputs at ``shapes`` (where given) or the symbolic batch
    bound, and every shape re-inferred."""
    g = graph.clone()
    for v in g.inputs:
        if shapes and v.name in shapes:
            v.shape = tuple(shapes[v.name])
        elif v.shape is not None:
            v.shape = concrete_shape(v.shape, {"N": batch})
    infer_graph(g)
    return g


def _random_inputs(graph: Graph, device: torch.device, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for v in graph.inputs:
        dtype = to_torch(v.dtype)
        if dtype.is_floating_point:
            t = torch.randn(v.static_shape, generator=gen).to(dtype)
        elif dtype == torch.bool:
            t = torch.rand(v.static_shape, generator=gen) > 0.5
        else:
            t = torch.randint(0, 2, v.static_shape, generator=gen).to(dtype)
        out.append(t.to(device))
    return out


def _candidates(
    node: Node, device: torch.device, cache: TimingCache, key: str
) -> tuple[list[tuple[str, Tactic]], dict[str, float] | None]:
    """The candidates to run for a layer, each (tactic, variant) pair one "name" or
    "name:variant", and its cached timings; with a cache entry, only the cached winner runs."""
    cands = [(n, t) for t in candidate_tactics(node, device) for n in t.names(node)]
    cached = cache.get(key, [n for n, _ in cands]) if len(cands) > 1 else None
    if cached is not None:
        fastest = min(cached.values())
        cands = [(n, t) for n, t in cands if cached.get(n, float("inf")) <= fastest]
    return cands, cached


def _precompile(
    jobs: list[tuple[Node, str, Tactic]],
    device: torch.device,
    layout: str,
    consts: dict[str, torch.Tensor],
) -> None:
    """Compile the Triton kernels the tuner is about to time, in threads: each variant is a
    separate compile (much of it in ptxas and in Triton's native passes, outside the GIL), and
    compiled one by one they would dominate a cold build. Launched on placeholder inputs of the
    layers' shapes, which specialize the kernels as the real ones will."""

    def compile_one(job: tuple[Node, str, Tactic]) -> None:
        node, name, tac = job
        twin = copy.copy(node)
        twin.meta = {**node.meta, "tactic_variant": name.partition(":")[2] or None}
        cconsts = {}
        args = []
        for i, v in enumerate(node.inputs):
            if v is None or v.is_const:
                args.append(consts[v.name] if v is not None else None)
                if v is not None:
                    cconsts[i] = consts[v.name]
                continue
            t = torch.zeros(v.shape, dtype=to_torch(v.dtype), device=device)
            if layout == "nhwc" and t.dim() == 4 and t.is_floating_point():
                t = t.contiguous(memory_format=torch.channels_last)
            args.append(t)
        try:
            with torch.inference_mode():
                tac.prepare(twin, cconsts, device)(args)
        except Exception as exc:  # the tuner meets the same failure and skips the tactic
            log.debug("precompiling %s for %s failed: %s", name, node.name, exc)

    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        list(pool.map(compile_one, jobs))
    torch.cuda.synchronize(device)


def _select_tactics(
    graph: Graph,
    device: torch.device,
    layout: str,
    repeat: int,
    progress: Progress | None,
    cache: TimingCache,
) -> None:
    """Time every candidate tactic of every layer on real activations; keep the fastest."""
    consts = {v.name: const_tensor(v, device) for v in graph.consts() if v.users}
    env: dict[str, torch.Tensor] = dict(consts)
    for v, t in zip(graph.inputs, _random_inputs(graph, device), strict=True):
        if layout == "nhwc" and t.dim() == 4 and t.is_floating_point():
            t = t.contiguous(memory_format=torch.channels_last)
        env[v.name] = t
    total = len(graph.nodes)
    device_name = device_identity(device)["device_name"]
    mark_donations(graph)  # in-place layers are timed as they will run
    plans = []
    for node in graph.nodes:
        key = layer_signature(node, layout, device_name)
        plans.append((node, key, *_candidates(node, device, cache, key)))
    triton = [
        (node, name, tac)
        for node, _, cands, _ in plans
        for name, tac in cands
        if name.startswith("triton_") and name != "triton_pointwise"
    ]
    if device.type == "cuda" and len(triton) > 1:
        _precompile(triton, device, layout, consts)
    with torch.inference_mode():
        for idx, (node, key, cands, cached) in enumerate(plans):
            args = [env[v.name] if v is not None else None for v in node.inputs]
            cconsts = {
                i: consts[v.name] for i, v in enumerate(node.inputs) if v is not None and v.is_const
            }
            best, best_t, best_out = None, float("inf"), None
            timings = {}
            cpu_calls: dict[str, Callable[[], Any]] = {}
            outs: dict[str, list[torch.Tensor]] = {}
            for name, tac in cands:
                try:
                    node.meta["tactic_variant"] = name.partition(":")[2] or None
                    run = tac.prepare(node, cconsts, device)
                    out = run(args)
                    call = lambda run=run, args=args: run(args)  # noqa: E731
                    if cached is not None:
                        t = cached[name] / 1e3
                    elif len(cands) == 1:
                        t = 0.0
                    elif device.type == "cuda":
                        t = _gpu_time(call, repeat)
                    else:  # timed below, all candidates in rounds
                        cpu_calls[name], outs[name] = call, out
                        continue
                except Exception as exc:  # a tactic that cannot run this layer is skipped
                    log.debug("tactic %s failed on %s: %s", name, node.name, exc)
                    timings[name] = float("inf")
                    continue
                timings[name] = t
                if t < best_t:
                    best, best_t, best_out = name, t, out
            node.meta.pop("tactic_variant", None)
            if cpu_calls:
                for name, t in interleaved_times(cpu_calls, repeat).items():
                    timings[name] = t
                    if t < best_t:
                        best, best_t, best_out = name, t, outs[name]
            if cached is None and len(cands) > 1:
                cache.put(key, {k: v * 1e3 for k, v in timings.items()})
            if best is None:
                raise RuntimeError(f"no tactic could run layer {node.name!r} ({node.op})")
            node.meta["tactic"] = best
            if cached is not None:  # every candidate's time, as the whole-engine choice reads it
                timings = {**{k: v / 1e3 for k, v in cached.items()}, **timings}
            node.meta["timings_ms"] = {
                k: round(v * 1e3, 4) for k, v in timings.items() if v != float("inf")
            }
            env.update(zip((v.name for v in node.outputs), best_out, strict=True))
            if progress:
                progress(f"tuning layers ({layout})", idx + 1, total)


def _fp16_range_guard(
    graph: Graph, batch: int, ranges: dict[str, ShapeRange], device: torch.device
) -> dict[str, str]:
    """Layers whose fp32 activations fp16 cannot hold, pinned to float32."""
    probe = concretize(graph, min(batch, RANGE_BATCH), {n: r.opt for n, r in ranges.items()})
    unsafe = fp16_unsafe_layers(probe, _random_inputs(probe, device), device)
    return {name: "float32" for name in unsafe}


def _pinned_fp32(settings: Settings) -> bool:
    """The user pinned layers to fp32 (``set_layer_precision``): they get strict fp32, so the
    engine runs its fp32 layers without TF32 (whose 10-bit mantissa is fp16's)."""
    return "float32" in settings.precision_overrides.values()


def build_engine(
    graph: Graph,
    settings: Settings,
    device: torch.device,
    progress: Progress | None = None,
    ranges: dict[str, ShapeRange] | None = None,
) -> Engine:
    """Build an engine for ``graph`` (a cluster subgraph) at ``max_batch_size``, or, given
    ``ranges`` of its inputs, valid over them: tuned at the opt shapes, memory planned at max."""
    start = time.perf_counter()
    half = {PrecisionType.Half: "float16", PrecisionType.Bfloat16: "bfloat16"}.get(
        settings.precision
    )
    overrides = dict(settings.precision_overrides)
    if settings.precision == PrecisionType.Int8:
        # INT8 layers were lowered before partitioning (fluidrt.quant); the layers left in float
        # run in fp16 on GPU and fp32 on CPU, the INT8 layers' float ends in fp32
        half = "float16" if device.type == "cuda" else None
        overrides = {**{op: "float32" for op in INT8_OPS}, **overrides}
    batch = max(1, int(settings.max_batch_size))
    if half == "float16":
        # the user's own per-layer choices (by name, op or source type) beat the guard
        user = settings.precision_overrides
        guard = _fp16_range_guard(graph, batch, ranges or {}, device)
        for node in graph.nodes:
            if node.name in guard and {node.name, node.op, node.meta.get("source_type")} & set(
                user
            ):
                del guard[node.name]
        overrides = {**guard, **overrides}
    if half is not None:
        graph = lower_precision(graph.clone(), half, overrides)
    allow_tf32 = bool(settings.allow_tf32) or (
        settings.precision != PrecisionType.Float32 and not _pinned_fp32(settings)
    )
    ranges = dict(ranges or {})
    base = concretize(graph, batch, {n: r.opt for n, r in ranges.items()})
    at_max = concretize(graph, batch, {n: r.max for n, r in ranges.items()}) if ranges else base
    memory = plan_memory(at_max, settings.workspace_size)
    cache = TimingCache(settings.timing_cache)
    has_conv = any(n.op in ("conv2d", "fused_conv2d", "qconv2d") for n in base.nodes)
    layouts = ["nchw", "nhwc"] if has_conv else ["nchw"]
    repeat = 7 if device.type == "cpu" else 20
    engines: dict[str, Engine] = {}
    for layout in layouts:
        candidate = base.clone()
        with _tuned_libraries(device, allow_tf32):
            _select_tactics(candidate, device, layout, repeat, progress, cache)
        engines[layout] = Engine(candidate, device, layout, batch, memory, allow_tf32=allow_tf32)
    engine = engines[layouts[0]]
    if len(engines) > 1:  # the whole engines, timed against each other
        elapsed = time_engines(engines, _random_inputs(engine.graph, device, seed=1), repeat)
        for layout, t in elapsed.items():
            log.info("engine layout %s: %.3f ms", layout, t * 1e3)
        engine = engines[min(elapsed, key=elapsed.get)]
    if device.type == "cuda" and settings.use_cuda_graph:
        from fluidrt.engine import chains, streams
        from fluidrt.kernels.pdl import enabled as pdl_enabled

        inputs = _random_inputs(engine.graph, device, seed=1)
        if pdl_enabled(device):  # Triton kernels chained by PDL, timed as whole engines
            engine = chains.choose(engine, inputs)
        engine = streams.choose(engine, inputs, settings.max_aux_streams)
    cache.save()
    if cache.path:
        log.info("timing cache %s: %d hits, %d misses", cache.path, cache.hits, cache.misses)
    # keep the symbolic shapes of the original graph; tactics were chosen at the build shapes
    final = graph.clone()
    for src, dst in zip(engine.graph.nodes, final.nodes, strict=True):
        dst.meta["tactic"] = src.meta["tactic"]
        dst.meta["timings_ms"] = src.meta.get("timings_ms", {})
    engine.graph = final
    engine.fingerprint = fingerprint(device, settings)
    engine.use_cuda_graph = bool(settings.use_cuda_graph)
    engine.max_cuda_graphs = int(settings.max_cuda_graphs)
    engine.ranges = ranges
    engine.build_seconds = time.perf_counter() - start
    log.info(
        "built engine of %d layers in %.2f s (layout %s)",
        len(final.nodes),
        engine.build_seconds,
        engine.layout,
    )
    return engine
