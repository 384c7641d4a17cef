"""The calibration run: FP32 native execution that records every tensor INT8 layers touch, and
the per-layer sensitivity check that keeps accuracy-critical layers in float.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence

import torch

from fluidrt.ir.graph import Graph
from fluidrt.ir.liveness import last_uses
from fluidrt.ops.executor import NativeExecutor
from fluidrt.ops.registry import get_op
from fluidrt.quant.calibrators import Calibrator
from fluidrt.quant.lower import candidate, lower_int8, tensors_to_calibrate

log = logging.getLogger(__name__)


class RecordingExecutor:
    """Runs ``graph`` natively in FP32 and feeds the named tensors to a calibrator."""

    def __init__(self, graph: Graph, calibrator: Calibrator, device: torch.device) -> None:
        self.graph = graph
        self.calibrator = calibrator
        self.watch = set(tensors_to_calibrate(graph))
        self.inputs_seen = 0
        self.seconds = 0.0
        self._exec = NativeExecutor(graph, device)
        self._steps = [(get_op(n.op), get_op(n.op).resolve_attrs(n.attrs), n) for n in graph.nodes]
        self._frees = {i: [v.name for v in vs] for i, vs in last_uses(graph).items()}

    def run(self, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        start = time.perf_counter()
        env: dict[str, torch.Tensor] = dict(self._exec._consts)
        env.update(zip((v.name for v in self.graph.inputs), inputs, strict=True))
        for v in self.graph.inputs:
            if v.name in self.watch:
                self.calibrator.observe(v.name, env[v.name])
        with torch.inference_mode():
            for idx, (opdef, attrs, node) in enumerate(self._steps):
                args = [env[v.name] if v is not None else None for v in node.inputs]
                out = opdef.impl(*args, **attrs)
                outs = list(out) if isinstance(out, (tuple, list)) else [out]
                for v, t in zip(node.outputs, outs, strict=True):
                    env[v.name] = t
                    if v.name in self.watch:
                        self.calibrator.observe(v.name, t)
                for name in self._frees.get(idx, ()):
                    env.pop(name, None)
        first = inputs[0] if inputs else None
        self.inputs_seen += int(first.shape[0]) if first is not None and first.dim() else 1
        self.calibrator.batches += 1
        self.seconds += time.perf_counter() - start
        return [env[v.name] for v in self.graph.outputs]


def calibrate(
    graph: Graph,
    batches: Iterable[Sequence[torch.Tensor]],
    calibrator: Calibrator,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Run every batch through ``graph`` in FP32 and return tensor name -> int8 scale."""
    rec = RecordingExecutor(graph, calibrator, torch.device(device))
    for batch in batches:
        rec.run(batch)
    log.info(
        "calibration (%s): %d input(s) in %.1f s",
        calibrator.algorithm,
        rec.inputs_seen,
        rec.seconds,
    )
    return calibrator.scales()


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float(torch.linalg.vector_norm(a - b) / max(float(torch.linalg.vector_norm(b)), 1e-30))


def sensitivity(
    graph: Graph,
    scales: dict[str, float],
    inputs: Sequence[torch.Tensor],
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Per candidate layer: the relative L2 error of the graph outputs when only that layer runs
    in INT8 (on ``inputs``, a few calibration inputs)."""
    ref = NativeExecutor(graph, device).run(list(inputs))
    errors: dict[str, float] = {}
    for node in graph.nodes:
        if not candidate(node) or node.inputs[0].name not in scales:
            continue
        g = lower_int8(graph.clone(), scales, only=[node.name])
        outs = NativeExecutor(g, device).run(list(inputs))
        errors[node.name] = max(
            rel_l2(o.float(), r.float()) for o, r in zip(outs, ref, strict=True)
        )
    return errors
