"""Factories of small Paddle layers exercising the NN op family, for ``export_layers``.

Each factory returns ``(layer, [InputSpec, ...])``. ``INPUTS`` gives the test input shapes
(one tuple per feed). Layers that need ops the Python API no longer emits (``lrn``, ``mul``,
``fc``, v1 ``matmul`` and ``*_interp`` v1) append them with ``LayerHelper``, which only works in
legacy (ProgramDesc) mode; in PIR mode their export fails and the test is skipped.
"""

from __future__ import annotations

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn
from paddle.static import InputSpec


def _spec(*shape: int | None, name: str = "x") -> InputSpec:
    return InputSpec(list(shape), "float32", name)


class Apply(nn.Layer):
    """Runs a module-level function ``fn(self, x)``, with optional parameters on ``self``."""

    def __init__(self, fn, **params: np.ndarray) -> None:
        super().__init__()
        self.fn = fn
        for name, value in params.items():
            p = self.create_parameter(list(value.shape), dtype="float32")
            p.set_value(value.astype("float32"))
            setattr(self, name, p)

    def forward(self, x):
        return self.fn(self, x)


class Apply2(Apply):
    def forward(self, x, y):
        return self.fn(self, x, y)


def _rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def _pir() -> bool:
    """True in PIR and eager mode, where the Python API emits ``pd_op`` ops directly."""
    return paddle.in_dynamic_mode() or paddle.framework.in_pir_mode()


def _legacy_op(op_type: str, inputs: dict, attrs: dict, out_slot: str = "Out", extra=()):
    """Append a raw ProgramDesc op (legacy mode only)."""
    from paddle.base.layer_helper import LayerHelper

    helper = LayerHelper(op_type)
    out = helper.create_variable_for_type_inference("float32")
    outputs = {out_slot: out}
    for slot in extra:
        outputs[slot] = helper.create_variable_for_type_inference("float32")
    helper.append_op(type=op_type, inputs=inputs, outputs=outputs, attrs=attrs)
    return out


# ---- convolutions -------------------------------------------------------------------------
INPUTS: dict[str, list[tuple[int, ...]]] = {}


def _reg(name: str, *shapes: tuple[int, ...]) -> None:
    INPUTS[name] = list(shapes)


def conv2d_basic():
    return nn.Conv2D(3, 8, 3, padding=1), [_spec(None, 3, 10, 12)]


_reg("conv2d_basic", (2, 3, 10, 12))


def conv2d_strided_grouped():
    layer = nn.Conv2D(4, 6, (3, 2), stride=(2, 1), padding=[1, 2, 0, 1], dilation=(2, 1), groups=2)
    return layer, [_spec(None, 4, 11, 9)]


_reg("conv2d_strided_grouped", (2, 4, 11, 9))


def conv2d_same():
    layer = nn.Conv2D(3, 4, 3, stride=2, padding="SAME", dilation=2, bias_attr=False)
    return layer, [_spec(None, 3, 11, 8)]


_reg("conv2d_same", (1, 3, 11, 8))


def conv2d_valid_nhwc():
    # no bias: Paddle Inference cannot run the legacy export of an NHWC conv bias add
    layer = nn.Conv2D(
        3, 5, (2, 3), stride=(1, 2), padding="VALID", data_format="NHWC", bias_attr=False
    )
    return layer, [_spec(None, 9, 10, 3)]


_reg("conv2d_valid_nhwc", (2, 9, 10, 3))


def conv2d_dynamic_hw():
    return nn.Conv2D(3, 4, 3, stride=2, padding=1), [_spec(None, 3, None, None)]


_reg("conv2d_dynamic_hw", (1, 3, 13, 10))


def depthwise_conv2d():
    return nn.Conv2D(6, 6, 3, padding=1, groups=6), [_spec(None, 6, 8, 8)]


_reg("depthwise_conv2d", (2, 6, 8, 8))


def depthwise_conv2d_multiplier():
    return nn.Conv2D(4, 8, 3, stride=2, padding=(1, 0), groups=4), [_spec(None, 4, 9, 9)]


_reg("depthwise_conv2d_multiplier", (2, 4, 9, 9))


def conv1d():
    return nn.Conv1D(3, 4, 3, stride=2, padding=1), [_spec(None, 3, 15)]


