"""Per-layer timing for engines and native segments, and NVTX ranges on GPU.

A ``Profiler`` is handed to the executors; each layer's wall time (synchronized on CUDA) is
accumulated by layer name. ``table()`` gives rows sorted by time with their share of the total.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch


@dataclass
class LayerStat:
    name: str
    op: str
    segment: str
    calls: int = 0
    total_s: float = 0.0


@dataclass
class Profiler:
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    stats: dict[str, LayerStat] = field(default_factory=dict)
    runs: int = 0

    @contextmanager
    def layer(self, name: str, op: str, segment: str) -> Iterator[None]:
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.nvtx.range_push(f"{segment}/{name} ({op})")
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if cuda:
                torch.cuda.synchronize(self.device)
                torch.cuda.nvtx.range_pop()
            stat = self.stats.get(name)
            if stat is None:
                stat = self.stats[name] = LayerStat(name, op, segment)
            stat.calls += 1
            stat.total_s += time.perf_counter() - t0

    def reset(self) -> None:
        self.stats.clear()
        self.runs = 0

    def table(self) -> list[dict[str, object]]:
        """Rows (name, op, segment, calls, mean_ms, total_ms, percent), slowest first."""
        total = sum(s.total_s for s in self.stats.values()) or 1.0
        rows = [
            {
                "name": s.name,
                "op": s.op,
                "segment": s.segment,
                "calls": s.calls,
                "mean_ms": 1e3 * s.total_s / max(s.calls, 1),
                "total_ms": 1e3 * s.total_s,
                "percent": 100.0 * s.total_s / total,
            }
            for s in self.stats.values()
        ]
        return sorted(rows, key=lambda r: -r["total_ms"])

    def format(self) -> str:
        rows = self.table()
        lines = [f"{'layer':40} {'op':18} {'segment':10} {'mean ms':>9} {'%':>6}"]
        for r in rows:
            lines.append(
                f"{r['name'][:40]:40} {r['op'][:18]:18} {r['segment']:10} "
                f"{r['mean_ms']:9.4f} {r['percent']:6.2f}"
            )
        return "\n".join(lines)
