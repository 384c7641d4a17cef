"""Paddle importers: control flow (``pd_op.while``) and tensor arrays (PIR programs).

A PIR while op takes ``[cond, loop vars...]``; its body block's arguments are the loop vars and
its terminator ``cf.yield`` gives ``[next cond, next loop vars...]``. The body may read any value
defined before it (captured: it becomes a loop-invariant input of the body graph) and may write a
captured tensor array in place (``array_write_``, how dy2static lowers ``list.append`` in a
loop): such an array becomes an extra carried value, and the outer name is bound to the loop's
final array afterwards. Array writes are functional in the IR (``array_write`` returns the new
array), so the importers rebind the written array's Paddle name to the new value.
"""

from __future__ import annotations

from fluidrt.errors import ModelFormatError
from fluidrt.frontends.paddle.importer import ImportContext, import_ops, paddle_op
from fluidrt.frontends.paddle.source import SourceBlock, SourceOp
from fluidrt.ir.graph import Graph, Shape, Value
from fluidrt.ops.control import merge_shapes

_MAX_SHAPE_ROUNDS = 4  # body imports until the carried shapes are stable


class BodyContext(ImportContext):
    """The import context of a loop body: names it does not define are read from the enclosing
    context; constants are copied in, everything else becomes a body input (captured)."""

    def __init__(self, parent: ImportContext, graph: Graph) -> None:
        super().__init__(parent.program, graph)
        self.parent = parent
        self.captured: dict[str, tuple[Value, Value]] = {}  # Paddle name -> (outer, body input)

    def _lookup(self, name: str, op: SourceOp) -> Value:
        if name in self.env:
            return self.env[name]
        outer = self.parent._lookup(name, op)
        if outer.is_const:
            inner = self.graph.add_const(outer.name, outer.data)
            inner.dtype = outer.dtype
        else:
            inner = self.graph.add_input(
                self.graph.unique_name(outer.name), outer.shape, outer.dtype
            )
            self.captured[name] = (outer, inner)
        self.env[name] = inner
        return inner


def _element_shape(ctx: ImportContext, name: str) -> list | None:
    var = ctx.program.vars.get(name)
    if var is None or var.shape is None:
        return None
    return ["?" if d < 0 else int(d) for d in var.shape]


def _out_dtype(ctx: ImportContext, op: SourceOp, slot: int = 0) -> str:
    names = ctx.out_names(op, slot)
    var = ctx.program.vars.get(names[0]) if names else None
    if var is None or var.dtype is None:
        raise ModelFormatError(f"{ctx.where()}: output {slot} has no declared element type")
    return var.dtype


@paddle_op("pd_op.create_array")
def _create_array(ctx: ImportContext, op: SourceOp) -> None:
    ctx.bind(
        op, 0, ctx.emit("create_array", [], {"shape": _element_shape(ctx, op.outputs["0"][0])})
    )


@paddle_op("pd_op.array_write_")
def _array_write(ctx: ImportContext, op: SourceOp) -> None:
    array = ctx.input(op, 0)
    out = ctx.emit("array_write", [array, ctx.input(op, 1), ctx.input(op, 2)])
    ctx.bind(op, 0, out)
    ctx.env[op.inputs["0"][0]] = out  # in place: later reads of the array see the write


@paddle_op("pd_op.array_read")
def _array_read(ctx: ImportContext, op: SourceOp) -> None:
    dtype = _out_dtype(ctx, op)
    ctx.bind(op, 0, ctx.emit("array_read", [ctx.input(op, 0), ctx.input(op, 1)], {"dtype": dtype}))


@paddle_op("pd_op.array_length")
def _array_length(ctx: ImportContext, op: SourceOp) -> None:
    ctx.bind(op, 0, ctx.emit("array_length", [ctx.input(op, 0)]))