_reg("conv1d", (2, 3, 15))


def conv3d():
    return nn.Conv3D(2, 4, 3, stride=(1, 2, 2), padding=1), [_spec(None, 2, 5, 7, 6)]


_reg("conv3d", (2, 2, 5, 7, 6))


def conv2d_transpose():
    layer = nn.Conv2DTranspose(4, 6, 3, stride=2, padding=1, output_padding=1)
    return layer, [_spec(None, 4, 5, 6)]


_reg("conv2d_transpose", (2, 4, 5, 6))


def conv2d_transpose_grouped():
    layer = nn.Conv2DTranspose(4, 6, (3, 2), stride=(2, 3), padding=[1, 0], dilation=2, groups=2)
    return layer, [_spec(None, 4, 5, 4)]


_reg("conv2d_transpose_grouped", (2, 4, 5, 4))


def _conv_t_output_size(self, x):
    return F.conv2d_transpose(x, self.w, stride=2, padding=1, output_size=[10, 12])


def conv2d_transpose_output_size():
    return Apply(_conv_t_output_size, w=_rand(3, 2, 3, 3)), [_spec(None, 3, 5, 6)]


_reg("conv2d_transpose_output_size", (2, 3, 5, 6))


def conv2d_transpose_same():
    layer = nn.Conv2DTranspose(3, 4, 3, stride=2, padding="SAME")
    return layer, [_spec(None, 3, 7, 8)]


_reg("conv2d_transpose_same", (1, 3, 7, 8))


def conv2d_transpose_nhwc():
    layer = nn.Conv2DTranspose(3, 4, 2, stride=2, data_format="NHWC")
    return layer, [_spec(None, 5, 6, 3)]


_reg("conv2d_transpose_nhwc", (2, 5, 6, 3))


def depthwise_conv2d_transpose():
    return nn.Conv2DTranspose(4, 4, 3, stride=2, padding=1, groups=4), [_spec(None, 4, 6, 5)]


_reg("depthwise_conv2d_transpose", (2, 4, 6, 5))


def conv2d_transpose_same_dynamic():
    layer = nn.Conv2DTranspose(3, 4, 3, stride=2, padding="SAME")
    return layer, [_spec(None, 3, None, None)]


_reg("conv2d_transpose_same_dynamic", (1, 3, 6, 4))


def conv1d_transpose():
    return nn.Conv1DTranspose(3, 2, 3, stride=2, padding=1, output_padding=1), [_spec(None, 3, 7)]


_reg("conv1d_transpose", (2, 3, 7))


def conv3d_transpose():
    layer = nn.Conv3DTranspose(2, 3, 3, stride=(1, 2, 2), padding=1)
    return layer, [_spec(None, 2, 3, 4, 5)]


_reg("conv3d_transpose", (2, 2, 3, 4, 5))


# ---- pooling ------------------------------------------------------------------------------
def _pool(**kw):
    mode = kw.pop("mode")
    fn = F.max_pool2d if mode == "max" else F.avg_pool2d

    def run(self, x):
        return fn(x, **kw)

    return run


def max_pool():
    return nn.MaxPool2D(3, stride=2, padding=1), [_spec(None, 3, 11, 10)]


_reg("max_pool", (2, 3, 11, 10))


def max_pool_ceil():
    return nn.MaxPool2D(3, stride=2, ceil_mode=True), [_spec(None, 3, 10, 8)]


_reg("max_pool_ceil", (2, 3, 10, 8))


def avg_pool_exclusive_ceil():
    layer = nn.AvgPool2D(3, stride=2, padding=1, ceil_mode=True, exclusive=True)
    return layer, [_spec(None, 3, 10, 9)]


_reg("avg_pool_exclusive_ceil", (2, 3, 10, 9))


def avg_pool_inclusive_ceil():
    layer = nn.AvgPool2D(3, stride=2, padding=1, ceil_mode=True, exclusive=False)
    return layer, [_spec(None, 3, 10, 9)]


_reg("avg_pool_inclusive_ceil", (2, 3, 10, 9))


def avg_pool_asym_pads():
    layer = nn.AvgPool2D((3, 2), stride=(2, 1), padding=[1, 0, 0, 1], exclusive=False)
    return layer, [_spec(None, 2, 9, 7)]


