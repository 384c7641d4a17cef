"""Tensor-family canonical ops vs Paddle's eager ops on CPU (exact: these ops only move data)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fluidrt.ir.graph import Graph
from fluidrt.ops.infer import infer_node
from fluidrt.ops.registry import get_op

paddle = pytest.importorskip("paddle")
F = paddle.nn.functional

RNG = np.random.default_rng(0)


def run(op: str, *inputs, **attrs):
    """Run a canonical op on NumPy/torch inputs; returns NumPy output(s)."""
    opdef = get_op(op)
    args = [None if x is None else torch.as_tensor(np.asarray(x)) for x in inputs]
    out = opdef.impl(*args, **opdef.resolve_attrs(attrs))
    if isinstance(out, (tuple, list)):
        return [o.numpy() for o in out]
    return out.numpy()


def same(actual, expected) -> None:
    """Shape, dtype, then exact values."""
    if isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected, strict=True):
            same(a, e)
        return
    e = expected.numpy() if hasattr(expected, "numpy") else np.asarray(expected)
    a = np.asarray(actual)
    assert a.shape == e.shape, f"shape {a.shape} != {e.shape}"
    assert a.dtype == e.dtype, f"dtype {a.dtype} != {e.dtype}"
    np.testing.assert_array_equal(a, e)


def rand(*shape, dtype="float32") -> np.ndarray:
    if np.dtype(dtype).kind in "iu":
        return RNG.integers(-5, 5, size=shape).astype(dtype)
    return RNG.standard_normal(shape).astype(dtype)


def P(x: np.ndarray):
    return paddle.to_tensor(x)


# ---- layout -------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [[0, -1], [-1, 4], [4, 0, 2], [2, 3, 2, 2], [24], [-1]])
def test_reshape(shape):
    x = rand(2, 3, 4)
    same(run("reshape", x, shape=shape), paddle.reshape(P(x), shape))
    shape_t = np.asarray(shape, dtype="int64")
    same(run("reshape", x, shape_t), paddle.reshape(P(x), shape))


def test_identity():
    x = rand(2, 3)
    same(run("identity", x), x)


@pytest.mark.parametrize("start,stop", [(1, -1), (0, 1), (-2, -1), (0, -1), (2, 2)])
def test_flatten(start, stop):
    x = rand(2, 3, 4, 5)
    same(run("flatten", x, start=start, stop=stop), paddle.flatten(P(x), start, stop))


@pytest.mark.parametrize("perm", [[1, 0, 2], [2, 0, 1], [-1, 0, -2], None])
def test_transpose(perm):
    x = rand(2, 3, 4)
    expected = paddle.transpose(P(x), perm if perm is not None else [2, 1, 0])
    same(run("transpose", x, perm=perm), expected)


@pytest.mark.parametrize("axes", [[], [0, 2], [-1], [1], [1, 3]])
def test_squeeze(axes):
    x = rand(1, 3, 1, 1)
    same(run("squeeze", x, axes=axes), paddle.squeeze(P(x), axes or None))


@pytest.mark.parametrize("axes", [[0, -1], [1, 0, -1], [2], [-1, -1], [1, 3], [2, 2], [-1, 0]])
def test_unsqueeze(axes):
    x = rand(2, 3)
    same(run("unsqueeze", x, axes=axes), paddle.unsqueeze(P(x), axes))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat(axis):
    xs = [rand(2, 3, 4) for _ in range(3)]
    same(run("concat", *xs, axis=axis), paddle.concat([P(x) for x in xs], axis=axis))


def test_concat_promotes_int_dtypes():
    a, b = np.array([1, 2], dtype="int32"), np.array([3], dtype="int64")
    same(run("concat", a, b, axis=0), np.array([1, 2, 3], dtype="int64"))


@pytest.mark.parametrize(
    "sections,num,axis", [([2, -1, 1], 0, 1), ([1, 5], 0, -1), ([], 3, 1), ([-1, 2], 0, 0)]
)
def test_split(sections, num, axis):
    x = rand(4, 6)
    expected = paddle.split(P(x), sections or num, axis=axis)
    same(run("split", x, sections=sections, num=num, axis=axis), expected)
    assert get_op("split").outputs_for({"sections": sections, "num": num}) == len(expected)


@pytest.mark.parametrize("axis", [0, 1, -1, 2])
def test_stack_unstack(axis):
    xs = [rand(2, 3) for _ in range(4)]
    stacked = paddle.stack([P(x) for x in xs], axis=axis)
    same(run("stack", *xs, axis=axis), stacked)
    s = stacked.numpy()
    same(run("unstack", s, axis=axis, num=4), paddle.unstack(stacked, axis=axis))


@pytest.mark.parametrize("axes", [[0], [0, -1], [1, 2]])
def test_flip(axes):
    x = rand(2, 3, 4)
    same(run("flip", x, axes=axes), paddle.flip(P(x), axes))


@pytest.mark.parametrize("shifts,axes", [([1], [0]), ([1, -2], [0, -1]), ([5], []), ([-7], [])])
def test_roll(shifts, axes):
    x = rand(2, 3, 4)
    same(run("roll", x, shifts=shifts, axes=axes), paddle.roll(P(x), shifts, axes or None))


# ---- slicing and indexing -----------------------------------------------------------------

SLICES = [
    # axes, starts, ends, steps
    ([1], [1], [-1], None),
    ([0, 2], [0, -3], [1, 100], None),
    ([1], [-100], [2], None),
    ([2], [10], [20], None),  # clamped to an empty slice
    ([1], [2], [1], None),  # start after end: empty
    ([2], [0], [2**31 - 1], [2]),
    ([1, 2], [2**31 - 1, 1], [-(2**31), 4], [-1, 2]),  # x[:, ::-1, 1:4:2]
    ([2], [-1], [-100], [-2]),
    ([2], [4], [0], [-3]),
    ([2], [100], [-100], [-3]),
    ([0, 1], [-1, 1], [-3, 0], [-1, -1]),
]


@pytest.mark.parametrize("axes,starts,ends,steps", SLICES)
def test_slice(axes, starts, ends, steps):
    x = rand(3, 4, 5)
    st = steps or [1] * len(axes)
    expected = paddle.strided_slice(P(x), axes, starts, ends, st)
    same(run("slice", x, axes=axes, starts=starts, ends=ends, steps=steps), expected)
    # the same from value inputs (starts, ends, axes, steps)
    ints = [np.asarray(v, dtype="int64") for v in (starts, ends, axes, st)]
    same(run("slice", x, *ints, starts=[], ends=[]), expected)


def test_slice_matches_numpy_and_decreases():
    x = rand(3, 4, 5)
    out = run("slice", x, axes=[0, 2], starts=[1, -2], ends=[2, -1], decrease_axes=[0, 2])
    same(out, x[1, :, -2])
    out = run("slice", x, axes=[0, 1, 2], starts=[2, 3, 4], ends=[3, 4, 5], decrease_axes=[0, 1, 2])
    same(out, np.asarray(x[2, 3, 4]))  # all dims decreased: 0-d
    same(run("slice", x, axes=None, starts=[1], ends=[3]), x[1:3])
    sliced = paddle.slice(P(x), axes=[1], starts=[-3], ends=[3])
    same(run("slice", x, axes=[1], starts=[-3], ends=[3]), sliced)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather(axis):
    x = rand(3, 4, 5)
    idx = np.array([2, 0, 2, -1], dtype="int64")
    same(run("gather", x, idx, axis=axis), paddle.gather(P(x), P(idx), axis=axis))
    scalar = np.array(1, dtype="int32")
    same(run("gather", x, scalar, axis=axis), paddle.gather(P(x), P(scalar), axis=axis))


def test_gather_multi_dim_index_is_onnx_gather():
    x = rand(3, 4, 5)
    idx = np.array([[0, 2], [3, 1], [1, 1]], dtype="int64")
    same(run("gather", x, idx, axis=1), np.take(x, idx, axis=1))


def test_index_select_is_gather():
    x = rand(3, 4)
    idx = np.array([3, 0], dtype="int64")
    same(run("gather", x, idx, axis=-1), paddle.index_select(P(x), P(idx), axis=-1))


@pytest.mark.parametrize(
    "index", [[[0, 1], [2, -1]], [[1]], [[[0, 1, 2]], [[2, 3, 4]]], [[2, 1, 0], [0, 0, 0]]]
)
def test_gather_nd(index):
    x = rand(3, 4, 5)
    idx = np.asarray(index, dtype="int64")
    same(run("gather_nd", x, idx), paddle.gather_nd(P(x), P(idx)))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_take_along_axis(axis):
    x = rand(3, 4, 5)
    shape = [3, 4, 5]
    shape[axis] = 6
    idx = RNG.integers(-x.shape[axis], x.shape[axis], size=shape).astype("int64")
    expected = paddle.take_along_axis(P(x), P(idx), axis, broadcast=False)
    same(run("take_along_axis", x, idx, axis=axis), expected)


@pytest.mark.parametrize("overwrite,index", [(True, [3, 1]), (False, [1, 3, 1])])
def test_scatter(overwrite, index):
    x = rand(5, 3)
    idx = np.asarray(index, dtype="int64")
    upd = rand(len(index), 3)
    expected = paddle.scatter(P(x), P(idx), P(upd), overwrite=overwrite)
    same(run("scatter", x, idx, upd, overwrite=overwrite), expected)


def test_scatter_nd_add():
    x = rand(4, 5, 6)
    idx = np.array([[1, 2], [3, 4], [1, 2]], dtype="int64")
    upd = rand(3, 6)
    same(run("scatter_nd_add", x, idx, upd), paddle.scatter_nd_add(P(x), P(idx), P(upd)))


@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_where(dtype):
    c, x, y = rand(3, 4) > 0, rand(3, 4, dtype=dtype), rand(1, 4, dtype=dtype)
    same(run("where", c, x, y), paddle.where(P(c), P(x), P(y)))


# ---- padding, broadcasting, repeating -----------------------------------------------------


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "circular"])
@pytest.mark.parametrize("lrtb", [[1, 2, 0, 1], [2, 0, 3, 1], [0, 0, 2, 2]])
def test_pad_modes_vs_paddle(mode, lrtb):
    x = rand(2, 3, 4, 5)
    left, right, top, bottom = lrtb
    pads = [0, 0, top, left, 0, 0, bottom, right]
    pmode = {"edge": "replicate"}.get(mode, mode)
    expected = F.pad(P(x), lrtb, mode=pmode, value=1.5)
    same(run("pad", x, pads=pads, mode=mode, value=1.5), expected)


def test_pad_constant_every_dim_vs_paddle():
    x = rand(2, 3, 4)
    expected = F.pad(P(x), [1, 0, 0, 2, 3, 1], value=-2.0)  # (begin, end) per dim, dim 0 first
    same(run("pad", x, pads=[1, 0, 3, 0, 2, 1], value=-2.0), expected)


@pytest.mark.parametrize(
    "mode,np_mode", [("reflect", "reflect"), ("edge", "edge"), ("circular", "wrap")]
)
def test_pad_leading_dims_vs_numpy(mode, np_mode):
    x = rand(3, 4, 2)
    out = run("pad", x, pads=[2, 1, 0, 1, 3, 0], mode=mode)
    same(out, np.pad(x, [(2, 1), (1, 3), (0, 0)], mode=np_mode))


def test_pad_negative_crops():
    x = rand(3, 4, 5)
    same(run("pad", x, pads=[0, -1, 2, 0, 1, -2]), np.pad(x, [(0, 0), (0, 1), (2, 0)])[:, 1:, :-2])
    same(
        run("pad", x, pads=[0, -1, 0, 0, 0, 1], mode="edge"),
        np.pad(x[:, 1:], [(0, 0)] * 2 + [(0, 1)], "edge"),
    )


@pytest.mark.parametrize(
    "in_shape,shape",
    [
        ([3, 1], [2, -1, 4]),
        ([1, 4], [3, 4]),
        ([2, 1, 3], [-1, 5, -1]),
        ([3], [2, 2, 3]),
        ([1], [1]),
    ],
)
def test_expand(in_shape, shape):
    x = rand(*in_shape)
    same(run("expand", x, shape=shape), paddle.expand(P(x), shape))
    same(run("expand", x, np.asarray(shape, dtype="int32")), paddle.expand(P(x), shape))


def test_expand_onnx_bidirectional():
    x = rand(3, 1)
    same(run("expand", x, shape=[1, 4]), np.broadcast_to(x, (3, 4)))


def test_expand_as():
    x, y = rand(1, 4), rand(2, 3, 4)
    same(run("expand_as", x, y), paddle.expand_as(P(x), P(y)))


@pytest.mark.parametrize("repeats", [[2, 1, 3], [2], [1, 1, 2, 2]])
def test_tile(repeats):
    x = rand(2, 3, 4)
    same(run("tile", x, repeats=repeats), paddle.tile(P(x), repeats))
    same(run("tile", x, np.asarray(repeats)), paddle.tile(P(x), repeats))


@pytest.mark.parametrize("diagonal", [0, 1, -1])
def test_tril_triu(diagonal):
    x = rand(2, 4, 5)
    same(run("tril", x, diagonal=diagonal), paddle.tril(P(x), diagonal))
    same(run("triu", x, diagonal=diagonal), paddle.triu(P(x), diagonal))


# ---- made from shapes and values ----------------------------------------------------------


def test_shape_and_fill():
    x = rand(2, 3, 4)
    same(run("shape", x), np.array([2, 3, 4], dtype="int64"))
    same(run("shape", x, dtype="int32"), np.array([2, 3, 4], dtype="int32"))
    shape = np.array([2, 3], dtype="int32")
    same(run("fill", shape, value=1.5, dtype="float32"), paddle.full([2, 3], 1.5, "float32"))
    same(run("fill", shape, value=7, dtype="int64"), paddle.full([2, 3], 7, "int64"))


def test_numel():
    x = rand(2, 3, 4)
    same(run("numel", x), paddle.numel(P(x)))
    same(run("numel", np.zeros((0, 3), "float32"), dtype="int32"), np.array(0, dtype="int32"))


def test_full_like():
    x = rand(2, 3)
    same(run("full_like", x, value=2.0), paddle.full_like(P(x), 2.0))
    same(run("full_like", x, value=1, dtype="int64"), paddle.ones_like(P(x), dtype="int64"))
    same(run("full_like", x, np.array([3.0], dtype="float32")), paddle.full_like(P(x), 3.0))


@pytest.mark.parametrize(
    "start,end,step,dtype",
    [(0, 5, 1, "int64"), (2, 11, 3, "int32"), (5, 0, -2, "int64"), (0.0, 1.0, 0.25, "float32")],
)
def test_arange(start, end, step, dtype):
    expected = paddle.arange(start, end, step, dtype=dtype)
    same(run("arange", start=start, end=end, step=step, dtype=dtype), expected)
    ins = [np.array([v]) for v in (start, end, step)]
    same(run("arange", *ins, dtype=dtype), expected)


def test_one_hot():
    x = np.array([[0, 3], [4, 1]], dtype="int64")
    same(run("one_hot", x, depth=5), F.one_hot(P(x), 5))
    same(run("one_hot", x, np.array([6], dtype="int32")), F.one_hot(P(x), 6))
    out_of_range = run("one_hot", np.array([7, 1]), depth=3)
    same(out_of_range, np.array([[0, 0, 0], [0, 1, 0]], dtype="float32"))
    same(run("one_hot", x, depth=5, axis=0), np.moveaxis(F.one_hot(P(x), 5).numpy(), -1, 0))


# ---- shape inference ----------------------------------------------------------------------


def _infer(graph: Graph, op: str, inputs, **attrs):
    opdef = get_op(op)
    node = graph.add_node(op, inputs, attrs, outputs=opdef.outputs_for(opdef.resolve_attrs(attrs)))
    infer_node(node)
    return node.outputs[0] if len(node.outputs) == 1 else node.outputs


def test_meta_inference_keeps_the_batch_symbolic():
    g = Graph()
    x = g.add_input("x", ("N", 3, 4, 5), "float32")
    assert _infer(g, "reshape", [x], shape=[0, -1]).shape == ("N", 60)
    assert _infer(g, "reshape", [x], shape=[-1, 20]).shape == ("N*3", 20)
    assert _infer(g, "flatten", [x], start=0, stop=1).shape == ("N*3", 4, 5)
    assert _infer(g, "flatten", [x], start=1).shape == ("N", 60)
    t = _infer(g, "transpose", [x], perm=[2, 0, 3, 1])
    assert t.shape == (4, "N", 5, 3)
    assert _infer(g, "concat", [x, x], axis=0).shape == ("N*2", 3, 4, 5)
    assert _infer(g, "concat", [x, x], axis=-1).shape == ("N", 3, 4, 10)
    assert _infer(g, "unsqueeze", [x], axes=[0, -1]).shape == (1, "N", 3, 4, 5, 1)
    assert _infer(
        g,
        "expand",
        [_infer(g, "slice", [x], axes=[1], starts=[0], ends=[1])],
        shape=[-1, 7, -1, -1],
    ).shape == ("N", 7, 4, 5)
    s = _infer(g, "shape", [x])
    assert s.shape == (4,) and s.dtype == "int64"
    parts = _infer(g, "split", [x], axis=2, sections=[1, -1])
    assert [p.shape for p in parts] == [("N", 3, 1, 5), ("N", 3, 3, 5)]


def test_meta_inference_of_symbol_dependent_dims_is_unknown():
    g = Graph()
    x = g.add_input("x", ("N", 6), "float32")
    assert _infer(g, "slice", [x], axes=[0], starts=[1], ends=[2**31 - 1]).shape == ("?", 6)
    assert _infer(g, "slice", [x], axes=[0], starts=[0], ends=[2]).shape == (2, 6)
    assert _infer(g, "pad", [x], pads=[1, 1, 0, 0]).shape == ("?", 7)


def test_meta_inference_with_runtime_shape_values_is_unknown():
    g = Graph()
    x = g.add_input("x", ("N", 6), "float32")
    s = _infer(g, "shape", [x])
    assert _infer(g, "reshape", [x, s]).shape is None
    const = g.add_const("target", np.array([3, -1], dtype="int64"))
    assert _infer(g, "reshape", [x, const]).shape == (3, "N*2")
