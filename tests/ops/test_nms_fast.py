"""The vectorized ``multiclass_nms`` / ``matrix_nms`` / ``nms`` against the first (numpy,
one step per candidate) implementation in ``nms_reference.py``, exactly: the same rows in the
same order, indices and counts, on many random cases (ties, nothing kept, nms_eta < 1, pixel
boxes, background labels, 2-D scores with RoisNum, keep_top_k cutting early). That oracle and
these ops are both checked against Paddle's kernels in ``test_detection_ops.py``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fluidrt.ops.registry import get_op
from tests.ops import nms_reference as ref


def _boxes(g: np.random.Generator, shape: tuple[int, ...], size: float) -> np.ndarray:
    xy = g.uniform(0, size * 0.8, (*shape, 2))
    wh = g.uniform(size * 0.02, size * 0.4, (*shape, 2))
    return np.concatenate([xy, xy + wh], -1).astype("float32")


def _scores(g: np.random.Generator, shape: tuple[int, ...], ties: bool) -> np.ndarray:
    s = g.uniform(0, 1, shape)
    return (np.round(s * 8) / 8 if ties else s).astype("float32")  # 9 levels: many ties


def _assert_same(got: tuple, want: tuple, what: str) -> None:
    for k, (g_, w) in enumerate(zip(got, want, strict=True)):
        assert g_.dtype == w.dtype and g_.shape == w.shape, f"{what} output {k}"
        assert torch.equal(g_, w), f"{what} output {k} differs"


def _mc_attrs(g: np.random.Generator, pixel: bool) -> dict:
    return dict(
        score_threshold=float(g.choice([0.0, 0.05, 0.3, 0.9])),
        nms_top_k=int(g.choice([-1, 0, 5, 30])),
        keep_top_k=int(g.choice([-1, 0, 3, 12, 50])),
        nms_threshold=float(g.choice([0.3, 0.5, 0.7])),
        normalized=not pixel,
        nms_eta=float(g.choice([1.0, 0.9, 0.6])),
        background_label=int(g.choice([-1, 0, 2])),
        empty_row=bool(g.integers(2)),
    )


@pytest.mark.parametrize("seed", range(40))
def test_multiclass_nms_3d(seed: int) -> None:
    g = np.random.default_rng(seed)
    n, c, m = int(g.integers(1, 3)), int(g.integers(1, 6)), int(g.integers(1, 60))
    pixel = bool(g.integers(2))
    boxes = _boxes(g, (n, m), 64.0 if pixel else 1.0)
    scores = _scores(g, (n, c, m), ties=bool(g.integers(2)))
    attrs = _mc_attrs(g, pixel)
    args = (torch.from_numpy(boxes), torch.from_numpy(scores))
    op = get_op("multiclass_nms")
    _assert_same(op.impl(*args, **attrs), ref.multiclass_nms(*args, **attrs), f"{attrs}")


@pytest.mark.parametrize("seed", range(30))
def test_multiclass_nms_2d_rois_num(seed: int) -> None:
    g = np.random.default_rng(100 + seed)
    counts = g.integers(0, 25, int(g.integers(1, 4)))
    c, m = int(g.integers(1, 5)), int(counts.sum())
    pixel = bool(g.integers(2))
    boxes = _boxes(g, (m, c), 64.0 if pixel else 1.0)
    scores = _scores(g, (m, c), ties=bool(g.integers(2)))
    attrs = _mc_attrs(g, pixel)
    args = (torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(counts))
    op = get_op("multiclass_nms")
    _assert_same(op.impl(*args, **attrs), ref.multiclass_nms(*args, **attrs), f"{attrs}")


def test_multiclass_nms_odd_boxes() -> None:
    """Inverted, degenerate and NaN boxes, duplicates: the same decisions as the oracle."""
    g = np.random.default_rng(7)
    boxes = _boxes(g, (1, 40), 1.0)
    boxes[0, :5] = boxes[0, 5:10]  # duplicates
    boxes[0, 10, [0, 2]] = boxes[0, 10, [2, 0]]  # inverted
    boxes[0, 11, 2] = boxes[0, 11, 0]  # zero width
    boxes[0, 12, 1] = np.nan
    scores = _scores(g, (1, 3, 40), ties=True)
    for eta in (1.0, 0.7):
        attrs = get_op("multiclass_nms").resolve_attrs(
            dict(score_threshold=0.1, nms_top_k=30, keep_top_k=20, nms_eta=eta)
        )
        args = (torch.from_numpy(boxes), torch.from_numpy(scores))
        got = get_op("multiclass_nms").impl(*args, **attrs)
        _assert_same(got, ref.multiclass_nms(*args, **attrs), f"eta {eta}")


@pytest.mark.parametrize("seed", range(4))
def test_multiclass_nms_large_early_exit(seed: int) -> None:
    """Hundreds of candidates per class: several greedy blocks, keep_top_k cutting early."""
    g = np.random.default_rng(200 + seed)
    boxes, scores = _boxes(g, (1, 700), 300.0), _scores(g, (1, 6, 700), ties=seed % 2 == 1)
    for keep_top_k in (10, 400, -1):
        attrs = dict(
            score_threshold=0.01,
            nms_top_k=500,
            keep_top_k=keep_top_k,
            nms_threshold=0.45,
            normalized=False,
            nms_eta=1.0 if seed < 2 else 0.95,
            background_label=-1,
            empty_row=False,
        )
        args = (torch.from_numpy(boxes), torch.from_numpy(scores))
        got = get_op("multiclass_nms").impl(*args, **attrs)
        _assert_same(got, ref.multiclass_nms(*args, **attrs), f"keep_top_k {keep_top_k}")


@pytest.mark.parametrize("seed", range(20))
def test_matrix_nms(seed: int) -> None:
    g = np.random.default_rng(300 + seed)
    n, c, m = int(g.integers(1, 3)), int(g.integers(1, 5)), int(g.integers(1, 50))
    pixel = bool(g.integers(2))
    boxes = _boxes(g, (n, m), 64.0 if pixel else 1.0)
    scores = _scores(g, (n, c, m), ties=bool(g.integers(2)))
    attrs = dict(
        score_threshold=float(g.choice([0.0, 0.1, 0.5])),
        nms_top_k=int(g.choice([-1, 0, 10])),
        keep_top_k=int(g.choice([-1, 0, 5, 30])),
        post_threshold=float(g.choice([0.0, 0.05, 0.3])),
        use_gaussian=bool(g.integers(2)),
        gaussian_sigma=float(g.choice([0.5, 2.0])),
        background_label=int(g.choice([-1, 0])),
        normalized=not pixel,
    )
    args = (torch.from_numpy(boxes), torch.from_numpy(scores))
    got = get_op("matrix_nms").impl(*args, **attrs)
    want = ref.matrix_nms(*args, **attrs)
    for k in (1, 2):
        assert torch.equal(got[k], want[k]), f"{attrs} output {k}"
    # exp on a [C, K, K] batch may take torch's vector path where the per-class oracle took the
    # scalar one (1 ulp); everything else is bit-exact
    torch.testing.assert_close(got[0], want[0], rtol=1e-6, atol=0)


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.7])
def test_nms(threshold: float) -> None:
    g = np.random.default_rng(400)
    boxes = torch.from_numpy(_boxes(g, (80,), 1.0))
    got = get_op("nms").impl(boxes, iou_threshold=threshold)
    assert torch.equal(got, ref.nms(boxes, iou_threshold=threshold))
