"""Paddle importers: tensor family (reshapes, slicing, indexing, padding, shape tensors).

Legacy ProgramDesc ops carry shapes and axes as attributes, optionally overridden by tensor inputs
(``Shape``, ``ShapeTensor`` lists, ``AxisTensor``, ...); PIR ops take them as positional inputs
that are usually ``full_int_array`` constants. Shape operands computed at run time (typically
``paddle.shape(x)[0]`` with a dynamic batch) are traced back through ``shape``/``slice``/
``concat``/``stack`` nodes: a reshape target whose run-time parts are dims of the reshaped tensor
(``0``, copy) or a single unknown (``-1``) becomes a static reshape; anything else is passed as a
value input and the output keeps the symbolic shape the trace found.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from fluidrt.errors import UnsupportedOpError
from fluidrt.frontends.paddle.importer import ImportContext, paddle_op
from fluidrt.frontends.paddle.ops.basic import paddle_dtype
from fluidrt.frontends.paddle.source import SourceOp
from fluidrt.ir.graph import Dim, Value
from fluidrt.ops.registry import get_op
from fluidrt.ops.tensor import slice_bounds

# ---- shape-tensor tracing ---------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SymDim:
    """A shape-tensor element not known at load time: dim ``index`` of ``src``, a symbolic
    ``expr`` such as ``"N*4"``, or (neither given) an unknown value."""

    src: Value | None = None
    index: int = 0
    expr: str | None = None

    @property
    def dim(self) -> Dim:
        if self.src is not None:
            return self.src.shape[self.index] if self.src.shape is not None else "?"
        return self.expr or "?"


Elem = int | SymDim
_PASS_THROUGH = ("identity", "reshape", "unsqueeze", "squeeze", "flatten", "cast")
_SYM = re.compile(r"^([A-Za-z_]\w*)(?:\*(\d+))?$")


def shape_elems(v: Value | None, depth: int = 0) -> list[Elem] | None:
    """The elements of a small integer tensor: ints, dims of other values, or unknowns.

    None when not even the element count is known.
    """
    if v is None:
        return None
    elems = _trace(v, depth) if depth <= 32 else None
    if elems is None and v.shape is not None and len(v.shape) <= 1:
        n = v.shape[0] if v.shape else 1
        if isinstance(n, int) and n <= 64:
            return [SymDim() for _ in range(n)]
    return elems


def _trace(v: Value, depth: int) -> list[Elem] | None:
    if v.data is not None:
        arr = np.asarray(v.data)
        if arr.dtype.kind not in "iu" or arr.size > 64:
            return None
        return [int(a) for a in arr.reshape(-1)]
    node = v.producer
    if node is None or v.rank is None or v.rank > 1:
        return None
    op = node.op
    if op == "shape":
        src = node.inputs[0]
        if src is None or src.shape is None:
            return None
        return [d if isinstance(d, int) else SymDim(src, i) for i, d in enumerate(src.shape)]
    if op in _PASS_THROUGH:
        return shape_elems(node.inputs[0], depth + 1)
    if op in ("concat", "stack"):
        out: list[Elem] = []
        for part in node.inputs:
            elems = shape_elems(part, depth + 1)
            if elems is None:
                return None
            out += elems
        return out
    if op == "slice":
        src = shape_elems(node.inputs[0], depth + 1)
        attrs = get_op("slice").resolve_attrs(node.attrs)
        keys = ("starts", "ends", "axes", "steps")
        for key, inp in zip(keys, node.inputs[1:], strict=False):
            if inp is not None:
                if inp.data is None:
                    return None
                attrs[key] = [int(a) for a in np.asarray(inp.data).reshape(-1)]
        axes = attrs["axes"] if attrs["axes"] is not None else [0]
        if src is None or len(attrs["starts"]) != 1 or list(axes) not in ([0], [-1]):
            return None
        step = int((attrs["steps"] or [1])[0])
        s, _, n = slice_bounds(len(src), int(attrs["starts"][0]), int(attrs["ends"][0]), step)
        return [src[s + k * step] for k in range(n)]
    if op == "gather":
        src = shape_elems(node.inputs[0], depth + 1)
        index = node.inputs[1]
        if src is None or index is None or index.data is None:
            return None
        try:
            return [src[int(i)] for i in np.asarray(index.data).reshape(-1)]
        except IndexError:
            return None
    if op == "mul":
        a, b = (shape_elems(i, depth + 1) for i in node.inputs[:2])
        if a is None or b is None or 1 not in (len(a), len(b)) and len(a) != len(b):
            return None
        n = max(len(a), len(b))
        a, b = (x * n if len(x) == 1 else x for x in (a, b))
        return [_mul(x, y) for x, y in zip(a, b, strict=True)]
    if op == "scale":
        a = shape_elems(node.inputs[0], depth + 1)
        scale, bias = node.attrs.get("scale", 1.0), node.attrs.get("bias", 0.0)
        if a is None or len(node.inputs) > 1 or float(scale) != int(scale):
            return None
        if bias == 0:
            return [_mul(x, int(scale)) for x in a]
        if node.attrs.get("bias_after_scale", True) and float(bias) == int(bias):
            return [int(scale) * x + int(bias) if isinstance(x, int) else SymDim() for x in a]
    return None


def _mul(a: Elem, b: Elem) -> Elem:
    """Product of two elements; symbolic when one is ``N*k`` and the other a static int."""
    da, db = _dim(a), _dim(b)
    if isinstance(da, int) and isinstance(db, int):
        return da * db
    if isinstance(db, str):
        da, db = db, da
    m = _SYM.match(da) if isinstance(db, int) else None
    if m is None or m.group(1) == "?":
        return SymDim()
    k = int(m.group(2) or 1) * db
    return 0 if k == 0 else SymDim(expr=m.group(1) if k == 1 else f"{m.group(1)}*{k}")


def _factor(d: Dim) -> tuple[int, Counter] | None:
    """A dim as (coefficient, symbol counts): 6 -> (6, {}), "N*4" -> (4, {N: 1}); "?" -> None."""
    if isinstance(d, int):
        return d, Counter()
    m = _SYM.match(d)
    if m is None:
        return None
    return int(m.group(2) or 1), Counter({m.group(1): 1})


def _product(dims: list[Dim]) -> tuple[int, Counter] | None:
    coef, syms = 1, Counter()
    for d in dims:
        f = _factor(d)
        if f is None:
            return None
        coef *= f[0]
        syms += f[1]
    return coef, syms


def _static(elems: list[Elem] | None) -> list[int] | None:
    if elems is None:
        return None
    out = []
    for e in elems:
        d = _dim(e)
        if not isinstance(d, int):
            return None
        out.append(int(d))
    return out


def _dim(e: Elem) -> Dim:
    return e.dim if isinstance(e, SymDim) else e


def _same_dim(e: Elem, x: Value, i: int) -> bool:
    """Whether element ``e`` is certainly dim ``i`` of ``x``."""
    if x.shape is None or i >= len(x.shape):
        return False
    if isinstance(e, SymDim) and e.src is x and e.index == i:
        return True
    d = _dim(e)
    return isinstance(d, str) and "?" not in d and d == x.shape[i]


class IntArray:
    """A Paddle IntArray operand given as tensors: one 1-D tensor or a list of scalars."""

    def __init__(self, ctx: ImportContext, values: list[Value]) -> None:
        self.ctx = ctx
        self.values = values
        parts = [shape_elems(v) for v in values]
        self.elems: list[Elem] | None = (
            None if any(p is None for p in parts) else [e for p in parts for e in p]
        )

    @property
    def ints(self) -> list[int] | None:
        """The values when all are known at load time."""
        return _static(self.elems)

    def tensor(self) -> Value:
        """One 1-D integer value holding the whole array, for use at run time."""
        vals = self.values
        if len(vals) == 1 and vals[0].rank == 1:
            return vals[0]
        parts = [self.ctx.emit("reshape", [v], {"shape": [-1]}) if v.rank != 1 else v for v in vals]
        return parts[0] if len(parts) == 1 else self.ctx.emit("concat", parts, {"axis": 0})


def _legacy_array(
    ctx: ImportContext, op: SourceOp, attr: str, tensor_slot: str | None, list_slot: str | None
) -> IntArray | list[int]:
    """Paddle's priority: the list of scalar tensors, then the 1-D tensor, then the attribute."""
    if list_slot and ctx.has_input(op, list_slot):
        return IntArray(ctx, ctx.inputs(op, list_slot))
    if tensor_slot and ctx.has_input(op, tensor_slot):
        return IntArray(ctx, ctx.inputs(op, tensor_slot))
    return [int(v) for v in op.attrs.get(attr, [])]