_reg("avg_pool_asym_pads", (2, 2, 9, 7))


def avg_pool_ceil_asym_inclusive():
    layer = nn.AvgPool2D(3, stride=2, padding=[0, 2, 1, 0], ceil_mode=True, exclusive=False)
    return layer, [_spec(None, 2, 7, 6)]


_reg("avg_pool_ceil_asym_inclusive", (2, 2, 7, 6))


def _unused_avg_pool_ceil_asym_exclusive():
    layer = nn.AvgPool2D(3, stride=2, padding=[0, 2, 1, 0], ceil_mode=True, exclusive=True)
    return layer, [_spec(None, 2, 7, 6)]


def max_pool_ceil_padded():
    return nn.MaxPool2D(2, stride=2, padding=1, ceil_mode=True), [_spec(None, 2, 7, 6)]


_reg("max_pool_ceil_padded", (2, 2, 7, 6))


def max_pool_same():
    return nn.MaxPool2D(3, stride=2, padding="SAME"), [_spec(None, 2, 9, 8)]


_reg("max_pool_same", (2, 2, 9, 8))


def avg_pool_same():
    return nn.AvgPool2D(3, stride=2, padding="SAME"), [_spec(None, 2, 9, 8)]


_reg("avg_pool_same", (2, 2, 9, 8))


def max_pool_nhwc():
    return nn.MaxPool2D(2, stride=2, data_format="NHWC"), [_spec(None, 8, 6, 3)]


_reg("max_pool_nhwc", (2, 8, 6, 3))


def global_avg_pool():
    return nn.AdaptiveAvgPool2D(1), [_spec(None, 4, 7, 5)]


_reg("global_avg_pool", (2, 4, 7, 5))


def adaptive_avg_pool():
    return nn.AdaptiveAvgPool2D((3, 4)), [_spec(None, 4, 7, 9)]


_reg("adaptive_avg_pool", (2, 4, 7, 9))


def adaptive_max_pool():
    return nn.AdaptiveMaxPool2D((3, 2)), [_spec(None, 4, 8, 7)]


_reg("adaptive_max_pool", (2, 4, 8, 7))


def _global_pool_attr(self, x):
    if _pir():
        return paddle._C_ops.pool2d(
            x, [1, 1], [1, 1], [0, 0], False, True, "NCHW", "max", True, False, "EXPLICIT"
        )
    attrs = {"pooling_type": "max", "ksize": [1, 1], "global_pooling": True}
    return _legacy_op("pool2d", {"X": x}, attrs)


def global_max_pool_attr():
    return Apply(_global_pool_attr), [_spec(None, 3, 6, 5)]


_reg("global_max_pool_attr", (2, 3, 6, 5))


def avg_pool3d():
    return nn.AvgPool3D(2, stride=2, padding=[0, 1, 1], ceil_mode=True), [_spec(None, 2, 5, 6, 6)]


_reg("avg_pool3d", (2, 2, 5, 6, 6))


def _max_pool_mask(self, x):
    out, _mask = F.max_pool2d(x, 3, 2, 1, return_mask=True)
    return out


def max_pool_with_mask():
    return Apply(_max_pool_mask), [_spec(None, 3, 9, 8)]


_reg("max_pool_with_mask", (2, 3, 9, 8))


def adaptive_avg_pool_nhwc():
    return nn.AdaptiveAvgPool2D((2, 3), data_format="NHWC"), [_spec(None, 7, 8, 3)]


_reg("adaptive_avg_pool_nhwc", (2, 7, 8, 3))


# ---- normalization ------------------------------------------------------------------------
def _bn(layer: nn.Layer, c: int) -> nn.Layer:
    layer._mean.set_value(_rand(c, seed=1))
    layer._variance.set_value(np.abs(_rand(c, seed=2)) + 0.5)
    layer.weight.set_value(_rand(c, seed=3))
    layer.bias.set_value(_rand(c, seed=4))
    return layer


def batch_norm2d():
    return _bn(nn.BatchNorm2D(4, epsilon=1e-3), 4), [_spec(None, 4, 5, 6)]


_reg("batch_norm2d", (2, 4, 5, 6))


def batch_norm1d():
    return _bn(nn.BatchNorm1D(6), 6), [_spec(None, 6)]


