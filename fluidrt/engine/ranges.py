"""FP16 range guard: layers whose fp32 activations fall outside what fp16 holds stay fp32.

fp16 tops out at 65504 and keeps full precision only down to 6.1e-5. A network whose activations
grow past the first (ResNet101 with untrained batch norms reaches 7e4) turns to inf/NaN in fp16;
one whose activations shrink below the second (MobileNetV2 with untrained batch norms ends at
1e-9) underflows to zero. Before lowering to fp16 the builder runs the fp32 subgraph once on
its random build inputs and keeps in fp32 every layer whose output is out of range, as a user
would otherwise do by hand with per-layer precision constraints.
"""

from __future__ import annotations

import logging

import torch

from fluidrt.ir.graph import Graph
from fluidrt.ops.executor import NativeExecutor

log = logging.getLogger(__name__)

FP16_SAFE_MAX = 2.0**14  # 4x below fp16's largest value: room for the next layer's sums
FP16_SAFE_RMS = 2.0**-15  # half the smallest normal: most values would be subnormal
RANGE_BATCH = 4  # ranges barely depend on batch size; keep the reference run cheap


def fp16_unsafe_layers(graph: Graph, inputs: list[torch.Tensor], device: torch.device) -> dict:
    """Layer name -> reason, for layers whose fp32 output on ``inputs`` fp16 cannot hold."""
    stats: dict[str, tuple[float, float]] = {}

    def observe(name: str, t: torch.Tensor) -> None:
        if t.is_floating_point() and t.numel():
            t = t.detach().float()
            stats[name] = (float(t.abs().max()), float(t.square().mean().sqrt()))

    ex = NativeExecutor(graph, device)
    ex.observer = observe
    ex.run(inputs)
    unsafe: dict[str, str] = {}
    for node in graph.nodes:
        for o in node.outputs:
            amax, rms = stats.get(o.name, (0.0, 0.0))
            if amax > FP16_SAFE_MAX:
                unsafe[node.name] = f"max |x| {amax:.3g} > {FP16_SAFE_MAX:g}"
            elif 0.0 < rms < FP16_SAFE_RMS:
                unsafe[node.name] = f"rms {rms:.3g} < {FP16_SAFE_RMS:g}"
    if unsafe:
        first = next(iter(unsafe.items()))
        log.warning(
            "fp16 range guard: %d of %d layers stay fp32 (first: %s, %s)",
            len(unsafe),
            len(graph.nodes),
            *first,
        )
    return unsafe
