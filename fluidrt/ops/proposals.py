"""Canonical two-stage-detector ops: RPN proposals and FPN level routing.

Specified after Paddle's CPU kernels (``generate_proposals_kernel.cc``,
``distribute_fpn_proposals_kernel.cc``, ``collect_fpn_proposals_op.h``). Their output sizes
depend on the data: on meta tensors they give unknown (``?``) row counts and run natively.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from fluidrt.ops.infer import UNKNOWN_DIM
from fluidrt.ops.nms import _is_meta, _meta, greedy_nms
from fluidrt.ops.registry import REQUIRED, VARIADIC, register_op

Tensor = torch.Tensor

_BBOX_CLIP = math.log(1000.0 / 16.0)


def _decode(anchors: np.ndarray, deltas: np.ndarray, var: np.ndarray | None, off: float):
    dt = anchors.dtype.type
    off = dt(off)
    aw = anchors[:, 2] - anchors[:, 0] + off
    ah = anchors[:, 3] - anchors[:, 1] + off
    acx = anchors[:, 0] + dt(0.5) * aw
    acy = anchors[:, 1] + dt(0.5) * ah
    if var is not None:
        d = deltas * var
    else:
        d = deltas
    cx = d[:, 0] * aw + acx
    cy = d[:, 1] * ah + acy
    w = np.exp(np.minimum(d[:, 2], dt(_BBOX_CLIP))) * aw
    h = np.exp(np.minimum(d[:, 3], dt(_BBOX_CLIP))) * ah
    half = dt(0.5)
    return np.stack(
        [cx - half * w, cy - half * h, cx + half * w - off, cy + half * h - off], axis=1
    ).astype(dt)


@register_op(
    "generate_proposals",
    attrs={
        "pre_nms_top_n": 6000,
        "post_nms_top_n": 1000,
        "nms_thresh": 0.5,
        "min_size": 0.1,
        "eta": 1.0,
        "pixel_offset": True,
        "im_info": False,
    },
    inputs=5,
    outputs=3,
)
def generate_proposals(
    scores: Tensor,
    deltas: Tensor,
    im_shape: Tensor,
    anchors: Tensor,
    variances: Tensor,
    *,
    pre_nms_top_n: int,
    post_nms_top_n: int,
    nms_thresh: float,
    min_size: float,
    eta: float,
    pixel_offset: bool,
    im_info: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """RPN proposals per image: decode the top ``pre_nms_top_n`` anchors, clip to the image,
    drop boxes smaller than ``min_size``, NMS, keep ``post_nms_top_n``. scores [N, A, H, W],
    deltas [N, 4A, H, W], im_shape [N, 2] (h, w), anchors/variances [H, W, A, 4].
    Returns rois [R, 4], probs [R, 1], counts [N] int32. NMS visits equal scores last index
    first, as Paddle's. ``im_info``: the v1 op, im_shape [N, 3] (h, w, scale) with ``min_size``
    measured in the unscaled image."""
    n = scores.shape[0]
    if _is_meta(scores, deltas, im_shape):
        return (
            _meta((UNKNOWN_DIM, 4), scores.dtype),
            _meta((UNKNOWN_DIM, 1), scores.dtype),
            _meta((n,), torch.int32),
        )
    s_all = scores.detach().permute(0, 2, 3, 1).reshape(n, -1).cpu().numpy()
    d_all = deltas.detach().permute(0, 2, 3, 1).reshape(n, -1, 4).cpu().numpy()
    anc = anchors.detach().reshape(-1, 4).cpu().numpy()
    var = variances.detach().reshape(-1, 4).cpu().numpy() if variances is not None else None
    info = im_shape.detach().cpu().numpy().astype(s_all.dtype)
    dt = s_all.dtype.type
    off = 1.0 if pixel_offset else 0.0
    rois, probs, counts = [], [], []
    for i in range(n):
        sc = s_all[i]
        order = np.argsort(-sc, kind="stable")
        if 0 < pre_nms_top_n < len(order):
            order = order[:pre_nms_top_n]
        props = _decode(anc[order], d_all[i][order], None if var is None else var[order], off)
        im_h, im_w = info[i, 0], info[i, 1]
        props[:, 0::2] = np.maximum(np.minimum(props[:, 0::2], im_w - dt(off)), dt(0))
        props[:, 1::2] = np.maximum(np.minimum(props[:, 1::2], im_h - dt(off)), dt(0))
        scale = info[i, 2] if im_info else None
        keep = _filter(props, dt(max(min_size, 1.0)), im_h, im_w, off, scale)
        if len(keep) == 0:
            props, sc_kept = np.zeros((1, 4), dt), np.zeros((1,), dt)
        elif nms_thresh <= 0:  # Paddle skips NMS and the post-NMS cut
            props, sc_kept = props[keep], sc[order][keep]
        else:
            props, sc_kept = props[keep], sc[order][keep]
            pos = np.arange(len(props))
            by_score = np.lexsort((-pos, -sc_kept))  # score descending, ties last index first
            kept = greedy_nms(props, by_score, nms_thresh, eta, not pixel_offset)
            if post_nms_top_n > 0:
                kept = kept[:post_nms_top_n]
            props, sc_kept = props[kept], sc_kept[kept]
        rois.append(props)
        probs.append(sc_kept.reshape(-1, 1))
        counts.append(len(props))
    dev = scores.device
    return (
        torch.from_numpy(np.concatenate(rois)).to(dev),
        torch.from_numpy(np.concatenate(probs)).to(dev),
        torch.tensor(counts, dtype=torch.int32, device=dev),
    )


def _filter(
    props: np.ndarray, min_size: float, im_h: float, im_w: float, off: float, scale: float | None
) -> np.ndarray:
    """Indices of the boxes at least ``min_size`` wide and high (centre inside the image when
    ``off``, Paddle's pixel-offset convention; sizes divided by ``scale`` when given)."""
    dt = props.dtype.type
    ws = props[:, 2] - props[:, 0] + dt(off)
    hs = props[:, 3] - props[:, 1] + dt(off)
    if off:
        cx = props[:, 0] + ws / dt(2)
        cy = props[:, 1] + hs / dt(2)
        if scale is not None:
            ws = (props[:, 2] - props[:, 0]) / scale + dt(1)
            hs = (props[:, 3] - props[:, 1]) / scale + dt(1)
        ok = (ws >= min_size) & (hs >= min_size) & (cx <= im_w) & (cy <= im_h)
    else:
        ok = (ws >= min_size) & (hs >= min_size)
    return np.nonzero(ok)[0]


# ---- FPN routing ------------------------------------------------------------------------------
def _counts(rois_num: Tensor | None, total: int) -> list[int]:
    if rois_num is None:
        return [total]
    return [int(v) for v in rois_num.detach().cpu().reshape(-1).tolist()]


@register_op(
    "distribute_fpn_proposals",
    attrs={
        "min_level": REQUIRED,
        "max_level": REQUIRED,
        "refer_level": REQUIRED,
        "refer_scale": REQUIRED,
        "pixel_offset": True,
    },
    inputs=(1, 2),
    outputs=lambda a: 2 * (int(a["max_level"]) - int(a["min_level"]) + 1) + 1,
)
def distribute_fpn_proposals(
    rois: Tensor,
    rois_num: Tensor | None = None,
    *,
    min_level: int,
    max_level: int,
    refer_level: int,
    refer_scale: int,
    pixel_offset: bool,
) -> list[Tensor]:
    """Route each RoI [R, 4] to FPN level ``floor(refer_level + log2(sqrt(area) / refer_scale))``
    clamped to [min_level, max_level]. Outputs: the RoIs of each level (image order kept), then
    restore_index [R, 1] int32 (position of each input RoI in the concatenated levels), then
    each level's per-image counts [N] int32."""
    levels = max_level - min_level + 1
    if _is_meta(rois, rois_num):
        n = rois_num.shape[0] if rois_num is not None else 1
        return (
            [_meta((UNKNOWN_DIM, 4), rois.dtype) for _ in range(levels)]
            + [_meta((rois.shape[0], 1), torch.int32)]
            + [_meta((n,), torch.int32) for _ in range(levels)]
        )
    r = rois.detach().cpu().numpy()
    dt = r.dtype.type
    off = dt(1.0 if pixel_offset else 0.0)
    w, h = r[:, 2] - r[:, 0], r[:, 3] - r[:, 1]
    area = np.where((w < 0) | (h < 0), dt(0), (w + off) * (h + off))
    scale = np.sqrt(area)
    lvl = np.floor(np.log2(scale / dt(refer_scale) + dt(1e-6)) + dt(refer_level))
    lvl = np.clip(lvl, min_level, max_level).astype(np.int64) - min_level
    counts = _counts(rois_num, len(r))
    image = np.repeat(np.arange(len(counts)), counts)
    outs, per_level, order = [], [], []
    for k in range(levels):
        idx = np.nonzero(lvl == k)[0]
        order.append(idx)
        outs.append(torch.from_numpy(r[idx].reshape(-1, 4)).to(rois.device))
        per_level.append(np.bincount(image[idx], minlength=len(counts)).astype(np.int32))
    restore = np.empty(len(r), np.int32)
    restore[np.concatenate(order)] = np.arange(len(r), dtype=np.int32)
    dev = rois.device
    return (
        outs
        + [torch.from_numpy(restore.reshape(-1, 1)).to(dev)]
        + [torch.from_numpy(c).to(dev) for c in per_level]
    )


@register_op(
    "collect_fpn_proposals",
    attrs={"post_nms_top_n": REQUIRED, "levels": REQUIRED},
    inputs=(2, VARIADIC),
    outputs=2,
)
def collect_fpn_proposals(*xs: Tensor, post_nms_top_n: int, levels: int) -> tuple[Tensor, Tensor]:
    """Merge per-level RoIs: inputs are ``levels`` RoI tensors [Ri, 4], ``levels`` score
    tensors [Ri, 1] and optionally ``levels`` per-image counts [N]. Keeps the
    ``post_nms_top_n`` best scores over the whole batch, grouped by image. Returns rois [R, 4]
    and counts [N] int32."""
    rois, scores, nums = xs[:levels], xs[levels : 2 * levels], xs[2 * levels :]
    if _is_meta(*xs):
        n = nums[0].shape[0] if nums else 1
        return _meta((UNKNOWN_DIM, 4), rois[0].dtype), _meta((n,), torch.int32)
    r = np.concatenate([t.detach().cpu().numpy().reshape(-1, 4) for t in rois])
    s = np.concatenate([t.detach().cpu().numpy().reshape(-1) for t in scores])
    if nums:
        per_level = [_counts(t, 0) for t in nums]
        n = len(per_level[0])
        image = np.concatenate([np.repeat(np.arange(n), c) for c in per_level])
    else:
        n, image = 1, np.zeros(len(r), np.int64)
    order = np.argsort(-s, kind="stable")[: max(post_nms_top_n, 0)]
    order = order[np.argsort(image[order], kind="stable")]
    counts = np.bincount(image[order], minlength=n).astype(np.int32)
    dev = rois[0].device
    return torch.from_numpy(r[order]).to(dev), torch.from_numpy(counts).to(dev)
