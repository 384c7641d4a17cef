"""Detection ops (fluidrt.ops.detection / nms / proposals / roi / indexing) against Paddle's own
eager kernels on the same inputs.

Dense outputs: relative L2 <= 1e-5 (fp32). Detection outputs are compared as sets: rows sorted
by (label, score, box), boxes within 1e-4, the same labels and counts.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fluidrt.ops.registry import get_op
from tests.support.paddle_ref import assert_close

paddle = pytest.importorskip("paddle")
from paddle import _C_ops  # noqa: E402
from paddle.vision import ops as V  # noqa: E402


def run(name: str, *inputs, **attrs) -> list[np.ndarray]:
    op = get_op(name)
    args = [None if t is None else torch.from_numpy(np.asarray(t)) for t in inputs]
    out = op.impl(*args, **op.resolve_attrs(attrs))
    out = out if isinstance(out, (list, tuple)) else [out]
    return [t.numpy() for t in out]


def np_(t) -> np.ndarray:
    return t.numpy()


def static_run(build, *inputs: np.ndarray) -> list[np.ndarray]:
    """Run ``build(*input_vars) -> outputs`` as a Paddle static program (for ops whose eager
    kernel is not exposed, e.g. ``anchor_generator``)."""
    paddle.enable_static()
    try:
        main = paddle.static.Program()
        with paddle.static.program_guard(main):
            xs = [
                paddle.static.data(f"in{i}", list(t.shape), str(t.dtype))
                for i, t in enumerate(inputs)
            ]
            outs = build(*xs)
        feed = {f"in{i}": t for i, t in enumerate(inputs)}
        return paddle.static.Executor().run(main, feed=feed, fetch_list=list(outs))
    finally:
        paddle.disable_static()


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def rand_boxes(g: np.random.Generator, n: int, size: float = 64.0) -> np.ndarray:
    xy = g.uniform(0, size * 0.8, (n, 2))
    wh = g.uniform(2, size * 0.4, (n, 2))
    return np.concatenate([xy, xy + wh], 1).astype("float32")


def assert_same_detections(got: np.ndarray, want: np.ndarray, what: str = "") -> None:
    """Rows (label, score, box...) as sets: same count and labels, values within 1e-4."""
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if got.size == 0:
        return

    def canon(a: np.ndarray) -> np.ndarray:
        keys = tuple(a[:, k] for k in range(a.shape[1] - 1, -1, -1))
        return a[np.lexsort(keys)]

    g, w = canon(got.astype(np.float64)), canon(want.astype(np.float64))
    np.testing.assert_array_equal(g[:, 0], w[:, 0], err_msg=f"{what}: labels")
    np.testing.assert_allclose(g[:, 1:], w[:, 1:], atol=1e-4, rtol=0, err_msg=what)


# ---- dense box ops ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "clip,scale_x_y,iou_aware,hw",
    [(True, 1.0, False, (8, 8)), (False, 1.05, False, (6, 10)), (True, 1.2, True, (5, 7))],
)
def test_yolo_box(clip: bool, scale_x_y: float, iou_aware: bool, hw: tuple[int, int]) -> None:
    g = rng(1)
    anchors, cls = [10, 13, 16, 30, 33, 23], 5
    ch = 3 * (5 + cls) + (3 if iou_aware else 0)
    x = g.standard_normal((2, ch, *hw)).astype("float32")
    img = np.array([[320, 416], [250, 300]], "int32")
    attrs = dict(
        anchors=anchors,
        class_num=cls,
        conf_thresh=0.3,
        downsample_ratio=32,
        clip_bbox=clip,
        scale_x_y=scale_x_y,
        iou_aware=iou_aware,
        iou_aware_factor=0.4,
    )
    want = _C_ops.yolo_box(paddle.to_tensor(x), paddle.to_tensor(img), *attrs.values())
    got = run("yolo_box", x, img, **attrs)
    for k in range(2):
        assert_close(got[k], np_(want[k]), what=f"yolo_box output {k}")


@pytest.mark.parametrize(
    "attrs",
    [
        dict(min_sizes=[8.0, 16.0], max_sizes=[12.0, 24.0], aspect_ratios=[2.0, 3.0], flip=True),
        dict(min_sizes=[10.0], aspect_ratios=[2.0], flip=False, clip=False, offset=0.3),
        dict(min_sizes=[10.0], aspect_ratios=[2.0, 2.0], step_w=6.0),  # step_h 0: both derived
        dict(
            min_sizes=[8.0, 16.0],
            max_sizes=[12.0, 24.0],
            aspect_ratios=[2.0, 0.5],
            min_max_aspect_ratios_order=True,
            step_w=6.0,
            step_h=5.0,
            variances=[0.1, 0.2, 0.3, 0.4],
        ),
    ],
)
def test_prior_box(attrs: dict) -> None:
    feat = np.zeros((1, 4, 5, 6), "float32")
    image = np.zeros((1, 3, 40, 48), "float32")
    full = dict(
        min_sizes=[],
        max_sizes=[],
        aspect_ratios=[],
        variances=[0.1, 0.1, 0.2, 0.2],
        flip=True,
        clip=True,
        step_w=0.0,
        step_h=0.0,
        offset=0.5,
        min_max_aspect_ratios_order=False,
    )
    full.update(attrs)
    want = _C_ops.prior_box(paddle.to_tensor(feat), paddle.to_tensor(image), *full.values())
    got = run("prior_box", feat, image, **full)
    for k in range(2):
        assert_close(got[k], np_(want[k]), what=f"prior_box output {k}")


def test_density_prior_box() -> None:
    """Against Paddle 2.6.2's kernel (the op is gone from Paddle 3): outputs stored by
    tests/ops/data/density_prior_box_ref.py."""
    import json
    from pathlib import Path

    ref = np.load(Path(__file__).parent / "data" / "density_prior_box_ref.npz")
    feat, image = np.zeros((1, 4, 5, 6), "float32"), np.zeros((1, 3, 43, 61), "float32")
    for k, attrs in enumerate(json.loads(str(ref["cases"]))):
        got = run("density_prior_box", feat, image, **attrs)
        assert_close(got[0], ref[f"boxes{k}"], what=f"density_prior_box case {k} boxes")
        assert_close(got[1], ref[f"vars{k}"], what=f"density_prior_box case {k} variances")


def test_anchor_generator() -> None:
    feat = np.zeros((1, 4, 5, 6), "float32")
    attrs = dict(
        anchor_sizes=[32.0, 64.0, 128.0],
        aspect_ratios=[0.5, 1.0, 2.0],
        variances=[0.1, 0.1, 0.2, 0.2],
        stride=[16.0, 16.0],
        offset=0.5,
    )
    want = static_run(lambda f: _C_ops.anchor_generator(f, *attrs.values()), feat)
    got = run("anchor_generator", feat, **attrs)
    for k in range(2):
        assert_close(got[k], want[k], what=f"anchor_generator output {k}")


@pytest.mark.parametrize("normalized", [True, False])
@pytest.mark.parametrize("var_kind", ["input", "attr", "none"])
def test_box_coder_encode(normalized: bool, var_kind: str) -> None:
    g = rng(2)
    prior = rand_boxes(g, 6) / (64 if normalized else 1)
    target = rand_boxes(g, 5) / (64 if normalized else 1)
    pvar = g.uniform(0.1, 0.3, (6, 4)).astype("float32")
    var_in = pvar if var_kind == "input" else None
    var_attr = [0.1, 0.1, 0.2, 0.2] if var_kind == "attr" else []
    want = _C_ops.box_coder(
        paddle.to_tensor(prior),
        None if var_in is None else paddle.to_tensor(var_in),
        paddle.to_tensor(target),
        "encode_center_size",
        normalized,
        0,
        var_attr,
    )
    got = run(
        "box_coder",
        prior,
        var_in,
        target,
        code_type="encode_center_size",
        box_normalized=normalized,
        axis=0,
        variance=var_attr,
    )
    assert_close(got[0], np_(want), what="box_coder encode")


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("normalized", [True, False])
@pytest.mark.parametrize("var_kind", ["input", "attr", "none"])
def test_box_coder_decode(axis: int, normalized: bool, var_kind: str) -> None:
    g = rng(3)
    m = 6
    prior = rand_boxes(g, m) / (64 if normalized else 1)
    deltas = g.standard_normal((m, m, 4)).astype("float32") * 0.5
    pvar = g.uniform(0.1, 0.3, (m, 4)).astype("float32")
    var_in = pvar if var_kind == "input" else None
    var_attr = [0.1, 0.1, 0.2, 0.2] if var_kind == "attr" else []
    want = _C_ops.box_coder(
        paddle.to_tensor(prior),
        None if var_in is None else paddle.to_tensor(var_in),
        paddle.to_tensor(deltas),
        "decode_center_size",
        normalized,
        axis,
        var_attr,
    )
    got = run(
        "box_coder",
        prior,
        var_in,
        deltas,
        code_type="decode_center_size",
        box_normalized=normalized,
        axis=axis,
        variance=var_attr,
    )
    assert_close(got[0], np_(want), what="box_coder decode")


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_affine_channel(layout: str) -> None:
    g = rng(4)
    x = g.standard_normal((2, 3, 4, 5) if layout == "NCHW" else (2, 4, 5, 3)).astype("float32")
    s, b = g.standard_normal(3).astype("float32"), g.standard_normal(3).astype("float32")
    want = _C_ops.affine_channel(*(paddle.to_tensor(t) for t in (x, s, b)), layout)
    got = run("affine_channel", x, s, b, channel_axis=1 if layout == "NCHW" else 3)
    assert_close(got[0], np_(want), what="affine_channel")


# ---- NMS family -----------------------------------------------------------------------------
def _det_scores(g: np.random.Generator, n: int, c: int, m: int) -> np.ndarray:
    return g.uniform(0, 1, (n, c, m)).astype("float32")


@pytest.mark.parametrize(
    "attrs",
    [
        dict(score_threshold=0.3, nms_top_k=20, keep_top_k=10, nms_threshold=0.4),
        dict(score_threshold=0.1, nms_top_k=-1, keep_top_k=-1, nms_threshold=0.5, normalized=False),
        dict(score_threshold=0.2, nms_top_k=30, keep_top_k=8, nms_threshold=0.7, nms_eta=0.9),
        dict(
            score_threshold=0.5, nms_top_k=10, keep_top_k=5, nms_threshold=0.3, background_label=-1
        ),
        dict(score_threshold=2.0, nms_top_k=10, keep_top_k=5, nms_threshold=0.3),  # nothing kept
    ],
)
def test_multiclass_nms3(attrs: dict) -> None:
    g = rng(5)
    boxes = np.stack([rand_boxes(g, 40) for _ in range(2)])
    scores = _det_scores(g, 2, 4, 40)
    full = {"normalized": True, "nms_eta": 1.0, "background_label": 0, **attrs}
    order = ("score_threshold", "nms_top_k", "keep_top_k", "nms_threshold", "normalized")
    args = [full[k] for k in order] + [full["nms_eta"], full["background_label"]]
    out, index, num = _C_ops.multiclass_nms3(
        paddle.to_tensor(boxes), paddle.to_tensor(scores), None, *args
    )
    got = run("multiclass_nms", boxes, scores, **full)
    assert_same_detections(got[0], np_(out), "multiclass_nms3 out")
    assert got[1].dtype == np_(index).dtype and got[2].dtype == np_(num).dtype
    np.testing.assert_array_equal(got[2], np_(num))
    np.testing.assert_array_equal(np.sort(got[1].ravel()), np.sort(np_(index).ravel()))


def test_multiclass_nms2() -> None:
    """Against Paddle 2.6.2's ``multiclass_nms2`` kernel (gone from Paddle 3): outputs stored
    by tests/ops/data/multiclass_nms2_ref.py; nothing kept gives [0, 6] (not v1's [-1] row)."""
    import json
    from pathlib import Path

    ref = np.load(Path(__file__).parent / "data" / "multiclass_nms2_ref.npz")
    for k, attrs in enumerate(json.loads(str(ref["cases"]))):
        full = {"nms_eta": 1.0, "normalized": False, "background_label": 0, **attrs}
        got = run("multiclass_nms", ref["boxes"], ref["scores"], **full)
        assert_same_detections(got[0], ref[f"out{k}"], f"multiclass_nms2 case {k}")
        np.testing.assert_array_equal(np.sort(got[1].ravel()), np.sort(ref[f"index{k}"].ravel()))
        np.testing.assert_array_equal(got[2], np.diff(ref[f"lod{k}"]))


def test_multiclass_nms3_rois_num() -> None:
    """2-D scores [M, C] with per-class boxes [M, C, 4] split into images by RoisNum."""
    g = rng(6)
    m, c = 30, 3
    boxes = np.stack([rand_boxes(g, m) for _ in range(c)], 1)
    scores = g.uniform(0, 1, (m, c)).astype("float32")
    rois_num = np.array([12, 0, 18], "int32")
    args = (0.2, 10, 8, 0.4, True, 1.0, 0)
    out, index, num = _C_ops.multiclass_nms3(
        paddle.to_tensor(boxes), paddle.to_tensor(scores), paddle.to_tensor(rois_num), *args
    )
    keys = ("score_threshold", "nms_top_k", "keep_top_k", "nms_threshold", "normalized")
    attrs = dict(zip(keys, args[:5], strict=True), nms_eta=1.0, background_label=0)
    got = run("multiclass_nms", boxes, scores, rois_num, **attrs)
    assert_same_detections(got[0], np_(out), "multiclass_nms3 2-D out")
    np.testing.assert_array_equal(got[2], np_(num))
    np.testing.assert_array_equal(np.sort(got[1].ravel()), np.sort(np_(index).ravel()))


@pytest.mark.parametrize("gaussian", [False, True])
@pytest.mark.parametrize("keep_top_k", [-1, 15])
def test_matrix_nms(gaussian: bool, keep_top_k: int) -> None:
    g = rng(7)
    boxes = np.stack([rand_boxes(g, 30) for _ in range(2)])
    scores = _det_scores(g, 2, 3, 30)
    attrs = dict(
        score_threshold=0.2,
        nms_top_k=20,
        keep_top_k=keep_top_k,
        post_threshold=0.1,
        use_gaussian=gaussian,
        gaussian_sigma=2.0,
        background_label=0,
        normalized=False,
    )
    out, index, num = _C_ops.matrix_nms(
        paddle.to_tensor(boxes), paddle.to_tensor(scores), *attrs.values()
    )
    got = run("matrix_nms", boxes, scores, **attrs)
    assert_same_detections(got[0], np_(out), "matrix_nms out")
    np.testing.assert_array_equal(got[2], np_(num))
    assert got[1].dtype == np_(index).dtype
    np.testing.assert_array_equal(np.sort(got[1].ravel()), np.sort(np_(index).ravel()))


@pytest.mark.parametrize("threshold", [0.3, 0.6])
def test_nms(threshold: float) -> None:
    boxes = rand_boxes(rng(8), 50)
    want = _C_ops.nms(paddle.to_tensor(boxes), threshold)
    got = run("nms", boxes, iou_threshold=threshold)
    assert_close(got[0], np_(want), what="nms")


# ---- RoI ops ---------------------------------------------------------------------------------
def _rois(g: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    rois = rand_boxes(g, 9, 30.0)
    rois[0] = [3.0, 4.0, 3.5, 4.2]  # smaller than a pixel
    rois[1] = [-3.0, -2.0, 40.0, 41.0]  # beyond the image
    return rois, np.array([4, 5], "int32")


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_roi_align(aligned: bool, sampling_ratio: int) -> None:
    g = rng(9)
    x = g.standard_normal((2, 3, 16, 20)).astype("float32")
    rois, num = _rois(g)
    args = (4, 3, 0.5, sampling_ratio, aligned)
    want = _C_ops.roi_align(*(paddle.to_tensor(t) for t in (x, rois, num)), *args)
    keys = ("pooled_height", "pooled_width", "spatial_scale", "sampling_ratio", "aligned")
    got = run("roi_align", x, rois, num, **dict(zip(keys, args, strict=True)))
    assert_close(got[0], np_(want), what="roi_align")


def test_roi_pool() -> None:
    g = rng(10)
    x = g.standard_normal((2, 3, 16, 20)).astype("float32")
    rois, num = _rois(g)
    out = _C_ops.roi_pool(*(paddle.to_tensor(t) for t in (x, rois, num)), 3, 4, 0.5)
    got = run("roi_pool", x, rois, num, pooled_height=3, pooled_width=4, spatial_scale=0.5)
    assert_close(got[0], np_(out), what="roi_pool out")  # Paddle's API does not return Argmax


def test_psroi_pool() -> None:
    g = rng(11)
    x = g.standard_normal((2, 2 * 3 * 3, 16, 20)).astype("float32")
    rois, num = _rois(g)
    want = _C_ops.psroi_pool(*(paddle.to_tensor(t) for t in (x, rois, num)), 3, 3, 2, 0.5)
    got = run(
        "psroi_pool",
        x,
        rois,
        num,
        pooled_height=3,
        pooled_width=3,
        output_channels=2,
        spatial_scale=0.5,
    )
    assert_close(got[0], np_(want), what="psroi_pool")


@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("groups,dg,stride,pad,dil", [(1, 1, 1, 1, 1), (2, 2, 2, 2, 2)])
def test_deformable_conv(
    with_mask: bool, groups: int, dg: int, stride: int, pad: int, dil: int
) -> None:
    g = rng(12)
    x = g.standard_normal((2, 4, 9, 11)).astype("float32")
    w = g.standard_normal((6, 4 // groups, 3, 3)).astype("float32")
    ho = (9 + 2 * pad - (dil * 2 + 1)) // stride + 1
    wo = (11 + 2 * pad - (dil * 2 + 1)) // stride + 1
    off = (g.standard_normal((2, 2 * dg * 9, ho, wo)) * 2).astype("float32")
    mask = g.uniform(0, 1, (2, dg * 9, ho, wo)).astype("float32") if with_mask else None
    want = _C_ops.deformable_conv(
        paddle.to_tensor(x),
        paddle.to_tensor(off),
        paddle.to_tensor(w),
        None if mask is None else paddle.to_tensor(mask),
        [stride] * 2,
        [pad] * 2,
        [dil] * 2,
        dg,
        groups,
        1,
    )
    got = run(
        "deformable_conv2d",
        x,
        off,
        w,
        mask,
        strides=[stride] * 2,
        pads=[pad] * 2,
        dilations=[dil] * 2,
        groups=groups,
        deformable_groups=dg,
    )
    assert_close(got[0], np_(want), what="deformable_conv")


# ---- proposals and FPN routing ---------------------------------------------------------------
@pytest.mark.parametrize("pixel_offset", [True, False])
def test_generate_proposals(pixel_offset: bool) -> None:
    g = rng(13)
    n, a, h, w = 2, 3, 6, 8
    scores = g.uniform(0, 1, (n, a, h, w)).astype("float32")
    deltas = (g.standard_normal((n, 4 * a, h, w)) * 0.3).astype("float32")
    im_shape = np.array([[96, 128], [80, 100]], "float32")
    anchors, var = run(
        "anchor_generator",
        np.zeros((1, 1, h, w), "float32"),
        anchor_sizes=[16.0, 32.0, 64.0],
        aspect_ratios=[1.0],
        variances=[1.0, 1.0, 1.0, 1.0],
        stride=[16.0, 16.0],
    )
    args = (50, 20, 0.6, 4.0, 1.0, pixel_offset)
    rois, probs, num = _C_ops.generate_proposals(
        *(paddle.to_tensor(t) for t in (scores, deltas, im_shape, anchors, var)), *args
    )
    keys = ("pre_nms_top_n", "post_nms_top_n", "nms_thresh", "min_size", "eta", "pixel_offset")
    got = run(
        "generate_proposals",
        scores,
        deltas,
        im_shape,
        anchors,
        var,
        **dict(zip(keys, args, strict=True)),
    )
    np.testing.assert_array_equal(got[2], np_(num))
    assert got[2].dtype == np_(num).dtype
    np.testing.assert_allclose(got[0], np_(rois), atol=1e-4, rtol=0)
    np.testing.assert_allclose(got[1], np_(probs), atol=1e-6, rtol=0)


@pytest.mark.parametrize("pixel_offset", [True, False])
def test_distribute_fpn_proposals(pixel_offset: bool) -> None:
    g = rng(14)
    rois = rand_boxes(g, 40, 600.0)
    num = np.array([15, 25], "int32")
    multi, restore, nums = V.distribute_fpn_proposals(
        paddle.to_tensor(rois),
        2,
        5,
        4,
        224,
        pixel_offset=pixel_offset,
        rois_num=paddle.to_tensor(num),
    )
    got = run(
        "distribute_fpn_proposals",
        rois,
        num,
        min_level=2,
        max_level=5,
        refer_level=4,
        refer_scale=224,
        pixel_offset=pixel_offset,
    )
    for k in range(4):
        assert_close(got[k], np_(multi[k]), what=f"level {k} rois")
        assert_close(got[5 + k], np_(nums[k]), what=f"level {k} counts")
    assert_close(got[4], np_(restore), what="restore index")


def test_collect_fpn_proposals() -> None:
    g = rng(15)
    rois = [rand_boxes(g, k, 200.0) for k in (10, 7, 5)]
    scores = [g.uniform(0, 1, (len(r), 1)).astype("float32") for r in rois]
    nums = [np.array([k - 3, 3], "int32") for k in (10, 7, 5)]
    out, num = _C_ops.collect_fpn_proposals(
        [paddle.to_tensor(r) for r in rois],
        [paddle.to_tensor(s) for s in scores],
        [paddle.to_tensor(n) for n in nums],
        12,
    )
    got = run("collect_fpn_proposals", *rois, *scores, *nums, post_nms_top_n=12, levels=3)
    assert_close(got[0], np_(out), what="collect rois")
    assert_close(got[1], np_(num), what="collect counts")


# ---- sorting and grids ----------------------------------------------------------------------
@pytest.mark.parametrize("descending", [False, True])
def test_argsort(descending: bool) -> None:
    x = rng(16).standard_normal((3, 7)).astype("float32")
    vals, idx = _C_ops.argsort(paddle.to_tensor(x), 1, descending, True)
    got = run("argsort", x, axis=1, descending=descending)
    assert_close(got[0], np_(vals), what="argsort values")
    assert_close(got[1], np_(idx), what="argsort indices")


def test_meshgrid() -> None:
    a, b, c = (
        np.arange(3, dtype="float32"),
        np.arange(4, dtype="float32"),
        np.arange(2, dtype="float32"),
    )
    want = paddle.meshgrid(*(paddle.to_tensor(t) for t in (a, b, c)))
    got = run("meshgrid", a, b, c, num=3)
    for k in range(3):
        assert_close(got[k], np_(want[k]), what=f"meshgrid {k}")


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [True, False])
def test_grid_sample(mode: str, padding_mode: str, align_corners: bool) -> None:
    g = rng(17)
    x = g.standard_normal((2, 3, 6, 7)).astype("float32")
    grid = g.uniform(-1.2, 1.2, (2, 4, 5, 2)).astype("float32")
    want = paddle.nn.functional.grid_sample(
        paddle.to_tensor(x), paddle.to_tensor(grid), mode, padding_mode, align_corners
    )
    got = run(
        "grid_sample", x, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners
    )
    assert_close(got[0], np_(want), what="grid_sample")


def test_broadcast_tensors() -> None:
    g = rng(18)
    a, b = (
        g.standard_normal((3, 1, 4)).astype("float32"),
        g.standard_normal((5, 1)).astype("float32"),
    )
    want = paddle.broadcast_tensors([paddle.to_tensor(a), paddle.to_tensor(b)])
    got = run("broadcast_tensors", a, b, num=2)
    for k in range(2):
        assert_close(got[k], np_(want[k]), what=f"broadcast_tensors {k}")


# ---- shape inference: data-dependent sizes are unknown ("?"), dtypes exact ----------------------
def _infer(op: str, inputs: list[tuple[tuple, str]], attrs: dict, n_out: int):
    from fluidrt.ir.graph import Graph
    from fluidrt.ops.infer import infer_node

    g = Graph(name="t")
    vals = [g.add_input(f"in{i}", s, d) for i, (s, d) in enumerate(inputs)]
    node = g.add_node(op, vals, attrs, outputs=[f"o{i}" for i in range(n_out)], name="n")
    infer_node(node)
    return [(v.shape, v.dtype) for v in node.outputs]


def test_data_dependent_shapes() -> None:
    nms = _infer("multiclass_nms", [(("N", 100, 4), "float32"), (("N", 3, 100), "float32")], {}, 3)
    assert nms == [(("?", 6), "float32"), (("?", 1), "int32"), (("N",), "int32")]
    props = _infer(
        "generate_proposals",
        [
            (("N", 3, 4, 5), "float32"),
            (("N", 12, 4, 5), "float32"),
            (("N", 2), "float32"),
            ((4, 5, 3, 4), "float32"),
            ((4, 5, 3, 4), "float32"),
        ],
        {},
        3,
    )
    assert props == [(("?", 4), "float32"), (("?", 1), "float32"), (("N",), "int32")]
    topk = _infer("topk", [(("N", 7), "float32"), ((), "int64")], {"axis": 1}, 2)
    assert topk == [(("N", "?"), "float32"), (("N", "?"), "int64")]
    nz = _infer("nonzero", [((3, 4), "bool")], {}, 1)
    assert nz == [((2, "?"), "int64")]
    align = _infer(
        "roi_align",
        [(("N", 8, 10, 10), "float32"), (("?", 4), "float32"), (("N",), "int32")],
        {"pooled_height": 7, "pooled_width": 7},
        1,
    )
    assert align == [(("?", 8, 7, 7), "float32")]