def _pir_array(ctx: ImportContext, op: SourceOp, slot: int) -> IntArray | None:
    vals = ctx.inputs(op, slot)
    return IntArray(ctx, vals) if vals else None


def _ints(arr: IntArray | list[int] | None, what: str, ctx: ImportContext) -> list[int]:
    """The values of an operand that must be known when the model is loaded."""
    if arr is None:
        return []
    if isinstance(arr, list):
        return arr
    ints = arr.ints
    if ints is None:
        if len(arr.values) == 1:
            return ctx.const_ints(arr.values[0], what)
        op = ctx.op
        raise UnsupportedOpError(
            f"{ctx.where()}: {what} must be known when the model is loaded, but it is computed at "
            f"run time (op {op.type if op else '?'})"
        )
    return ints


def _scalar_input(ctx: ImportContext, v: Value | None, what: str) -> float | None:
    if v is None:
        return None
    data = ctx.const_value(v)
    if data is None:
        raise UnsupportedOpError(f"{ctx.where()}: {what} must be a constant")
    return np.asarray(data).reshape(-1)[0].item()


def _refine(out: Value, dims: list[Dim] | None) -> Value:
    """Give a value whose shape inference could not know it (value inputs) the traced shape."""
    if out.shape is None and dims is not None:
        out.shape = tuple(dims)
    return out


def _maybe_static(ctx: ImportContext, v: Value) -> Value:
    """Replace a just-emitted small integer value by a constant when its elements are known."""
    if v.data is not None or v.rank not in (0, 1) or v.dtype not in ("int32", "int64"):
        return v
    ints = _static(shape_elems(v))
    node = v.producer
    if ints is None or node is None or len(node.outputs) != 1 or v.users:
        return v
    ctx.graph.remove_node(node)
    return ctx.const(np.asarray(ints, dtype=v.dtype).reshape(v.shape), "shape_const")


def _out_dtype(ctx: ImportContext, op: SourceOp, slot: str | int, default: str) -> str:
    names = op.outputs.get(str(slot), [])
    var = ctx.program.vars.get(names[0]) if names else None
    return var.dtype if var is not None and var.dtype else default


def _io(op: SourceOp, legacy: str, pir: int = 0) -> str | int:
    return legacy if op.format_legacy else pir


def _norm_axis(axis: int, rank: int | None) -> int:
    if axis < 0:
        if rank is None:
            raise UnsupportedOpError(f"negative axis {axis} on a value of unknown rank")
        axis += rank
    return axis


# ---- reshape family -----------------------------------------------------------------------


