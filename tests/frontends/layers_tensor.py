"""Small Paddle layers exercising the tensor-family ops, for ``test_tensor_import.py``.

Each ``CASES`` entry is ``name -> (function, input specs, tolerance[, options])``; the function
is the layer's forward body (or a layer class). A module-level factory ``f_<name>`` is generated
per case for ``export_layers``. Specs are ``(shape, dtype)`` with -1 for dynamic dims (a dynamic
dim 0 is the batch). Tolerance 0.0 means bit-exact (the op only moves data).

Option ``onednn=False`` runs the Paddle Inference reference without oneDNN, whose kernels are
wrong in Paddle 3.3 for: ``split`` with a -1 section before other sections (the next offset adds
-1), ``pad`` on every dim (heap corruption: a crash or a hang), ``slice`` bounds past the dim (an
exception) and legacy ``expand_v2`` with -1 in its shape (an exception).
"""

from __future__ import annotations

import paddle
import paddle.nn.functional as F
from paddle.static import InputSpec


class FnLayer(paddle.nn.Layer):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def _pir() -> bool:
    """True when exporting PIR (the Python API then emits ``pd_op`` ops directly)."""
    return paddle.in_dynamic_mode() or paddle.framework.in_pir_mode()


def _legacy_op(op_type: str, inputs: dict, attrs: dict, dtype="float32", out_slot="Out", extra=()):
    """Append a raw ProgramDesc op (legacy export only) for ops the 3.x API no longer emits."""
    from paddle.base.layer_helper import LayerHelper

    helper = LayerHelper(op_type)
    out = helper.create_variable_for_type_inference(dtype)
    outputs = {out_slot: out}
    for slot in extra:
        outputs[slot] = helper.create_variable_for_type_inference(dtype)
    helper.append_op(type=op_type, inputs=inputs, outputs=outputs, attrs=attrs)
    return out


def _matmul(a, b, transpose_y: bool = False):
    """``paddle.matmul``; in legacy export a raw ``matmul_v2`` (the 3.3 API cannot emit it)."""
    if _pir():
        return paddle.matmul(a, b, transpose_y=transpose_y)
    return _legacy_op("matmul_v2", {"X": a, "Y": b}, {"trans_x": False, "trans_y": transpose_y})


