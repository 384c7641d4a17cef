"""Control flow and tensor arrays: ``while_loop`` with its body as a nested graph, and arrays.

A tensor array is a run-time value of its own kind (``TensorArray``, an immutable tuple of
tensors) with IR dtype ``"tensor_array"``; an array Value's ``shape`` is its elements' shape. The
array ops are functional (``array_write`` returns a new array), so an in-place Paddle write is a
new SSA value and a loop that writes an array carries it. These ops never run in an engine and
are never constant-folded (tag ``control``); their shapes come from their own ``infer`` functions,
since their implementations cannot run on meta tensors.

``while_loop`` takes ``[cond, carried..., invariant...]``; its ``body`` graph takes
``[carried..., invariant...]`` and returns ``[next cond, next carried...]``; the node returns the
final carried values. It runs the body with the native executor while ``cond`` is true.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch

from fluidrt.ir.dtypes import TENSOR_ARRAY
from fluidrt.ir.graph import Dim, Graph, Node, Shape
from fluidrt.ops.registry import REQUIRED, VARIADIC, register_op


class TensorArray:
    """An immutable sequence of tensors: the run-time value of a ``tensor_array`` Value."""

    __slots__ = ("items",)

    def __init__(self, items: tuple[torch.Tensor, ...] = ()) -> None:
        self.items = tuple(items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def device(self) -> torch.device:
        return self.items[0].device if self.items else torch.device("cpu")

    def __repr__(self) -> str:
        return f"TensorArray({[tuple(t.shape) for t in self.items]})"


def merge_shapes(a: Shape | None, b: Shape | None) -> Shape | None:
    """The shape that covers both: dims that differ become '?', ranks that differ give None."""
    if a is None or b is None or len(a) != len(b):
        return None
    return tuple(x if x == y else "?" for x, y in zip(a, b, strict=True))


def _index(i: torch.Tensor | None, what: str) -> int:
    if i is None or i.numel() != 1:
        got = None if i is None else tuple(i.shape)
        raise ValueError(f"{what}: the index must be a one-element tensor, got shape {got}")
    return int(i.reshape(-1)[0].item())


# ---- tensor arrays ----------------------------------------------------------------------------


def _infer_create(node: Node, attrs: dict[str, Any]) -> None:
    out = node.outputs[0]
    out.dtype, out.shape = TENSOR_ARRAY, attrs["shape"]


@register_op(
    "create_array", attrs={"shape": None}, inputs=0, tags=("control",), infer=_infer_create
)
def create_array(shape: list[Dim] | None) -> TensorArray:
    """An empty tensor array (``shape``: the elements' shape, when known)."""
    return TensorArray()


def _infer_write(node: Node, attrs: dict[str, Any]) -> None:
    arr, x = node.inputs[0], node.inputs[1]
    out = node.outputs[0]
    out.dtype = TENSOR_ARRAY
    out.shape = x.shape if arr.shape is None else merge_shapes(arr.shape, x.shape)


@register_op("array_write", inputs=3, tags=("control",), infer=_infer_write)
def array_write(array: TensorArray, x: torch.Tensor, i: torch.Tensor) -> TensorArray:
    """A copy of ``array`` with ``x`` at position ``i`` (grown with empty tensors past its end)."""
    k = _index(i, "array_write")
    if k < 0:
        raise ValueError(f"array_write: index {k} is negative")
    items = list(array.items)
    if k >= len(items):
        items.extend(x.new_empty((0,)) for _ in range(k + 1 - len(items)))
    items[k] = x
    return TensorArray(tuple(items))


def _infer_read(node: Node, attrs: dict[str, Any]) -> None:
    out = node.outputs[0]
    out.dtype, out.shape = attrs["dtype"], node.inputs[0].shape


@register_op(
    "array_read", attrs={"dtype": REQUIRED}, inputs=2, tags=("control",), infer=_infer_read
)
def array_read(array: TensorArray, i: torch.Tensor, dtype: str) -> torch.Tensor:
    """Element ``i`` of the array (``dtype``: the elements' dtype)."""
    k = _index(i, "array_read")
    if not 0 <= k < len(array):
        raise IndexError(f"array_read: index {k} is out of range for an array of {len(array)}")
    return array.items[k]


def _infer_length(node: Node, attrs: dict[str, Any]) -> None:
    out = node.outputs[0]
    out.dtype, out.shape = "int64", (1,)


@register_op("array_length", inputs=1, tags=("control",), infer=_infer_length)
def array_length(array: TensorArray) -> torch.Tensor:
    """The number of elements, as an int64 tensor of shape [1]."""
    return torch.tensor([len(array)], dtype=torch.int64, device=array.device)


def _infer_to_tensor(node: Node, attrs: dict[str, Any]) -> None:
    elem = node.inputs[0].shape
    out, index = node.outputs
    out.dtype, index.dtype, index.shape = attrs["dtype"], "int32", ("?",)
    if elem is None:
        out.shape = None
        return
    if attrs["use_stack"]:
        axis = attrs["axis"] % (len(elem) + 1)
        out.shape = (*elem[:axis], "?", *elem[axis:])
    else:
        axis = attrs["axis"] % len(elem)
        out.shape = (*elem[:axis], "?", *elem[axis + 1 :])


@register_op(
    "array_to_tensor",
    attrs={"axis": 0, "use_stack": False, "dtype": REQUIRED},
    inputs=1,
    outputs=2,
    tags=("control",),
    infer=_infer_to_tensor,
)
def array_to_tensor(
    array: TensorArray, axis: int, use_stack: bool, dtype: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (``use_stack``) or concatenate the elements along ``axis``; also each one's extent."""
    if not len(array):
        raise ValueError("array_to_tensor: the tensor array is empty")
    items = array.items
    if use_stack:
        sizes = [1] * len(items)
        out = torch.stack(items, dim=axis)
    else:
        dim = axis % max(items[0].dim(), 1)
        sizes = [int(t.shape[dim]) for t in items]
        out = torch.cat(items, dim=dim)
    return out, torch.tensor(sizes, dtype=torch.int32, device=out.device)


# ---- while loop -------------------------------------------------------------------------------

# prepared body executors, per body graph and device
_EXECUTORS: weakref.WeakKeyDictionary[Graph, dict[torch.device, Any]] = weakref.WeakKeyDictionary()


def _body_executor(body: Graph, device: torch.device) -> Any:
    from fluidrt.ops.executor import NativeExecutor

    per_device = _EXECUTORS.setdefault(body, {})
    if device not in per_device:
        per_device[device] = NativeExecutor(body, device)
    return per_device[device]


def _device_of(values: tuple[Any, ...]) -> torch.device:
    for v in values:
        dev = v.device if isinstance(v, (torch.Tensor, TensorArray)) else None
        if dev is not None and dev.type != "cpu":
            return dev
    return torch.device("cpu")


def _infer_while(node: Node, attrs: dict[str, Any]) -> None:
    body: Graph = attrs["body"]
    n = attrs["num_carried"]
    if len(node.outputs) != n:
        raise ValueError(f"while_loop {node.name!r}: {len(node.outputs)} outputs for {n} carried")
    for k, out in enumerate(node.outputs):
        init, step = node.inputs[1 + k], body.outputs[1 + k]
        out.dtype = init.dtype
        if init.dtype == TENSOR_ARRAY and init.shape is None:  # elements first written in the loop
            out.shape = step.shape
        else:
            out.shape = (
                init.shape if init.shape == step.shape else merge_shapes(init.shape, step.shape)
            )


@register_op(
    "while_loop",
    attrs={"body": REQUIRED, "num_carried": REQUIRED},
    inputs=(1, VARIADIC),
    outputs=lambda a: int(a["num_carried"]),
    tags=("control",),
    infer=_infer_while,
)
def while_loop(cond: torch.Tensor, *values: Any, body: Graph, num_carried: int) -> tuple:
    """Run ``body`` on (carried, invariant) values while ``cond`` holds; return the carried."""
    carried, invariant = list(values[:num_carried]), list(values[num_carried:])
    ex = _body_executor(body, _device_of(values))
    while bool(cond.reshape(-1)[0].item()):
        outs = ex.run(carried + invariant)
        cond, carried = outs[0], outs[1:]
    return tuple(carried)