def _reshape(ctx: ImportContext, x: Value, target: IntArray | list[int]) -> Value:
    if isinstance(target, list):
        return ctx.emit("reshape", [x], {"shape": target})
    ints = target.ints
    if ints is not None:
        return ctx.emit("reshape", [x], {"shape": ints})
    elems = target.elems
    if elems is not None:
        plan: list[int | None] = []
        for i, e in enumerate(elems):
            if not isinstance(e, SymDim):
                plan.append(e)
            elif _same_dim(e, x, i):
                plan.append(0)
            elif isinstance(e.dim, int):
                plan.append(e.dim)
            else:
                plan.append(None)
        unknown = [i for i, p in enumerate(plan) if p is None]
        if len(unknown) == 1 and -1 in plan:
            _solve_minus_one(x, elems, plan, unknown[0])
            unknown = [i for i, p in enumerate(plan) if p is None]
        if not unknown or (len(unknown) == 1 and -1 not in plan):
            if unknown:
                plan[unknown[0]] = -1  # the only run-time dim: the element count fixes it
            return ctx.emit("reshape", [x], {"shape": plan})
    out = ctx.emit("reshape", [x, target.tensor()], {})
    if elems is not None and -1 not in elems and 0 not in elems:
        _refine(out, [_dim(e) for e in elems])
    elif elems is not None:
        _refine(out, ["?"] * len(elems))
    return out


def _solve_minus_one(x: Value, elems: list[Elem], plan: list[int | None], sym: int) -> None:
    """Target ``[N*4, -1]`` of an ``[N, 4, 6]`` input: the -1 is 6, so ``[-1, 6]`` is static."""
    if x.shape is None:
        return
    total = _product(list(x.shape))
    known = [x.shape[i] if p == 0 else p for i, p in enumerate(plan) if p not in (None, -1)]
    part = _product(known + [_dim(elems[sym])])
    if total is None or part is None or part[0] == 0 or total[1] != part[1]:
        return
    if total[0] % part[0] == 0:
        plan[plan.index(-1)] = total[0] // part[0]
        plan[sym] = -1


@paddle_op("reshape2", "reshape")
def _reshape_legacy(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, "X")
    target = _legacy_array(ctx, op, "shape", "Shape", "ShapeTensor")
    ctx.bind(op, "Out", _reshape(ctx, x, target))


@paddle_op("pd_op.reshape", "pd_op.reshape_")
def _reshape_pir(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, 0)
    target = _pir_array(ctx, op, 1)
    if target is None:
        target = [int(v) for v in op.attrs.get("shape", [])]
    ctx.bind(op, 0, _reshape(ctx, x, target))


@paddle_op("flatten_contiguous_range", "pd_op.flatten", "pd_op.flatten_")
def _flatten_range(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, _io(op, "X"))
    start, stop = int(op.attrs.get("start_axis", 1)), int(op.attrs.get("stop_axis", -1))
    if x.rank == 0:
        out = ctx.emit("reshape", [x], {"shape": [1]})
    else:
        out = ctx.emit("flatten", [x], {"start": start, "stop": stop})
    ctx.bind(op, _io(op, "Out"), out)


@paddle_op("flatten2", "flatten")
def _flatten_2d(ctx: ImportContext, op: SourceOp) -> None:
    """Old flatten: a 2-D result ``[prod(dims[:axis]), prod(dims[axis:])]``."""
    x = ctx.input(op, "X")
    axis = int(op.attrs.get("axis", 1))
    if x.rank is None:
        raise UnsupportedOpError(f"{ctx.where()}: input rank unknown")
    if axis == 0:
        out = ctx.emit("reshape", [x], {"shape": [1, -1]})
    else:
        out = ctx.emit("flatten", [x], {"start": 0, "stop": axis - 1})
        if axis == x.rank:
            out = ctx.emit("unsqueeze", [out], {"axes": [1]})
        else:
            out = ctx.emit("flatten", [out], {"start": 1, "stop": -1})
    ctx.bind(op, "Out", out)


@paddle_op("transpose2", "transpose", "pd_op.transpose", "pd_op.transpose_")
def _transpose(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, _io(op, "X"))
    perm = [int(p) for p in op.attrs.get("axis" if op.format_legacy else "perm", [])]
    ctx.bind(op, _io(op, "Out"), ctx.emit("transpose", [x], {"perm": perm}))


@paddle_op("squeeze2", "squeeze", "pd_op.squeeze", "pd_op.squeeze_")
def _squeeze(ctx: ImportContext, op: SourceOp) -> None:
    if op.format_legacy:
        x = ctx.input(op, "X")
        axes = [int(a) for a in op.attrs.get("axes", [])]
    else:
        x = ctx.input(op, 0)
        arr = _pir_array(ctx, op, 1)
        axes = (
            _ints(arr, "squeeze axes", ctx) if arr else [int(a) for a in op.attrs.get("axis", [])]
        )
    out = _maybe_static(ctx, ctx.emit("squeeze", [x], {"axes": axes}))
    ctx.bind(op, _io(op, "Out"), out)


@paddle_op("unsqueeze2", "unsqueeze", "pd_op.unsqueeze", "pd_op.unsqueeze_")
def _unsqueeze(ctx: ImportContext, op: SourceOp) -> None:
    if op.format_legacy:
        x = ctx.input(op, "X")
        axes = _ints(_legacy_array(ctx, op, "axes", "AxesTensor", "AxesTensorList"), "axes", ctx)
    else:
        x = ctx.input(op, 0)
        arr = _pir_array(ctx, op, 1)
        axes = _ints(arr, "unsqueeze axes", ctx) if arr else [int(a) for a in op.attrs["axis"]]
    out = _maybe_static(ctx, ctx.emit("unsqueeze", [x], {"axes": axes}))
    ctx.bind(op, _io(op, "Out"), out)


