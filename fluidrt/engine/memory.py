"""The memory planner: one arena, an offset per intermediate tensor, from liveness.

Tensors are placed largest-first at the lowest offset that does not overlap any already placed
tensor whose live range intersects (greedy by size). The same live ranges drive the runtime's
freeing, so the arena is the peak the engine can reach.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from fluidrt.errors import ConfigError
from fluidrt.ir.graph import Graph
from fluidrt.ir.liveness import live_ranges

log = logging.getLogger(__name__)
ALIGN = 64


@dataclass
class MemoryPlan:
    offsets: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    arena_bytes: int = 0
    total_bytes: int = 0  # every intermediate tensor summed: the cost without reuse

    @property
    def saved_fraction(self) -> float:
        return 1.0 - self.arena_bytes / self.total_bytes if self.total_bytes else 0.0

    def to_json(self) -> dict:
        return {
            "arena_bytes": self.arena_bytes,
            "total_bytes": self.total_bytes,
            "offsets": self.offsets,
            "sizes": self.sizes,
        }

    @classmethod
    def from_json(cls, d: dict) -> MemoryPlan:
        return cls(
            dict(d["offsets"]), dict(d["sizes"]), int(d["arena_bytes"]), int(d["total_bytes"])
        )


def _nbytes(shape: tuple[int, ...], dtype: str) -> int:
    item = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
    n = int(np.prod(shape)) * item if shape else item
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan_memory(graph: Graph, workspace_limit: int | None = None) -> MemoryPlan:
    """Plan the arena for ``graph`` (static shapes required on every node output)."""
    ranges = live_ranges(graph)
    tensors = []
    for node in graph.nodes:
        for out in node.outputs:
            shape = out.static_shape
            if shape is None:
                raise ConfigError(
                    f"memory planning needs static shapes; %{out.name} is {out.shape}"
                )
            tensors.append((out.name, _nbytes(shape, out.dtype), ranges[out.name]))
    plan = MemoryPlan(total_bytes=sum(size for _, size, _ in tensors))
    placed: list[tuple[int, int, tuple[int, int]]] = []  # (offset, size, range)
    for name, size, (start, end) in sorted(tensors, key=lambda t: (-t[1], t[2][0])):
        busy = sorted((off, off + sz) for off, sz, (s, e) in placed if s <= end and start <= e)
        offset = 0
        for lo, hi in busy:
            if offset + size <= lo:
                break
            offset = max(offset, hi)
        placed.append((offset, size, (start, end)))
        plan.offsets[name] = offset
        plan.sizes[name] = size
        plan.arena_bytes = max(plan.arena_bytes, offset + size)
    log.info(
        "memory plan: %d tensors, %.1f MiB without reuse -> %.1f MiB arena (%.0f%% saved)",
        len(tensors),
        plan.total_bytes / 2**20,
        plan.arena_bytes / 2**20,
        100 * plan.saved_fraction,
    )
    if workspace_limit is not None and plan.arena_bytes > workspace_limit:
        raise ConfigError(
            f"engine needs a {plan.arena_bytes / 2**20:.1f} MiB activation arena at the build "
            f"shapes, more than workspace_size={workspace_limit / 2**20:.1f} MiB; raise "
            "workspace_size in enable_engine() or lower max_batch_size"
        )
    return plan
