"""Canonical RoI feature ops and deformable convolution.

Specified after Paddle's CPU kernels (``roi_align_kernel.cc``, ``roi_pool_kernel.cc``,
``psroi_pool_kernel.cc``, ``deformable_conv_kernel_impl.h``). The RoIs [R, 4] (x1, y1, x2, y2
in input pixels) belong to images by ``rois_num`` ([N] counts); without it all belong to image 0.
The output row count is the RoI count, so shapes are inferred from the RoI input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from fluidrt.ops.registry import register_op

Tensor = torch.Tensor


def roi_batch_index(rois: Tensor, rois_num: Tensor | None, batch: int) -> Tensor:
    """The image of each RoI, from per-image counts; all image 0 without counts."""
    if rois_num is None:
        if batch != 1 and rois.device.type != "meta":
            raise ValueError(
                f"RoI op: the input has batch {batch} but no RoI counts (RoisNum) say which "
                "RoIs belong to which image"
            )
        return torch.zeros(rois.shape[0], dtype=torch.long, device=rois.device)
    counts = rois_num.reshape(-1).long()
    if rois.device.type != "meta" and int(counts.sum()) != rois.shape[0]:
        raise ValueError(f"RoI op: RoisNum sums to {int(counts.sum())}, but {rois.shape[0]} RoIs")
    return torch.repeat_interleave(torch.arange(counts.numel(), device=rois.device), counts)


# ---- roi_align ------------------------------------------------------------------------------
@register_op(
    "roi_align",
    attrs={
        "pooled_height": 1,
        "pooled_width": 1,
        "spatial_scale": 1.0,
        "sampling_ratio": -1,
        "aligned": False,
    },
    inputs=(2, 3),
)
def roi_align(
    x: Tensor,
    rois: Tensor,
    rois_num: Tensor | None = None,
    *,
    pooled_height: int,
    pooled_width: int,
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> Tensor:
    """RoI Align: each bin averages bilinear samples on a regular grid (``sampling_ratio`` per
    side, or ``ceil(roi_size / pooled)`` when <= 0); ``aligned`` shifts by half a pixel.
    Output [R, C, pooled_height, pooled_width]."""
    r, c = rois.shape[0], x.shape[1]
    ph, pw = int(pooled_height), int(pooled_width)
    if x.device.type == "meta" or r == 0:
        return x.new_zeros((r, c, ph, pw))
    batch = roi_batch_index(rois, rois_num, x.shape[0])
    off = 0.5 if aligned else 0.0
    b = rois.to(x.dtype) * spatial_scale - off
    roi_w = b[:, 2] - b[:, 0]
    roi_h = b[:, 3] - b[:, 1]
    if not aligned:
        roi_w = roi_w.clamp(min=1.0)
        roi_h = roi_h.clamp(min=1.0)
    bin_h, bin_w = roi_h / ph, roi_w / pw
    if sampling_ratio > 0:
        grid_h = torch.full((r,), int(sampling_ratio), dtype=torch.long)
        grid_w = grid_h.clone()
    else:
        grid_h = torch.ceil(roi_h / ph).long().cpu()
        grid_w = torch.ceil(roi_w / pw).long().cpu()
    # Each output bin is a weighted sum of input pixels: build those weights as one sparse
    # [R*ph*pw, N*H*W] matrix (a few entries per sample) and multiply the pixels [N*H*W, C].
    parts = []
    keys = torch.stack([grid_h, grid_w], 1)
    for gh, gw in torch.unique(keys, dim=0).tolist():
        if gh <= 0 or gw <= 0:
            continue  # an empty sampling grid averages nothing: 0
        sel = ((grid_h == gh) & (grid_w == gw)).nonzero().reshape(-1).to(x.device)
        parts.append(
            _align_weights(x.shape, sel, batch[sel], b[sel], bin_h[sel], bin_w[sel], ph, pw, gh, gw)
        )
    if not parts:
        return x.new_zeros((r, c, ph, pw))
    rows, cols, vals = (torch.cat(t) for t in zip(*parts, strict=True))
    n, _, h, w = x.shape
    weights = torch.sparse_coo_tensor(
        torch.stack([rows, cols]), vals, (r * ph * pw, n * h * w), check_invariants=False
    ).coalesce()  # indices are in range by construction (taps clamped to the image)
    flat = x.permute(0, 2, 3, 1).reshape(-1, c)  # [N*H*W, C]: one row per pixel
    out = torch.sparse.mm(weights, flat)  # [R*ph*pw, C]
    return out.reshape(r, ph, pw, c).permute(0, 3, 1, 2).contiguous()


def _align_weights(
    shape: torch.Size,
    roi_ids: Tensor,
    batch: Tensor,
    b: Tensor,
    bin_h: Tensor,
    bin_w: Tensor,
    ph: int,
    pw: int,
    gh: int,
    gw: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Sparse RoI Align weights of RoIs sharing one sampling grid (gh x gw per bin): output
    row (roi * ph + i) * pw + j, input pixel (image * H + y) * W + x, weight."""
    dt, dev = b.dtype, b.device
    _, _, h, w = shape
    iy = torch.arange(gh, dtype=dt, device=dev)
    ix = torch.arange(gw, dtype=dt, device=dev)
    py = torch.arange(ph, dtype=dt, device=dev)
    px = torch.arange(pw, dtype=dt, device=dev)
    # sample coordinates [R, ph, gh] and [R, pw, gw]
    ys = b[:, 1, None, None] + py[None, :, None] * bin_h[:, None, None]
    ys = ys + (iy[None, None, :] + 0.5) * (bin_h / gh)[:, None, None]
    xs = b[:, 0, None, None] + px[None, :, None] * bin_w[:, None, None]
    xs = xs + (ix[None, None, :] + 0.5) * (bin_w / gw)[:, None, None]
    n = len(b)
    y0, y1, ly, vy = _linear_taps(ys, h)  # [R, ph, gh]
    x0, x1, lx, vx = _linear_taps(xs, w)  # [R, pw, gw]

    # broadcast to [R, ph, gh, pw, gw]
    def yb(t: Tensor) -> Tensor:
        return t[:, :, :, None, None]

    def xb(t: Tensor) -> Tensor:
        return t[:, None, None, :, :]

    valid = (yb(vy) & xb(vx)).to(dt) / max(gh * gw, 1)
    out_row = (roi_ids[:, None, None] * ph + torch.arange(ph, device=dev)[None, :, None]) * pw
    out_row = out_row + torch.arange(pw, device=dev)[None, None, :]  # [R, ph, pw]
    out_row = out_row[:, :, None, :, None].expand(n, ph, gh, pw, gw)
    base = (batch * (h * w))[:, None, None, None, None]
    rows, cols, vals = [], [], []
    for yi, wy in ((y0, 1 - ly), (y1, ly)):
        for xi, wx in ((x0, 1 - lx), (x1, lx)):
            rows.append(out_row.reshape(-1))
            cols.append((base + yb(yi) * w + xb(xi)).reshape(-1))
            vals.append((yb(wy) * xb(wx) * valid).reshape(-1))
    return torch.cat(rows), torch.cat(cols), torch.cat(vals)


