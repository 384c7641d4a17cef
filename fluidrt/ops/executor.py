"""The native executor: runs every node of a graph with its torch implementation, in order.

It is the fallback for what no engine supports and the reference every engine is tested
against. Values are freed after their last use (liveness from ``fluidrt.ir.liveness``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from fluidrt.errors import ExecutionError
from fluidrt.ir.graph import Graph
from fluidrt.ir.liveness import last_uses
from fluidrt.ops.registry import get_op


class NativeExecutor:
    """Prepared, reusable runner of one graph on one torch device."""

    def __init__(self, graph: Graph, device: str | torch.device = "cpu") -> None:
        self.graph = graph
        self.profiler = None  # a fluidrt.profiler.Profiler to time every node
        self.observer = None  # called as observer(name, tensor) for every node output
        self.device = torch.device(device)
        self._consts: dict[str, torch.Tensor] = {
            v.name: _const_tensor(v.data, self.device)
            for v in graph.consts()
            if v.users or v in graph.outputs  # a loop body may return a constant
        }
        self._steps: list[tuple[Any, dict[str, Any], list[str | None], list[str], Any]] = []
        for node in graph.nodes:
            opdef = get_op(node.op)
            attrs = opdef.resolve_attrs(node.attrs, f"node {node.name!r}: ")
            ins = [v.name if v is not None else None for v in node.inputs]
            outs = [v.name for v in node.outputs]
            self._steps.append((opdef.impl, attrs, ins, outs, node))
        self._frees = {i: [v.name for v in vs] for i, vs in last_uses(graph).items()}
        self._input_names = [v.name for v in graph.inputs]
        self._output_names = [v.name for v in graph.outputs]

    def run(
        self, inputs: Mapping[str, torch.Tensor] | Sequence[torch.Tensor]
    ) -> list[torch.Tensor]:
        env: dict[str, torch.Tensor] = dict(self._consts)
        if isinstance(inputs, Mapping):
            env.update(inputs)
        else:
            env.update(zip(self._input_names, inputs, strict=True))
        with torch.inference_mode():
            for idx, (impl, attrs, ins, outs, node) in enumerate(self._steps):
                args = [env[n] if n is not None else None for n in ins]
                try:
                    if self.profiler is not None:
                        with self.profiler.layer(node.name, node.op, self.graph.name):
                            result = impl(*args, **attrs)
                    else:
                        result = impl(*args, **attrs)
                except Exception as exc:
                    shapes = [tuple(a.shape) if hasattr(a, "shape") else a for a in args]
                    raise ExecutionError(
                        f"while executing node #{idx} {node.name!r} (op {node.op}) with input "
                        f"shapes {shapes}: {type(exc).__name__}: {exc}"
                    ) from exc
                if isinstance(result, (tuple, list)):
                    env.update(zip(outs, result, strict=True))
                else:
                    env[outs[0]] = result
                if self.observer is not None:
                    for name in outs:
                        if isinstance(env[name], torch.Tensor):  # not tensor arrays
                            self.observer(name, env[name])
                for name in self._frees.get(idx, ()):
                    env.pop(name, None)
        return [env[n] for n in self._output_names]


def _const_tensor(data: Any, device: torch.device) -> torch.Tensor:
    t = torch.from_numpy(data.copy()) if data.dtype.kind != "V" else None
    if t is None:
        raise ExecutionError(f"constant of unsupported dtype {data.dtype}")
    return t.to(device)
