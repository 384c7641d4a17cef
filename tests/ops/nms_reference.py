"""The first native NMS implementation (numpy, one greedy step per candidate), kept verbatim as
the oracle for ``fluidrt.ops.nms``: the vectorized ops must give exactly its rows, order, indices
and counts (it was checked against Paddle's CPU kernels, as ``test_detection_ops.py`` still
checks the new ops). Not registered; used by ``tests/ops/test_nms_fast.py`` and
``bench/nms_speed.py``.
"""

from __future__ import annotations

import numpy as np
import torch

from fluidrt.ops.infer import UNKNOWN_DIM

Tensor = torch.Tensor


def _is_meta(*ts: Tensor | None) -> bool:
    return any(t is not None and t.device.type == "meta" for t in ts)


def _meta(shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    return torch.empty(shape, dtype=dtype, device="meta")


def _score_order(scores: np.ndarray, threshold: float, top_k: int) -> np.ndarray:
    """Indices with score > threshold, stably sorted by descending score, first ``top_k``."""
    idx = np.nonzero(scores > scores.dtype.type(threshold))[0]
    idx = idx[np.argsort(-scores[idx], kind="stable")]
    return idx[:top_k] if top_k > -1 else idx


def greedy_nms(
    boxes: np.ndarray, order: np.ndarray, threshold: float, eta: float, normalized: bool
) -> list[int]:
    """Greedy NMS of ``boxes[order]``; the indices (into ``boxes``) kept, in ``order``."""
    if len(order) == 0:
        return []
    keep = batched_greedy_nms(
        boxes[order][None], np.ones((1, len(order)), bool), threshold, eta, normalized
    )[0]
    return [int(i) for i in order[keep]]


def batched_greedy_nms(
    boxes: np.ndarray, valid: np.ndarray, threshold: float, eta: float, normalized: bool
) -> np.ndarray:
    """Greedy NMS of C independent rows at once: boxes [C, K, 4] in score order, ``valid``
    [C, K] marks real candidates. A box is dropped when its IoU with a kept box of its row
    exceeds the row's threshold (adaptive with ``eta`` < 1, as Paddle's NMSFast). Returns the
    kept mask [C, K]. One IoU row per step and row, so the loop runs K times, not C * K."""
    c, k = valid.shape
    dt = boxes.dtype.type
    norm = dt(0.0 if normalized else 1.0)
    x1, y1, x2, y2 = (boxes[..., j] for j in range(4))
    w, h = x2 - x1, y2 - y1
    area = np.where((w < 0) | (h < 0), dt(0), (w + norm) * (h + norm))
    thr = np.full(c, threshold, dtype=dt)
    worst = np.full((c, k), -np.inf, dtype=dt)  # largest IoU with a kept box so far
    keep = np.zeros((c, k), bool)
    for i in range(k):
        now = valid[:, i] & ~(worst[:, i] > thr)
        if not now.any():
            continue
        keep[:, i] = now
        if i + 1 < k:
            rows = np.nonzero(now)[0]
            sl = (rows, slice(i + 1, None))
            ix1 = np.maximum(x1[rows, i, None], x1[sl])
            iy1 = np.maximum(y1[rows, i, None], y1[sl])
            ix2 = np.minimum(x2[rows, i, None], x2[sl])
            iy2 = np.minimum(y2[rows, i, None], y2[sl])
            inter = (ix2 - ix1 + norm) * (iy2 - iy1 + norm)
            with np.errstate(divide="ignore", invalid="ignore"):
                iou = inter / (area[rows, i, None] + area[sl] - inter)
            disjoint = (
                (x1[sl] > x2[rows, i, None])
                | (x2[sl] < x1[rows, i, None])
                | (y1[sl] > y2[rows, i, None])
                | (y2[sl] < y1[rows, i, None])
            )
            iou = np.where(disjoint, dt(0), iou)
            iou[np.isnan(iou)] = np.inf  # Paddle: a NaN overlap fails ``overlap <= thr``
            worst[sl] = np.maximum(worst[sl], iou)
        if eta < 1:
            shrink = now & (thr > 0.5)
            thr[shrink] = (thr[shrink] * dt(eta)).astype(dt)
    return keep


# ---- nms ------------------------------------------------------------------------------------
def nms(boxes: Tensor, *, iou_threshold: float) -> Tensor:
    """Indices (int64) of the boxes [K, 4] kept by greedy NMS in the given order (the caller
    sorts by score); IoU without the +1 pixel convention."""
    if _is_meta(boxes):
        return _meta((UNKNOWN_DIM,), torch.int64)
    b = boxes.detach().cpu().numpy()
    order = np.arange(b.shape[0])
    keep = greedy_nms(b, order, iou_threshold, 1.0, True)
    return torch.tensor(keep, dtype=torch.int64, device=boxes.device)


# ---- multiclass_nms -------------------------------------------------------------------------
def _image_slices(
    bboxes: Tensor, scores: Tensor, rois_num: Tensor | None
) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Per image: boxes, scores [C, M] (3-D scores) or [M, C] (2-D), index offset."""
    b = bboxes.detach().cpu().numpy()
    s = scores.detach().cpu().numpy()
    if s.ndim == 3:
        return [(b[i], s[i], i * s.shape[2]) for i in range(s.shape[0])]
    counts = (
        rois_num.detach().cpu().numpy().astype(np.int64).tolist()
        if rois_num is not None
        else [s.shape[0]]
    )
    out, start = [], 0
    for c in counts:
        out.append((b[start : start + c], s[start : start + c], start * s.shape[1]))
        start += c
    return out


def multiclass_nms(
    bboxes: Tensor,
    scores: Tensor,
    rois_num: Tensor | None = None,
    *,
    score_threshold: float,
    nms_top_k: int,
    keep_top_k: int,
    nms_threshold: float,
    normalized: bool,
    nms_eta: float,
    background_label: int,
    empty_row: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-class NMS, then the best ``keep_top_k`` per image. Returns out [K, 6] rows
    (label, score, x1, y1, x2, y2) by image, then label, then score; index [K, 1] int32 of each
    box in the flattened input; per-image counts [N] int32.

    bboxes [N, M, 4] with scores [N, C, M], or bboxes [M, C, 4] with scores [M, C] and
    ``rois_num`` [N] splitting the M rows into images. ``empty_row`` gives the legacy
    ``multiclass_nms`` result for nothing kept: one row ``[-1]`` (count 1) instead of [0, 6].
    """
    box_dim = bboxes.shape[-1]
    if _is_meta(bboxes, scores, rois_num):
        n = (
            scores.shape[0]
            if scores.dim() == 3
            else (rois_num.shape[0] if rois_num is not None else 1)
        )
        return (
            _meta((UNKNOWN_DIM, box_dim + 2), scores.dtype),
            _meta((UNKNOWN_DIM, 1), torch.int32),
            _meta((n,), torch.int32),
        )
    if box_dim != 4:
        raise ValueError(
            f"multiclass_nms: boxes of {box_dim} coordinates (polygons) are not supported"
        )
    rows: list[np.ndarray] = []
    index: list[int] = []
    counts: list[int] = []
    for b, s, offset in _image_slices(bboxes, scores, rois_num):
        three_d = scores.dim() == 3
        num_classes = s.shape[0] if three_d else s.shape[1]
        classes = [c for c in range(num_classes) if c != background_label]
        orders = [
            _score_order(s[c] if three_d else s[:, c], score_threshold, nms_top_k) for c in classes
        ]
        kept = _nms_per_class(b, orders, classes, three_d, nms_threshold, nms_eta, normalized)
        picked = {c: (v if three_d else sorted(v)) for c, v in zip(classes, kept, strict=True)}
        total = sum(len(v) for v in picked.values())
        if keep_top_k > -1 and total > keep_top_k:
            pairs = [
                (float(s[c, i] if three_d else s[i, c]), c, i)
                for c in sorted(picked)
                for i in picked[c]
            ]
            pairs.sort(key=lambda p: -p[0])  # stable: ties keep (label, NMS order)
            picked = {}
            for _, c, i in pairs[:keep_top_k]:
                picked.setdefault(c, []).append(i)
            if not three_d:
                picked = {c: sorted(v) for c, v in picked.items()}
            total = keep_top_k
        for c in sorted(picked):
            for i in picked[c]:
                score = s[c, i] if three_d else s[i, c]
                box = b[i] if three_d else b[i, c]
                rows.append(np.concatenate([[c, score], box]).astype(s.dtype))
                index.append(offset + (i if three_d else i * num_classes + c))
        counts.append(total)
    dev, dt = scores.device, scores.dtype
    if not rows:
        if empty_row:
            return (
                torch.full((1, 1), -1, dtype=dt, device=dev),
                torch.zeros((0, 1), dtype=torch.int32, device=dev),
                torch.tensor([1] + [0] * (len(counts) - 1), dtype=torch.int32, device=dev),
            )
        out = torch.zeros((0, box_dim + 2), dtype=dt, device=dev)
    else:
        out = torch.from_numpy(np.stack(rows)).to(dev)
    return (
        out,
        torch.tensor(index, dtype=torch.int32, device=dev).reshape(-1, 1),
        torch.tensor(counts, dtype=torch.int32, device=dev),
    )


def _nms_per_class(
    b: np.ndarray,
    orders: list[np.ndarray],
    classes: list[int],
    shared: bool,
    threshold: float,
    eta: float,
    normalized: bool,
) -> list[list[int]]:
    """Greedy NMS of every class at once; boxes ``b`` [M, 4] shared by the classes or [M, C, 4]
    per class. Returns each class's kept box indices in score order."""
    k = max((len(o) for o in orders), default=0)
    if k == 0:
        return [[] for _ in orders]
    boxes = np.zeros((len(orders), k, 4), b.dtype)
    valid = np.zeros((len(orders), k), bool)
    for row, (c, o) in enumerate(zip(classes, orders, strict=True)):
        boxes[row, : len(o)] = b[o] if shared else b[o, c]
        valid[row, : len(o)] = True
    keep = batched_greedy_nms(boxes, valid, threshold, eta, normalized)
    return [[int(i) for i in o[keep[row, : len(o)]]] for row, o in enumerate(orders)]


def _matrix_decay(
    boxes: np.ndarray, scores: np.ndarray, gaussian: bool, sigma: float, normalized: bool
) -> np.ndarray:
    """Matrix-NMS scores of one class's boxes in descending score order: each score times its
    smallest decay over the higher-scored boxes j, ``(1 - iou) / (1 - iou_max[j])`` or
    ``exp((iou_max[j]^2 - iou^2) * sigma)``, iou_max[j] being box j's largest IoU with a box
    above it. (torch: its threaded elementwise ops are ~3x numpy's on these K x K matrices.)"""
    b, sc = torch.from_numpy(boxes), torch.from_numpy(scores)
    norm = 0.0 if normalized else 1.0
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    area = torch.where((w < 0) | (h < 0), 0.0, (w + norm) * (h + norm))
    ix1 = torch.maximum(b[:, None, 0], b[None, :, 0])
    iy1 = torch.maximum(b[:, None, 1], b[None, :, 1])
    ix2 = torch.minimum(b[:, None, 2], b[None, :, 2])
    iy2 = torch.minimum(b[:, None, 3], b[None, :, 3])
    inter = (ix2 - ix1 + norm) * (iy2 - iy1 + norm)
    disjoint = (
        (b[None, :, 0] > b[:, None, 2])
        | (b[None, :, 2] < b[:, None, 0])
        | (b[None, :, 1] > b[:, None, 3])
        | (b[None, :, 3] < b[:, None, 1])
    )
    iou = inter / (area[:, None] + area[None, :] - inter)
    iou = torch.where(disjoint, 0.0, iou).tril_(-1)  # iou[a, b] for b ranked above a
    iou_max = iou.max(dim=1).values
    if gaussian:
        decay = torch.exp((iou_max[None, :] ** 2 - iou**2) * sigma)
    else:
        decay = (1 - iou) / (1 - iou_max[None, :])
    decay = decay.tril_(-1) + torch.ones_like(decay).triu_()  # only boxes ranked above count
    return (decay.min(dim=1).values * sc).numpy()


# ---- matrix_nms -----------------------------------------------------------------------------
def matrix_nms(
    bboxes: Tensor,
    scores: Tensor,
    *,
    score_threshold: float,
    nms_top_k: int,
    keep_top_k: int,
    post_threshold: float,
    use_gaussian: bool,
    gaussian_sigma: float,
    background_label: int,
    normalized: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """Matrix NMS (SOLOv2): scores decay by IoU with higher-scored boxes of the same class
    instead of removing them. bboxes [N, M, 4], scores [N, C, M]. Returns out [K, 6] (label,
    decayed score, box) sorted by score per image, index [K, 1] int32, counts [N] int32."""
    n = scores.shape[0]
    if _is_meta(bboxes, scores):
        return (
            _meta((UNKNOWN_DIM, 6), scores.dtype),
            _meta((UNKNOWN_DIM, 1), torch.int32),
            _meta((n,), torch.int32),
        )
    b_all = bboxes.detach().cpu().numpy()
    s_all = scores.detach().cpu().numpy()
    dt = s_all.dtype.type
    rows: list[np.ndarray] = []
    index: list[int] = []
    counts: list[int] = []
    for i in range(n):
        labels, decayed_all, boxes_idx = [], [], []
        for c in range(s_all.shape[1]):
            if c == background_label:
                continue
            cs = s_all[i, c]
            order = _score_order(cs, score_threshold, nms_top_k)
            if len(order) == 0:
                continue
            decayed = _matrix_decay(
                b_all[i][order], cs[order], use_gaussian, gaussian_sigma, normalized
            )
            ok = decayed > dt(post_threshold)
            labels.append(np.full(int(ok.sum()), c))
            decayed_all.append(decayed[ok])
            boxes_idx.append(order[ok])
        if labels:
            lab, sc, idx = (np.concatenate(t) for t in (labels, decayed_all, boxes_idx))
            best = np.argsort(-sc, kind="stable")
            if keep_top_k > -1:
                best = best[:keep_top_k]
            lab, sc, idx = lab[best], sc[best], idx[best]
            rows.append(
                np.concatenate([lab[:, None].astype(dt), sc[:, None], b_all[i, idx]], 1).astype(dt)
            )
            index.extend((i * s_all.shape[2] + idx).tolist())
            counts.append(len(lab))
        else:
            counts.append(0)
    dev = scores.device
    out = (
        torch.from_numpy(np.concatenate(rows)).to(dev)
        if rows
        else torch.zeros((0, 6), dtype=scores.dtype, device=dev)
    )
    return (
        out,
        torch.tensor(index, dtype=torch.int32, device=dev).reshape(-1, 1),
        torch.tensor(counts, dtype=torch.int32, device=dev),
    )
