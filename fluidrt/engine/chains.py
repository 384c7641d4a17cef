"""Whole-engine choice between each layer's fastest kernel and chains of PDL-launched kernels.

Layers are timed alone (``builder._gpu_time``), but inside the engine's CUDA graph a Triton
kernel launched with programmatic dependent launch (``fluidrt.kernels.pdl``) overlaps its launch
and prologue with the kernel before it, which a library kernel (cuDNN, cuBLAS) cannot. A layer
whose Triton candidate lost alone by a few microseconds can win in the engine. The builder makes
engines where every layer whose best Triton candidate is within a slack of the winner runs it,
times them against the per-layer choice as whole CUDA-graph replays, and keeps the fastest.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from fluidrt.engine.runtime import Engine
from fluidrt.engine.timing import time_engines

log = logging.getLogger(__name__)

# extra milliseconds a layer's Triton kernel may take alone over the winner, per variant
SLACKS_MS = (0.001, 0.002, 0.004, 0.008, float("inf"))


def _triton_choice(node: Any, slack_ms: float) -> str | None:
    """The node's fastest Triton candidate when it is within ``slack_ms`` of the chosen one."""
    timings = node.meta.get("timings_ms") or {}
    chosen = node.meta.get("tactic", "torch")
    if chosen.startswith("triton") or chosen not in timings:
        return None
    triton = {k: v for k, v in timings.items() if k.startswith("triton_")}
    if not triton:
        return None
    best = min(triton, key=triton.get)
    return best if triton[best] <= timings[chosen] + slack_ms else None


def chain_variants(engine: Engine) -> dict[str, tuple[Engine, int]]:
    """Engines (sharing ``engine``'s device weights) with Triton kernels chained in, by slack;
    each with the number of layers switched. Variants that switch nothing, or the same layers
    as a smaller slack, are left out."""
    out: dict[str, tuple[Engine, int]] = {}
    seen: set[tuple[tuple[str, str], ...]] = set()
    for slack in SLACKS_MS:
        switch = {}
        for node in engine.graph.nodes:
            choice = _triton_choice(node, slack)
            if choice is not None:
                switch[node.name] = choice
        key = tuple(sorted(switch.items()))
        if not switch or key in seen:
            continue
        seen.add(key)
        graph = engine.graph.clone()
        for node in graph.nodes:
            if node.name in switch:
                node.meta["tactic"] = switch[node.name]
        variant = Engine(
            graph,
            engine.device,
            engine.layout,
            engine.max_batch_size,
            engine.memory,
            allow_tf32=engine.allow_tf32,
        )
        variant.__dict__["_device_consts"] = engine.device_constants()
        out[f"pdl chain (slack {slack} ms)"] = (variant, len(switch))
    return out


def choose(engine: Engine, inputs: list[torch.Tensor], rounds: int = 20) -> Engine:
    """The fastest of ``engine`` and its chain variants, timed as whole engines."""
    variants = chain_variants(engine)
    if not variants:
        return engine
    candidates = {"per-layer fastest": (engine, 0), **variants}
    times = time_engines({name: e for name, (e, _) in candidates.items()}, inputs, rounds)
    for name, (_, switched) in candidates.items():
        log.info("engine %s: %d layers switched, %.3f ms", name, switched, times[name] * 1e3)
    return candidates[min(times, key=times.get)][0]
