"""The deploy phase of one engine: prepared layers run in order with planned lifetimes.

An ``Engine`` holds the lowered subgraph (nodes with their chosen tactic in ``node.meta``), the
layout, the memory plan and the fingerprint; ``create_execution_context()`` prepares every
layer's tactic on the device once (weight layouts, prepacking) and returns a context that runs it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from fluidrt.engine.inplace import mark_donations
from fluidrt.engine.layers import Runner, candidate_tactics, get_layer
from fluidrt.engine.memory import MemoryPlan
from fluidrt.engine.shape_range import ShapeRange, ShapeRangeError
from fluidrt.engine.streams import LanePlan, plan_lanes
from fluidrt.errors import ExecutionError, InputError, PlanError
from fluidrt.ir.graph import Graph
from fluidrt.ir.liveness import last_uses
from fluidrt.ops.dtypes import to_torch

log = logging.getLogger(__name__)
MAX_CUDA_GRAPHS = 8  # default of Settings.max_cuda_graphs: captures kept per context
_CAPTURE_LOCK = threading.Lock()


@dataclass
class Engine:
    graph: Graph
    device: torch.device
    layout: str = "nchw"  # "nhwc": 4-D float inputs enter channels-last
    max_batch_size: int = 1
    memory: MemoryPlan = field(default_factory=MemoryPlan)
    fingerprint: dict[str, Any] = field(default_factory=dict)
    build_seconds: float = 0.0
    use_cuda_graph: bool = True  # on CUDA: capture the engine once per input shape, replay
    allow_tf32: bool = False  # let cuDNN/cuBLAS use TF32 for fp32 layers
    # dynamic shapes: input name -> the range the engine is valid over (empty: batch only)
    ranges: dict[str, ShapeRange] = field(default_factory=dict)
    max_cuda_graphs: int = MAX_CUDA_GRAPHS
    aux_streams: int = 0  # on CUDA: streams besides the caller's for parallel branches

    @property
    def tactics(self) -> dict[str, str]:
        return {n.name: n.meta.get("tactic", "torch") for n in self.graph.nodes}

    def create_execution_context(self) -> ExecutionContext:
        return ExecutionContext(self)

    def device_constants(self) -> dict[str, torch.Tensor]:
        """The weights on the device, loaded once and shared by every execution context."""
        consts = self.__dict__.get("_device_consts")
        if consts is None:
            consts = {v.name: const_tensor(v, self.device) for v in self.graph.consts() if v.users}
            self.__dict__["_device_consts"] = consts
        return consts

    def serialize(self) -> bytes:
        from fluidrt.engine.plan import serialize_engines

        return serialize_engines([self])

    def describe(self) -> list[dict[str, Any]]:
        """One row per layer: name, op, tactic, fused ops, output shape."""
        rows = []
        for n in self.graph.nodes:
            fused = [s[0] for s in n.attrs.get("steps", [])] if n.op == "fused_elementwise" else []
            if n.attrs.get("activation", "none") != "none":
                fused = [n.attrs["activation"]]
            rows.append(
                {
                    "name": n.name,
                    "op": n.op,
                    "tactic": n.meta.get("tactic", "torch"),
                    "fused": fused,
                    "shape": list(n.outputs[0].shape or []),
                    "source": n.meta.get("source", ""),
                }
            )
        return rows


@contextlib.contextmanager
def library_flags(allow_tf32: bool) -> Iterator[None]:
    """cuDNN autotuning on, and TF32 for cuDNN and cuBLAS only where the engine allows it."""
    matmul = torch.backends.cuda.matmul
    saved = matmul.allow_tf32
    matmul.allow_tf32 = allow_tf32
    try:
        with torch.backends.cudnn.flags(
            enabled=True, benchmark=True, deterministic=False, allow_tf32=allow_tf32
        ):
            yield
    finally:
        matmul.allow_tf32 = saved


def const_tensor(v: Any, device: torch.device) -> torch.Tensor:
    """A constant on the device in its IR dtype (bfloat16 constants are stored as fp32)."""
    t = torch.from_numpy(v.data.copy())
    return t.to(device=device, dtype=to_torch(v.dtype))


def prepare_layer(
    node: Any, tactic_name: str, consts: dict[int, torch.Tensor], device: torch.device
) -> Runner:
    base, _, variant = tactic_name.partition(":")
    for t in candidate_tactics(node, device):
        if t.name == base:
            node.meta["tactic_variant"] = variant or None
            return t.prepare(node, consts, device)
    layer = get_layer(node.op)
    why = [
        t.missing()
        for t in (layer.tactics if layer else [])
        if t.name == base and t.missing is not None and t.missing()
    ]
    raise PlanError(
        f"layer {node.name!r} ({node.op}) wants tactic {tactic_name!r}, which this build of "
        f"fluidrt does not offer on {device.type}"
        + (f" ({why[0]})" if why else "")
        + "; rebuild the engine"
    )


# tactics whose first kernel converts its input while it reads it (any float dtype), and
# tactics whose epilogue writes any float dtype (``node.meta["write_dtype"]``)
_CONVERTING_READERS = ("triton_s2d",)
_CONVERTING_WRITERS = ("triton_gemm",)
_FLOATS = ("float32", "float16", "bfloat16")


def _tactic(node: Any) -> str:
    return str(node.meta.get("tactic", "")).partition(":")[0]


def absorbed_casts(g: Graph) -> set[str]:
    """Casts folded into their neighbour, passing the tensor through instead of running a
    kernel: one whose only reader converts while it reads (the folded stem's space-to-depth
    reads the fp32 network input and writes fp16: bit-identical, one rounding either way), and
    one that is the only reader of a layer whose epilogue can write the cast's dtype (the
    classifier's GEMM writes the engine's fp32 output itself: its fp32 result is rounded once,
    to fp32, instead of to fp16 and back). Marks such producers with ``write_dtype``."""
    outputs = {id(v) for v in g.outputs}
    names = set()
    for node in g.nodes:
        node.meta.pop("write_dtype", None)  # decided again for the tactics chosen now
    for node in g.nodes:
        if node.op != "cast" or len(node.outputs) != 1 or node.inputs[0] is None:
            continue
        src, out = node.inputs[0], node.outputs[0]
        if src.dtype not in _FLOATS or out.dtype not in _FLOATS:
            continue
        if id(out) not in outputs and len(out.users) == 1:
            user = out.users[0]
            if (
                _tactic(user) in _CONVERTING_READERS
                and user.inputs[0] is out
                and sum(v is out for v in user.inputs) == 1
            ):
                names.add(node.name)
                continue
        prod = src.producer
        if (
            prod is not None
            and id(src) not in outputs
            and len(src.users) == 1
            and len(prod.outputs) == 1
            and _tactic(prod) in _CONVERTING_WRITERS
        ):
            prod.meta["write_dtype"] = out.dtype
            names.add(node.name)
    return names


def _pass_through(args: list[torch.Tensor | None]) -> list[torch.Tensor]:
    return [args[0]]


def _where(inputs: Sequence[torch.Tensor]) -> tuple:
    """Where the inputs are: (data_ptr, strides) each (what a graph reading them in place bakes)."""
    return tuple((t.data_ptr(), t.stride()) for t in inputs)


@dataclass
class _Captured:
    """The CUDA graph of one input signature: it reads copies of the inputs (``inputs``); a
    second graph may read the caller's own buffers in place (``bound``: where they are, the
    graph, its outputs)."""

    inputs: list[torch.Tensor]
    graph: torch.cuda.CUDAGraph
    outputs: list[torch.Tensor]
    last_inputs: tuple | None = None  # (data_ptr, strides) of the last call's inputs
    bound: tuple | None = None
    binds_left: int = 4  # captures of bound graphs allowed (callers alternating buffers)


class ExecutionContext:
    """Runs one engine; holds the device copies of its weights and the prepared layers."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.profiler = None  # a fluidrt.profiler.Profiler to time every layer
        g = engine.graph
        device = engine.device
        self._const = engine.device_constants()
        self._steps = []
        mark_donations(g)
        absorbed = absorbed_casts(g)
        for node in g.nodes:
            consts = {
                i: self._const[v.name]
                for i, v in enumerate(node.inputs)
                if v is not None and v.is_const
            }
            if node.name in absorbed:
                run = _pass_through
            else:
                run = prepare_layer(node, node.meta.get("tactic", "torch"), consts, device)
            ins = [v.name if v is not None else None for v in node.inputs]
            self._steps.append((run, ins, [v.name for v in node.outputs], node))
        self._frees = {i: [v.name for v in vs] for i, vs in last_uses(g).items()}
        self._inputs = [v.name for v in g.inputs]
        self._input_values = list(g.inputs)
        self._outputs = [v.name for v in g.outputs]
        self._output_set = set(self._outputs)
        self._channels_last = {
            v.name
            for v in g.inputs
            if engine.layout == "nhwc"
            and v.rank == 4
            and v.dtype in ("float32", "float16", "bfloat16")
        }
        self._cuda = device.type == "cuda"
        self._lanes: LanePlan | None = None
        self._aux: list[torch.cuda.Stream] = []
        if self._cuda and engine.aux_streams > 0:
            plan = plan_lanes(g, 1 + engine.aux_streams)
            if plan.lanes > 1:
                self._lanes = plan
                self._aux = [torch.cuda.Stream(device) for _ in range(plan.lanes - 1)]
        self._stream = torch.cuda.Stream(device) if self._cuda else None
        # the (raw) stream of the last run and an event after it: a run on another stream waits
        self._last_stream: int | None = None
        self._done = torch.cuda.Event() if self._cuda else None
        self._device_index = (
            (device.index if device.index is not None else torch.cuda.current_device())
            if self._cuda
            else -1
        )
        self._graphs: OrderedDict[tuple, _Captured] = OrderedDict()

    def clone(self) -> ExecutionContext:
        """A context of its own (stream, CUDA graphs) over the same engine and weights."""
        return ExecutionContext(self.engine)

    def _check_batch(self, inputs: Sequence[torch.Tensor]) -> None:
        ranges = self.engine.ranges
        if ranges:
            for name, t in zip(self._inputs, inputs, strict=True):
                rng = ranges.get(name)
                if rng is not None and not rng.contains(t.shape):
                    raise ShapeRangeError(name, t.shape, rng, f"engine {self.engine.graph.name}")
            return
        limit = self.engine.max_batch_size
        for v, t in zip(self._input_values, inputs, strict=True):
            if v.shape and v.shape[0] == "N" and t.dim() > 0 and t.shape[0] > limit:
                raise InputError(
                    f"input {v.name!r} has batch {t.shape[0]}, more than the engine's "
                    f"max_batch_size={limit}; raise max_batch_size in enable_engine()"
                )

    def run(self, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        bind = False
        if self._cuda and self.engine.use_cuda_graph and self.profiler is None:
            key = tuple((t.shape, t.dtype) for t in inputs)
            cap = self._graphs.get(key)
            if cap is not None:  # checked when it was captured
                where = _where(inputs)
                if cap.bound is not None and cap.bound[0] == where:
                    return self._replay(key, cap.bound[1], cap.bound[2], None, inputs)
                bind = cap.last_inputs == where and cap.binds_left > 0
                cap.last_inputs = where
                if not bind:
                    return self._replay(key, cap.graph, cap.outputs, cap.inputs, inputs)
        self._check_batch(inputs)
        if not self._cuda:
            return self._run_layers(inputs)
        caller = torch.cuda.current_stream(self.engine.device)
        self._stream.wait_stream(caller)
        self._stream.wait_event(self._done)  # the last run, whichever stream it was on
        with torch.cuda.stream(self._stream):
            if self.engine.use_cuda_graph and self.profiler is None:
                outs = self._capture_and_replay(inputs, bind)
            else:
                with library_flags(self.engine.allow_tf32):
                    outs = self._run_layers(inputs)
        caller.wait_stream(self._stream)
        for t in outs:
            t.record_stream(caller)
        self._done.record(caller)
        self._last_stream = caller.cuda_stream
        return outs

    def _replay(
        self,
        key: tuple,
        graph: torch.cuda.CUDAGraph,
        static_out: list[torch.Tensor],
        static_in: list[torch.Tensor] | None,
        inputs: Sequence[torch.Tensor],
    ) -> list[torch.Tensor]:
        """A captured graph, replayed on the caller's stream with nothing before the launch but
        the input copies (none for a graph bound to the caller's buffers): at small batches
        latency is host time (each microsecond here is one the GPU waits). A run on another
        stream than the last one waits for the last one."""
        stream = torch._C._cuda_getCurrentRawStream(self._device_index)
        if stream != self._last_stream:
            self._done.wait(torch.cuda.current_stream(self.engine.device))
        if static_in is not None:
            for dst, src in zip(static_in, inputs, strict=True):
                dst.copy_(src, non_blocking=True)
        graph.replay()
        # below here the GPU is busy with the graph: host work is hidden
        outs = [t.clone() for t in static_out]
        self._done.record(torch.cuda.current_stream(self.engine.device))
        self._last_stream = stream
        self._graphs.move_to_end(key)
        return outs

    # ---- CUDA graphs: one capture per input signature, least recently used dropped --------
    def _capture_and_replay(self, inputs: Sequence[torch.Tensor], bind: bool) -> list[torch.Tensor]:
        """Capture a graph for these inputs' shapes (reading copies of the inputs), or, with
        ``bind``, a second one for a known shape that reads the caller's buffers in place: the
        same buffers came twice in a row (``share_external_data`` of a reused tensor), so later
        calls with them skip the input copy. Engines never write to their inputs (no input is
        donated), so reading them in place is safe; the bound graph is replayed only while the
        caller passes tensors at exactly those addresses and strides, and shares the memory
        pool of the key's first graph (the two are never replayed at once)."""
        key = tuple((t.shape, t.dtype) for t in inputs)
        if bind:
            cap = self._graphs[key]
            graph, static_out = self._capture(list(inputs), pool=cap.graph.pool())
            cap.bound = (cap.last_inputs, graph, static_out)
            cap.binds_left -= 1
            static_in = None
        else:
            static_in = [t.detach().clone() for t in inputs]
            graph, static_out = self._capture(static_in)
            self._graphs[key] = _Captured(static_in, graph, static_out, _where(inputs))
            while len(self._graphs) > max(1, self.engine.max_cuda_graphs):
                self._graphs.popitem(last=False)
            for dst, src in zip(static_in, inputs, strict=True):
                dst.copy_(src, non_blocking=True)
        graph.replay()
        return [t.clone() for t in static_out]

    def _capture(self, static_in: list[torch.Tensor], pool: Any = None) -> tuple:
        graph = torch.cuda.CUDAGraph()
        # cuDNN times its algorithms for these exact shapes during the warm-up (kernel
        # auto-tuning) and the capture freezes the winners into the graph
        tuned = library_flags(self.engine.allow_tf32)
        # one capture at a time in the process: another thread's eager warm-up during a capture
        # would be illegal; replays of finished graphs in other threads go on meanwhile
        with _CAPTURE_LOCK, tuned:
            for _ in range(2):  # lazy library init and allocations happen outside the capture
                self._run_layers(static_in)
            self._stream.synchronize()
            with torch.cuda.graph(
                graph, pool=pool, stream=self._stream, capture_error_mode="relaxed"
            ):
                static_out = self._run_layers(static_in)
        log.debug("captured CUDA graph for %s", [tuple(t.shape) for t in static_in])
        return graph, static_out

    def _run_layers(self, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        env: dict[str, torch.Tensor] = dict(self._const)
        for name, t in zip(self._inputs, inputs, strict=True):
            env[name] = (
                t.contiguous(memory_format=torch.channels_last)
                if (name in self._channels_last)
                else t
            )
        lanes = self._lanes if self.profiler is None else None
        if lanes is not None:
            return self._run_lanes(env, lanes)
        with torch.inference_mode():
            for idx, (run, ins, outs, node) in enumerate(self._steps):
                try:
                    args = [env[n] if n is not None else None for n in ins]
                    if self.profiler is not None:
                        with self.profiler.layer(node.name, node.op, self.engine.graph.name):
                            results = run(args)
                    else:
                        results = run(args)
                except Exception as exc:
                    raise self._layer_error(idx, node, ins, env, exc) from exc
                env.update(zip(outs, results, strict=True))
                for name in self._frees.get(idx, ()):
                    env.pop(name, None)
        return [env[n] for n in self._outputs]

    @staticmethod
    def _layer_error(
        idx: int, node: Any, ins: list, env: dict[str, torch.Tensor], exc: Exception
    ) -> ExecutionError:
        shapes = [tuple(env[n].shape) if n is not None else None for n in ins]
        return ExecutionError(
            f"engine layer #{idx} {node.name!r} ({node.op}, tactic "
            f"{node.meta.get('tactic', 'torch')}) with input shapes {shapes}: "
            f"{type(exc).__name__}: {exc}"
        )

    def _run_lanes(self, env: dict[str, torch.Tensor], lanes: LanePlan) -> list[torch.Tensor]:
        """The layers with parallel branches on auxiliary streams (``fluidrt.engine.streams``);
        forked from and joined back into the caller's stream, so a CUDA graph captures them."""
        main = torch.cuda.current_stream(self.engine.device)
        streams = [main, *self._aux]
        for s in self._aux:
            s.wait_stream(main)
        done: dict[int, torch.cuda.Event] = {}
        with torch.inference_mode():
            for idx, (run, ins, outs, node) in enumerate(self._steps):
                stream = streams[lanes.lane_of[idx]]
                for j in lanes.waits[idx]:
                    stream.wait_event(done[j])
                try:
                    args = [env[n] if n is not None else None for n in ins]
                    with torch.cuda.stream(stream):
                        results = run(args)
                except Exception as exc:
                    raise self._layer_error(idx, node, ins, env, exc) from exc
                if idx in lanes.signal:
                    done[idx] = torch.cuda.Event()
                    done[idx].record(stream)
                for name, t in zip(outs, results, strict=True):
                    for other in lanes.shared.get(name, ()):
                        t.record_stream(streams[other])
                    if stream is not main and name in self._output_set:
                        t.record_stream(main)
                env.update(zip(outs, results, strict=True))
                for name in self._frees.get(idx, ()):
                    env.pop(name, None)
        for s in self._aux:
            main.wait_stream(s)
        return [env[n] for n in self._outputs]
