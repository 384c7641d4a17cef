"""Canonical non-maximum-suppression ops: ``nms``, ``multiclass_nms`` and ``matrix_nms``.

Specified after Paddle's CPU kernels (``nms_kernel.cc``, ``multiclass_nms3_kernel.cc``,
``matrix_nms_kernel.cc``). The number of kept boxes depends on the data, so on meta tensors these
ops give an unknown (``?``) row count and always run natively.

All work is batched torch ops on the inputs' device (no per-candidate Python loop): candidates of
every class come from one stable sort, greedy NMS resolves blocks of candidates of all classes at
once (IoU with the boxes kept so far, then the greedy order inside the block as a fixed point), and
``keep_top_k`` stops the resolution as soon as no unresolved candidate can reach the result.
IoUs use the same float operations, in the same order, as Paddle's ``JaccardOverlap``.
"""

from __future__ import annotations

import numpy as np
import torch

from fluidrt.ops.infer import UNKNOWN_DIM
from fluidrt.ops.registry import register_op

Tensor = torch.Tensor

_FIRST_BLOCK = 16  # candidates per class in the first greedy block; blocks then double ...
_MAX_BLOCK = 128  # ... up to this many
_PAIR_CHUNK = 1 << 16  # elements of one [rows, P, Q] IoU batch on the CPU (cache-resident)
_MATRIX_CHUNK = 1 << 23  # elements of one [classes, K, K] matrix-NMS batch on a GPU


def _is_meta(*ts: Tensor | None) -> bool:
    return any(t is not None and t.device.type == "meta" for t in ts)


