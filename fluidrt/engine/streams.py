"""Parallel branches of an engine on auxiliary CUDA streams ("lanes").

At small batches one branch of an Inception block or a ResNet projection shortcut leaves most of
the GPU idle; run on another stream, inside the same CUDA graph, independent branches overlap
(TensorRT's auxiliary streams). Lanes are assigned in the engine's topological order: a layer
continues the lane of its first input's producer unless another consumer already did, and then
takes the next auxiliary lane in turn. A layer waits for an event after each producer on another
lane; a tensor read on other lanes is marked as used there, so the allocator keeps it until
they are done.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import torch

from fluidrt.engine.inplace import DONATE, residual_input
from fluidrt.ir.graph import Graph

log = logging.getLogger(__name__)

AUTO_AUX_STREAMS = 3  # tried when the builder decides (Settings.max_aux_streams = -1)


@dataclass
class LanePlan:
    lane_of: list[int]  # per node, in graph order
    waits: list[list[int]]  # per node, the nodes on other lanes it must wait for
    signal: set[int]  # nodes followed by an event (another lane waits for them)
    shared: dict[str, set[int]]  # value -> the other lanes that read it
    lanes: int  # lanes used (1: everything on the caller's stream)


def plan_lanes(graph: Graph, max_lanes: int) -> LanePlan:
    """Assign each node a lane in ``0 .. max_lanes - 1`` (0 is the caller's stream). A layer
    that writes into its residual input (``fluidrt.engine.inplace``) also waits for that
    input's other readers."""
    producer: dict[str, int] = {}
    readers: dict[str, list[int]] = {}
    for i, node in enumerate(graph.nodes):
        for v in node.outputs:
            producer[v.name] = i
        for v in node.inputs:
            if v is not None:
                readers.setdefault(v.name, []).append(i)
    lane_of: list[int] = []
    continued: set[int] = set()  # producers whose lane a consumer already continues
    next_aux = 0
    for node in graph.nodes:
        sources = [producer[v.name] for v in node.inputs if v is not None and v.name in producer]
        lane = None
        for p in sources:
            if p not in continued:
                continued.add(p)
                lane = lane_of[p]
                break
        if lane is None:
            if not sources or max_lanes <= 1:
                lane = 0 if not sources else lane_of[sources[0]]
            else:
                lane = 1 + next_aux % (max_lanes - 1)
                next_aux += 1
        lane_of.append(lane)
    waits: list[list[int]] = []
    shared: dict[str, set[int]] = {}
    for i, node in enumerate(graph.nodes):
        before = []
        for v in node.inputs:
            if v is None or v.name not in producer or lane_of[producer[v.name]] == lane_of[i]:
                continue
            before.append(producer[v.name])
            shared.setdefault(v.name, set()).add(lane_of[i])
        if node.meta.get(DONATE):
            r = node.inputs[residual_input(node)]
            before += [j for j in readers.get(r.name, []) if j != i and lane_of[j] != lane_of[i]]
        waits.append(sorted(set(before)))
    signal = {j for w in waits for j in w}
    return LanePlan(lane_of, waits, signal, shared, len(set(lane_of)) if lane_of else 1)


def choose(engine: Any, inputs: list[torch.Tensor], max_aux_streams: int) -> Any:
    """``engine`` with auxiliary streams for its parallel branches: as many as asked for, or,
    with -1, 3 when that engine runs faster (whole engines timed as graph replays)."""
    from fluidrt.engine.timing import time_engines

    if max_aux_streams == 0:
        return engine
    n = AUTO_AUX_STREAMS if max_aux_streams < 0 else max_aux_streams
    if plan_lanes(engine.graph, 1 + n).lanes <= 1:
        return engine
    variant = dataclasses.replace(engine, aux_streams=n)
    variant.__dict__["_device_consts"] = engine.device_constants()
    if max_aux_streams > 0:
        return variant
    times = time_engines({"one stream": engine, f"{n} auxiliary streams": variant}, inputs)
    for name, t in times.items():
        log.info("engine on %s: %.3f ms", name, t * 1e3)
    return variant if times[f"{n} auxiliary streams"] < times["one stream"] else engine
