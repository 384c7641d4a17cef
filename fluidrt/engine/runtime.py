"""The deploy phase of one engine: prepared layers run in order with planned lifetimes.

An ``Engine`` holds the lowered subgraph (nodes with their chosen tactic in ``node.meta``), the
layout, the memory plan and the fingerprint; ``create_execution_context()`` prepares every
layer's tactic on the device once (weight layouts, prepacking) and returns a context that runs it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from fluidrt.engine.layers import Runner, candidate_tactics
from fluidrt.engine.memory import MemoryPlan
from fluidrt.errors import ExecutionError, InputError, PlanError
from fluidrt.ir.graph import Graph
from fluidrt.ir.liveness import last_uses

log = logging.getLogger(__name__)


@dataclass
class Engine:
    graph: Graph
    device: torch.device
    layout: str = "nchw"  # "nhwc": 4-D float inputs enter channels-last
    max_batch_size: int = 1
    memory: MemoryPlan = field(default_factory=MemoryPlan)
    fingerprint: dict[str, Any] = field(default_factory=dict)
    build_seconds: float = 0.0

    @property
    def tactics(self) -> dict[str, str]:
        return {n.name: n.meta.get("tactic", "torch") for n in self.graph.nodes}

    def create_execution_context(self) -> ExecutionContext:
        return ExecutionContext(self)

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
            rows.append({
                "name": n.name, "op": n.op, "tactic": n.meta.get("tactic", "torch"),
                "fused": fused, "shape": list(n.outputs[0].shape or []),
                "source": n.meta.get("source", ""),
            })
        return rows


def prepare_layer(node: Any, tactic_name: str, consts: dict[int, torch.Tensor],
                  device: torch.device) -> Runner:
    for t in candidate_tactics(node, device):
        if t.name == tactic_name:
            return t.prepare(node, consts, device)
    raise PlanError(
        f"layer {node.name!r} ({node.op}) wants tactic {tactic_name!r}, which this build of "
        f"fluidrt does not offer on {device.type}; rebuild the engine"
    )


class ExecutionContext:
    """Runs one engine; holds the device copies of its weights and the prepared layers."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        g = engine.graph
        device = engine.device
        self._const = {
            v.name: torch.from_numpy(v.data.copy()).to(device) for v in g.consts() if v.users
        }
        self._steps = []
        for node in g.nodes:
            consts = {
                i: self._const[v.name] for i, v in enumerate(node.inputs) if v is not None and v.is_const
            }
            run = prepare_layer(node, node.meta.get("tactic", "torch"), consts, device)
            ins = [v.name if v is not None else None for v in node.inputs]
            self._steps.append((run, ins, [v.name for v in node.outputs], node))
        self._frees = {i: [v.name for v in vs] for i, vs in last_uses(g).items()}
        self._inputs = [v.name for v in g.inputs]
        self._input_values = list(g.inputs)
        self._outputs = [v.name for v in g.outputs]
        self._channels_last = {
            v.name for v in g.inputs if engine.layout == "nhwc" and v.rank == 4
            and v.dtype in ("float32", "float16", "bfloat16")
        }

    def clone(self) -> ExecutionContext:
        return self  # stateless between runs: safe to share across threads

    def _check_batch(self, inputs: Sequence[torch.Tensor]) -> None:
        limit = self.engine.max_batch_size
        for v, t in zip(self._input_values, inputs, strict=True):
            if v.shape and v.shape[0] == "N" and t.dim() > 0 and t.shape[0] > limit:
                raise InputError(
                    f"input {v.name!r} has batch {t.shape[0]}, more than the engine's "
                    f"max_batch_size={limit}; raise max_batch_size in enable_engine()"
                )

    def run(self, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        self._check_batch(inputs)
        env: dict[str, torch.Tensor] = dict(self._const)
        for name, t in zip(self._inputs, inputs, strict=True):
            env[name] = t.contiguous(memory_format=torch.channels_last) if (
                name in self._channels_last) else t
        with torch.inference_mode():
            for idx, (run, ins, outs, node) in enumerate(self._steps):
                try:
                    results = run([env[n] if n is not None else None for n in ins])
                except Exception as exc:
                    shapes = [tuple(env[n].shape) if n is not None else None for n in ins]
                    raise ExecutionError(
                        f"engine layer #{idx} {node.name!r} ({node.op}, tactic "
                        f"{node.meta.get('tactic', 'torch')}) with input shapes {shapes}: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                env.update(zip(outs, results, strict=True))
                for name in self._frees.get(idx, ()):
                    env.pop(name, None)
        return [env[n] for n in self._outputs]
