"""A partitioned model: engine segments and native segments run in dependency order.

This is seed 002's "subgraph operation principle": supported clusters become engine nodes and
everything else runs natively between them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from fluidrt.engine.builder import build_engine
from fluidrt.engine.fingerprint import fingerprint
from fluidrt.engine.layers import supports
from fluidrt.engine.plan import deserialize_segments, serialize_segments
from fluidrt.engine.runtime import Engine
from fluidrt.engine.shape_range import (
    ShapeCollector,
    ShapeRange,
    ShapeRangeError,
    TensorShapeInfo,
    bind_ranges,
    check_model_inputs,
    derive_ranges,
    ranges_from_dicts,
    read_shape_range_info,
    write_shape_range_info,
)
from fluidrt.errors import PlanError
from fluidrt.ir.graph import Graph, Node, Value
from fluidrt.ops.executor import NativeExecutor
from fluidrt.partition import find_clusters, tell
from fluidrt.settings import Settings

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]


def extract_subgraph(graph: Graph, nodes: Sequence[Node], name: str) -> Graph:
    """Copy ``nodes`` into a graph of their own; values crossing the border become its I/O."""
    sub = Graph(name)
    inside = {id(n) for n in nodes}
    env: dict[int, Value] = {}
    for node in nodes:
        ins = []
        for v in node.inputs:
            if v is None:
                ins.append(None)
                continue
            if id(v) not in env:
                if v.is_const:
                    env[id(v)] = sub.add_const(v.name, v.data)
                else:
                    env[id(v)] = sub.add_input(v.name, v.shape, v.dtype)
            ins.append(env[id(v)])
        copy = sub.add_node(
            node.op, ins, dict(node.attrs), outputs=[o.name for o in node.outputs], name=node.name
        )
        copy.meta.update(node.meta)
        for o, c in zip(node.outputs, copy.outputs, strict=True):
            c.shape, c.dtype = o.shape, o.dtype
            env[id(o)] = c
    outs = []
    for node in nodes:
        for o in node.outputs:
            if o in graph.outputs or any(id(u) not in inside for u in o.users):
                outs.append(env[id(o)])
    sub.outputs = outs
    return sub


def _schedule(graph: Graph, clusters: list[list[Node]]) -> list[tuple[str, list[Node]]]:
    """Order engine clusters and native nodes so every unit runs after its producers; merge
    consecutive native units into one native segment."""
    unit_of: dict[int, int] = {}
    units: list[tuple[str, list[Node]]] = []
    for c in clusters:
        for n in c:
            unit_of[id(n)] = len(units)
        units.append(("engine", c))
    for n in graph.nodes:
        if id(n) not in unit_of:
            unit_of[id(n)] = len(units)
            units.append(("native", [n]))
    position = {id(n): i for i, n in enumerate(graph.nodes)}
    deps: list[set[int]] = [set() for _ in units]
    for u, (_, nodes) in enumerate(units):
        for n in nodes:
            for v in n.inputs:
                if v is not None and v.producer is not None and unit_of[id(v.producer)] != u:
                    deps[u].add(unit_of[id(v.producer)])
    done: set[int] = set()
    order: list[int] = []
    pending = sorted(range(len(units)), key=lambda u: min(position[id(n)] for n in units[u][1]))
    while pending:
        for u in pending:
            if deps[u] <= done:
                order.append(u)
                done.add(u)
                pending.remove(u)
                break
        else:
            raise RuntimeError("engine clusters form a cycle; this is a partitioner bug")
    merged: list[tuple[str, list[Node]]] = []
    for u in order:
        kind, nodes = units[u]
        if kind == "native" and merged and merged[-1][0] == "native":
            merged[-1][1].extend(nodes)
        else:
            merged.append((kind, list(nodes)))
    return merged


class PartitionedModel:
    """Runs engine and native segments in order; what a Predictor runs when engines are on."""

    def __init__(
        self,
        segments: list[Engine | Graph],
        inputs: list[Value],
        outputs: list[str],
        device: torch.device,
        native_reasons: dict[str, str] | None = None,
        fp: dict[str, Any] | None = None,
        output_names: list[str] | None = None,
        ranges: dict[str, ShapeRange] | None = None,
    ) -> None:
        self.output_names = list(output_names or outputs)
        self.inputs = inputs
        self.outputs = outputs
        self.device = device
        self.ranges = dict(ranges or {})  # model input -> the range its engines are built for
        self.value_ranges: dict[str, ShapeRange] = {}  # every tensor's range, when just built
        # allow_build_at_runtime: rebuilder(model, inputs) -> a model whose ranges hold inputs
        self.rebuilder: Callable[[PartitionedModel, Sequence[torch.Tensor]], Any] | None = None
        self._profiler: object | None = None
        self._adopt(segments, native_reasons or {}, fp or {})

    def _adopt(
        self, segments: list[Engine | Graph], native_reasons: dict[str, str], fp: dict[str, Any]
    ) -> None:
        """Take these segments (new contexts for the engines) and their bookkeeping."""
        self.segments = segments
        self.native_reasons = native_reasons
        self.fingerprint = fp
        self._runners = [
            s.create_execution_context()
            if isinstance(s, Engine)
            else NativeExecutor(s, self.device)
            for s in segments
        ]
        self.set_profiler(self._profiler)
        last: dict[str, int] = {}
        for i, s in enumerate(segments):
            for v in (s.graph if isinstance(s, Engine) else s).inputs:
                last[v.name] = i
        keep = set(self.outputs)
        self._frees: dict[int, list[str]] = {}
        for name, i in last.items():
            if name not in keep:
                self._frees.setdefault(i, []).append(name)

    def run(self, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        try:
            for v, t in zip(self.inputs, inputs, strict=True) if self.ranges else ():
                rng = self.ranges.get(v.name)
                if rng is not None and not rng.contains(t.shape):
                    raise ShapeRangeError(v.name, t.shape, rng, "model")
            return self._run(inputs)
        except ShapeRangeError:  # a model input, or an engine's input after a native segment
            if self.rebuilder is None:
                raise
            new = self.rebuilder(self, inputs)
            self.ranges, self.value_ranges = new.ranges, new.value_ranges
            self._adopt(new.segments, new.native_reasons, new.fingerprint)
            return self._run(inputs)

    def _run(self, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        env = dict(zip((v.name for v in self.inputs), inputs, strict=True))
        for i, (seg, runner) in enumerate(zip(self.segments, self._runners, strict=True)):
            g = seg.graph if isinstance(seg, Engine) else seg
            outs = runner.run([env[v.name] for v in g.inputs])
            env.update(zip((v.name for v in g.outputs), outs, strict=True))
            for name in self._frees.get(i, ()):
                env.pop(name, None)
        return [env[n].contiguous() for n in self.outputs]

    def clone(self) -> PartitionedModel:
        """Same engines and weights, new execution contexts: safe to run in another thread."""
        twin = PartitionedModel(
            self.segments,
            self.inputs,
            self.outputs,
            self.device,
            self.native_reasons,
            self.fingerprint,
            self.output_names,
            self.ranges,
        )
        twin.value_ranges, twin.rebuilder = self.value_ranges, self.rebuilder
        return twin

    def set_profiler(self, profiler: object) -> None:
        self._profiler = profiler
        for r in self._runners:
            r.profiler = profiler

    @property
    def engines(self) -> list[Engine]:
        return [s for s in self.segments if isinstance(s, Engine)]

    def summary(self) -> str:
        lines = []
        for i, seg in enumerate(self.segments):
            if isinstance(seg, Engine):
                ops = Counter(n.op for n in seg.graph.nodes)
                tactics = Counter(seg.tactics.values())
                mem = seg.memory
                lines.append(
                    f"segment {i}: engine, {len(seg.graph.nodes)} layers, layout {seg.layout}, "
                    f"arena {mem.arena_bytes / 2**20:.1f} MiB of {mem.total_bytes / 2**20:.1f} "
                    f"MiB ({100 * mem.saved_fraction:.0f}% saved)"
                    + (f", {seg.aux_streams} auxiliary streams" if seg.aux_streams else "")
                )
                lines.append("    ops: " + ", ".join(f"{k} x{v}" for k, v in ops.most_common()))
                lines.append("    tactics: " + ", ".join(f"{k} x{v}" for k, v in tactics.items()))
            else:
                lines.append(f"segment {i}: native, {len(seg.nodes)} nodes")
                for n in seg.nodes:
                    reason = self.native_reasons.get(n.name, "")
                    lines.append(f"    {n.name} ({n.op}): {reason}")
        return "\n".join(lines)

    # ---- plans ----------------------------------------------------------------------------
    def serialize(self) -> bytes:
        model = {
            "inputs": [[v.name, list(v.shape) if v.shape else None, v.dtype] for v in self.inputs],
            "outputs": self.outputs,
            "output_names": self.output_names,
            "native_reasons": self.native_reasons,
            "ranges": {n: r.to_json() for n, r in self.ranges.items()},
        }
        return serialize_segments(self.segments, self.fingerprint, model)

    @classmethod
    def deserialize(cls, data: bytes, device: torch.device, source: str) -> PartitionedModel:
        segments, fp, model = deserialize_segments(data, device, source)
        try:
            inputs = [
                Value(n, tuple(s) if s is not None else None, d) for n, s, d in model["inputs"]
            ]
            return cls(
                segments,
                inputs,
                list(model["outputs"]),
                device,
                model.get("native_reasons", {}),
                fp,
                model.get("output_names"),
                {n: ShapeRange.from_json(r) for n, r in model.get("ranges", {}).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PlanError(f"{source}: plan's model section is malformed: {exc}") from None


def input_ranges_of(
    settings: Settings, known: Mapping[str, TensorShapeInfo] | None = None
) -> dict[str, ShapeRange]:
    """The model inputs' ranges: the shape file's with tuned dynamic shapes, else the
    ``set_trt_dynamic_shape_info`` ones (the file's entries of non-inputs are ignored later)."""
    if settings.tuned_dynamic_shape:
        return {n: info.shape for n, info in (known or {}).items()}
    return ranges_from_dicts(
        settings.min_input_shape, settings.max_input_shape, settings.opt_input_shape
    )


def partition_and_build(
    graph: Graph,
    settings: Settings,
    device: torch.device,
    progress: Progress | None = None,
    known: Mapping[str, TensorShapeInfo] | None = None,
) -> PartitionedModel:
    """Cut ``graph`` into engine clusters and native segments and build every engine.

    With dynamic shapes (``set_trt_dynamic_shape_info`` or a tuned shape file, whose entries are
    ``known``) every tensor gets its range first, and each engine is built valid over the ranges
    of its inputs."""
    ranges = input_ranges_of(settings, known)
    if settings.tuned_dynamic_shape:  # the file holds every tensor: keep the inputs'
        ranges = {v.name: ranges[v.name] for v in graph.inputs if v.name in ranges}
    value_ranges: dict[str, ShapeRange] = {}
    if ranges or settings.tuned_dynamic_shape:
        check_model_inputs(graph.inputs, ranges)
        graph = graph.clone()
        value_ranges = derive_ranges(graph, ranges, known, device)
        bind_ranges(graph, value_ranges)
        log.info("dynamic shapes: %s", ", ".join(f"{n} {r}" for n, r in ranges.items()))
    reasons = tell(graph, supports, settings.disabled_ops)
    supported = {id(n) for n in graph.nodes if id(n) not in reasons}
    clusters = find_clusters(graph, supported, 1)
    big = [c for c in clusters if len(c) >= settings.min_subgraph_size]
    for c in clusters:
        if len(c) < settings.min_subgraph_size:
            for n in c:
                reasons[id(n)] = (
                    f"in a cluster of {len(c)} node(s), fewer than min_subgraph_size="
                    f"{settings.min_subgraph_size}"
                )
    segments: list[Engine | Graph] = []
    for kind, nodes in _schedule(graph, big):
        sub = extract_subgraph(graph, nodes, f"{kind}{len(segments)}")
        if kind == "engine":
            sub_ranges = {
                v.name: value_ranges[v.name] for v in sub.inputs if v.name in value_ranges
            }
            segments.append(build_engine(sub, settings, device, progress, sub_ranges or None))
        else:
            segments.append(sub)
    named_reasons = {n.name: reasons[id(n)] for n in graph.nodes if id(n) in reasons}
    outputs = list(graph.meta.get("output_names") or [v.name for v in graph.outputs])
    out_values = [v.name for v in graph.outputs]
    model = PartitionedModel(
        segments,
        list(graph.inputs),
        out_values,
        device,
        named_reasons,
        fingerprint(device, settings),
        outputs,
        ranges,
    )
    model.value_ranges = value_ranges
    n_engine = sum(len(s.graph.nodes) for s in model.engines)
    log.info(
        "partition: %d engine(s) with %d of %d nodes; %d native node(s)",
        len(model.engines),
        n_engine,
        len(graph.nodes),
        len(named_reasons),
    )
    for name, why in named_reasons.items():
        log.info("  native %s: %s", name, why)
    return model


def runtime_rebuilder(
    graph: Callable[[], Graph],
    settings: Settings,
    device: torch.device,
    on_built: Callable[[PartitionedModel], None] | None = None,
) -> Callable[[PartitionedModel, Sequence[torch.Tensor]], PartitionedModel]:
    """``allow_build_at_runtime``: on an out-of-range input, run the graph natively on it to
    record every tensor's shape, widen the ranges (and the shape file) to hold them, rebuild."""

    def rebuild(model: PartitionedModel, inputs: Sequence[torch.Tensor]) -> PartitionedModel:
        g = graph()
        path = settings.shape_range_info_path
        base = {n: TensorShapeInfo(r) for n, r in model.value_ranges.items()}
        if path and os.path.exists(path):
            base.update(read_shape_range_info(path))
        collector = ShapeCollector(base)
        native = NativeExecutor(g, device)
        native.observer = collector.observe
        for v, t in zip(g.inputs, inputs, strict=True):
            collector.observe(v.name, t)
        native.run(list(inputs))
        infos = collector.infos()
        for v, t in zip(g.inputs, inputs, strict=True):
            old = model.ranges.get(v.name)
            if old is not None and not old.contains(t.shape):
                log.warning(
                    "input %r has shape %s, outside the engines' range %s: rebuilding with %s "
                    "(allow_build_at_runtime)",
                    v.name,
                    list(t.shape),
                    old,
                    infos[v.name].shape,
                )
        if path:
            write_shape_range_info(path, infos)
            log.info("updated the shape range file %s", path)
        new = partition_and_build(g, _with_input_ranges(settings, infos, g), device, None, infos)
        if on_built is not None:
            on_built(new)
        return new

    return rebuild


def _with_input_ranges(
    settings: Settings, infos: Mapping[str, TensorShapeInfo], graph: Graph
) -> Settings:
    """A copy of ``settings`` whose input ranges are the widened ones."""
    s = dataclasses.replace(settings)
    ranges = {v.name: infos[v.name].shape for v in graph.inputs if v.name in infos}
    if not s.tuned_dynamic_shape:
        s.min_input_shape = {n: list(r.min) for n, r in ranges.items()}
        s.opt_input_shape = {n: list(r.opt) for n, r in ranges.items()}
        s.max_input_shape = {n: list(r.max) for n, r in ranges.items()}
    return s