# ---- joining and splitting ----------------------------------------------------------------


def _axis_operand(ctx: ImportContext, op: SourceOp, slot: str | int, attr: str = "axis") -> int:
    v = ctx.optional_input(op, slot)
    if v is not None:
        return ctx.const_ints(v, "axis")[0]
    return int(op.attrs.get(attr, 0))


@paddle_op("concat", "pd_op.concat")
def _concat(ctx: ImportContext, op: SourceOp) -> None:
    xs = ctx.inputs(op, _io(op, "X"))
    axis = _axis_operand(ctx, op, _io(op, "AxisTensor", 1))
    out = xs[0] if len(xs) == 1 else ctx.emit("concat", xs, {"axis": axis})
    ctx.bind(op, _io(op, "Out"), _maybe_static(ctx, out))


def _bind_all(ctx: ImportContext, op: SourceOp, slot: str | int, outs: Value | list[Value]) -> None:
    for i, v in enumerate(outs if isinstance(outs, list) else [outs]):
        ctx.bind(op, slot, v, i)


@paddle_op("split")
def _split_legacy(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, "X")
    axis = _axis_operand(ctx, op, "AxisTensor")
    num = int(op.attrs.get("num", 0))
    n_out = len(ctx.out_names(op, "Out"))
    if num > 0:
        attrs = {"axis": axis, "num": num}
    else:
        sections = _ints(
            _legacy_array(ctx, op, "sections", None, "SectionsTensorList"), "sections", ctx
        )
        attrs = {"axis": axis, "sections": sections}
    outs = ctx.emit("split", [x], attrs) if n_out > 1 else [x]
    _bind_all(ctx, op, "Out", outs)


@paddle_op("pd_op.split")
def _split_pir(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, 0)
    sections = _ints(_pir_array(ctx, op, 1), "split sections", ctx)
    axis = _axis_operand(ctx, op, 2)
    outs = ctx.emit("split", [x], {"axis": axis, "sections": sections})
    _bind_all(ctx, op, 0, outs)


@paddle_op("pd_op.split_with_num")
def _split_num(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, 0)
    axis = _axis_operand(ctx, op, 1)
    num = int(op.attrs["num"])
    outs = ctx.emit("split", [x], {"axis": axis, "num": num}) if num > 1 else [x]
    _bind_all(ctx, op, 0, outs)


@paddle_op("stack", "pd_op.stack")
def _stack(ctx: ImportContext, op: SourceOp) -> None:
    xs = ctx.inputs(op, _io(op, "X"))
    out = ctx.emit("stack", xs, {"axis": int(op.attrs.get("axis", 0))})
    ctx.bind(op, _io(op, "Y"), _maybe_static(ctx, out))


@paddle_op("unstack", "pd_op.unstack", "unbind", "pd_op.unbind")
def _unstack(ctx: ImportContext, op: SourceOp) -> None:
    legacy = op.format_legacy
    x = ctx.input(op, "X" if legacy else 0)
    out_slot = ("Out" if op.type == "unbind" else "Y") if legacy else 0
    num = len(ctx.out_names(op, out_slot))
    outs = ctx.emit("unstack", [x], {"axis": int(op.attrs.get("axis", 0)), "num": num})
    _bind_all(ctx, op, out_slot, outs)


# ---- slicing ------------------------------------------------------------------------------


def _slice(
    ctx: ImportContext,
    x: Value,
    axes: list[int],
    starts: IntArray | list[int],
    ends: IntArray | list[int],
    steps: IntArray | list[int] | None,
    decrease: list[int],
) -> Value:
    attrs: dict = {"axes": axes, "decrease_axes": decrease}
    inputs: list[Value | None] = [x]
    dims: list[Dim] | None = list(x.shape) if x.shape is not None else None
    for key, arr in (("starts", starts), ("ends", ends), ("steps", steps)):
        if arr is None:
            inputs.append(None)
            continue
        ints = arr if isinstance(arr, list) else arr.ints
        if ints is not None:
            attrs[key] = ints
            inputs.append(None)
        else:
            inputs.append(arr.tensor())
            if dims is not None:
                for a in axes:
                    dims[_norm_axis(a, x.rank)] = "?"
    if attrs.get("steps") is None or all(s == 1 for s in attrs.get("steps") or []):
        attrs.pop("steps", None)
    if inputs[3] is not None:  # run-time steps: inputs are (x, starts, ends, axes, steps)
        inputs = inputs[:3] + [ctx.const(np.asarray(axes, dtype="int64"), "axes"), inputs[3]]
        attrs.pop("axes")
    else:
        inputs = inputs[:3]
        while inputs[-1] is None and len(inputs) > 1:
            inputs.pop()
    out = ctx.emit("slice", inputs, attrs)
    if len(inputs) > 1 and dims is not None:
        drop = {_norm_axis(a, x.rank) for a in decrease}
        _refine(out, [d for i, d in enumerate(dims) if i not in drop])
    return _maybe_static(ctx, out)


def _decrease(op: SourceOp) -> list[int]:
    return [int(a) for a in op.attrs.get("decrease_axis", [])]


@paddle_op("slice")
def _slice_legacy(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, "Input")
    axes = [int(a) for a in op.attrs["axes"]]
    starts = _legacy_array(ctx, op, "starts", "StartsTensor", "StartsTensorList")
    ends = _legacy_array(ctx, op, "ends", "EndsTensor", "EndsTensorList")
    ctx.bind(op, "Out", _slice(ctx, x, axes, starts, ends, None, _decrease(op)))


