"""What an ONNX importer sees: the node being imported and the context it emits through.

``OnnxContext`` extends the Paddle frontend's ``ImportContext``: ``emit`` (add a canonical op,
infer its shapes and fold it when all its inputs are small constants) and ``const`` are shared.
On top of that it tracks *shape values*: 1-D integer tensors whose elements are known when the
model is loaded, some of them symbolic (``["N", 3, 224, 224]`` for ``Shape`` of an input with a
dynamic batch). Gather/Slice/Concat/Unsqueeze/... of shape values are evaluated at import, so a
``Shape -> Gather -> Unsqueeze -> Concat -> Reshape`` chain becomes a static ``reshape`` (with
``-1`` standing for the one symbolic dim) while the runtime ops remain for what cannot be folded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fluidrt.errors import ModelFormatError, UnsupportedOpError
from fluidrt.frontends.paddle.importer import ImportContext
from fluidrt.ir.graph import Dim, Graph, Value

log = logging.getLogger(__name__)

# ONNX TensorProto.DataType -> IR dtype (None: not representable in the IR)
ONNX_DTYPES: dict[int, str] = {
    1: "float32",
    2: "uint8",
    3: "int8",
    5: "int16",
    6: "int32",
    7: "int64",
    9: "bool",
    10: "float16",
    11: "float64",
    16: "bfloat16",
}
ONNX_DTYPE_NAMES: dict[int, str] = {
    0: "undefined",
    1: "float",
    2: "uint8",
    3: "int8",
    4: "uint16",
    5: "int16",
    6: "int32",
    7: "int64",
    8: "string",
    9: "bool",
    10: "float16",
    11: "double",
    12: "uint32",
    13: "uint64",
    14: "complex64",
    15: "complex128",
    16: "bfloat16",
    17: "float8e4m3fn",
    18: "float8e4m3fnuz",
    19: "float8e5m2",
    20: "float8e5m2fnuz",
    21: "uint4",
    22: "int4",
    23: "float4e2m1",
    24: "float8e8m0",
    25: "uint2",
    26: "int2",
}


@dataclass
class OnnxNode:
    """One ONNX node, with its attributes filled in from the op schema's defaults."""

    index: int
    name: str
    type: str  # op_type
    domain: str
    inputs: list[str]  # "" marks an absent optional input
    outputs: list[str]  # "" marks an unused optional output
    attrs: dict[str, Any]
    opset: int  # the opset of the node's domain the model imports
    since: int = 0  # since-version of the importer that handles it
    proto: Any = field(default=None, repr=False)

    @property
    def num_outputs(self) -> int:
        return len(self.outputs)

    def has_output(self, i: int) -> bool:
        return i < len(self.outputs) and bool(self.outputs[i])

    def __repr__(self) -> str:
        return f"#{self.index} {self.type} {self.name!r}"


class _Source:
    """Stands in for the Paddle frontend's program in the shared ``ImportContext``."""

    def __init__(self, path: str) -> None:
        self.path = path


