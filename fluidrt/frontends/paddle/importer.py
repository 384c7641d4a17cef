"""Paddle program -> IR Graph: the importer registry and the context importers write through.

One small function per Paddle op type, registered with ``@paddle_op("conv2d")`` (ProgramDesc
names) or ``@paddle_op("pd_op.conv2d")`` (PIR names). An importer reads its op's inputs through
``ctx.input(op, slot)``, emits canonical ops with ``ctx.emit(...)`` and binds results with
``ctx.bind(op, slot, value)``. Ops nobody registered are collected and reported all at once.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fluidrt.errors import FluidrtError, ModelFormatError, UnsupportedOpError
from fluidrt.frontends.paddle.source import SourceOp, SourceProgram, walk_ops
from fluidrt.ir.graph import Graph, Value
from fluidrt.ops.infer import infer_node
from fluidrt.ops.registry import get_op, run_op

log = logging.getLogger(__name__)

Importer = Callable[["ImportContext", SourceOp], None]
_IMPORTERS: dict[str, Importer] = {}
# block terminators: read by the importer of the op that owns the block
_TERMINATORS = {"cf.yield": None}

# constant-fold emitted ops whose inputs are all constants with at most this many elements
_FOLD_LIMIT = 1 << 16


def paddle_op(*op_types: str) -> Callable[[Importer], Importer]:
    """Register an importer for one or more Paddle op types."""

    def deco(fn: Importer) -> Importer:
        for t in op_types:
            if t in _IMPORTERS:
                raise RuntimeError(f"Paddle op {t!r} has two importers")
            _IMPORTERS[t] = fn
        return fn

    return deco


def registered_paddle_ops() -> dict[str, Importer]:
    _ensure_loaded()
    return dict(sorted(_IMPORTERS.items()))


class ImportContext:
    """What an importer sees: the graph being built and the Paddle-name -> Value bindings."""

    def __init__(self, program: SourceProgram, graph: Graph) -> None:
        self.program = program
        self.graph = graph
        self.env: dict[str, Value] = {}
        self.op: SourceOp | None = None

    # ---- reading inputs -------------------------------------------------------------------
    def inputs(self, op: SourceOp, slot: str | int) -> list[Value]:
        names = op.inputs.get(str(slot), [])
        return [self._lookup(n, op) for n in names]

    def input(self, op: SourceOp, slot: str | int, index: int = 0) -> Value:
        vals = self.inputs(op, slot)
        if len(vals) <= index:
            raise ModelFormatError(
                f"{self.program.path}: op #{op.index} ({op.type}) has no input {slot!r}[{index}]"
            )
        return vals[index]

    def optional_input(self, op: SourceOp, slot: str | int, index: int = 0) -> Value | None:
        vals = self.inputs(op, slot)
        return vals[index] if len(vals) > index else None

    def has_input(self, op: SourceOp, slot: str | int) -> bool:
        return bool(op.inputs.get(str(slot)))

    def _lookup(self, name: str, op: SourceOp) -> Value:
        try:
            return self.env[name]
        except KeyError:
            raise ModelFormatError(
                f"{self.program.path}: op #{op.index} ({op.type}) reads variable {name!r}, "
                "which no earlier op writes and which is not a parameter or feed"
            ) from None

    def const_value(self, value: Value | None) -> np.ndarray | None:
        """The data of a constant value, or None when it is only known at run time."""
        return None if value is None else value.data

    def const_ints(self, value: Value, what: str = "value") -> list[int]:
        data = self.const_value(value)
        if data is None:
            op = self.op
            raise UnsupportedOpError(
                f"{self.program.path}: op #{op.index if op else '?'} ({op.type if op else '?'}): "
                f"{what} must be known when the model is loaded, but %{value.name} is computed "
                "at run time"
            )
        return [int(x) for x in np.asarray(data).reshape(-1)]

    # ---- writing outputs ------------------------------------------------------------------
    def out_names(self, op: SourceOp, slot: str | int) -> list[str]:
        return op.outputs.get(str(slot), [])

    def bind(self, op: SourceOp, slot: str | int, value: Value, index: int = 0) -> None:
        """Bind output ``slot[index]`` of the Paddle op to ``value``."""
        names = op.outputs.get(str(slot), [])
        if len(names) <= index:
            return  # the op does not expose this output in this program
        if value.shape is None:
            # shape inference could not tell (an output sized by a run-time tensor): keep the
            # rank the program declares, its dynamic dims unknown
            var = self.program.vars.get(names[index])
            if var is not None and var.shape is not None:
                value.shape = tuple(d if d >= 0 else "?" for d in var.shape)
        self.env[names[index]] = value

    def emit(
        self,
        op_name: str,
        inputs: Sequence[Value | None],
        attrs: dict[str, Any] | None = None,
        *,
        outputs: int | None = None,
        name: str | None = None,
    ) -> Value | list[Value]:
        """Add a canonical op; returns its output (or the list when it has several)."""
        opdef = get_op(op_name)
        attrs = dict(attrs or {})
        n_out = (
            outputs
            if outputs is not None
            else opdef.outputs_for(opdef.resolve_attrs(attrs, f"{self.where()}: "))
        )
        src = self.op
        base = name or self._first_output_name(src) or op_name
        out_names = [base] if n_out == 1 else [f"{base}.{i}" for i in range(n_out)]
        node = self.graph.add_node(op_name, inputs, attrs, outputs=out_names, name=base)
        if src is not None:
            node.meta["source"] = f"#{src.index} {src.type}"
            node.meta["source_type"] = src.type.removeprefix("pd_op.")
        infer_node(node)
        folded = self._try_fold(node)
        if folded is not None:
            return folded if len(folded) > 1 else folded[0]
        return node.outputs if len(node.outputs) > 1 else node.outputs[0]

    @staticmethod
    def _first_output_name(op: SourceOp | None) -> str | None:
        if op is None:
            return None
        for names in op.outputs.values():
            if names:
                return names[0]
        return None

    def const(self, data: Any, name: str = "const") -> Value:
        return self.graph.add_const(name, np.asarray(data))

    def _try_fold(self, node) -> list[Value] | None:
        ins = [v for v in node.inputs if v is not None]
        if not ins or not all(v.is_const for v in ins) or "control" in get_op(node.op).tags:
            return None
        if sum(v.data.size for v in ins) > _FOLD_LIMIT:
            return None
        import torch

        opdef = get_op(node.op)
        attrs = opdef.resolve_attrs(node.attrs)
        args = [None if v is None else torch.from_numpy(v.data.copy()) for v in node.inputs]
        try:
            results = run_op(node.op, args, attrs)
        except Exception:  # leave it to run time; the executor will report it with context
            return None
        consts = [
            self.graph.add_const(out.name + ".folded", r.detach().numpy())
            for out, r in zip(node.outputs, results, strict=True)
        ]
        for out, c in zip(node.outputs, consts, strict=True):
            self.graph.replace_all_uses(out, c)
        self.graph.remove_node(node)
        return consts

    def where(self) -> str:
        op = self.op
        return f"{self.program.path}: op #{op.index} ({op.type})" if op else self.program.path


def import_program(program: SourceProgram, params: dict[str, np.ndarray]) -> Graph:
    """Build the IR graph of ``program`` with ``params`` as constants."""
    _ensure_loaded()
    missing = Counter(
        op.type for op in walk_ops(program.ops) if op.type not in _IMPORTERS | _TERMINATORS
    )
    if missing:
        listing = ", ".join(f"{t} (x{n})" for t, n in sorted(missing.items()))
        raise UnsupportedOpError(
            f"{program.path}: {len(missing)} Paddle op type(s) are not supported: {listing}. "
            "See docs/operators.md for the supported list.",
            ops=dict(missing),
        )
    graph = Graph(name=program.path)
    ctx = ImportContext(program, graph)
    for name, arr in params.items():
        ctx.env[name] = graph.add_const(name, arr)
    for name in program.feeds:
        var = program.vars.get(name)
        if var is None or var.dtype is None:
            raise ModelFormatError(f"{program.path}: feed variable {name!r} is not declared")
        shape = tuple(
            "N" if (d == -1 and i == 0) else ("?" if d == -1 else d)
            for i, d in enumerate(var.shape or [])
        )
        ctx.env[name] = graph.add_input(name, shape, var.dtype)
    import_ops(ctx, program.ops)
    outputs = []
    for name in program.fetches:
        if name not in ctx.env:
            raise ModelFormatError(f"{program.path}: fetch variable {name!r} is never written")
        outputs.append(ctx.env[name])
    graph.outputs = _distinct_outputs(graph, outputs, program.fetches)
    graph.remove_unused_values()
    graph.meta["output_names"] = list(program.fetches)
    return graph


def import_ops(ctx: ImportContext, ops: Sequence[SourceOp]) -> None:
    """Run the importer of every op in order (a block's terminator excluded)."""
    for op in ops:
        if op.type in _TERMINATORS:
            continue
        ctx.op = op
        try:
            _IMPORTERS[op.type](ctx, op)
        except FluidrtError:
            raise
        except Exception as exc:
            raise ModelFormatError(
                f"{ctx.where()}: import failed: {type(exc).__name__}: {exc}"
            ) from exc
    ctx.op = None


def _distinct_outputs(graph: Graph, outputs: list[Value], names: list[str]) -> list[Value]:
    """Give each graph output its own value (an identity node where one is reused or an input)."""
    seen: set[int] = set()
    result = []
    for v, name in zip(outputs, names, strict=True):
        if id(v) in seen or v.producer is None:
            node = graph.add_node("identity", [v], name=f"{name}.out")
            infer_node(node)
            v = node.outputs[0]
        seen.add(id(v))
        result.append(v)
    return result


_loaded = False


def _ensure_loaded() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        import fluidrt.frontends.paddle.ops  # noqa: F401  (registers every importer)