_reg("batch_norm1d", (3, 6))


def batch_norm_nhwc():
    return _bn(nn.BatchNorm2D(3, data_format="NHWC"), 3), [_spec(None, 4, 5, 3)]


_reg("batch_norm_nhwc", (2, 4, 5, 3))


def _rand_affine(layer: nn.Layer, shape) -> nn.Layer:
    if getattr(layer, "weight", None) is not None:
        layer.weight.set_value(_rand(*shape, seed=5))
    if getattr(layer, "bias", None) is not None:
        layer.bias.set_value(_rand(*shape, seed=6))
    return layer


def layer_norm_last():
    return _rand_affine(nn.LayerNorm(8), [8]), [_spec(None, 5, 8)]


_reg("layer_norm_last", (2, 5, 8))


def layer_norm_2d():
    layer = _rand_affine(nn.LayerNorm([4, 5], epsilon=1e-6), [20])
    return layer, [_spec(None, 3, 4, 5)]


_reg("layer_norm_2d", (2, 3, 4, 5))


def layer_norm_no_affine():
    return nn.LayerNorm(6, weight_attr=False, bias_attr=False), [_spec(None, 3, 6)]


_reg("layer_norm_no_affine", (2, 3, 6))


def group_norm():
    return _rand_affine(nn.GroupNorm(3, 6), [6]), [_spec(None, 6, 4, 5)]


_reg("group_norm", (2, 6, 4, 5))


def group_norm_nhwc():
    return _rand_affine(nn.GroupNorm(2, 4, data_format="NHWC"), [4]), [_spec(None, 3, 5, 4)]


_reg("group_norm_nhwc", (2, 3, 5, 4))


def instance_norm():
    return _rand_affine(nn.InstanceNorm2D(4), [4]), [_spec(None, 4, 5, 6)]


_reg("instance_norm", (2, 4, 5, 6))


def instance_norm_no_affine():
    layer = nn.InstanceNorm2D(3, weight_attr=False, bias_attr=False)
    return layer, [_spec(None, 3, 4, 4)]


_reg("instance_norm_no_affine", (2, 3, 4, 4))


def _lrn(self, x):
    attrs = {"n": 5, "k": 2.0, "alpha": 1e-2, "beta": 0.75, "data_format": "NCHW"}
    return _legacy_op("lrn", {"X": x}, attrs, extra=("MidOut",))


def lrn():
    return Apply(_lrn), [_spec(None, 7, 4, 5)]


_reg("lrn", (2, 7, 4, 5))


def _lrn3(self, x):
    attrs = {"n": 3, "k": 1.0, "alpha": 1e-1, "beta": 0.5, "data_format": "NCHW"}
    return _legacy_op("lrn", {"X": x}, attrs, extra=("MidOut",))


def lrn3():
    return Apply(_lrn3), [_spec(None, 6, 3, 4)]


_reg("lrn3", (2, 6, 3, 4))


# ---- matmul family ------------------------------------------------------------------------
def linear():
    return nn.Linear(6, 4), [_spec(None, 3, 6)]


_reg("linear", (2, 3, 6))


def _matmul(x, y, trans_x=False, trans_y=False):
    if _pir():
        return paddle.matmul(x, y, transpose_x=trans_x, transpose_y=trans_y)
    attrs = {"trans_x": trans_x, "trans_y": trans_y}
    return _legacy_op("matmul_v2", {"X": x, "Y": y}, attrs)


def _matmul_trans(self, x):
    return _matmul(x, self.w, True, True)


def matmul_trans():
    return Apply(_matmul_trans, w=_rand(5, 3)), [_spec(None, 2, 3, 4)]


_reg("matmul_trans", (2, 2, 3, 4))


def _matmul_bcast(self, x, y):
    return _matmul(x, y)


def matmul_broadcast():
    return Apply2(_matmul_bcast), [_spec(None, 1, 3, 4), _spec(2, 4, 5, name="y")]


_reg("matmul_broadcast", (3, 1, 3, 4), (2, 4, 5))


def _matmul_vec(self, x):
    return _matmul(x, self.v)


def matmul_vector():
    return Apply(_matmul_vec, v=_rand(4)), [_spec(None, 3, 4)]


