"""Factories of small Paddle layers exercising the detection ops, for ``export_layers``.

Each factory returns ``(layer, [InputSpec, ...])``; ``INPUTS[name](rng)`` makes its test inputs.
Ops without a Python API in static mode are appended with ``_C_ops`` (PIR) or ``LayerHelper``
(ProgramDesc), so each layer exports in both formats.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import paddle
from paddle import _C_ops, nn
from paddle.static import InputSpec
from paddle.vision import ops as V

INPUTS: dict[str, Callable[[np.random.Generator], list[np.ndarray]]] = {}
# outputs compared as detection sets (rows sorted), by factory name -> output positions
DETECTION_OUTPUTS: dict[str, tuple[int, ...]] = {}


def _pir() -> bool:
    return paddle.in_dynamic_mode() or paddle.framework.in_pir_mode()


def _op(op_type: str, inputs: dict, attrs: dict, outputs: dict[str, str]) -> list:
    """Append a ProgramDesc op; ``outputs`` maps slot -> dtype. Returns the outputs in order."""
    from paddle.base.layer_helper import LayerHelper

    helper = LayerHelper(op_type)
    outs = {s: helper.create_variable_for_type_inference(d) for s, d in outputs.items()}
    helper.append_op(type=op_type, inputs=inputs, outputs=outs, attrs=attrs)
    return list(outs.values())


class Apply(nn.Layer):
    def __init__(self, fn: Callable, **params: np.ndarray) -> None:
        super().__init__()
        self.fn = fn
        for name, value in params.items():
            p = self.create_parameter(list(value.shape), dtype=str(value.dtype))
            p.set_value(value)
            setattr(self, name, p)

    def forward(self, x):
        return self.fn(self, x)


class Apply2(Apply):
    def forward(self, x, y):
        return self.fn(self, x, y)


class Apply3(Apply):
    def forward(self, x, y, z):
        return self.fn(self, x, y, z)


class Apply4(Apply):
    def forward(self, x, y, z, w):
        return self.fn(self, x, y, z, w)


def _apply(fn: Callable, n: int, **params: np.ndarray) -> Apply:
    return {1: Apply, 2: Apply2, 3: Apply3, 4: Apply4}[n](fn, **params)


def _boxes(g: np.random.Generator, n: int, size: float) -> np.ndarray:
    xy = g.uniform(0, size * 0.7, (n, 2))
    wh = g.uniform(4, size * 0.3, (n, 2))
    return np.concatenate([xy, xy + wh], 1).astype("float32")


def _f(*shape: int | None, name: str = "x", dtype: str = "float32") -> InputSpec:
    return InputSpec(list(shape), dtype, name)


# ---- YOLO head + multiclass NMS ------------------------------------------------------------
_ANCHORS = [10, 13, 16, 30, 33, 23]


def _multiclass_nms3(boxes, scores, rois_num, attrs: dict):
    if _pir():
        keys = ("score_threshold", "nms_top_k", "keep_top_k", "nms_threshold", "normalized")
        args = [attrs[k] for k in keys] + [attrs["nms_eta"], attrs["background_label"]]
        return _C_ops.multiclass_nms3(boxes, scores, rois_num, *args)
    ins = {"BBoxes": boxes, "Scores": scores}
    if rois_num is not None:
        ins["RoisNum"] = rois_num
    outs = {"Out": "float32", "Index": "int32", "NmsRoisNum": "int32"}
    return _op("multiclass_nms3", ins, attrs, outs)


def yolo_nms():
    attrs = dict(
        score_threshold=0.05,
        nms_top_k=100,
        keep_top_k=20,
        nms_threshold=0.45,
        normalized=False,
        nms_eta=1.0,
        background_label=-1,
    )

    def fn(self, x, img):
        boxes, scores = V.yolo_box(x, img, _ANCHORS, 4, 0.01, 32, True, scale_x_y=1.05)
        out, _, num = _multiclass_nms3(boxes, paddle.transpose(scores, [0, 2, 1]), None, attrs)
        return out, num

    return _apply(fn, 2), [_f(None, 27, 8, 8), _f(None, 2, name="im_size", dtype="int32")]


INPUTS["yolo_nms"] = lambda g: [
    g.standard_normal((2, 27, 8, 8)).astype("float32"),
    np.array([[256, 256], [200, 320]], "int32"),
]
DETECTION_OUTPUTS["yolo_nms"] = (0,)


def yolo_box_iou_aware():
    def fn(self, x, img):
        return V.yolo_box(
            x, img, _ANCHORS, 2, 0.2, 16, False, scale_x_y=1.2, iou_aware=True, iou_aware_factor=0.3
        )

    return _apply(fn, 2), [_f(1, 24, 5, 6), _f(1, 2, name="im_size", dtype="int32")]


INPUTS["yolo_box_iou_aware"] = lambda g: [
    g.standard_normal((1, 24, 5, 6)).astype("float32"),
    np.array([[80, 96]], "int32"),
]


# ---- SSD: prior boxes + box_coder + NMS ------------------------------------------------------
def ssd_head():
    def fn(self, feat, image, loc, conf):
        priors, var = V.prior_box(
            feat, image, [8.0, 16.0], [12.0, 24.0], [2.0], [0.1, 0.1, 0.2, 0.2], flip=True
        )
        priors = paddle.reshape(priors, [-1, 4])
        var = paddle.reshape(var, [-1, 4])
        boxes = V.box_coder(priors, var, loc, "decode_center_size", True, axis=0)
        scores = paddle.transpose(nn.functional.softmax(conf, -1), [0, 2, 1])
        attrs = dict(
            score_threshold=0.2,
            nms_top_k=50,
            keep_top_k=10,
            nms_threshold=0.45,
            normalized=True,
            nms_eta=1.0,
            background_label=0,
        )
        out, _, num = _multiclass_nms3(boxes, scores, None, attrs)
        return out, num, boxes

    specs = [
        _f(1, 4, 3, 3, name="feat"),
        _f(1, 3, 24, 24, name="image"),
        _f(None, 72, 4, name="loc"),
        _f(None, 72, 3, name="conf"),
    ]
    return _apply(fn, 4), specs


INPUTS["ssd_head"] = lambda g: [
    np.zeros((1, 4, 3, 3), "float32"),
    np.zeros((1, 3, 24, 24), "float32"),
    (g.standard_normal((2, 72, 4)) * 0.3).astype("float32"),
    g.standard_normal((2, 72, 3)).astype("float32"),
]
DETECTION_OUTPUTS["ssd_head"] = (0,)


def box_coder_encode():
    prior = _boxes(np.random.default_rng(0), 5, 50.0)

    def fn(self, target):
        return V.box_coder(self.prior, [0.1, 0.1, 0.2, 0.2], target, "encode_center_size", False)

    return _apply(fn, 1, prior=prior), [_f(None, 4, name="target")]


INPUTS["box_coder_encode"] = lambda g: [_boxes(g, 6, 50.0)]


def matrix_nms_head():
    def fn(self, boxes, scores):
        out, _, num = V.matrix_nms(
            boxes, scores, 0.1, 0.05, 30, 10, use_gaussian=True, return_index=True
        )
        return out, num

    return _apply(fn, 2), [_f(None, 20, 4, name="boxes"), _f(None, 3, 20, name="scores")]


INPUTS["matrix_nms_head"] = lambda g: [
    np.stack([_boxes(g, 20, 100.0) / 100 for _ in range(2)]),
    g.uniform(0, 1, (2, 3, 20)).astype("float32"),
]
DETECTION_OUTPUTS["matrix_nms_head"] = (0,)


def nms_scored():
    def fn(self, boxes, scores):
        return V.nms(boxes, 0.4, scores=scores, top_k=8)

    return _apply(fn, 2), [_f(None, 4, name="boxes"), _f(None, name="scores")]


INPUTS["nms_scored"] = lambda g: [_boxes(g, 30, 60.0), g.uniform(0, 1, 30).astype("float32")]


# ---- RoI ops --------------------------------------------------------------------------------
def _roi_inputs(g: np.random.Generator) -> list[np.ndarray]:
    return [
        g.standard_normal((2, 8, 12, 16)).astype("float32"),
        _boxes(g, 7, 40.0),
        np.array([3, 4], "int32"),
    ]


_ROI_SPECS = [
    _f(None, 8, 12, 16),
    _f(None, 4, name="rois"),
    _f(None, name="rois_num", dtype="int32"),
]


def roi_align_aligned():
    def fn(self, x, rois, num):
        return V.roi_align(x, rois, num, (3, 4), spatial_scale=0.4, sampling_ratio=-1, aligned=True)

    return _apply(fn, 3), _ROI_SPECS


def roi_align_sampled():
    def fn(self, x, rois, num):
        return V.roi_align(x, rois, num, 2, spatial_scale=0.5, sampling_ratio=2, aligned=False)

    return _apply(fn, 3), _ROI_SPECS


def roi_pool_basic():
    def fn(self, x, rois, num):
        return V.roi_pool(x, rois, num, (2, 3), spatial_scale=0.3)

    return _apply(fn, 3), _ROI_SPECS


def psroi_pool_basic():
    def fn(self, x, rois, num):
        return V.psroi_pool(x, rois, num, 2, spatial_scale=0.3)

    return _apply(fn, 3), _ROI_SPECS


for _name in ("roi_align_aligned", "roi_align_sampled", "roi_pool_basic", "psroi_pool_basic"):
    INPUTS[_name] = _roi_inputs


# ---- deformable convolution, affine_channel ----------------------------------------------------
def _deform(with_mask: bool):
    g = np.random.default_rng(1)
    w = (g.standard_normal((6, 4, 3, 3)) * 0.2).astype("float32")
    b = g.standard_normal(6).astype("float32")
    off_w = (g.standard_normal((18, 4, 3, 3)) * 0.3).astype("float32")
    mask_w = (g.standard_normal((9, 4, 3, 3)) * 0.3).astype("float32")

    def fn(self, x):
        off = nn.functional.conv2d(x, self.off_w, padding=1)
        mask = paddle.clip(nn.functional.conv2d(x, self.mask_w, padding=1) + 0.5, 0.0, 1.0)
        return V.deform_conv2d(x, off, self.w, self.b, padding=1, mask=mask if with_mask else None)

    return _apply(fn, 1, w=w, b=b, off_w=off_w, mask_w=mask_w), [_f(None, 4, 9, 10)]


def deform_conv_v1():
    return _deform(False)


def deform_conv_v2():
    return _deform(True)


INPUTS["deform_conv_v1"] = lambda g: [g.standard_normal((2, 4, 9, 10)).astype("float32")]
INPUTS["deform_conv_v2"] = INPUTS["deform_conv_v1"]


def affine_channel_nchw():
    g = np.random.default_rng(2)
    s, b = g.standard_normal(4).astype("float32"), g.standard_normal(4).astype("float32")

    def fn(self, x):
        if _pir():
            return _C_ops.affine_channel(x, self.s, self.b, "NCHW")
        ins = {"X": x, "Scale": self.s, "Bias": self.b}
        return _op("affine_channel", ins, {"data_layout": "NCHW"}, {"Out": "float32"})[0]

    return _apply(fn, 1, s=s, b=b), [_f(None, 4, 5, 6)]


INPUTS["affine_channel_nchw"] = lambda g: [g.standard_normal((2, 4, 5, 6)).astype("float32")]


# ---- RPN proposals and FPN routing --------------------------------------------------------------
def rpn_fpn():
    g = np.random.default_rng(3)
    h, w = 6, 8
    anchors = np.zeros((h, w, 3, 4), "float32")
    for i in range(h):
        for j in range(w):
            for k, s in enumerate((16.0, 32.0, 64.0)):
                cx, cy = j * 16 + 8, i * 16 + 8
                anchors[i, j, k] = [cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2]
    var = np.ones_like(anchors)
    del g

    def fn(self, scores, deltas, im_shape):
        rois, probs, num = V.generate_proposals(
            scores, deltas, im_shape, self.anchors, self.var, 60, 25, 0.6, 2.0, return_rois_num=True
        )
        multi, restore, nums = V.distribute_fpn_proposals(
            rois, 2, 4, 3, 56, pixel_offset=True, rois_num=num
        )
        return rois, probs, num, *multi, restore, *nums

    specs = [_f(None, 3, h, w, name="scores"), _f(None, 12, h, w, name="deltas")]
    specs.append(_f(None, 2, name="im_shape"))
    return _apply(fn, 3, anchors=anchors, var=var), specs


INPUTS["rpn_fpn"] = lambda g: [
    g.uniform(0, 1, (2, 3, 6, 8)).astype("float32"),
    (g.standard_normal((2, 12, 6, 8)) * 0.3).astype("float32"),
    np.array([[96, 128], [80, 100]], "float32"),
]


# ---- sorting, indexing and grids ------------------------------------------------------------
def topk_argsort():
    def fn(self, x):
        v, i = paddle.topk(x, 3, axis=1, largest=False)
        s, j = paddle.sort(x, axis=-1, descending=True), paddle.argsort(x, axis=0, stable=True)
        return v, i, s, j

    return _apply(fn, 1), [_f(None, 7)]


INPUTS["topk_argsort"] = lambda g: [g.standard_normal((3, 7)).astype("float32")]


def nonzero_meshgrid():
    def fn(self, x):
        idx = paddle.nonzero(x > 0.5)
        a, b = paddle.meshgrid(paddle.arange(3, dtype="float32"), x[0])
        return idx, a * b

    return _apply(fn, 1), [_f(None, 6)]


INPUTS["nonzero_meshgrid"] = lambda g: [g.uniform(0, 1, (4, 6)).astype("float32")]


# ---- legacy multiclass_nms, empty results, anchors, FPN collection, scatter --------------------
def multiclass_nms_v1():
    """The fluid-era ``multiclass_nms`` (ProgramDesc only); nothing kept in image 2 of 2."""
    attrs = dict(
        score_threshold=0.3,
        nms_top_k=30,
        keep_top_k=12,
        nms_threshold=0.5,
        normalized=True,
        nms_eta=1.0,
        background_label=0,
    )

    def fn(self, boxes, scores):
        return _op(
            "multiclass_nms", {"BBoxes": boxes, "Scores": scores}, attrs, {"Out": "float32"}
        )[0]

    return _apply(fn, 2), [_f(None, 20, 4, name="boxes"), _f(None, 3, 20, name="scores")]


INPUTS["multiclass_nms_v1"] = lambda g: [
    np.stack([_boxes(g, 20, 100.0) / 100 for _ in range(2)]),
    g.uniform(0, 1, (2, 3, 20)).astype("float32"),
]
DETECTION_OUTPUTS["multiclass_nms_v1"] = (0,)


def multiclass_nms_v1_empty():
    attrs = dict(score_threshold=2.0, nms_top_k=30, keep_top_k=12, nms_threshold=0.5)

    def fn(self, boxes, scores):
        return _op(
            "multiclass_nms", {"BBoxes": boxes, "Scores": scores}, attrs, {"Out": "float32"}
        )[0]

    return _apply(fn, 2), [_f(None, 20, 4, name="boxes"), _f(None, 3, 20, name="scores")]


INPUTS["multiclass_nms_v1_empty"] = INPUTS["multiclass_nms_v1"]


def multiclass_nms3_empty():
    attrs = dict(
        score_threshold=2.0,
        nms_top_k=30,
        keep_top_k=12,
        nms_threshold=0.5,
        normalized=True,
        nms_eta=1.0,
        background_label=0,
    )

    def fn(self, boxes, scores):
        out, index, num = _multiclass_nms3(boxes, scores, None, attrs)
        return out, index, num

    return _apply(fn, 2), [_f(None, 20, 4, name="boxes"), _f(None, 3, 20, name="scores")]


INPUTS["multiclass_nms3_empty"] = INPUTS["multiclass_nms_v1"]


def anchors_fpn_collect():
    """anchor_generator on two levels, generate_proposals per level, collect_fpn_proposals."""

    def anchors(feat, size: float, stride: float):
        attrs = dict(
            anchor_sizes=[size, size * 2],
            aspect_ratios=[0.5, 1.0],
            variances=[1.0, 1.0, 1.0, 1.0],
            stride=[stride, stride],
            offset=0.5,
        )
        if _pir():
            return _C_ops.anchor_generator(feat, *attrs.values())
        outs = {"Anchors": "float32", "Variances": "float32"}
        return _op("anchor_generator", {"Input": feat}, attrs, outs)

    def fn(self, s0, d0, s1, d1, im_shape):
        rois, scores, nums = [], [], []
        for s, d, size, stride in ((s0, d0, 16.0, 8.0), (s1, d1, 32.0, 16.0)):
            a, v = anchors(s, size, stride)
            r, p, n = V.generate_proposals(
                s, d, im_shape, a, v, 40, 15, 0.7, 1.0, pixel_offset=True, return_rois_num=True
            )
            rois.append(r), scores.append(p), nums.append(n)
        if _pir():
            return _C_ops.collect_fpn_proposals(rois, scores, nums, 20)
        ins = {"MultiLevelRois": rois, "MultiLevelScores": scores, "MultiLevelRoIsNum": nums}
        outs = {"FpnRois": "float32", "RoisNum": "int32"}
        return tuple(_op("collect_fpn_proposals", ins, {"post_nms_topN": 20}, outs))

    specs = [
        _f(None, 4, 8, 10, name="s0"),
        _f(None, 16, 8, 10, name="d0"),
        _f(None, 4, 4, 5, name="s1"),
        _f(None, 16, 4, 5, name="d1"),
        _f(None, 2, name="im_shape"),
    ]
    return Apply5(fn), specs


class Apply5(Apply):
    def forward(self, a, b, c, d, e):
        return self.fn(self, a, b, c, d, e)


INPUTS["anchors_fpn_collect"] = lambda g: [
    g.uniform(0, 1, (2, 4, 8, 10)).astype("float32"),
    (g.standard_normal((2, 16, 8, 10)) * 0.3).astype("float32"),
    g.uniform(0, 1, (2, 4, 4, 5)).astype("float32"),
    (g.standard_normal((2, 16, 4, 5)) * 0.3).astype("float32"),
    np.array([[64, 80], [60, 72]], "float32"),
]


def scatter_modes():
    def fn(self, x, upd):
        idx = paddle.to_tensor(np.array([1, 3, 1], "int64"))
        return paddle.scatter(x, idx, upd, overwrite=False), paddle.scatter(x, idx[:2], upd[:2])

    return _apply(fn, 2), [_f(5, 3), _f(3, 3, name="upd")]


INPUTS["scatter_modes"] = lambda g: [
    g.standard_normal((5, 3)).astype("float32"),
    g.standard_normal((3, 3)).astype("float32"),
]


# ---- interpolation variants segmentation heads use, beyond tests/frontends/layers_nn.py --------
_INTERP = {
    "interp_trilinear_ac": ((1, 2, 3, 4, 5), dict(size=[5, 6, 4], align_corners=True)),
    "interp_trilinear_m1": ((1, 2, 3, 4, 5), dict(size=[5, 6, 4], align_mode=1)),
    "interp_trilinear_scale": ((1, 2, 3, 4, 5), dict(scale_factor=1.5)),
    "interp_bicubic_nhwc": ((2, 5, 6, 3), dict(size=[7, 9], data_format="NHWC")),
    "interp_linear_scale_ac": ((2, 3, 7), dict(scale_factor=2, align_corners=True)),
}


def _interp(name: str):
    shape, kwargs = _INTERP[name]
    mode = name.split("_")[1]
    fmt = {3: "NCW", 4: "NCHW", 5: "NCDHW"}[len(shape)]
    kwargs = {"mode": mode, "data_format": fmt, **kwargs}

    def factory():
        def fn(self, x):
            return nn.functional.interpolate(x, **kwargs)

        return _apply(fn, 1), [_f(None, *shape[1:])]

    return factory


for _name, (_shape, _) in _INTERP.items():
    globals()[_name] = _interp(_name)
    INPUTS[_name] = lambda g, s=_shape: [g.standard_normal(s).astype("float32")]


def topk_runtime_k():
    """k computed from the input's shape, as PaddleDetection's RPN head does."""

    def fn(self, x):
        k = paddle.shape(x)[0] - 3
        return paddle.topk(x, k, axis=0)

    return _apply(fn, 1), [_f(None, 3)]


INPUTS["topk_runtime_k"] = lambda g: [g.standard_normal((8, 3)).astype("float32")]


def grid_sample_broadcast():
    """Mask R-CNN's mask pasting: broadcast_tensors of the grid axes, then grid_sample."""

    def fn(self, x, gx, gy):
        gx, gy = paddle.broadcast_tensors([gx[:, None, :], gy[:, :, None]])
        grid = paddle.stack([gx, gy], axis=3)
        if _pir():
            return nn.functional.grid_sample(x, grid, align_corners=False)
        attrs = {"mode": "bilinear", "padding_mode": "zeros", "align_corners": False}
        return _op("grid_sampler", {"X": x, "Grid": grid}, attrs, {"Output": "float32"})[0]

    return _apply(fn, 3), [_f(None, 3, 6, 7), _f(None, 9, name="gx"), _f(None, 5, name="gy")]