def _linear_taps(t: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Low/high indices, high weight and validity of bilinear samples along one axis
    (Paddle: outside [-1, size] is 0; clamped at 0; at the last pixel both taps coincide)."""
    valid = (t >= -1.0) & (t <= size)
    t = t.clamp(min=0.0)
    low = t.floor().long()
    at_end = low >= size - 1
    low = torch.where(at_end, torch.full_like(low, size - 1), low)
    high = torch.where(at_end, low, low + 1)
    t = torch.where(at_end, low.to(t.dtype), t)
    return low, high, t - low.to(t.dtype), valid


# ---- roi_pool -------------------------------------------------------------------------------
@register_op(
    "roi_pool",
    attrs={"pooled_height": 1, "pooled_width": 1, "spatial_scale": 1.0},
    inputs=(2, 3),
    outputs=2,
)
def roi_pool(
    x: Tensor,
    rois: Tensor,
    rois_num: Tensor | None = None,
    *,
    pooled_height: int,
    pooled_width: int,
    spatial_scale: float,
) -> tuple[Tensor, Tensor]:
    """RoI max pooling over integer bins (rounded RoI corners); empty bins give 0. Returns
    out [R, C, ph, pw] and the int64 argmax (h * W + w, -1 for empty bins)."""
    r, c = rois.shape[0], x.shape[1]
    ph, pw = int(pooled_height), int(pooled_width)
    out = x.new_zeros((r, c, ph, pw))
    arg = torch.full((r, c, ph, pw), -1, dtype=torch.int64, device=x.device)
    if x.device.type == "meta" or r == 0:
        return out, arg
    h, w = x.shape[2], x.shape[3]
    batch = roi_batch_index(rois, rois_num, x.shape[0]).tolist()
    corners = torch.round(rois.double().cpu() * spatial_scale)
    # Paddle rounds half away from zero (std::round); torch rounds half to even
    corners = torch.where(
        (rois.double().cpu() * spatial_scale - corners).abs() == 0.5,
        torch.trunc(rois.double().cpu() * spatial_scale + torch.sign(rois.double().cpu()) * 0.5),
        corners,
    ).long()
    # Paddle's bins of a RoI L pixels long are [floor(i * L / n), ceil((i + 1) * L / n)):
    # adaptive max pooling of the RoI's crop, with pixels outside the image at -inf
    for k in range(r):
        x1, y1, x2, y2 = corners[k].tolist()
        rows = torch.arange(y1, y1 + max(y2 - y1 + 1, 1), device=x.device)
        cols = torch.arange(x1, x1 + max(x2 - x1 + 1, 1), device=x.device)
        crop = x[batch[k]][:, rows.clamp(0, h - 1)][:, :, cols.clamp(0, w - 1)]
        inside = ((rows >= 0) & (rows < h))[:, None] & ((cols >= 0) & (cols < w))[None, :]
        crop = crop.masked_fill(~inside, -math.inf)
        val, idx = F.adaptive_max_pool2d(crop[None], (ph, pw), return_indices=True)
        val, idx = val[0], idx[0]
        empty = torch.isneginf(val)
        pos = rows[idx // len(cols)] * w + cols[idx % len(cols)]
        out[k] = val.masked_fill(empty, 0.0)
        arg[k] = pos.masked_fill(empty, -1)
    return out, arg


# ---- psroi_pool -----------------------------------------------------------------------------
@register_op(
    "psroi_pool",
    attrs={"pooled_height": 1, "pooled_width": 1, "output_channels": 1, "spatial_scale": 1.0},
    inputs=(2, 3),
)
def psroi_pool(
    x: Tensor,
    rois: Tensor,
    rois_num: Tensor | None = None,
    *,
    pooled_height: int,
    pooled_width: int,
    output_channels: int,
    spatial_scale: float,
) -> Tensor:
    """Position-sensitive RoI average pooling (R-FCN): bin (i, j) of output channel c averages
    input channel (c * ph + i) * pw + j. Output [R, output_channels, ph, pw]."""
    r, ph, pw, oc = rois.shape[0], int(pooled_height), int(pooled_width), int(output_channels)
    if x.device.type == "meta" or r == 0:
        return x.new_zeros((r, oc, ph, pw))
    h, w = x.shape[2], x.shape[3]
    batch = roi_batch_index(rois, rois_num, x.shape[0])
    box = rois.to(x.dtype)
    rounded = torch.where(box >= 0, torch.floor(box + 0.5), torch.ceil(box - 0.5))
    sx, sy = rounded[:, 0] * spatial_scale, rounded[:, 1] * spatial_scale
    ex, ey = (rounded[:, 2] + 1) * spatial_scale, (rounded[:, 3] + 1) * spatial_scale
    bin_h = (ey - sy).clamp(min=0.1) / ph
    bin_w = (ex - sx).clamp(min=0.1) / pw
    i = torch.arange(ph, dtype=x.dtype, device=x.device)
    j = torch.arange(pw, dtype=x.dtype, device=x.device)
    hs = torch.floor(bin_h[:, None] * i + sy[:, None]).clamp(0, h).long()  # [R, ph]
    he = torch.ceil(bin_h[:, None] * (i + 1) + sy[:, None]).clamp(0, h).long()
    ws = torch.floor(bin_w[:, None] * j + sx[:, None]).clamp(0, w).long()  # [R, pw]
    we = torch.ceil(bin_w[:, None] * (j + 1) + sx[:, None]).clamp(0, w).long()
    integral = F.pad(x.double().cumsum(2).cumsum(3), (1, 0, 1, 0))  # [N, C, H+1, W+1]
    ch = (torch.arange(oc)[:, None, None] * ph + torch.arange(ph)[None, :, None]) * pw
    ch = (ch + torch.arange(pw)[None, None, :]).to(x.device)  # [oc, ph, pw]
    bb = batch[:, None, None, None]
    cc = ch[None]
    hs4, he4 = hs[:, None, :, None], he[:, None, :, None]
    ws4, we4 = ws[:, None, None, :], we[:, None, None, :]
    total = (
        integral[bb, cc, he4, we4]
        - integral[bb, cc, hs4, we4]
        - integral[bb, cc, he4, ws4]
        + integral[bb, cc, hs4, ws4]
    )
    area = ((he4 - hs4) * (we4 - ws4)).to(torch.float64)
    out = torch.where(area > 0, total / area.clamp(min=1), torch.zeros_like(total))
    return out.to(x.dtype)


# ---- deformable convolution ----------------------------------------------------------------
@register_op(
    "deformable_conv2d",
    attrs={
        "strides": [1, 1],
        "pads": [0, 0],
        "dilations": [1, 1],
        "groups": 1,
        "deformable_groups": 1,
    },
    inputs=(3, 5),
)
def deformable_conv2d(
    x: Tensor,
    offset: Tensor,
    weight: Tensor,
    mask: Tensor | None = None,
    bias: Tensor | None = None,
    *,
    strides: Sequence[int],
    pads: Sequence[int],
    dilations: Sequence[int],
    groups: int,
    deformable_groups: int,
) -> Tensor:
    """Deformable convolution (v1; v2 with ``mask`` [N, dg*kh*kw, Ho, Wo]): kernel tap k of
    deformable group g samples x bilinearly at its grid position plus offset
    (``offset[:, g*2K + 2k]`` rows, ``+ 1`` columns); samples outside the image are 0.
    ``pads`` is [pad_h, pad_w]."""
    n, c, h, w = x.shape
    co, _, kh, kw = weight.shape
    sh, sw = strides
    pad_h, pad_w = pads
    dh, dw = dilations
    ho = (h + 2 * pad_h - (dh * (kh - 1) + 1)) // sh + 1
    wo = (w + 2 * pad_w - (dw * (kw - 1) + 1)) // sw + 1
    k = kh * kw
    dg = int(deformable_groups)
    if x.device.type == "meta":
        return x.new_zeros((n, co, ho, wo))
    dt, dev = x.dtype, x.device
    base_h = (torch.arange(ho, device=dev) * sh - pad_h).to(dt)
    base_w = (torch.arange(wo, device=dev) * sw - pad_w).to(dt)
    tap_h = (torch.arange(kh, device=dev) * dh).to(dt).repeat_interleave(kw)  # [K]
    tap_w = (torch.arange(kw, device=dev) * dw).to(dt).repeat(kh)
    off = offset.reshape(n, dg, k, 2, ho, wo)
    ph = base_h[None, None, None, :, None] + tap_h[None, None, :, None, None] + off[:, :, :, 0]
    pw = base_w[None, None, None, None, :] + tap_w[None, None, :, None, None] + off[:, :, :, 1]
    cg = c // dg
    xg = x.reshape(n, dg, cg, h * w)
    cols = x.new_zeros((n, dg, cg, k * ho * wo))
    inside = (ph > -1) & (pw > -1) & (ph < h) & (pw < w)  # [N, dg, K, Ho, Wo]
    h0, w0 = torch.floor(ph), torch.floor(pw)
    lh, lw = ph - h0, pw - w0
    h0, w0 = h0.long(), w0.long()
    for dy, dx, wt in (
        (0, 0, (1 - lh) * (1 - lw)),
        (0, 1, (1 - lh) * lw),
        (1, 0, lh * (1 - lw)),
        (1, 1, lh * lw),
    ):
        yy, xx = h0 + dy, w0 + dx
        ok = inside & (yy >= 0) & (yy <= h - 1) & (xx >= 0) & (xx <= w - 1)
        idx = (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).reshape(n, dg, 1, -1)
        v = torch.gather(xg, 3, idx.expand(-1, -1, cg, -1))
        cols = cols + v * (wt * ok.to(dt)).reshape(n, dg, 1, -1)
    cols = cols.reshape(n, dg, cg, k, ho, wo)
    if mask is not None:
        cols = cols * mask.reshape(n, dg, 1, k, ho, wo)
    cols = cols.reshape(n, groups, c // groups * k, ho * wo)
    wm = weight.reshape(groups, co // groups, -1)
    out = torch.einsum("gok,ngkp->ngop", wm, cols).reshape(n, co, ho, wo)
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    return out
