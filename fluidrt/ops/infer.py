"""Shape and dtype inference by running each op's native implementation on meta tensors.

Symbolic dims ("N", "N*4") are replaced by large primes for the run and mapped back afterwards,
so a symbolic batch flows through reshapes and flattens. An unknown dim ("?") gets a prime of its
own and comes back as "?". Inputs an op reads by value (shape tensors) are passed as real tensors
when they are constants; when they are not, the output shape is unknown (None).
"""

from __future__ import annotations

import logging
import re

import torch

from fluidrt.ir.graph import Dim, Graph, Node, Shape, Value
from fluidrt.ops.dtypes import from_torch, to_torch
from fluidrt.ops.registry import get_op

log = logging.getLogger(__name__)

_PRIMES = (10007, 10009, 10037, 10039, 10061, 10067, 10069, 10079, 10091, 10093)
# a second run with other primes tells dims derived from a symbol (N - 2, N // 2) from static ones
_PRIMES_CHECK = (10103, 10111, 10133, 10139, 10141, 10151, 10159, 10163, 10169, 10177)
_EXPR = re.compile(r"^([A-Za-z_?][\w?]*)(?:\*(\d+))?$")
# an op whose output size depends on the data (NMS, proposals) gives this size on meta tensors
UNKNOWN_DIM = 1000003


class _SymbolTable:
    def __init__(self, primes: tuple[int, ...] = _PRIMES) -> None:
        self.primes = primes
        self.by_symbol: dict[str, int] = {}

    def concrete(self, dim: Dim) -> int:
        if isinstance(dim, int):
            return dim
        m = _EXPR.match(dim)
        if not m:
            raise ValueError(f"unsupported symbolic dim {dim!r}")
        sym, mult = m.group(1), int(m.group(2) or 1)
        if sym not in self.by_symbol:
            if len(self.by_symbol) >= len(self.primes):
                raise ValueError("too many distinct symbolic dims in one node")
            self.by_symbol[sym] = self.primes[len(self.by_symbol)]
        return self.by_symbol[sym] * mult

    def symbolic(self, dim: int) -> Dim:
        if dim == UNKNOWN_DIM:
            return "?"
        for sym, p in self.by_symbol.items():
            if dim == p:
                return sym
            if dim % p == 0:
                return "?" if sym == "?" else f"{sym}*{dim // p}"
        return dim


def _meta_input(v: Value, table: _SymbolTable, by_value: bool) -> torch.Tensor:
    if by_value and v.data is not None:
        return torch.from_numpy(v.data.copy())
    if v.shape is None:
        raise ValueError(f"input %{v.name} has unknown rank")
    shape = [table.concrete(d) for d in v.shape]
    return torch.empty(shape, dtype=to_torch(v.dtype), device="meta")


def infer_node(node: Node) -> None:
    """Fill ``shape`` and ``dtype`` of every output of ``node``."""
    opdef = get_op(node.op)
    attrs = opdef.resolve_attrs(node.attrs, f"node {node.name!r}: ")
    if opdef.infer is not None:
        opdef.infer(node, attrs)
        return
    table = _SymbolTable()
    try:
        outs = _run_meta(node, opdef, attrs, table)
        check = None
        if table.by_symbol:  # run again with other primes; dims that disagree are unknown
            check = _SymbolTable(_PRIMES_CHECK)
            check_outs = _run_meta(node, opdef, attrs, check)
            if [t.dim() for t in outs] != [t.dim() for t in check_outs]:
                raise ValueError("output rank depends on a symbolic dim")
    except Exception as exc:  # value-dependent shapes or unknown ranks: shape stays unknown
        log.debug("shape of %s (%s) unknown: %s", node.name, node.op, exc)
        _fallback(node, attrs)
        return
    if len(outs) != len(node.outputs):
        raise ValueError(
            f"node {node.name!r} ({node.op}) has {len(node.outputs)} outputs, impl gave {len(outs)}"
        )
    for k, (value, t) in enumerate(zip(node.outputs, outs, strict=True)):
        dims = [table.symbolic(int(d)) for d in t.shape]
        if check is not None:
            again = [check.symbolic(int(d)) for d in check_outs[k].shape]
            dims = [a if a == b else "?" for a, b in zip(dims, again, strict=True)]
        value.shape = tuple(dims)
        value.dtype = from_torch(t.dtype)


def _run_meta(node: Node, opdef, attrs: dict, table: _SymbolTable) -> list[torch.Tensor]:
    args = [
        None if v is None else _meta_input(v, table, i in opdef.value_inputs)
        for i, v in enumerate(node.inputs)
    ]
    with torch.no_grad():
        out = opdef.impl(*args, **attrs)
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _fallback(node: Node, attrs: dict) -> None:
    dtype = attrs.get("dtype") if isinstance(attrs.get("dtype"), str) else None
    first = next((v for v in node.inputs if v is not None and v.dtype), None)
    for value in node.outputs:
        value.shape = None
        value.dtype = value.dtype or dtype or (first.dtype if first else "float32")


def infer_graph(graph: Graph) -> None:
    """Infer every node's outputs in order."""
    for node in graph.nodes:
        infer_node(node)


def concrete_shape(shape: Shape, bindings: dict[str, int]) -> tuple[int, ...]:
    """Evaluate a symbolic shape with known symbol values."""
    dims = []
    for d in shape:
        if isinstance(d, int):
            dims.append(d)
            continue
        m = _EXPR.match(d)
        if not m or m.group(1) not in bindings:
            raise ValueError(f"cannot evaluate dim {d!r} with {bindings}")
        dims.append(bindings[m.group(1)] * int(m.group(2) or 1))
    return tuple(dims)