@paddle_op("strided_slice")
def _strided_slice_legacy(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, "Input")
    axes = [int(a) for a in op.attrs["axes"]]
    starts = _legacy_array(ctx, op, "starts", "StartsTensor", "StartsTensorList")
    ends = _legacy_array(ctx, op, "ends", "EndsTensor", "EndsTensorList")
    steps = _legacy_array(ctx, op, "strides", "StridesTensor", "StridesTensorList")
    ctx.bind(op, "Out", _slice(ctx, x, axes, starts, ends, steps, _decrease(op)))


@paddle_op("pd_op.slice")
def _slice_pir(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, 0)
    axes = [int(a) for a in op.attrs["axes"]]
    starts = _pir_array(ctx, op, 1) or [int(v) for v in op.attrs.get("starts", [])]
    ends = _pir_array(ctx, op, 2) or [int(v) for v in op.attrs.get("ends", [])]
    ctx.bind(op, 0, _slice(ctx, x, axes, starts, ends, None, _decrease(op)))


@paddle_op("pd_op.strided_slice")
def _strided_slice_pir(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, 0)
    axes = [int(a) for a in op.attrs["axes"]]
    starts = _pir_array(ctx, op, 1) or [int(v) for v in op.attrs.get("starts", [])]
    ends = _pir_array(ctx, op, 2) or [int(v) for v in op.attrs.get("ends", [])]
    steps = _pir_array(ctx, op, 3) or [int(v) for v in op.attrs.get("strides", [])]
    ctx.bind(op, 0, _slice(ctx, x, axes, starts, ends, steps, _decrease(op)))


# ---- indexing -----------------------------------------------------------------------------


def _gather(ctx: ImportContext, x: Value, index: Value, axis: int) -> Value:
    if index.rank == 2:  # Paddle accepts an [N, 1] index and treats it as [N]
        index = ctx.emit("reshape", [index], {"shape": [-1]})
    return _maybe_static(ctx, ctx.emit("gather", [x, index], {"axis": axis}))


@paddle_op("gather", "pd_op.gather")
def _gather_op(ctx: ImportContext, op: SourceOp) -> None:
    legacy = op.format_legacy
    x = ctx.input(op, "X" if legacy else 0)
    index = ctx.input(op, "Index" if legacy else 1)
    axis = _axis_operand(ctx, op, "Axis" if legacy else 2)
    ctx.bind(op, _io(op, "Out"), _gather(ctx, x, index, axis))


@paddle_op("index_select", "pd_op.index_select")
def _index_select(ctx: ImportContext, op: SourceOp) -> None:
    legacy = op.format_legacy
    x = ctx.input(op, "X" if legacy else 0)
    index = ctx.input(op, "Index" if legacy else 1)
    axis = int(op.attrs.get("dim" if legacy else "axis", 0))
    ctx.bind(op, _io(op, "Out"), _gather(ctx, x, index, axis))


@paddle_op("gather_nd", "pd_op.gather_nd")
def _gather_nd(ctx: ImportContext, op: SourceOp) -> None:
    legacy = op.format_legacy
    x = ctx.input(op, "X" if legacy else 0)
    index = ctx.input(op, "Index" if legacy else 1)
    ctx.bind(op, _io(op, "Out"), ctx.emit("gather_nd", [x, index]))


@paddle_op("take_along_axis", "pd_op.take_along_axis")
def _take_along_axis(ctx: ImportContext, op: SourceOp) -> None:
    legacy = op.format_legacy
    x = ctx.input(op, "Input" if legacy else 0)
    index = ctx.input(op, "Index" if legacy else 1)
    axis = int(op.attrs.get("Axis" if legacy else "axis", 0))
    out = ctx.emit("take_along_axis", [x, index], {"axis": axis})
    ctx.bind(op, "Result" if legacy else 0, out)


@paddle_op("scatter", "pd_op.scatter", "pd_op.scatter_")
def _scatter(ctx: ImportContext, op: SourceOp) -> None:
    legacy = op.format_legacy
    x = ctx.input(op, "X" if legacy else 0)
    index = ctx.input(op, "Ids" if legacy else 1)
    updates = ctx.input(op, "Updates" if legacy else 2)
    attrs = {"overwrite": bool(op.attrs.get("overwrite", True))}
    ctx.bind(op, _io(op, "Out"), ctx.emit("scatter", [x, index, updates], attrs))


@paddle_op("scatter_nd_add", "pd_op.scatter_nd_add")
def _scatter_nd_add(ctx: ImportContext, op: SourceOp) -> None:
    legacy = op.format_legacy
    x = ctx.input(op, "X" if legacy else 0)
    index = ctx.input(op, "Index" if legacy else 1)
    updates = ctx.input(op, "Updates" if legacy else 2)
    ctx.bind(op, _io(op, "Out"), ctx.emit("scatter_nd_add", [x, index, updates]))


@paddle_op("where", "pd_op.where", "pd_op.where_")
def _where(ctx: ImportContext, op: SourceOp) -> None:
    legacy = op.format_legacy
    cond = ctx.input(op, "Condition" if legacy else 0)
    x = ctx.input(op, "X" if legacy else 1)
    y = ctx.input(op, "Y" if legacy else 2)
    ctx.bind(op, _io(op, "Out"), ctx.emit("where", [cond, x, y]))


# ---- padding ------------------------------------------------------------------------------


def _pad_mode(mode: str) -> str:
    return {"replicate": "edge", "edge": "edge", "reflect": "reflect", "circular": "circular"}.get(
        mode, "constant"
    )


