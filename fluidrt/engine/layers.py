"""The engine's layer registry: per canonical op, what the engine supports and its tactics.

A layer entry says whether a node can run inside an engine (``supports(node) -> (ok, reason)``)
and lists candidate implementations ("tactics") for it; the builder times the candidates on the
real shapes and keeps the fastest. The partitioner asks this registry and nothing else.

The engine is a dense tensor-math engine built for known shapes: integer index manipulation,
shape computation and ops whose output shape depends on data stay native.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from fluidrt.ir.graph import Node
from fluidrt.ops.registry import get_op

# run(args) -> outputs: args are the node's inputs (constants included), in order
Runner = Callable[[list[torch.Tensor | None]], list[torch.Tensor]]


@dataclass(frozen=True)
class Tactic:
    """One way to run a layer. ``prepare(node, consts, device)`` returns the runner."""

    name: str
    prepare: Callable[[Node, dict[int, torch.Tensor], torch.device], Runner]
    devices: tuple[str, ...] = ("cpu", "cuda")
    applies: Callable[[Node], bool] = lambda node: True
    # tunable tactics (kernel configs): names of the variants worth timing for this node; the
    # builder times each as "<name>:<variant>" and ``prepare`` reads node.meta["tactic_variant"]
    variants: Callable[[Node], list[str]] | None = None
    # why this machine cannot run the tactic at all ("" when it can): a missing library
    missing: Callable[[], str] | None = None

    def names(self, node: Node) -> list[str]:
        """The candidate names this tactic offers for ``node``."""
        if self.variants is None:
            return [self.name]
        return [f"{self.name}:{v}" for v in self.variants(node)] or [self.name]


@dataclass
class Layer:
    ops: tuple[str, ...]
    tactics: list[Tactic] = field(default_factory=list)
    check: Callable[[Node], tuple[bool, str]] | None = None
    float_only: bool = True  # tensor math; data-movement layers accept any dtype


_LAYERS: dict[str, Layer] = {}
_FLOAT = {"float32", "float16", "bfloat16"}


def register_layer(
    *ops: str, float_only: bool = True, check: Callable[[Node], tuple[bool, str]] | None = None
) -> Layer:
    layer = Layer(ops=ops, check=check, float_only=float_only)
    for op in ops:
        if op in _LAYERS:
            raise RuntimeError(f"engine layer for {op!r} registered twice")
        _LAYERS[op] = layer
    return layer


def tactic(
    *layers: Layer,
    name: str,
    devices: tuple[str, ...] = ("cpu", "cuda"),
    applies: Callable[[Node], bool] = lambda node: True,
    variants: Callable[[Node], list[str]] | None = None,
    missing: Callable[[], str] | None = None,
):
    """Decorator: register ``prepare`` as a tactic of the given layers."""

    def deco(prepare):
        for layer in layers:
            layer.tactics.append(Tactic(name, prepare, devices, applies, variants, missing))
        return prepare

    return deco


def get_layer(op: str) -> Layer | None:
    _ensure_loaded()
    return _LAYERS.get(op)


def registered_layers() -> dict[str, Layer]:
    _ensure_loaded()
    return dict(sorted(_LAYERS.items()))


def supports(node: Node) -> tuple[bool, str]:
    """Can ``node`` run inside an engine? The reason says why not."""
    layer = get_layer(node.op)
    if layer is None:
        return False, f"no engine layer for op {node.op!r}"
    opdef = get_op(node.op)
    for i in opdef.value_inputs:
        if i < len(node.inputs) and node.inputs[i] is not None and not node.inputs[i].is_const:
            return False, f"input {i} of {node.op!r} is a shape/value known only at run time"
    for v in list(node.inputs) + node.outputs:
        if v is None:
            continue
        if v.shape is None or any(d == "?" or (isinstance(d, str) and "?" in d) for d in v.shape):
            return False, f"shape of %{v.name} is only known at run time"
    if layer.float_only:
        dtypes = {v.dtype for v in node.outputs}
        if not dtypes <= _FLOAT:
            return False, f"output dtype {sorted(dtypes)} is not a float type"
    if layer.check is not None:
        return layer.check(node)
    return True, ""


def candidate_tactics(node: Node, device: torch.device) -> list[Tactic]:
    layer = get_layer(node.op)
    if layer is None:
        return []
    return [t for t in layer.tactics if device.type in t.devices and t.applies(node)]


_loaded = False


def _ensure_loaded() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        import fluidrt.engine.dnnl_int8  # noqa: F401  (CPU int8 convolutions on oneDNN)
        import fluidrt.engine.dnnl_tactics  # noqa: F401  (CPU convolutions on oneDNN)
        import fluidrt.engine.half_tactics  # noqa: F401  (Triton float tactics, CUDA)
        import fluidrt.engine.int8_tactics  # noqa: F401  (INT8 layers and tactics)
        import fluidrt.engine.tactics  # noqa: F401  (registers layers and tactics)