def _meta(shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    return torch.empty(shape, dtype=dtype, device="meta")


def _candidates(scores: Tensor, threshold: float, top_k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per row of ``scores`` [C, M]: the indices with score > threshold stably sorted by
    descending score (ties by index), the first ``top_k`` (all when -1). Returns order [C, K],
    their scores [C, K] and valid [C, K] (a prefix of each row)."""
    thr = torch.tensor(threshold, dtype=scores.dtype, device=scores.device)
    s = scores.masked_fill(~(scores > thr), float("-inf"))  # NaN scores are never candidates
    c, m = s.shape
    k = m if top_k <= -1 else min(top_k, m)
    if 0 < k < m:  # the stable top k without sorting whole rows: all above the k-th value,
        kth = torch.topk(s, k, dim=1, sorted=False).values.amin(1, keepdim=True)
        take = s >= kth
        if not bool((take.sum(1) == k).all()):  # then only the first indices tied with it
            tie = s == kth
            fill = k - (s > kth).sum(1, keepdim=True)
            take = (s > kth) | (tie & (torch.cumsum(tie, 1) <= fill))
        first = torch.nonzero(take)[:, 1].reshape(c, k)
        vals, pos = torch.sort(s.gather(1, first), dim=1, descending=True, stable=True)
        return first.gather(1, pos), vals, vals > thr
    vals, order = torch.sort(s, dim=1, descending=True, stable=True)
    return order[:, :k], vals[:, :k], vals[:, :k] > thr


def _areas(boxes: Tensor, norm: float) -> Tensor:
    """Paddle's BBoxArea: 0 for inverted boxes, else (w + norm) * (h + norm)."""
    w, h = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
    inverted = (w < 0) | (h < 0)
    if norm:
        w, h = w + norm, h + norm
    return torch.where(inverted, 0.0, w * h)


def _pair_iou(a: Tensor, area_a: Tensor, b: Tensor, area_b: Tensor, norm: float) -> Tensor:
    """IoU of every box of ``a`` [..., P, 4] with every box of ``b`` [..., Q, 4] -> [..., P, Q],
    as Paddle's JaccardOverlap: 0 for disjoint boxes, (w + norm) * (h + norm) intersections,
    NaN where the boxes hold NaN."""
    ax1, ay1, ax2, ay2 = (a[..., :, None, j] for j in range(4))
    bx1, by1, bx2, by2 = (b[..., None, :, j] for j in range(4))
    iw = torch.minimum(ax2, bx2).sub_(torch.maximum(ax1, bx1))
    ih = torch.minimum(ay2, by2).sub_(torch.maximum(ay1, by1))
    if norm:
        iw.add_(norm)
        ih.add_(norm)
    inter = iw.mul_(ih)
    union = (area_a[..., :, None] + area_b[..., None, :]).sub_(inter)
    disjoint = (bx1 > ax2).logical_or_(bx2 < ax1).logical_or_(by1 > ay2).logical_or_(by2 < ay1)
    return inter.div_(union).masked_fill_(disjoint, 0.0)


def _max_iou(
    a: Tensor, area_a: Tensor, b: Tensor, area_b: Tensor, b_n: Tensor, norm: float
) -> Tensor:
    """Per box of ``a`` [R, P, 4]: its largest IoU with the first ``b_n`` [R] boxes of ``b``
    [R, Q, 4] (-inf with none; NaN when one is NaN). Rows go in chunks that keep the [r, P, Q]
    temporaries small (cache-resident: these are the bulk of the work)."""
    r, p, q = a.shape[0], a.shape[1], b.shape[1]
    if q == 0:
        return torch.full((r, p), float("-inf"), dtype=a.dtype, device=a.device)
    step = max(1, _PAIR_CHUNK // (p * q)) if a.device.type == "cpu" else r
    cols = torch.arange(q, device=a.device)
    out = []
    for lo in range(0, r, step):
        sl = slice(lo, lo + step)
        iou = _pair_iou(a[sl], area_a[sl], b[sl], area_b[sl], norm)
        iou.masked_fill_((cols >= b_n[sl, None])[:, None, :], float("-inf"))
        out.append(iou.amax(-1))
    return torch.cat(out)


def _thresholds(threshold: float, eta: float, k: int, like: Tensor) -> Tensor:
    """NMSFast's adaptive threshold after n kept boxes, n = 0..k: times ``eta`` per kept box
    while above 0.5 (in the boxes' dtype, as Paddle's ``T adaptive_threshold``)."""
    t = torch.tensor(threshold, dtype=like.dtype)
    table = [t]
    if eta < 1:
        e = torch.tensor(eta, dtype=like.dtype)
        while len(table) <= k and table[-1] > 0.5:
            table.append(table[-1] * e)
    table += [table[-1]] * (k + 1 - len(table))
    return torch.stack(table).to(like.device)


def batched_greedy_nms(
    boxes: Tensor,
    valid: Tensor,
    threshold: float,
    eta: float,
    normalized: bool,
    scores: Tensor | None = None,
    keep_top_k: int = -1,
) -> Tensor:
    """Greedy NMS (Paddle's NMSFast) of C independent rows: boxes [C, K, 4] in score order,
    ``valid`` [C, K] a prefix of real candidates per row. A box is dropped when its IoU with a
    kept box of its row exceeds the row's threshold (adaptive with ``eta`` < 1; a NaN IoU
    drops it). Returns the kept mask [C, K].

    Blocks of candidates of all rows are resolved together: their largest IoU with the boxes
    kept by earlier blocks, then the greedy order inside the block as the unique fixed point of
    ``keep[i] = valid[i] and max(prior[i], max IoU with kept j < i) <= thr[#kept before i]``
    (iterating it fixes at least one more position per round; random boxes need a few rounds).

    With ``scores`` [C, K] and ``keep_top_k`` > -1 (the caller keeps only the best
    ``keep_top_k`` kept boxes over all rows), a row stops once its next candidate scores below
    the ``keep_top_k``-th best kept score so far: kept boxes only add, so that bar only rises,
    and a box never scores above its candidate score, so no later box of the row can enter the
    result (ties with the bar go on). Its later candidates are then left unkept."""
    c, k = valid.shape
    keep = torch.zeros((c, k), dtype=torch.bool, device=boxes.device)
    if c == 0 or k == 0 or keep_top_k == 0:
        return keep
    norm = 0.0 if normalized else 1.0
    area = _areas(boxes, norm)
    thr = _thresholds(threshold, eta, k, boxes)
    kept_boxes = torch.empty_like(boxes)  # each row's kept boxes so far, packed to the left
    kept_area = torch.empty_like(area)
    kept_n = torch.zeros(c, dtype=torch.int64, device=boxes.device)
    n_valid = valid.sum(1)
    rows = torch.nonzero(n_valid > 0).flatten()
    start, size = 0, _FIRST_BLOCK
    neg_inf = float("-inf")
    while rows.numel():
        end = min(start + size, k)
        blk_valid = valid[rows, start:end]
        cb, ca = boxes[rows, start:end], area[rows, start:end]
        kn = kept_n[rows]
        most = int(kn.max())
        prior = _max_iou(cb, ca, kept_boxes[rows, :most], kept_area[rows, :most], kn, norm)
        inner = _pair_iou(cb, ca, cb, ca, norm)  # [rows, i, j]; only j < i counts
        later = torch.ones(end - start, end - start, dtype=torch.bool, device=cb.device).triu_()
        inner.masked_fill_(later, neg_inf)
        blk = blk_valid & (prior <= thr[kn][:, None])
        while True:
            before = kn[:, None] + torch.cumsum(blk, 1) - blk.long()
            worst = inner.masked_fill(~blk[:, None, :], neg_inf).amax(-1)
            new = blk_valid & (torch.maximum(prior, worst) <= thr[before])
            if torch.equal(new, blk):
                break
            blk = new
        keep[rows, start:end] = blk
        dest = kn[:, None] + torch.cumsum(blk, 1) - 1
        r = rows[:, None].expand_as(blk)[blk]
        kept_boxes[r, dest[blk]] = cb[blk]
        kept_area[r, dest[blk]] = ca[blk]
        kept_n[rows] = kn + blk.sum(1)
        start, size = end, min(2 * size, _MAX_BLOCK)
        go = n_valid[rows] > start
        if scores is not None and keep_top_k > -1 and start < k:
            kept_scores = scores[keep]
            if kept_scores.numel() >= keep_top_k:
                bar = torch.topk(kept_scores, keep_top_k).values[-1]
                go &= scores[rows, start] >= bar
        rows = rows[go]
    return keep


def greedy_nms(
    boxes: np.ndarray, order: np.ndarray, threshold: float, eta: float, normalized: bool
) -> list[int]:
    """Greedy NMS of ``boxes[order]``; the indices (into ``boxes``) kept, in ``order``."""
    if len(order) == 0:
        return []
    b = torch.from_numpy(np.ascontiguousarray(boxes[order]))[None]
    keep = batched_greedy_nms(
        b, torch.ones(b.shape[:2], dtype=torch.bool), threshold, eta, normalized
    )
    return [int(i) for i in order[keep[0].numpy()]]


# ---- nms ------------------------------------------------------------------------------------
@register_op("nms", attrs={"iou_threshold": 1.0})
def nms(boxes: Tensor, *, iou_threshold: float) -> Tensor:
    """Indices (int64) of the boxes [K, 4] kept by greedy NMS in the given order (the caller
    sorts by score); IoU without the +1 pixel convention."""
    if _is_meta(boxes):
        return _meta((UNKNOWN_DIM,), torch.int64)
    b = boxes.detach()[None]
    keep = batched_greedy_nms(
        b, torch.ones(b.shape[:2], dtype=torch.bool, device=b.device), iou_threshold, 1.0, True
    )
    return torch.nonzero(keep[0]).flatten()


# ---- multiclass_nms -------------------------------------------------------------------------
def _image_slices(
    bboxes: Tensor, scores: Tensor, rois_num: Tensor | None
) -> list[tuple[Tensor, Tensor, int]]:
    """Per image: boxes [M, 4] (3-D scores) or [M, C, 4] (2-D), scores [C, M], index offset."""
    if scores.dim() == 3:
        m = scores.shape[2]
        return [(bboxes[i], scores[i], i * m) for i in range(scores.shape[0])]
    counts = rois_num.tolist() if rois_num is not None else [scores.shape[0]]
    out, start = [], 0
    for n in counts:
        n = int(n)
        out.append(
            (bboxes[start : start + n], scores[start : start + n].T, start * scores.shape[1])
        )
        start += n
    return out


@register_op(
    "multiclass_nms",
    attrs={
        "score_threshold": 0.05,
        "nms_top_k": -1,
        "keep_top_k": -1,
        "nms_threshold": 0.3,
        "normalized": True,
        "nms_eta": 1.0,
        "background_label": 0,
        "empty_row": False,
    },
    inputs=(2, 3),
    outputs=3,
)
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
    three_d = scores.dim() == 3
    num_classes = scores.shape[1] if three_d else scores.shape[-1]
    dev, dt = scores.device, scores.dtype
    classes = torch.tensor(
        [c for c in range(num_classes) if c != background_label], dtype=torch.int64, device=dev
    )
    outs: list[Tensor] = []
    indices: list[Tensor] = []
    counts: list[int] = []
    for b, s, offset in _image_slices(bboxes.detach(), scores.detach(), rois_num):
        order, vals, valid = _candidates(s[classes], score_threshold, nms_top_k)
        boxes = b[order] if three_d else b[order, classes[:, None]]
        keep = batched_greedy_nms(
            boxes, valid, nms_threshold, nms_eta, normalized, vals, keep_top_k
        )
        row, pos = torch.nonzero(keep, as_tuple=True)  # by label, then NMS (score) order
        idx = order[row, pos]
        if not three_d:  # the 2-D kernel lists a label's boxes by box index
            by_index = torch.argsort(row * b.shape[0] + idx)
            row, pos, idx = row[by_index], pos[by_index], idx[by_index]
        if keep_top_k > -1 and row.numel() > keep_top_k:  # stable: ties keep the order above
            best = torch.sort(vals[row, pos], descending=True, stable=True).indices
            best = best[:keep_top_k].sort().values
            row, pos, idx = row[best], pos[best], idx[best]
        label = classes[row]
        box = (b[idx] if three_d else b[idx, label]).to(dt)
        outs.append(torch.cat([label[:, None].to(dt), vals[row, pos][:, None], box], 1))
        indices.append(offset + (idx if three_d else idx * num_classes + label))
        counts.append(int(row.numel()))
    if sum(counts) == 0 and empty_row:
        return (
            torch.full((1, 1), -1, dtype=dt, device=dev),
            torch.zeros((0, 1), dtype=torch.int32, device=dev),
            torch.tensor([1] + [0] * (len(counts) - 1), dtype=torch.int32, device=dev),
        )
    empty_i = torch.zeros(0, dtype=torch.int64, device=dev)
    return (
        torch.cat(outs) if outs else torch.zeros((0, box_dim + 2), dtype=dt, device=dev),
        torch.cat(indices or [empty_i]).to(torch.int32).reshape(-1, 1),
        torch.tensor(counts, dtype=torch.int32, device=dev),
    )


def _matrix_decay(
    boxes: Tensor, scores: Tensor, gaussian: bool, sigma: float, normalized: bool
) -> Tensor:
    """Matrix-NMS scores of rows of boxes [C, K, 4] in descending score order: each score times
    its smallest decay over the higher-scored boxes j of its row, ``(1 - iou) / (1 - iou_max[j])``
    or ``exp((iou_max[j]^2 - iou^2) * sigma)``, iou_max[j] being box j's largest IoU with a box
    above it. Rows may be padded at the end: a box only sees the boxes above it."""
    norm = 0.0 if normalized else 1.0
    k = boxes.shape[1]
    if k == 0 or boxes.shape[0] == 0:
        return scores.clone()
    most = _MATRIX_CHUNK if boxes.device.type != "cpu" else _PAIR_CHUNK
    chunk = max(1, most // (k * k))
    below = torch.ones(k, k, dtype=torch.bool, device=boxes.device).tril_(-1)
    out = []
    for b, sc in zip(boxes.split(chunk), scores.split(chunk), strict=True):
        area = _areas(b, norm)
        iou = _pair_iou(b, area, b, area, norm).masked_fill_(~below, 0.0)  # b above a
        iou_max = iou.amax(dim=2)
        if gaussian:
            decay = torch.exp((iou_max[:, None, :] ** 2 - iou**2) * sigma)
        else:
            decay = (1 - iou) / (1 - iou_max[:, None, :])
        decay = decay.masked_fill_(~below, 1.0)  # only boxes ranked above count
        out.append(decay.amin(dim=2) * sc)
    return torch.cat(out)


# ---- matrix_nms -----------------------------------------------------------------------------
@register_op(
    "matrix_nms",
    attrs={
        "score_threshold": 0.05,
        "nms_top_k": -1,
        "keep_top_k": -1,
        "post_threshold": 0.0,
        "use_gaussian": False,
        "gaussian_sigma": 2.0,
        "background_label": 0,
        "normalized": True,
    },
    inputs=2,
    outputs=3,
)
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
    dev, dt = scores.device, scores.dtype
    b_all, s_all = bboxes.detach(), scores.detach()
    classes = torch.tensor(
        [c for c in range(s_all.shape[1]) if c != background_label], dtype=torch.int64, device=dev
    )
    post = torch.tensor(post_threshold, dtype=dt, device=dev)
    outs: list[Tensor] = []
    indices: list[Tensor] = []
    counts: list[int] = []
    for i in range(n):
        order, vals, valid = _candidates(s_all[i][classes], score_threshold, nms_top_k)
        decayed = _matrix_decay(b_all[i][order], vals, use_gaussian, gaussian_sigma, normalized)
        row, pos = torch.nonzero(valid & (decayed > post), as_tuple=True)  # by label, rank
        best = torch.sort(decayed[row, pos], descending=True, stable=True).indices
        if keep_top_k > -1:
            best = best[:keep_top_k]
        row, pos = row[best], pos[best]
        idx = order[row, pos]
        box = b_all[i][idx].to(dt)
        outs.append(torch.cat([classes[row, None].to(dt), decayed[row, pos][:, None], box], 1))
        indices.append(i * s_all.shape[2] + idx)
        counts.append(int(row.numel()))
    empty_i = torch.zeros(0, dtype=torch.int64, device=dev)
    return (
        torch.cat(outs) if outs else torch.zeros((0, 6), dtype=dt, device=dev),
        torch.cat(indices or [empty_i]).to(torch.int32).reshape(-1, 1),
        torch.tensor(counts, dtype=torch.int32, device=dev),
    )