_reg("matmul_vector", (2, 3, 4))


def _matmul_v1(self, x):
    attrs = {"transpose_X": False, "transpose_Y": True, "alpha": 0.5}
    return _legacy_op("matmul", {"X": x, "Y": self.w}, attrs)


def matmul_v1():
    return Apply(_matmul_v1, w=_rand(5, 4)), [_spec(None, 3, 4)]


_reg("matmul_v1", (2, 3, 4))


def _mul(self, x):
    attrs = {"x_num_col_dims": 2, "y_num_col_dims": 1}
    return _legacy_op("mul", {"X": x, "Y": self.w}, attrs)


def mul():
    return Apply(_mul, w=_rand(12, 5)), [_spec(None, 3, 3, 4)]


_reg("mul", (2, 3, 3, 4))


def _fc(self, x):
    if _pir():
        return paddle._pir_ops.fc(x, self.w, self.b, 1, "relu", False)
    attrs = {"in_num_col_dims": 1, "activation_type": "relu", "padding_weights": False}
    return _legacy_op("fc", {"Input": x, "W": self.w, "Bias": self.b}, attrs)


def fc():
    return Apply(_fc, w=_rand(12, 5), b=_rand(5, seed=1)), [_spec(None, 3, 4)]


_reg("fc", (2, 3, 4))


def _fc_3d(self, x):
    if _pir():
        return paddle._pir_ops.fc(x, self.w, self.b, 2, "", False)
    attrs = {"in_num_col_dims": 2, "activation_type": "", "padding_weights": False}
    return _legacy_op("fc", {"Input": x, "W": self.w, "Bias": self.b}, attrs)


def fc_3d():
    return Apply(_fc_3d, w=_rand(4, 5), b=_rand(5, seed=1)), [_spec(None, 3, 4)]


_reg("fc_3d", (2, 3, 4))


# ---- softmax ------------------------------------------------------------------------------
def _softmax(self, x):
    return F.softmax(x, axis=1)


def softmax():
    return Apply(_softmax), [_spec(None, 5, 3)]


_reg("softmax", (2, 5, 3))


def _log_softmax(self, x):
    return F.log_softmax(x, axis=-1)


def log_softmax():
    return Apply(_log_softmax), [_spec(None, 3, 7)]


_reg("log_softmax", (2, 3, 7))


# ---- interpolation ------------------------------------------------------------------------
_INTERP_CASES = {
    # name: (input shape, kwargs)
    "nearest_scale2": ((2, 3, 5, 6), dict(scale_factor=2, mode="nearest")),
    "nearest_scale_frac": ((2, 3, 7, 6), dict(scale_factor=[1.7, 0.6], mode="nearest")),
    "nearest_size": ((2, 3, 5, 6), dict(size=[7, 13], mode="nearest")),
    "nearest_down": ((2, 3, 9, 10), dict(size=[4, 3], mode="nearest")),
    "nearest_nhwc": ((2, 5, 6, 3), dict(scale_factor=2, mode="nearest", data_format="NHWC")),
    "bilinear_scale": ((2, 3, 5, 6), dict(scale_factor=1.5, mode="bilinear")),
    "bilinear_scale_ac": ((2, 3, 5, 6), dict(scale_factor=2, mode="bilinear", align_corners=True)),
    "bilinear_scale_m1": ((2, 3, 5, 6), dict(scale_factor=1.7, mode="bilinear", align_mode=1)),
    "bilinear_size": ((2, 3, 5, 6), dict(size=[9, 4], mode="bilinear")),
    "bilinear_size_ac": ((2, 3, 5, 6), dict(size=[9, 4], mode="bilinear", align_corners=True)),
    "bilinear_size_m1": ((2, 3, 5, 6), dict(size=[9, 4], mode="bilinear", align_mode=1)),
    "bilinear_size1": ((2, 3, 5, 6), dict(size=[1, 8], mode="bilinear")),
    "bilinear_nhwc": ((2, 5, 6, 3), dict(size=[8, 8], mode="bilinear", data_format="NHWC")),
    "bicubic_scale": ((2, 3, 5, 6), dict(scale_factor=1.6, mode="bicubic")),
    "bicubic_scale_ac": ((2, 3, 5, 6), dict(scale_factor=2, mode="bicubic", align_corners=True)),
    "bicubic_size": ((2, 3, 5, 6), dict(size=[8, 3], mode="bicubic")),
    "bicubic_size1": ((2, 3, 5, 6), dict(size=[1, 9], mode="bicubic")),
    "linear_scale": ((2, 3, 7), dict(scale_factor=1.5, mode="linear", data_format="NCW")),
    "linear_size_ac": (
        (2, 3, 7),
        dict(size=[12], mode="linear", align_corners=True, data_format="NCW"),
    ),
    "linear_size_m1": ((2, 3, 7), dict(size=[5], mode="linear", align_mode=1, data_format="NCW")),
    "trilinear_size": ((2, 2, 3, 4, 5), dict(size=[5, 3, 7], mode="trilinear")),
}