@paddle_op("pad", "pd_op.pad")
def _pad(ctx: ImportContext, op: SourceOp) -> None:
    """``paddings`` holds (begin, end) pairs for every dim."""
    legacy = op.format_legacy
    x = ctx.input(op, "X" if legacy else 0)
    p = [int(v) for v in op.attrs["paddings"]]
    value = op.attrs.get("pad_value", 0.0)
    if not legacy and ctx.has_input(op, 1):
        value = _scalar_input(ctx, ctx.input(op, 1), "pad value")
    pads = p[0::2] + p[1::2]
    out = ctx.emit("pad", [x], {"pads": pads, "mode": "constant", "value": float(value)})
    ctx.bind(op, _io(op, "Out"), out)


def _spatial_pads(channel_last: bool, begins: list[int], ends: list[int]) -> list[int]:
    """Canonical pads of an N C spatial... (or N spatial... C) tensor from per-spatial-dim pads."""
    lead, trail = ([0], [0]) if channel_last else ([0, 0], [])
    return lead + begins + trail + lead + ends + trail


def _paddings(ctx: ImportContext, op: SourceOp, slot: str | int, n: int) -> list[int]:
    v = ctx.optional_input(op, slot)
    p = ctx.const_ints(v, "paddings") if v is not None else [int(a) for a in op.attrs["paddings"]]
    if len(p) != n:
        raise UnsupportedOpError(f"{ctx.where()}: expected {n} paddings, got {p}")
    return p


@paddle_op("pad2d")
def _pad2d(ctx: ImportContext, op: SourceOp) -> None:
    """``paddings`` = [top, bottom, left, right]; modes constant/reflect/edge."""
    x = ctx.input(op, "X")
    t, b, left, r = _paddings(ctx, op, "Paddings", 4)
    nhwc = op.attrs.get("data_format", "NCHW") == "NHWC"
    pads = _spatial_pads(nhwc, [t, left], [b, r])
    attrs = {
        "pads": pads,
        "mode": _pad_mode(op.attrs.get("mode", "constant")),
        "value": float(op.attrs.get("pad_value", 0.0)),
    }
    ctx.bind(op, "Out", ctx.emit("pad", [x], attrs))


@paddle_op("pad3d", "pd_op.pad3d")
def _pad3d(ctx: ImportContext, op: SourceOp) -> None:
    """``paddings`` = [left, right, top, bottom, front, back] (W, H, D begin/end pairs)."""
    legacy = op.format_legacy
    x = ctx.input(op, "X" if legacy else 0)
    left, r, t, b, f, k = _paddings(ctx, op, "Paddings" if legacy else 1, 6)
    ndhwc = op.attrs.get("data_format", "NCDHW") == "NDHWC"
    pads = _spatial_pads(ndhwc, [f, t, left], [k, b, r])
    value = op.attrs.get("value", op.attrs.get("pad_value", 0.0))
    attrs = {
        "pads": pads,
        "mode": _pad_mode(op.attrs.get("mode", "constant")),
        "value": float(value),
    }
    ctx.bind(op, _io(op, "Out"), ctx.emit("pad", [x], attrs))


# ---- broadcasting and repeating -----------------------------------------------------------


def _expand(ctx: ImportContext, x: Value, target: IntArray | list[int]) -> Value:
    if isinstance(target, list):
        return ctx.emit("expand", [x], {"shape": target})
    ints = target.ints
    if ints is not None:
        return ctx.emit("expand", [x], {"shape": ints})
    elems = target.elems
    if elems is not None and x.rank is not None:
        lead = len(elems) - x.rank
        plan: list[int | None] = []
        for i, e in enumerate(elems):
            if not isinstance(e, SymDim):
                plan.append(e)
            elif isinstance(e.dim, int):
                plan.append(e.dim)
            elif i >= lead and _same_dim(e, x, i - lead):
                plan.append(-1)
            else:
                plan.append(None)
        if None not in plan:
            return ctx.emit("expand", [x], {"shape": plan})
    out = ctx.emit("expand", [x, target.tensor()], {})
    if elems is not None and x.shape is not None:
        lead = len(elems) - x.rank
        dims = [
            (x.shape[i - lead] if i >= lead else "?") if e == -1 else _dim(e)
            for i, e in enumerate(elems)
        ]
        _refine(out, dims)
    return out


@paddle_op("expand_v2")
def _expand_v2(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, "X")
    target = _legacy_array(ctx, op, "shape", "Shape", "expand_shapes_tensor")
    ctx.bind(op, "Out", _expand(ctx, x, target))


@paddle_op("pd_op.expand")
def _expand_pir(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, 0)
    target = _pir_array(ctx, op, 1) or [int(v) for v in op.attrs.get("shape", [])]
    ctx.bind(op, 0, _expand(ctx, x, target))


@paddle_op("expand_as_v2", "pd_op.expand_as")
def _expand_as(ctx: ImportContext, op: SourceOp) -> None:
    legacy = op.format_legacy
    x = ctx.input(op, "X" if legacy else 0)
    y = ctx.optional_input(op, "Y" if legacy else 1)
    if y is not None:
        out = ctx.emit("expand_as", [x, y])
    else:
        out = ctx.emit("expand", [x], {"shape": [int(d) for d in op.attrs["target_shape"]]})
    ctx.bind(op, _io(op, "Out"), out)


def _tile(ctx: ImportContext, x: Value, repeats: IntArray | list[int]) -> Value:
    ints = repeats if isinstance(repeats, list) else repeats.ints
    if ints is not None:
        return ctx.emit("tile", [x], {"repeats": ints})
    out = ctx.emit("tile", [x, repeats.tensor()], {})
    if repeats.elems is not None and x.rank is not None:
        _refine(out, ["?"] * max(len(repeats.elems), x.rank))
    return out


