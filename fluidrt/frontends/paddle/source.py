"""The frontend's view of a Paddle program, the same for ProgramDesc and PIR JSON files.

Ops keep Paddle's own type names (``conv2d`` for ProgramDesc, ``pd_op.conv2d`` for PIR) and
inputs/outputs keyed by slot: the ProgramDesc parameter name (``"X"``), or the position
(``"0"``, ``"1"``, ...) for PIR, each slot a list of variable names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SourceVar:
    name: str
    dtype: str | None  # IR dtype name; None for non-tensor vars (feed/fetch lists)
    shape: list[int] | None  # -1 for a dim unknown until run time
    persistable: bool = False


@dataclass
class SourceOp:
    type: str
    inputs: dict[str, list[str]]
    outputs: dict[str, list[str]]
    attrs: dict[str, Any]
    index: int

    @property
    def format_legacy(self) -> bool:
        """True for ProgramDesc ops (named slots), False for PIR ops (positional slots)."""
        return not self.type.startswith(("pd_op.", "builtin.", "cf.", "custom_op."))

    def __repr__(self) -> str:
        return f"#{self.index} {self.type}"


@dataclass
class SourceBlock:
    """A nested block (a loop body): its argument variables and its ops, the terminator
    (``cf.yield``, whose inputs are the block's results) last."""

    args: list[str]
    ops: list[SourceOp]


def walk_ops(ops: list[SourceOp]):  # noqa: ANN201  (an iterator of SourceOp)
    """Every op of ``ops`` and, depth first, of the blocks nested in them."""
    for op in ops:
        yield op
        for block in op.attrs.get("__blocks__", ()):
            yield from walk_ops(block.ops)


@dataclass
class SourceProgram:
    path: str
    format: str  # "pdmodel" or "pir"
    vars: dict[str, SourceVar]
    ops: list[SourceOp]
    feeds: list[str]  # input variable names in feed order
    fetches: list[str]  # output variable names in fetch order
    version: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def params(self) -> list[str]:
        """Persistable variables in the order their tensors are stored in ``.pdiparams``."""
        return sorted(
            name
            for name, v in self.vars.items()
            if v.persistable and v.dtype is not None and name not in ("feed", "fetch")
        )