class OnnxContext(ImportContext):
    """The graph being built, ONNX name -> Value bindings, and import-time shape values."""

    def __init__(self, graph: Graph, path: str) -> None:
        super().__init__(_Source(path), graph)  # type: ignore[arg-type]
        self.path = path
        self.node: OnnxNode | None = None  # also ``self.op``, which the shared ``emit`` reads
        # id(value) -> (value, known elements, tensor shape: () scalar or (k,))
        self._shape_values: dict[int, tuple[Value, list[Dim], tuple[int, ...]]] = {}

    # ---- naming and errors --------------------------------------------------------------
    def where(self) -> str:
        n = self.node
        if n is None:
            return self.path
        return f"{self.path}: node #{n.index} {n.name!r} ({n.type})"

    @staticmethod
    def _first_output_name(op: Any) -> str | None:
        if op is None:
            return None
        return next((o for o in op.outputs if o), None)

    def unsupported(self, what: str) -> UnsupportedOpError:
        """An error for a node whose attributes or inputs fluidrt cannot handle."""
        n = self.node
        ops = {n.type: 1} if n is not None else {}
        return UnsupportedOpError(f"{self.where()}: {what}", ops=ops)

    def error(self, what: str) -> ModelFormatError:
        return ModelFormatError(f"{self.where()}: {what}")

    # ---- inputs -------------------------------------------------------------------------
    def lookup(self, name: str) -> Value:
        try:
            return self.env[name]
        except KeyError:
            raise self.error(
                f"reads {name!r}, which is not a graph input, an initializer or the output of "
                "an earlier node"
            ) from None

    def input(self, node: OnnxNode, i: int) -> Value:
        if i >= len(node.inputs) or not node.inputs[i]:
            raise self.error(f"input {i} is required but missing")
        return self.lookup(node.inputs[i])

    def optional(self, node: OnnxNode, i: int) -> Value | None:
        if i >= len(node.inputs) or not node.inputs[i]:
            return None
        return self.lookup(node.inputs[i])

    def inputs(self, node: OnnxNode) -> list[Value | None]:  # type: ignore[override]
        return [self.optional(node, i) for i in range(len(node.inputs))]

    # ---- constants ----------------------------------------------------------------------
    def const(self, data: Any, name: str = "const") -> Value:
        base = self._first_output_name(self.node) if self.node is not None else None
        return self.graph.add_const(f"{base}.{name}" if base else name, np.asarray(data))

    def const_array(self, value: Value | None, what: str = "value") -> np.ndarray:
        """The data of a constant input; raises when it is only known at run time."""
        if value is None:
            raise self.error(f"{what} is missing")
        if value.data is None:
            raise self.unsupported(
                f"{what} (%{value.name}) must be a constant known when the model is loaded, "
                "but it is computed at run time"
            )
        return value.data

    def const_or_none(self, value: Value | None) -> np.ndarray | None:
        return None if value is None else value.data

    def scalar(self, value: Value | None, what: str, default: Any = None) -> Any:
        if value is None:
            return default
        arr = self.const_array(value, what).reshape(-1)
        if arr.size == 0:
            return default
        return arr[0].item()

    def ints(self, value: Value | None, what: str) -> list[int] | None:
        if value is None:
            return None
        return [int(v) for v in self.const_array(value, what).reshape(-1)]

    # ---- shape values -------------------------------------------------------------------
    def known(self, value: Value | None) -> list[Dim] | None:
        """Elements of a small integer tensor known at import (ints or symbolic dims)."""
        if value is None:
            return None
        if value.data is not None:
            data = value.data
            if data.dtype.kind not in "iufb" or data.ndim > 1 or data.size > 64:
                return None
            if data.dtype.kind == "f" and not np.all(np.isfinite(data) & (data == np.round(data))):
                return None
            return [int(v) for v in data.reshape(-1)]
        entry = self._shape_values.get(id(value))
        if entry is None or entry[0] is not value:
            return None
        return list(entry[1])

    def known_shape(self, value: Value) -> tuple[int, ...] | None:
        """Tensor shape of a known shape value: () for a scalar, (k,) for a list."""
        if value.data is not None:
            return tuple(value.data.shape)
        entry = self._shape_values.get(id(value))
        return entry[2] if entry is not None and entry[0] is value else None

    def track(self, value: Value, dims: Sequence[Dim], scalar: bool = False) -> Value:
        """Record that ``value`` holds ``dims``; returns a constant when every dim is known."""
        dims = list(dims)
        if all(isinstance(d, (int, np.integer)) for d in dims):
            dtype = value.dtype if value.dtype not in (None, "bfloat16") else "int64"
            arr = np.asarray([int(d) for d in dims], dtype=dtype)
            return self.const(arr.reshape(()) if scalar else arr, "shape")
        self._shape_values[id(value)] = (value, dims, () if scalar else (len(dims),))
        return value

    def known_args(self, values: Sequence[Value]) -> tuple[list[list[Dim]], bool] | None:
        """The known elements of every value, broadcast to one length, and whether all are
        scalars; None unless every value is a known 0-D or 1-D shape value."""
        known = [self.known(v) for v in values]
        shapes = [self.known_shape(v) for v in values]
        if any(k is None for k in known) or any(s is None or len(s) > 1 for s in shapes):
            return None
        n = max(len(k) for k in known)  # type: ignore[arg-type]
        if any(len(k) not in (1, n) for k in known):  # type: ignore[arg-type]
            return None
        lists = [list(k) * n if len(k) == 1 else list(k) for k in known]  # type: ignore
        return lists, all(s == () for s in shapes)

    @staticmethod
    def set_shape(value: Value, dims: Sequence[Dim] | None) -> Value:
        """Give a value whose shape inference failed (runtime shape inputs) the shape it is
        known to have from shape values."""
        if value.shape is None and dims is not None:
            value.shape = tuple(
                d if isinstance(d, int) and d >= 0 else (d if isinstance(d, str) else "?")
                for d in dims
            )
        return value

    # ---- emission -----------------------------------------------------------------------
    def _try_fold(self, node):  # type: ignore[no-untyped-def]
        if any(o.dtype == "bfloat16" for o in node.outputs):
            return None  # NumPy cannot hold bfloat16 constants; fold at run time instead
        return super()._try_fold(node)


def dims_of(value: Value) -> list[Dim] | None:
    return None if value.shape is None else list(value.shape)
