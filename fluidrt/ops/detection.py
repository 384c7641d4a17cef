"""Canonical detection ops with dense outputs: box decoding and anchor/prior generation.

Specified after Paddle's CPU kernels (``paddle/phi/kernels/cpu/*_kernel.cc``): ``yolo_box``,
``prior_box``, ``density_prior_box``, ``anchor_generator``, ``box_coder`` and ``affine_channel``.
All run on meta tensors, so their shapes are inferred. The ops whose output size depends on the
data (NMS, proposals, FPN routing) live in ``fluidrt.ops.nms`` and ``fluidrt.ops.proposals``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from fluidrt.ops.registry import REQUIRED, register_op

Tensor = torch.Tensor


# ---- yolo_box -------------------------------------------------------------------------------
@register_op(
    "yolo_box",
    attrs={
        "anchors": REQUIRED,
        "class_num": 1,
        "conf_thresh": 0.01,
        "downsample_ratio": 32,
        "clip_bbox": True,
        "scale_x_y": 1.0,
        "iou_aware": False,
        "iou_aware_factor": 0.5,
    },
    inputs=2,
    outputs=2,
)
def yolo_box(
    x: Tensor,
    img_size: Tensor,
    *,
    anchors: Sequence[int],
    class_num: int,
    conf_thresh: float,
    downsample_ratio: int,
    clip_bbox: bool,
    scale_x_y: float,
    iou_aware: bool,
    iou_aware_factor: float,
) -> tuple[Tensor, Tensor]:
    """YOLOv3 head decoding: boxes [N, A*H*W, 4] (x1, y1, x2, y2 in image pixels) and scores
    [N, A*H*W, class_num]; both are 0 where the objectness is below ``conf_thresh``."""
    n, _, h, w = x.shape
    an = len(anchors) // 2
    if iou_aware:
        ious = torch.sigmoid(x[:, :an])  # [N, A, H, W]
        x = x[:, an:]
    p = x.reshape(n, an, 5 + class_num, h, w)
    dt = x.dtype
    img_h = img_size[:, 0].to(dt).reshape(n, 1, 1, 1)
    img_w = img_size[:, 1].to(dt).reshape(n, 1, 1, 1)
    anc = torch.tensor(anchors, dtype=dt, device=x.device).reshape(an, 2)
    aw = anc[:, 0].reshape(1, an, 1, 1)
    ah = anc[:, 1].reshape(1, an, 1, 1)
    gx = torch.arange(w, dtype=dt, device=x.device).reshape(1, 1, 1, w)
    gy = torch.arange(h, dtype=dt, device=x.device).reshape(1, 1, h, 1)
    bias = -0.5 * (scale_x_y - 1.0)
    cx = (gx + torch.sigmoid(p[:, :, 0]) * scale_x_y + bias) * img_w / w
    cy = (gy + torch.sigmoid(p[:, :, 1]) * scale_x_y + bias) * img_h / h
    bw = torch.exp(p[:, :, 2]) * aw * img_w / (downsample_ratio * w)
    bh = torch.exp(p[:, :, 3]) * ah * img_h / (downsample_ratio * h)
    conf = torch.sigmoid(p[:, :, 4])
    if iou_aware:
        conf = conf.pow(1.0 - iou_aware_factor) * ious.pow(iou_aware_factor)
    x1, y1 = cx - bw / 2, cy - bh / 2
    x2, y2 = cx + bw / 2, cy + bh / 2
    if clip_bbox:
        x1 = torch.clamp(x1, min=0)
        y1 = torch.clamp(y1, min=0)
        x2 = torch.minimum(x2, img_w - 1)
        y2 = torch.minimum(y2, img_h - 1)
    keep = (conf >= conf_thresh).to(dt)  # [N, A, H, W]
    boxes = torch.stack([x1, y1, x2, y2], dim=-1) * keep.unsqueeze(-1)
    scores = conf.unsqueeze(2) * torch.sigmoid(p[:, :, 5:]) * keep.unsqueeze(2)
    boxes = boxes.reshape(n, an * h * w, 4)
    scores = scores.permute(0, 1, 3, 4, 2).reshape(n, an * h * w, class_num)
    return boxes, scores


# ---- prior boxes and anchors -----------------------------------------------------------------
def expand_aspect_ratios(ratios: Sequence[float], flip: bool) -> list[float]:
    """1, then each distinct ratio (and its inverse with ``flip``), as Paddle expands them."""
    out = [1.0]
    for r in ratios:
        if any(abs(r - o) < 1e-6 for o in out):
            continue
        out.append(float(r))
        if flip:
            out.append(1.0 / float(r))
    return out


def _priors_out(
    boxes: list[list[float]], h: int, w: int, variances: Sequence[float], clip: bool, like: Tensor
) -> tuple[Tensor, Tensor]:
    t = torch.tensor(boxes, dtype=torch.float32).reshape(h, w, -1, 4)
    if clip:
        t = t.clamp(0.0, 1.0)
    var = torch.tensor(list(variances), dtype=torch.float32).expand(t.shape).contiguous()
    return t.to(device=like.device, dtype=like.dtype), var.to(device=like.device, dtype=like.dtype)


def _steps(feat: Tensor, image: Tensor, step_w: float, step_h: float) -> tuple[float, float]:
    """The prior strides: both from the image/feature ratio when either is 0 (Paddle's rule)."""
    if not step_w or not step_h:
        return _f32(image.shape[3] / feat.shape[3]), _f32(image.shape[2] / feat.shape[2])
    return float(step_w), float(step_h)


@register_op(
    "prior_box",
    attrs={
        "min_sizes": REQUIRED,
        "max_sizes": [],
        "aspect_ratios": [],
        "variances": [0.1, 0.1, 0.2, 0.2],
        "flip": True,
        "clip": True,
        "step_w": 0.0,
        "step_h": 0.0,
        "offset": 0.5,
        "min_max_aspect_ratios_order": False,
    },
    inputs=2,
    outputs=2,
)
def prior_box(
    feat: Tensor,
    image: Tensor,
    *,
    min_sizes: Sequence[float],
    max_sizes: Sequence[float],
    aspect_ratios: Sequence[float],
    variances: Sequence[float],
    flip: bool,
    clip: bool,
    step_w: float,
    step_h: float,
    offset: float,
    min_max_aspect_ratios_order: bool,
) -> tuple[Tensor, Tensor]:
    """SSD prior boxes [H, W, num_priors, 4] normalized by the image size, and their variances."""
    h, w = int(feat.shape[2]), int(feat.shape[3])
    img_h, img_w = int(image.shape[2]), int(image.shape[3])
    sw, sh = _steps(feat, image, step_w, step_h)
    ratios = expand_aspect_ratios(aspect_ratios, flip)
    f32 = _f32

    def box(cx: float, cy: float, bw: float, bh: float) -> list[float]:
        return [
            f32((cx - bw) / img_w),
            f32((cy - bh) / img_h),
            f32((cx + bw) / img_w),
            f32((cy + bh) / img_h),
        ]

    rows = []
    for i in range(h):
        for j in range(w):
            cx, cy = f32((j + offset) * sw), f32((i + offset) * sh)
            for s, mn in enumerate(min_sizes):
                mn = float(mn)
                if min_max_aspect_ratios_order:
                    rows.append(box(cx, cy, mn / 2, mn / 2))
                    if max_sizes:
                        side = f32(math.sqrt(mn * float(max_sizes[s]))) / 2
                        rows.append(box(cx, cy, side, side))
                    for r in ratios:
                        if abs(r - 1.0) < 1e-6:
                            continue
                        sr = f32(math.sqrt(r))
                        rows.append(box(cx, cy, mn * sr / 2, mn / sr / 2))
                else:
                    for r in ratios:
                        sr = f32(math.sqrt(r))
                        rows.append(box(cx, cy, mn * sr / 2, mn / sr / 2))
                    if max_sizes:
                        side = f32(math.sqrt(mn * float(max_sizes[s]))) / 2
                        rows.append(box(cx, cy, side, side))
    return _priors_out(rows, h, w, variances, clip, feat)


def _f32(v: float) -> float:
    """Round to float32, as the kernels compute in float."""
    return float(torch.tensor(v, dtype=torch.float32))


@register_op(
    "density_prior_box",
    attrs={
        "fixed_sizes": REQUIRED,
        "fixed_ratios": REQUIRED,
        "densities": REQUIRED,
        "variances": [0.1, 0.1, 0.2, 0.2],
        "clip": True,
        "step_w": 0.0,
        "step_h": 0.0,
        "offset": 0.5,
        "flatten_to_2d": False,
    },
    inputs=2,
    outputs=2,
)
def density_prior_box(
    feat: Tensor,
    image: Tensor,
    *,
    fixed_sizes: Sequence[float],
    fixed_ratios: Sequence[float],
    densities: Sequence[int],
    variances: Sequence[float],
    clip: bool,
    step_w: float,
    step_h: float,
    offset: float,
    flatten_to_2d: bool,
) -> tuple[Tensor, Tensor]:
    """Density prior boxes (Paddle's fluid ``density_prior_box``): for each fixed size and its
    density d, d*d shifted boxes per ratio; [H, W, num_priors, 4] (or [H*W*num_priors, 4])."""
    h, w = int(feat.shape[2]), int(feat.shape[3])
    img_h, img_w = int(image.shape[2]), int(image.shape[3])
    sw, sh = _steps(feat, image, step_w, step_h)
    step_avg = int((sw + sh) * 0.5)
    rows = []
    for i in range(h):
        for j in range(w):
            cx, cy = (j + offset) * sw, (i + offset) * sh
            for size, density in zip(fixed_sizes, densities, strict=True):
                density, size = int(density), float(size)
                shift = step_avg // density
                for r in fixed_ratios:
                    bw = size * math.sqrt(r)
                    bh = size / math.sqrt(r)
                    dcx = cx - step_avg / 2.0 + shift / 2.0
                    dcy = cy - step_avg / 2.0 + shift / 2.0
                    for di in range(density):
                        for dj in range(density):
                            ccx, ccy = dcx + dj * shift, dcy + di * shift
                            rows.append(
                                [
                                    max((ccx - bw / 2.0) / img_w, 0.0),
                                    max((ccy - bh / 2.0) / img_h, 0.0),
                                    min((ccx + bw / 2.0) / img_w, 1.0),
                                    min((ccy + bh / 2.0) / img_h, 1.0),
                                ]
                            )
    boxes, var = _priors_out(rows, h, w, variances, clip, feat)
    if flatten_to_2d:
        return boxes.reshape(-1, 4), var.reshape(-1, 4)
    return boxes, var


@register_op(
    "anchor_generator",
    attrs={
        "anchor_sizes": REQUIRED,
        "aspect_ratios": REQUIRED,
        "variances": [0.1, 0.1, 0.2, 0.2],
        "stride": REQUIRED,
        "offset": 0.5,
    },
    outputs=2,
)
def anchor_generator(
    feat: Tensor,
    *,
    anchor_sizes: Sequence[float],
    aspect_ratios: Sequence[float],
    variances: Sequence[float],
    stride: Sequence[float],
    offset: float,
) -> tuple[Tensor, Tensor]:
    """Faster R-CNN anchors [H, W, len(ratios)*len(sizes), 4] in input pixels (ratios outer)."""
    h, w = int(feat.shape[2]), int(feat.shape[3])
    stride_w, stride_h = float(stride[0]), float(stride[1])
    rows = []
    for i in range(h):
        for j in range(w):
            x_ctr = j * stride_w + offset * (stride_w - 1)
            y_ctr = i * stride_h + offset * (stride_h - 1)
            for r in aspect_ratios:
                for s in anchor_sizes:
                    area_ratio = stride_w * stride_h / float(r)
                    base_w = round(math.sqrt(area_ratio))
                    base_h = round(base_w * float(r))
                    aw = float(s) / stride_w * base_w
                    ah = float(s) / stride_h * base_h
                    rows.append(
                        [
                            x_ctr - 0.5 * (aw - 1),
                            y_ctr - 0.5 * (ah - 1),
                            x_ctr + 0.5 * (aw - 1),
                            y_ctr + 0.5 * (ah - 1),
                        ]
                    )
    return _priors_out(rows, h, w, variances, False, feat)


# ---- box_coder ------------------------------------------------------------------------------
@register_op(
    "box_coder",
    attrs={
        "code_type": "encode_center_size",
        "box_normalized": True,
        "axis": 0,
        "variance": [],
    },
    inputs=(3, 3),
)
def box_coder(
    prior: Tensor,
    prior_var: Tensor | None,
    target: Tensor,
    *,
    code_type: str,
    box_normalized: bool,
    axis: int,
    variance: Sequence[float],
) -> Tensor:
    """Encode target boxes [N, 4] against priors [M, 4] into [N, M, 4] deltas, or decode deltas
    [N, M, 4] with the priors laid along ``axis`` (0: prior j for column j, 1: prior i for row i).
    Variances: input ``prior_var`` ([M, 4]), else attribute ``variance`` (4 floats), else 1."""
    norm = 0.0 if box_normalized else 1.0
    pw = prior[:, 2] - prior[:, 0] + norm
    ph = prior[:, 3] - prior[:, 1] + norm
    pcx = prior[:, 0] + pw / 2
    pcy = prior[:, 1] + ph / 2
    if prior_var is not None:
        var = prior_var.reshape(-1, 4).to(prior.dtype)
    elif variance:
        var = torch.tensor(list(variance), dtype=prior.dtype, device=prior.device).reshape(1, 4)
    else:
        var = None
    if code_type.lower() in ("encode_center_size", "encodecentersize"):
        t = target.reshape(-1, 4)
        tw = (t[:, 2] - t[:, 0] + norm)[:, None]
        th = (t[:, 3] - t[:, 1] + norm)[:, None]
        tcx = ((t[:, 0] + t[:, 2]) / 2)[:, None]
        tcy = ((t[:, 1] + t[:, 3]) / 2)[:, None]
        out = torch.stack(
            [
                (tcx - pcx) / pw,
                (tcy - pcy) / ph,
                torch.log(torch.abs(tw / pw)),
                torch.log(torch.abs(th / ph)),
            ],
            dim=-1,
        )  # [N, M, 4]
        if var is not None:
            out = out / var.unsqueeze(0)
        return out
    if code_type.lower() not in ("decode_center_size", "decodecentersize"):
        raise ValueError(f"box_coder: code_type {code_type!r} is not encode/decode_center_size")
    if target.dim() == 2:
        target = target.unsqueeze(1) if axis == 0 else target.unsqueeze(0)
    shape = (1, -1) if axis == 0 else (-1, 1)
    pw, ph, pcx, pcy = (v.reshape(shape) for v in (pw, ph, pcx, pcy))
    if var is None:
        v = [1.0, 1.0, 1.0, 1.0]
    elif var.shape[0] == 1:
        v = [var[0, k] for k in range(4)]
    else:
        v = [var[:, k].reshape(shape) for k in range(4)]
    cx = v[0] * target[..., 0] * pw + pcx
    cy = v[1] * target[..., 1] * ph + pcy
    w = torch.exp(v[2] * target[..., 2]) * pw
    h = torch.exp(v[3] * target[..., 3]) * ph
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2 - norm, cy + h / 2 - norm], dim=-1)


# ---- affine_channel -------------------------------------------------------------------------
@register_op("affine_channel", attrs={"channel_axis": 1}, inputs=3)
def affine_channel(x: Tensor, scale: Tensor, bias: Tensor, *, channel_axis: int) -> Tensor:
    """``x * scale + bias`` with per-channel ``scale`` and ``bias`` along ``channel_axis``."""
    shape = [1] * x.dim()
    shape[channel_axis] = -1
    return x * scale.reshape(shape) + bias.reshape(shape)