def _interp_factory(name: str):
    shape, kwargs = _INTERP_CASES[name]

    def run(self, x):
        return F.interpolate(x, **kwargs)

    def factory():
        return Apply(run), [_spec(None, *shape[1:])]

    factory.__name__ = f"interp_{name}"
    return factory


for _name, (_shape, _kw) in _INTERP_CASES.items():
    globals()[f"interp_{_name}"] = _interp_factory(_name)
    _reg(f"interp_{_name}", _shape)


def _interp_dynamic_size(self, x, y):
    return F.interpolate(x, size=paddle.shape(y)[2:], mode="bilinear")


def interp_dynamic_size():
    return Apply2(_interp_dynamic_size), [
        _spec(None, 3, 4, 5),
        _spec(None, 1, None, None, name="y"),
    ]


_reg("interp_dynamic_size", (2, 3, 4, 5), (2, 1, 7, 9))


def _interp_size_tensor_list(self, x):
    h = paddle.shape(x)[2] * 2
    return F.interpolate(x, size=[h, 7], mode="nearest")


def interp_size_tensor_list():
    return Apply(_interp_size_tensor_list), [_spec(None, 3, None, 5)]


_reg("interp_size_tensor_list", (2, 3, 4, 5))


def _interp_scale_tensor(self, x):
    return F.interpolate(x, scale_factor=paddle.to_tensor([2.0, 1.5]), mode="bilinear")


def interp_scale_tensor():
    return Apply(_interp_scale_tensor), [_spec(None, 3, 4, 5)]


_reg("interp_scale_tensor", (2, 3, 4, 5))


def _interp_runtime_scale(self, x, y):
    scale = paddle.cast(paddle.shape(y)[2:], "float32")
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=True)


def interp_runtime_scale():
    return Apply2(_interp_runtime_scale), [_spec(None, 3, 4, 5), _spec(1, 1, None, None, name="y")]


_reg("interp_runtime_scale", (2, 3, 4, 5), (1, 1, 2, 3))


def _interp_v1(op_type: str, **attrs):
    def run(self, x):
        full = {"out_d": -1, "out_h": -1, "out_w": -1, "scale": 0.0, "align_corners": True}
        full.update(attrs)
        full["interp_method"] = op_type.split("_")[0]
        return _legacy_op(op_type, {"X": x}, full)

    return run


def interp_v1_nearest():
    return Apply(_interp_v1("nearest_interp", out_h=9, out_w=7)), [_spec(None, 3, 5, 4)]


_reg("interp_v1_nearest", (2, 3, 5, 4))


def interp_v1_bilinear_scale():
    run = _interp_v1("bilinear_interp", scale=1.5, align_corners=False, align_mode=0)
    return Apply(run), [_spec(None, 3, 5, 4)]


_reg("interp_v1_bilinear_scale", (2, 3, 5, 4))


def interp_v2_nearest_align():
    def run(self, x):
        if _pir():
            return paddle._C_ops.nearest_interp(
                x, None, None, None, "NCHW", -1, 8, 11, [], "nearest", True, 1
            )
        attrs = {"out_d": -1, "out_h": 8, "out_w": 11, "scale": [], "interp_method": "nearest"}
        attrs.update(align_corners=True, align_mode=1, data_layout="NCHW")
        return _legacy_op("nearest_interp_v2", {"X": x}, attrs)

    return Apply(run), [_spec(None, 3, 5, 4)]


_reg("interp_v2_nearest_align", (2, 3, 5, 4))