@paddle_op("tile")
def _tile_legacy(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, "X")
    repeats = _legacy_array(ctx, op, "repeat_times", "RepeatTimes", "repeat_times_tensor")
    ctx.bind(op, "Out", _tile(ctx, x, repeats))


@paddle_op("expand")
def _expand_v1(ctx: ImportContext, op: SourceOp) -> None:
    """The old ``expand`` op repeats (tiles) by ``expand_times``."""
    x = ctx.input(op, "X")
    repeats = _legacy_array(ctx, op, "expand_times", "ExpandTimes", "expand_times_tensor")
    ctx.bind(op, "Out", _tile(ctx, x, repeats))


@paddle_op("pd_op.tile")
def _tile_pir(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, 0)
    repeats = _pir_array(ctx, op, 1) or [int(v) for v in op.attrs.get("repeat_times", [])]
    ctx.bind(op, 0, _tile(ctx, x, repeats))


@paddle_op("flip", "pd_op.flip")
def _flip(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, _io(op, "X"))
    axes = op.attrs.get("axis", [])
    axes = [int(a) for a in (axes if isinstance(axes, list) else [axes])]
    ctx.bind(op, _io(op, "Out"), ctx.emit("flip", [x], {"axes": axes}))


@paddle_op("roll", "pd_op.roll")
def _roll(ctx: ImportContext, op: SourceOp) -> None:
    legacy = op.format_legacy
    x = ctx.input(op, "X" if legacy else 0)
    if legacy:
        shifts = _ints(_legacy_array(ctx, op, "shifts", "ShiftsTensor", None), "shifts", ctx)
    else:
        arr = _pir_array(ctx, op, 1)
        shifts = _ints(arr, "shifts", ctx) if arr else [int(s) for s in op.attrs["shifts"]]
    axes = [int(a) for a in op.attrs.get("axis", [])]
    ctx.bind(op, _io(op, "Out"), ctx.emit("roll", [x], {"shifts": shifts, "axes": axes}))


@paddle_op("tril_triu", "pd_op.tril", "pd_op.triu", "pd_op.tril_", "pd_op.triu_")
def _tril_triu(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, _io(op, "X"))
    lower = bool(op.attrs.get("lower", True)) if op.format_legacy else "tril" in op.type
    canon = "tril" if lower else "triu"
    out = ctx.emit(canon, [x], {"diagonal": int(op.attrs.get("diagonal", 0))})
    ctx.bind(op, _io(op, "Out"), out)


# ---- shapes, ranges and filled tensors ----------------------------------------------------


@paddle_op("shape", "pd_op.shape", "pd_op.shape64")
def _shape(ctx: ImportContext, op: SourceOp) -> None:
    legacy = op.format_legacy
    x = ctx.input(op, "Input" if legacy else 0)
    default = "int64" if op.type == "pd_op.shape64" else "int32"
    dtype = _out_dtype(ctx, op, "Out" if legacy else 0, default)
    if x.static_shape is not None:
        out = ctx.const(np.asarray(x.static_shape, dtype=dtype), "shape")
    else:
        out = ctx.emit("shape", [x], {"dtype": dtype})
    ctx.bind(op, _io(op, "Out"), out)


def _arange(ctx: ImportContext, op: SourceOp, vals: list[Value], dtype: str) -> Value:
    elems = [shape_elems(v) for v in vals]
    nums = []
    for v in vals:
        data = ctx.const_value(v)
        nums.append(None if data is None else np.asarray(data).reshape(-1)[0].item())
    if None not in nums:
        start, end, step = (np.asarray(n, dtype=dtype)[()] for n in nums)
        if np.dtype(dtype).kind in "iu":
            arr = np.arange(int(start), int(end), int(step), dtype=dtype)
        else:  # Paddle's CPU kernel: size ceil(|(end - start) / step|), values accumulated in T
            arr = np.empty(max(0, math.ceil(abs((end - start) / step))), dtype=dtype)
            value = start
            for i in range(arr.size):
                arr[i] = value
                value = value + step
        return ctx.const(arr, "arange")
    out = ctx.emit("arange", vals, {"dtype": dtype})
    dims: list[Dim] = ["?"]
    if nums[0] == 0 and nums[2] == 1 and elems[1] is not None and len(elems[1]) == 1:
        dims = [_dim(elems[1][0])]
    return _refine(out, dims)


@paddle_op("range", "pd_op.arange")
def _range(ctx: ImportContext, op: SourceOp) -> None:
    legacy = op.format_legacy
    if legacy:
        vals = [ctx.input(op, s) for s in ("Start", "End", "Step")]
        dtype = _out_dtype(ctx, op, "Out", vals[0].dtype or "int64")
    else:
        vals = [ctx.input(op, i) for i in range(3)]
        dtype = paddle_dtype(op.attrs.get("dtype", _out_dtype(ctx, op, 0, "int64")))
    ctx.bind(op, _io(op, "Out"), _arange(ctx, op, vals, dtype))


def _full_like(ctx: ImportContext, x: Value, value: float, dtype: str | None) -> Value:
    dtype = dtype or x.dtype
    if x.static_shape is not None and math.prod(x.static_shape) <= 4096:
        return ctx.const(np.full(x.static_shape, value, dtype=dtype), "full_like")
    return ctx.emit("full_like", [x], {"value": value, "dtype": dtype})


