"""Which layers may write their result into an input's storage (in-place residual add).

A convolution with a fused residual add can accumulate into the residual tensor itself (oneDNN's
``sum`` post-op) instead of reading it as a second source: one tensor less to allocate and touch.
That is only safe when nobody can see the residual afterwards. The residual is donated when:

- a convolution inside this engine produced it (never an engine input, a constant or a view that
  shares storage with another value),
- every other reader of it is a convolution too (so no view of it lives on) and runs earlier,
- it is not an engine output, not also another input of the same layer, and has the output's
  shape (no broadcast).
"""

from __future__ import annotations

from fluidrt.ir.graph import Graph, Node
from fluidrt.ops import quantized

# where each convolution op takes its residual (conv: x, w, bias, residual; qconv2d: x, w,
# w_scale, bias, residual); every tactic of these ops returns a new tensor
RESIDUAL_INPUT = {"conv2d": 3, "fused_conv2d": 3, "qconv2d": quantized.RESIDUAL}
DONATE = "donate_residual"


def residual_input(node: Node) -> int | None:
    """The index of a convolution's residual input, None for other ops."""
    return RESIDUAL_INPUT.get(node.op)


def donatable_residuals(graph: Graph) -> set[str]:
    """Names of the conv layers whose residual input may be overwritten with their result."""
    order = {id(n): i for i, n in enumerate(graph.nodes)}
    outputs = {id(v) for v in graph.outputs}
    names = set()
    for node in graph.nodes:
        at = residual_input(node)
        if at is None or len(node.inputs) <= at:
            continue
        r = node.inputs[at]
        if r is None or r.is_const or r.producer is None or id(r) in outputs:
            continue
        if r.producer.op not in RESIDUAL_INPUT or r.shape != node.outputs[0].shape:
            continue
        if sum(1 for v in node.inputs if v is r) != 1:
            continue
        here = order[id(node)]
        if all(u is node or (u.op in RESIDUAL_INPUT and order[id(u)] < here) for u in r.users):
            names.add(node.name)
    return names


def mark_donations(graph: Graph) -> None:
    """Set ``node.meta["donate_residual"]`` on every layer that may accumulate in place."""
    names = donatable_residuals(graph)
    for node in graph.nodes:
        if node.name in names:
            node.meta[DONATE] = True
        else:
            node.meta.pop(DONATE, None)