INPUTS["grid_sample_broadcast"] = lambda g: [
    g.standard_normal((2, 3, 6, 7)).astype("float32"),
    g.uniform(-1.1, 1.1, (2, 9)).astype("float32"),
    g.uniform(-1.1, 1.1, (2, 5)).astype("float32"),
]


def generate_proposals_v1():
    """The fluid-era ``generate_proposals`` (ProgramDesc only): ``ImInfo`` rows h, w, scale."""
    anchors = rpn_fpn()[0].anchors.numpy()

    def fn(self, scores, deltas, im_info):
        ins = {
            "Scores": scores,
            "BboxDeltas": deltas,
            "ImInfo": im_info,
            "Anchors": self.anchors,
            "Variances": self.var,
        }
        attrs = {"pre_nms_topN": 80, "post_nms_topN": 60, "nms_thresh": 0.8, "min_size": 24.0}
        attrs["eta"] = 1.0
        outs = {"RpnRois": "float32", "RpnRoiProbs": "float32", "RpnRoisNum": "int32"}
        return tuple(_op("generate_proposals", ins, attrs, outs))

    specs = [_f(None, 3, 6, 8, name="scores"), _f(None, 12, 6, 8, name="deltas")]
    specs.append(_f(None, 3, name="im_info"))
    return _apply(fn, 3, anchors=anchors, var=np.ones_like(anchors)), specs


INPUTS["generate_proposals_v1"] = lambda g: [
    g.uniform(0, 1, (2, 3, 6, 8)).astype("float32"),
    (g.standard_normal((2, 12, 6, 8)) * 0.3).astype("float32"),
    np.array([[96, 128, 1.5], [80, 100, 2.0]], "float32"),
]