@paddle_op("fill_any_like", "fill_zeros_like", "fill_zeros_like2")
def _fill_any_like(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, "X")
    value = float(op.attrs.get("value", 0.0)) if op.type == "fill_any_like" else 0.0
    code = op.attrs.get("dtype", -1)
    dtype = None if code in (-1, None) else paddle_dtype(code)
    ctx.bind(op, "Out", _full_like(ctx, x, value, dtype))


@paddle_op("pd_op.full_like")
def _full_like_pir(ctx: ImportContext, op: SourceOp) -> None:
    x = ctx.input(op, 0)
    value = _scalar_input(ctx, ctx.optional_input(op, 1), "fill value")
    if value is None:
        value = op.attrs.get("value", 0.0)
    code = op.attrs.get("dtype")
    dtype = None if code in (None, "undefined", -1) else paddle_dtype(code)
    ctx.bind(op, 0, _full_like(ctx, x, float(value), dtype))


@paddle_op("pd_op.full_with_tensor")
def _full_with_tensor(ctx: ImportContext, op: SourceOp) -> None:
    """``full`` whose shape is a tensor operand (a run-time batch, typically)."""
    value = _scalar_input(ctx, ctx.input(op, 0), "fill value")
    dtype = paddle_dtype(op.attrs.get("dtype", _out_dtype(ctx, op, 0, "float32")))
    shape = IntArray(ctx, ctx.inputs(op, 1))
    ints = shape.ints
    if ints is not None:
        ctx.bind(op, 0, ctx.const(np.full(ints, value, dtype=dtype), "full"))
        return
    out = ctx.emit("fill", [shape.tensor()], {"value": float(value), "dtype": dtype})
    dims = [_dim(e) for e in shape.elems] if shape.elems is not None else None
    ctx.bind(op, 0, _refine(out, dims))


@paddle_op("size", "pd_op.numel")
def _numel(ctx: ImportContext, op: SourceOp) -> None:
    legacy = op.format_legacy
    x = ctx.input(op, "Input" if legacy else 0)
    dtype = _out_dtype(ctx, op, "Out" if legacy else 0, "int64")
    if x.static_shape is not None:
        out = ctx.const(np.asarray(math.prod(x.static_shape), dtype=dtype), "numel")
    else:
        out = ctx.emit("numel", [x], {"dtype": dtype})
    ctx.bind(op, _io(op, "Out"), out)


@paddle_op("expand_as")
def _expand_as_v1(ctx: ImportContext, op: SourceOp) -> None:
    """The old ``expand_as`` tiles X to the shape of ``target_tensor`` (static shapes only)."""
    x = ctx.input(op, "X")
    target = ctx.input(op, "target_tensor")
    if x.static_shape is None or target.static_shape is None:
        raise UnsupportedOpError(f"{ctx.where()}: v1 expand_as needs static shapes")
    repeats = [t // d for t, d in zip(target.static_shape, x.static_shape, strict=True)]
    ctx.bind(op, "Out", ctx.emit("tile", [x], {"repeats": repeats}))


@paddle_op("fill_constant_batch_size_like")
def _fill_batch_size_like(ctx: ImportContext, op: SourceOp) -> None:
    """A filled tensor of attr ``shape`` whose ``output_dim_idx`` dim is the input's batch dim."""
    x = ctx.input(op, "Input")
    shape = [int(d) for d in op.attrs["shape"]]
    in_idx, out_idx = int(op.attrs.get("input_dim_idx", 0)), int(op.attrs.get("output_dim_idx", 0))
    dtype = paddle_dtype(op.attrs.get("dtype", 5))
    value = float(op.attrs.get("str_value") or op.attrs.get("value", 0.0))
    batch = x.shape[in_idx] if x.shape is not None else "?"
    if isinstance(batch, int):
        shape[out_idx] = batch
        ctx.bind(op, "Out", ctx.const(np.full(shape, value, dtype=dtype), "filled"))
        return
    dim = ctx.emit(
        "slice",
        [ctx.emit("shape", [x], {"dtype": "int64"})],
        {"axes": [0], "starts": [in_idx], "ends": [in_idx + 1]},
    )
    parts = []
    if out_idx:
        parts.append(ctx.const(np.asarray(shape[:out_idx], dtype="int64"), "shape"))
    parts.append(dim)
    if out_idx + 1 < len(shape):
        parts.append(ctx.const(np.asarray(shape[out_idx + 1 :], dtype="int64"), "shape"))
    shape_v = ctx.emit("concat", parts, {"axis": 0}) if len(parts) > 1 else dim
    out = ctx.emit("fill", [shape_v], {"value": value, "dtype": dtype})
    dims: list[Dim] = list(shape)
    dims[out_idx] = batch
    ctx.bind(op, "Out", _refine(out, dims))


@paddle_op("one_hot_v2", "one_hot", "pd_op.one_hot")
def _one_hot(ctx: ImportContext, op: SourceOp) -> None:
    legacy = op.format_legacy
    x = ctx.input(op, "X" if legacy else 0)
    depth_v = ctx.optional_input(op, "depth_tensor" if legacy else 1)
    depth = int(_scalar_input(ctx, depth_v, "depth") if depth_v is not None else op.attrs["depth"])
    if op.type == "one_hot":  # v1: the input's last dim is 1 and is replaced by the classes
        x = ctx.emit("squeeze", [x], {"axes": [-1]})
    if legacy:
        dtype = paddle_dtype(op.attrs.get("dtype", 5))
    else:
        dtype = _out_dtype(ctx, op, 0, "float32")
    out = ctx.emit("one_hot", [x], {"depth": depth, "dtype": dtype})
    ctx.bind(op, _io(op, "Out"), out)
