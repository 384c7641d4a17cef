"""A persistent timing cache: tactic timings per (device, layer signature), reused by builds.

The signature covers the op, its attributes, input shapes/dtypes (and which are constants),
the engine layout and the device, so a cached choice is only reused where it was measured.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os

from fluidrt.engine.inplace import DONATE
from fluidrt.ir.graph import Node

log = logging.getLogger(__name__)
# how tactics are timed and what the kernels do (2: GPU time of CUDA-graph replays on CUDA;
# 3: Triton kernels launched with PDL); entries timed another way are not comparable, so the
# method is part of every signature
TIMING_METHOD = 3


def layer_signature(node: Node, layout: str, device_name: str) -> str:
    doc = {
        "op": node.op,
        "attrs": node.attrs,
        "inputs": [
            None if v is None else [list(v.shape or []), v.dtype, v.is_const] for v in node.inputs
        ],
        "layout": layout,
        "device": device_name,
        "method": TIMING_METHOD,
    }
    if node.meta.get(DONATE):  # in-place layers time differently
        doc["in_place"] = True
    text = json.dumps(doc, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class TimingCache:
    def __init__(self, path: str | None) -> None:
        self.path = path
        self.entries: dict[str, dict[str, float]] = {}
        self.hits = self.misses = 0
        self._dirty = False
        if path and os.path.exists(path):
            try:
                with open(path) as f:
                    doc = json.load(f)
                self.entries = {k: dict(v) for k, v in doc.get("entries", {}).items()}
            except (OSError, ValueError, AttributeError) as exc:
                log.warning("timing cache %s unreadable (%s); starting empty", path, exc)

    def get(self, key: str, tactics: list[str]) -> dict[str, float] | None:
        found = self.entries.get(key)
        if found is not None and set(tactics) <= set(found):
            self.hits += 1
            return found
        self.misses += 1
        return None

    def put(self, key: str, timings: dict[str, float]) -> None:
        self.entries[key] = dict(timings)
        self._dirty = True

    def save(self) -> None:
        if not self.path or not self._dirty:
            return
        from fluidrt.engine.plan import write_atomic

        write_atomic(self.path, json.dumps({"version": 1, "entries": self.entries}).encode())
        self._dirty = False