@paddle_op("pd_op.array_to_tensor")
def _array_to_tensor(ctx: ImportContext, op: SourceOp) -> None:
    attrs = {
        "axis": int(op.attrs.get("axis", 0)),
        "use_stack": bool(op.attrs.get("use_stack", False)),
        "dtype": _out_dtype(ctx, op),
    }
    out, index = ctx.emit("array_to_tensor", [ctx.input(op, 0)], attrs)
    ctx.bind(op, 0, out)
    ctx.bind(op, 1, index)


def _import_body(
    ctx: ImportContext, block: SourceBlock, init: list[Value], shapes: list[Shape | None], name: str
) -> tuple[Graph, BodyContext, list[Value], list[str]]:
    """Import the body once with the carried loop vars' shapes ``shapes``.

    Returns (body graph without outputs set, its context, the yielded values, written captures).
    """
    body = Graph(f"{name}.body")
    bctx = BodyContext(ctx, body)
    for arg, value, shape in zip(block.args, init, shapes, strict=True):
        bctx.env[arg] = body.add_input(arg, shape, value.dtype)
    terminator = block.ops[-1] if block.ops else None
    if terminator is None or terminator.type != "cf.yield":
        raise ModelFormatError(f"{ctx.where()}: the loop body does not end with cf.yield")
    import_ops(bctx, block.ops)
    bctx.op = terminator
    yielded = [bctx.input(terminator, i) for i in range(len(terminator.inputs))]
    written = [n for n, (_, inner) in bctx.captured.items() if bctx.env[n] is not inner]
    return body, bctx, yielded, written


@paddle_op("pd_op.while")
def _while(ctx: ImportContext, op: SourceOp) -> None:
    cond = ctx.input(op, 0)
    init = [ctx.input(op, i) for i in range(1, len(op.inputs))]
    blocks = op.attrs.get("__blocks__") or []
    if len(blocks) != 1 or len(blocks[0].args) != len(init):
        raise ModelFormatError(
            f"{ctx.where()}: expected one body block with {len(init)} arguments (one per loop "
            f"variable), got {[len(b.args) for b in blocks]}"
        )
    block = blocks[0]
    name = ctx._first_output_name(op) or f"while{op.index}"
    shapes: list[Shape | None] = [v.shape for v in init]
    for _ in range(_MAX_SHAPE_ROUNDS):
        body, bctx, yielded, written = _import_body(ctx, block, init, shapes, name)
        if len(yielded) != len(init) + 1:
            raise ModelFormatError(
                f"{ctx.where()}: the body yields {len(yielded)} values, expected the condition "
                f"and {len(init)} loop variables"
            )
        stable = [
            s if s == y.shape else merge_shapes(s, y.shape)
            for s, y in zip(shapes, yielded[1:], strict=True)
        ]
        if stable == shapes:
            break
        shapes = stable  # a loop var changes shape across iterations: import again, widened
    else:
        raise ModelFormatError(f"{ctx.where()}: loop variable shapes do not settle")
    ctx.op = op
    carried_caps = [bctx.captured[n] for n in written]
    invariant = [pair for n, pair in bctx.captured.items() if n not in written]
    args = body.inputs[: len(init)]
    body.inputs = args + [inner for _, inner in carried_caps] + [inner for _, inner in invariant]
    body.outputs = yielded + [bctx.env[n] for n in written]
    body.meta["output_names"] = [v.name for v in body.outputs]
    inputs = [cond, *init, *(outer for outer, _ in carried_caps), *(o for o, _ in invariant)]
    n_carried = len(init) + len(written)
    outs = ctx.emit(
        "while_loop", inputs, {"body": body, "num_carried": n_carried}, outputs=n_carried
    )
    outs = outs if isinstance(outs, list) else [outs]
    for k in range(len(init)):
        ctx.bind(op, k, outs[k])
    for n, out in zip(written, outs[len(init) :], strict=True):
        ctx.env[n] = out  # the array the loop wrote, as the enclosing scope now sees it
