"""Detection ops on a CUDA device give what they give on the CPU (where tests/ops/
test_detection_ops.py checks them against Paddle's kernels): device placement of every output,
dtypes, and values (fp32 relative L2 <= 1e-5; detection rows as sets)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fluidrt.ops.registry import get_op
from tests.support.paddle_ref import assert_close

pytestmark = pytest.mark.gpu


def _boxes(g: np.random.Generator, n: int, size: float = 64.0) -> np.ndarray:
    xy = g.uniform(0, size * 0.8, (n, 2))
    wh = g.uniform(2, size * 0.4, (n, 2))
    return np.concatenate([xy, xy + wh], 1).astype("float32")


def _cases() -> dict[str, tuple[list, dict]]:
    g = np.random.default_rng(0)
    feat = g.standard_normal((2, 8, 16, 20)).astype("float32")
    rois = _boxes(g, 9, 30.0)
    num = np.array([4, 5], "int32")
    anchors = np.stack(np.meshgrid(np.arange(8.0), np.arange(6.0)), -1)
    anchors = np.concatenate([anchors * 16, anchors * 16 + 24], -1).reshape(6, 8, 1, 4)
    anchors = np.repeat(anchors, 3, 2).astype("float32")
    return {
        "yolo_box": (
            [
                g.standard_normal((2, 27, 8, 8)).astype("float32"),
                np.array([[320, 320]] * 2, "int32"),
            ],
            {"anchors": [10, 13, 16, 30, 33, 23], "class_num": 4, "conf_thresh": 0.2},
        ),
        "box_coder": (
            [_boxes(g, 6), None, g.standard_normal((3, 6, 4)).astype("float32")],
            {"code_type": "decode_center_size", "box_normalized": False},
        ),
        "multiclass_nms": (
            [np.stack([_boxes(g, 40)] * 2), g.uniform(0, 1, (2, 4, 40)).astype("float32")],
            {"score_threshold": 0.3, "nms_top_k": 20, "keep_top_k": 10},
        ),
        "matrix_nms": (
            [np.stack([_boxes(g, 30)] * 2), g.uniform(0, 1, (2, 3, 30)).astype("float32")],
            {"score_threshold": 0.2, "post_threshold": 0.1},
        ),
        "roi_align": (
            [feat, rois, num],
            {"pooled_height": 3, "pooled_width": 4, "spatial_scale": 0.5},
        ),
        "roi_pool": (
            [feat, rois, num],
            {"pooled_height": 3, "pooled_width": 4, "spatial_scale": 0.5},
        ),
        "psroi_pool": (
            [feat, rois, num],
            {"pooled_height": 2, "pooled_width": 2, "output_channels": 2, "spatial_scale": 0.5},
        ),
        "deformable_conv2d": (
            [
                g.standard_normal((2, 4, 9, 11)).astype("float32"),
                g.standard_normal((2, 18, 9, 11)).astype("float32"),
                g.standard_normal((6, 4, 3, 3)).astype("float32"),
                g.uniform(0, 1, (2, 9, 9, 11)).astype("float32"),
            ],
            {"pads": [1, 1]},
        ),
        "generate_proposals": (
            [
                g.uniform(0, 1, (2, 3, 6, 8)).astype("float32"),
                (g.standard_normal((2, 12, 6, 8)) * 0.3).astype("float32"),
                np.array([[96, 128], [80, 100]], "float32"),
                anchors,
                np.ones_like(anchors),
            ],
            {"pre_nms_top_n": 60, "post_nms_top_n": 20},
        ),
        "distribute_fpn_proposals": (
            [_boxes(g, 40, 600.0), np.array([15, 25], "int32")],
            {"min_level": 2, "max_level": 5, "refer_level": 4, "refer_scale": 224},
        ),
    }


CASES = _cases()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", sorted(CASES))
def test_detection_op_on_cuda(name: str) -> None:
    inputs, attrs = CASES[name]
    op = get_op(name)
    attrs = op.resolve_attrs(attrs)
    cpu = [None if a is None else torch.from_numpy(a) for a in inputs]
    gpu = [None if t is None else t.cuda() for t in cpu]
    want = op.impl(*cpu, **attrs)
    got = op.impl(*gpu, **attrs)
    want = list(want) if isinstance(want, (list, tuple)) else [want]
    got = list(got) if isinstance(got, (list, tuple)) else [got]
    for k, (g_, w) in enumerate(zip(got, want, strict=True)):
        assert g_.device.type == "cuda", f"{name} output {k} on {g_.device}"
        assert_close(g_.cpu().numpy(), w.numpy(), what=f"{name} output {k}")
