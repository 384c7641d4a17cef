"""The canonical op registry: per op its attribute schema, arity and native torch implementation.

An implementation is a plain function ``impl(*inputs, **attrs)`` over torch tensors (``None`` for an
absent optional input) that returns a tensor or a tuple of tensors. Shape and dtype inference runs
the same function on meta tensors (``fluidrt.ops.infer``), so an op is specified once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from fluidrt.errors import GraphError


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
VARIADIC = -1


@dataclass(frozen=True)
class OpDef:
    name: str
    impl: Callable[..., Any]
    attrs: Mapping[str, Any]
    min_inputs: int
    max_inputs: int  # VARIADIC for any number
    num_outputs: int | Callable[[dict[str, Any]], int]
    value_inputs: tuple[int, ...]  # inputs whose values (not only shapes) shape the output
    doc: str = ""
    tags: frozenset[str] = field(default_factory=frozenset)
    # infer(node, resolved attrs) fills the outputs' shape and dtype itself, for ops whose impl
    # cannot run on meta tensors (control flow, tensor arrays)
    infer: Callable[[Any, dict[str, Any]], None] | None = None

    def outputs_for(self, attrs: Mapping[str, Any]) -> int:
        n = self.num_outputs
        return n(dict(attrs)) if callable(n) else n

    def resolve_attrs(self, attrs: Mapping[str, Any], where: str = "") -> dict[str, Any]:
        """Fill defaults, reject unknown and missing attributes."""
        unknown = set(attrs) - set(self.attrs)
        if unknown:
            raise GraphError(f"{where}op {self.name!r}: unknown attribute(s) {sorted(unknown)}")
        out = {}
        for key, default in self.attrs.items():
            if key in attrs:
                out[key] = attrs[key]
            elif default is REQUIRED:
                raise GraphError(f"{where}op {self.name!r}: missing required attribute {key!r}")
            else:
                out[key] = default
        return out


_OPS: dict[str, OpDef] = {}


def register_op(
    name: str,
    *,
    attrs: Mapping[str, Any] | None = None,
    inputs: int | tuple[int, int] = 1,
    outputs: int | Callable[[dict[str, Any]], int] = 1,
    value_inputs: Sequence[int] = (),
    tags: Sequence[str] = (),
    infer: Callable[[Any, dict[str, Any]], None] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``impl`` as the native implementation of canonical op ``name``.

    ``inputs`` is a count or a ``(min, max)`` range (``max=VARIADIC`` for any number).
    """
    lo, hi = (inputs, inputs) if isinstance(inputs, int) else inputs

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _OPS:
            raise GraphError(f"canonical op {name!r} is registered twice")
        _OPS[name] = OpDef(
            name=name,
            impl=fn,
            attrs=dict(attrs or {}),
            min_inputs=lo,
            max_inputs=hi,
            num_outputs=outputs,
            value_inputs=tuple(value_inputs),
            doc=(fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else "",
            tags=frozenset(tags),
            infer=infer,
        )
        return fn

    return deco


def get_op(name: str) -> OpDef:
    _ensure_loaded()
    try:
        return _OPS[name]
    except KeyError:
        raise GraphError(f"no canonical op named {name!r}") from None


def has_op(name: str) -> bool:
    _ensure_loaded()
    return name in _OPS


def registered_ops() -> dict[str, OpDef]:
    _ensure_loaded()
    return dict(sorted(_OPS.items()))


def run_op(name: str, inputs: Sequence[torch.Tensor | None], attrs: Mapping[str, Any]) -> list:
    """Run a canonical op natively; attrs must already be resolved. Returns a list of tensors."""
    out = get_op(name).impl(*inputs, **attrs)
    if isinstance(out, (tuple, list)):
        return list(out)
    return [out]


_loaded = False


def _ensure_loaded() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        import fluidrt.ops.library  # noqa: F401  (registers every op family)