class ClsTokenLayer(paddle.nn.Layer):
    """ViT stem: prepend a class token expanded to the run-time batch, add a position embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.cls = self.create_parameter([1, 1, 8])
        self.pos = self.create_parameter([1, 6, 8])

    def forward(self, x):
        b = paddle.shape(x)[0]
        tokens = paddle.concat([self.cls.expand([b, -1, -1]), x], axis=1)
        return tokens + self.pos


class AttentionLayer(paddle.nn.Layer):
    """ViT attention: qkv reshape with a run-time batch, transposes, unbind by indexing."""

    def __init__(self, dim: int = 24, heads: int = 3) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = paddle.nn.Linear(dim, dim * 3)
        self.proj = paddle.nn.Linear(dim, dim)

    def forward(self, x):
        n, c = x.shape[1], x.shape[2]
        qkv = self.qkv(x).reshape([-1, n, 3, self.heads, c // self.heads])
        qkv = qkv.transpose([2, 0, 3, 1, 4])
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = F.softmax(_matmul(q, k.transpose([0, 1, 3, 2])) * 0.25, axis=-1)
        out = _matmul(attn, v).transpose([0, 2, 1, 3]).reshape([-1, n, c])
        return self.proj(out)


class AttentionShapeLayer(paddle.nn.Layer):
    """The same with ``B, N, C = x.shape`` (run-time B and N) and a reshape built from them."""

    def __init__(self, dim: int = 24, heads: int = 3) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = paddle.nn.Linear(dim, dim * 3)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape([b, n, 3, self.heads, c // self.heads])
        q, k, v = qkv.transpose([2, 0, 3, 1, 4]).unbind(0)
        attn = F.softmax(_matmul(q, k, transpose_y=True), axis=-1)
        return _matmul(attn, v).transpose([0, 2, 1, 3]).reshape([b, n, c])


# ---- forward bodies -------------------------------------------------------------------------


def reshape_static(x):
    return x.reshape([-1, 4, 3]), x.reshape([0, 2, -1])


def reshape_dyn_batch(x):
    return x.reshape([paddle.shape(x)[0], 3, 4])


def reshape_shape_tensor(x):
    y = x.reshape([-1, 3, 4])
    return x.reshape(paddle.shape(y))


def reshape_vit(x):
    return x.reshape([-1, 5, 3, 2, 4]).transpose([2, 0, 3, 1, 4])


def flatten(x):
    return paddle.flatten(x, 1, 2), paddle.flatten(x), paddle.flatten(x, -2, -1)


def transpose(x):
    return paddle.transpose(x, [1, 0, 3, 2]), x.transpose([0, 2, 3, 1])


def squeeze(x):
    return paddle.squeeze(x, [1, 2]), paddle.squeeze(x), paddle.squeeze(x, -1)


def unsqueeze(x):
    return paddle.unsqueeze(x, [0, -1]), paddle.unsqueeze(x, 1), x[:, None, :, None]


def unsqueeze_tensor_axes(x):
    return paddle.unsqueeze(x, paddle.to_tensor([1, 3]))


def concat(x):
    return paddle.concat([x, x[:, ::-1], x[:, :1]], axis=-1), paddle.concat([x, x], axis=0)


def concat_axis_tensor(x):
    return paddle.concat([x, x[:, 1:]], axis=paddle.to_tensor(1))


def split(x):
    a, b, c = paddle.split(x, [2, -1, 1], axis=1)
    d, e = paddle.split(x, [4, -1], axis=1)
    f, g, h = paddle.split(x, 3, axis=-1)
    return a, b, c, e, f, h


def split_axis_tensor(x):
    a, b = paddle.split(x, 2, axis=paddle.to_tensor(1))
    return a, b


def unstack(x):
    a, b, c = paddle.unstack(x, axis=1)
    d, e = paddle.unbind(x, axis=-1)
    return a, c, e


def stack(x):
    return paddle.stack([x, x[:, ::-1]], axis=1), paddle.stack([x, x], axis=-1)


def slice_basic(x):
    return x[:, 1:-1], x[:, 0], x[..., -3:], x[:, 2:3, 1]


def slice_clamped(x):
    return x[:, -100:2, 3:100], x[:, 4:100]


def slice_steps(x):
    return x[:, ::2], x[:, ::-1], x[:, 4:0:-2, ::-3], x[:, ::-1, 1::3]


def strided_slice(x):
    a = paddle.strided_slice(x, [1, 2], [0, 1], [-1, 6], [1, 2])
    b = paddle.strided_slice(x, [2], [-1], [-100], [-2])
    return a, b


def slice_dyn_end(x):
    return x[:, : paddle.shape(x)[0]], x[paddle.shape(x)[0] - 1 :]


def slice_tensor_starts(x):
    return paddle.slice(x, axes=[1], starts=paddle.to_tensor([1]), ends=[4])


def shape_out(x):
    return paddle.shape(x)


def shape_arith(x):
    s = paddle.shape(x)
    return x.reshape([s[0] * s[1], -1]), paddle.arange(s[0]), paddle.arange(1, s[1], 2)


def gather(x):
    a = paddle.gather(x, paddle.to_tensor([2, 0, 2]), axis=1)
    b = paddle.gather(x, paddle.to_tensor([[1], [0]]), axis=-1)
    c = paddle.gather(x, paddle.to_tensor(1), axis=1)
    return a, b, c


def gather_axis_tensor(x):
    return paddle.gather(x, paddle.to_tensor([3, 1]), axis=paddle.to_tensor(1))


def index_select(x):
    return paddle.index_select(x, paddle.to_tensor([2, 0]), axis=-1)


def gather_nd(x):
    return paddle.gather_nd(x, paddle.to_tensor([[0, 1], [2, -1]])), paddle.gather_nd(
        x, paddle.to_tensor([[1]])
    )


def take_along_axis(x):
    idx = paddle.to_tensor([[0, 3], [1, 2], [3, 3]])
    return paddle.take_along_axis(x, idx, 1)


def pad_modes(x):
    return (
        F.pad(x, [1, 2, 0, 1], mode="constant", value=1.5),
        F.pad(x, [1, 2, 0, 1], mode="reflect"),
        F.pad(x, [2, 1, 1, 0], mode="replicate"),
        F.pad(x, [1, 2, 2, 1], mode="circular"),
    )


def pad_nhwc(x):
    return F.pad(x, [1, 0, 2, 1], mode="reflect", data_format="NHWC")


def pad_3d_input(x):
    return F.pad(x, [1, 2], value=3.0, data_format="NCL"), F.pad(x, [2, 1], mode="replicate")


def pad_all_dims(x):
    return F.pad(x, [0, 1, 1, 2, 0, 0, 2, 1], value=-1.0)


def expand(x):
    return paddle.expand(x, [2, -1, 3]), paddle.broadcast_to(x[:1], [4, 2, 3])


def expand_as(x):
    if _pir():
        return paddle.expand_as(x[:, :1], x)
    return _legacy_op("expand_as_v2", {"X": x[:, :1], "Y": x}, {"target_shape": [-1, 4]})


def tile(x):
    return paddle.tile(x, [2, 1, 3]), paddle.tile(x, [2])


def arange_where(x):
    r = paddle.arange(0, 4, 1, dtype="float32")
    return x + r, paddle.where(x > 0, x, r), paddle.arange(0.5, 2.0, 0.3)


def one_hot(x):
    return F.one_hot(x, 5)


def flip_roll(x):
    if _pir():
        return paddle.flip(x, [0, -1]), paddle.roll(x, [1, -2], [0, 1]), paddle.roll(x, 3)
    a = _legacy_op("roll", {"X": x}, {"shifts": [1, -2], "axis": [0, 1]})
    b = _legacy_op("roll", {"X": x}, {"shifts": [3], "axis": []})
    return paddle.flip(x, [0, -1]), a, b


def full_like(x):
    return paddle.full_like(x, 2.0), paddle.zeros_like(x), paddle.ones_like(x, dtype="int64")


def full_dyn_numel(x):
    b = paddle.shape(x)[0]
    return paddle.full([b, 3], 1.5), paddle.zeros([b, 1, 2], dtype="int64"), paddle.numel(x)


def tril_triu(x):
    if _pir():
        return paddle.tril(x), paddle.triu(x, 1), paddle.tril(x, -1)
    return tuple(
        _legacy_op("tril_triu", {"X": x}, {"diagonal": d, "lower": low})
        for d, low in ((0, True), (1, False), (-1, True))
    )


def legacy_v1_ops(x):
    """Ops of old ProgramDesc models that Paddle 3.3 still runs: v1 reshape and transpose,
    flatten2, v1 expand (= tile), fill_constant_batch_size_like."""
    if _pir():
        raise RuntimeError("legacy-only ops")
    r = _legacy_op("reshape", {"X": x}, {"shape": [0, 5, -1]})
    t = _legacy_op("transpose", {"X": r}, {"axis": [0, 2, 1]})
    f2 = _legacy_op("flatten2", {"X": x}, {"axis": 0}, extra=("XShape",))
    f3 = _legacy_op("flatten2", {"X": x}, {"axis": 2}, extra=("XShape",))
    e = _legacy_op("expand", {"X": x}, {"expand_times": [1, 2, 1, 3]})
    fb = _legacy_op(
        "fill_constant_batch_size_like",
        {"Input": x},
        {"shape": [7, -1, 2], "value": 1.5, "dtype": 5, "input_dim_idx": 0, "output_dim_idx": 1},
    )
    return r, t, f2, f3, e, fb


def scatter(x):
    updates = x[:2, ::-1]
    return paddle.scatter(x, paddle.to_tensor([3, 1]), updates)


def _f32(*shape):
    return ([*shape], "float32")


# name -> (forward body or layer class, specs, tolerance[, options])
CASES = {
    "reshape_static": (reshape_static, [_f32(-1, 12)], 0.0),
    "reshape_dyn_batch": (reshape_dyn_batch, [_f32(-1, 12)], 0.0),
    "reshape_shape_tensor": (reshape_shape_tensor, [_f32(-1, 12)], 0.0),
    "reshape_vit": (reshape_vit, [_f32(-1, 5, 24)], 0.0),
    "flatten": (flatten, [_f32(-1, 2, 3, 4)], 0.0),
    "transpose": (transpose, [_f32(-1, 3, 4, 5)], 0.0),
    "squeeze": (squeeze, [_f32(-1, 1, 3, 1)], 0.0),
    "unsqueeze": (unsqueeze, [_f32(-1, 3)], 0.0),
    "unsqueeze_tensor_axes": (unsqueeze_tensor_axes, [_f32(-1, 3)], 0.0),
    "concat": (concat, [_f32(-1, 3)], 0.0),
    "concat_axis_tensor": (concat_axis_tensor, [_f32(-1, 3)], 0.0),
    "split": (split, [_f32(-1, 6)], 0.0, {"onednn": False}),
    "split_axis_tensor": (split_axis_tensor, [_f32(-1, 6)], 0.0),
    "unstack": (unstack, [_f32(-1, 3, 2)], 0.0),
    "stack": (stack, [_f32(-1, 4)], 0.0),
    "slice_basic": (slice_basic, [_f32(-1, 6, 8)], 0.0),
    "slice_clamped": (slice_clamped, [_f32(-1, 6, 8)], 0.0, {"onednn": False}),
    "slice_steps": (slice_steps, [_f32(-1, 6, 8)], 0.0),
    "strided_slice": (strided_slice, [_f32(-1, 6, 8)], 0.0),
    "slice_dyn_end": (slice_dyn_end, [_f32(-1, 6)], 0.0),
    "slice_tensor_starts": (slice_tensor_starts, [_f32(-1, 6)], 0.0),
    "shape_out": (shape_out, [_f32(-1, 4)], 0.0),
    "shape_arith": (shape_arith, [_f32(-1, 4, 2)], 0.0),
    "gather": (gather, [_f32(-1, 4)], 0.0),
    "gather_axis_tensor": (gather_axis_tensor, [_f32(-1, 4)], 0.0),
    "index_select": (index_select, [_f32(-1, 2, 3)], 0.0),
    "gather_nd": (gather_nd, [_f32(3, 4, 5)], 0.0),
    "take_along_axis": (take_along_axis, [_f32(3, 4)], 0.0),
    "pad_modes": (pad_modes, [_f32(-1, 2, 5, 6)], 0.0),
    "pad_nhwc": (pad_nhwc, [_f32(-1, 5, 6, 2)], 0.0),
    "pad_3d_input": (pad_3d_input, [_f32(-1, 2, 5)], 0.0),
    "pad_all_dims": (pad_all_dims, [_f32(-1, 3, 4, 5)], 0.0, {"onednn": False}),
    "expand": (expand, [_f32(-1, 1)], 0.0, {"onednn": False}),
    "expand_as": (expand_as, [_f32(-1, 4)], 0.0),
    "tile": (tile, [_f32(-1, 4)], 0.0),
    "arange_where": (arange_where, [_f32(-1, 4)], 1e-6),
    "one_hot": (one_hot, [([-1, 3], "int64")], 0.0),
    "flip_roll": (flip_roll, [_f32(-1, 4)], 0.0),
    "full_like": (full_like, [_f32(-1, 4)], 0.0),
    "full_dyn_numel": (full_dyn_numel, [_f32(-1, 4)], 0.0),
    "tril_triu": (tril_triu, [_f32(-1, 4, 4)], 0.0),
    "scatter": (scatter, [_f32(4, 3)], 0.0),
    "legacy_v1_ops": (legacy_v1_ops, [_f32(-1, 3, 4, 5)], 0.0),
    "cls_token": (ClsTokenLayer, [_f32(-1, 5, 8)], 1e-6),
    "vit_attention": (AttentionLayer, [_f32(-1, 5, 24)], 1e-5),
    "vit_attention_shape": (AttentionShapeLayer, [_f32(-1, -1, 24)], 1e-5),
}


def _factory(name: str):
    body, specs = CASES[name][:2]

    def make():
        layer = body() if isinstance(body, type) else FnLayer(body)
        return layer, [InputSpec(s, d, f"x{i}") for i, (s, d) in enumerate(specs)]

    make.__name__ = f"f_{name}"
    return make


for _name in CASES:
    globals()[f"f_{_name}"] = _factory(_name)
