"""Pure-PyTorch reference implementations of the dt-ops kernels: the oracles of the randomized tests.

Written for clarity, not speed (Python loops over ROIs/boxes); differentiable where the op is, so
autograd gives the reference gradients.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "batched_nms_ref",
    "box_iou_ref",
    "box_iou_rotated_ref",
    "deform_conv2d_ref",
    "nms_ref",
    "nms_rotated_ref",
    "roi_align_ref",
    "roi_align_rotated_ref",
    "roi_pool_ref",
]


def box_iou_ref(a: Tensor, b: Tensor) -> Tensor:
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def _greedy(order: list[int], iou: Tensor, suppress) -> list[int]:
    """Visit boxes in score order; keep a box unless a kept box suppressed it."""
    keep, removed = [], torch.zeros(len(order), dtype=torch.bool)
    for i in order:
        if not removed[i]:
            keep.append(i)
            removed |= suppress(iou[i])
    return keep


def _score_order(scores: Tensor) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: (-scores[i].item(), i))


def nms_ref(boxes: Tensor, scores: Tensor, thr: float) -> Tensor:
    order = _score_order(scores)
    iou = box_iou_ref(boxes, boxes)
    rank = {i: r for r, i in enumerate(order)}
    keep = _greedy(order, iou, lambda row: row > thr)
    return torch.tensor(sorted(keep, key=rank.get), dtype=torch.int64)


def batched_nms_ref(boxes: Tensor, scores: Tensor, idxs: Tensor, thr: float, nms_fn=nms_ref) -> Tensor:
    keep = []
    for c in idxs.unique().tolist():
        where = torch.nonzero(idxs == c).flatten()
        keep += where[nms_fn(boxes[where], scores[where], thr)].tolist()
    return torch.tensor(sorted(keep, key=lambda i: (-scores[i].item(), i)), dtype=torch.int64)


def _roi_bilinear(plane: Tensor, y: Tensor, x: Tensor) -> Tensor:
    """ROIAlign sampling of plane [C, H, W] at points y, x [S] -> [C, S]."""
    _, h, w = plane.shape
    outside = (y < -1) | (y > h) | (x < -1) | (x > w)
    y, x = y.clamp(min=0), x.clamp(min=0)
    y0, x0 = y.floor().long(), x.floor().long()
    y_edge, x_edge = y0 >= h - 1, x0 >= w - 1
    y0, x0 = torch.where(y_edge, h - 1, y0), torch.where(x_edge, w - 1, x0)
    y1, x1 = torch.where(y_edge, h - 1, y0 + 1), torch.where(x_edge, w - 1, x0 + 1)
    y, x = torch.where(y_edge, y0.to(y.dtype), y), torch.where(x_edge, x0.to(x.dtype), x)
    ly, lx = y - y0, x - x0
    hy, hx = 1 - ly, 1 - lx
    v = (
        hy * hx * plane[:, y0, x0]
        + hy * lx * plane[:, y0, x1]
        + ly * hx * plane[:, y1, x0]
        + ly * lx * plane[:, y1, x1]
    )
    return v * (~outside)


def _roi_grid(roi_h: float, roi_w: float, ph: int, pw: int, sampling_ratio: int) -> tuple[int, int]:
    gh = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / ph)
    gw = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / pw)
    return gh, gw


def _pool_samples(plane, start_h, start_w, bin_h, bin_w, gh, gw, ph, pw, rotate=None):
    dtype = plane.dtype
    if gh <= 0 or gw <= 0:
        return plane.new_zeros((plane.shape[0], ph, pw))
    iy = (torch.arange(gh, dtype=dtype) + 0.5) * bin_h / gh
    ix = (torch.arange(gw, dtype=dtype) + 0.5) * bin_w / gw
    yy = start_h + torch.arange(ph, dtype=dtype)[:, None] * bin_h + iy[None, :]  # [ph, gh]
    xx = start_w + torch.arange(pw, dtype=dtype)[:, None] * bin_w + ix[None, :]  # [pw, gw]
    yy = yy[:, None, :, None].expand(ph, pw, gh, gw)
    xx = xx[None, :, None, :].expand(ph, pw, gh, gw)
    if rotate is not None:
        cy, cx, cos_t, sin_t = rotate
        yy, xx = yy * cos_t - xx * sin_t + cy, yy * sin_t + xx * cos_t + cx
    v = _roi_bilinear(plane, yy.reshape(-1), xx.reshape(-1)).view(-1, ph, pw, gh * gw)
    return v.sum(-1) / max(gh * gw, 1)


def roi_align_ref(input, rois, output_size, spatial_scale, sampling_ratio, aligned) -> Tensor:
    ph, pw = output_size
    out = []
    offset = 0.5 if aligned else 0.0
    for roi in rois:
        b = int(roi[0])
        x1, y1, x2, y2 = (roi[1:] * spatial_scale - offset).tolist()
        roi_w, roi_h = x2 - x1, y2 - y1
        if not aligned:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        gh, gw = _roi_grid(roi_h, roi_w, ph, pw, sampling_ratio)
        out.append(_pool_samples(input[b], y1, x1, roi_h / ph, roi_w / pw, gh, gw, ph, pw))
    return torch.stack(out) if out else input.new_zeros((0, input.shape[1], ph, pw))


def roi_align_rotated_ref(input, rois, output_size, spatial_scale, sampling_ratio) -> Tensor:
    ph, pw = output_size
    out = []
    for roi in rois:
        b = int(roi[0])
        cx, cy, w, h, angle = roi[1:].tolist()
        cx, cy = cx * spatial_scale - 0.5, cy * spatial_scale - 0.5
        w, h = w * spatial_scale, h * spatial_scale
        theta = math.radians(angle)
        gh, gw = _roi_grid(h, w, ph, pw, sampling_ratio)
        rotate = (cy, cx, math.cos(theta), math.sin(theta))
        out.append(_pool_samples(input[b], -h / 2, -w / 2, h / ph, w / pw, gh, gw, ph, pw, rotate))
    return torch.stack(out) if out else input.new_zeros((0, input.shape[1], ph, pw))


def roi_pool_ref(input, rois, output_size, spatial_scale) -> Tensor:
    ph, pw = output_size
    _, c, height, width = input.shape
    out = input.new_zeros((len(rois), c, ph, pw))
    for k, roi in enumerate(rois):
        b = int(roi[0])
        # round half away from zero, as C's round()
        x1, y1, x2, y2 = (
            math.floor(abs(v) + 0.5) * (1 if v >= 0 else -1) for v in (roi[1:] * spatial_scale).tolist()
        )
        rw, rh = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
        for i in range(ph):
            for j in range(pw):
                h0 = min(max(math.floor(i * rh / ph) + y1, 0), height)
                h1 = min(max(math.ceil((i + 1) * rh / ph) + y1, 0), height)
                w0 = min(max(math.floor(j * rw / pw) + x1, 0), width)
                w1 = min(max(math.ceil((j + 1) * rw / pw) + x1, 0), width)
                if h1 > h0 and w1 > w0:
                    out[k, :, i, j] = input[b, :, h0:h1, w0:w1].amax(dim=(1, 2))
    return out


def _rect_corners(box: list[float]) -> list[tuple[float, float]]:
    cx, cy, w, h, angle = box
    t = math.radians(angle)
    c, s = math.cos(t), math.sin(t)
    corners = ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2))
    return [(cx + dx * c + dy * s, cy - dx * s + dy * c) for dx, dy in corners]


def _clip(poly, a, b):
    """Sutherland-Hodgman: the part of poly on the left of the directed line a -> b."""

    def side(p):
        return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])

    out = []
    for i, p in enumerate(poly):
        q = poly[(i + 1) % len(poly)]
        sp, sq = side(p), side(q)
        if sp >= 0:
            out.append(p)
        if (sp >= 0) != (sq >= 0):
            t = sp / (sp - sq)
            out.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
    return out


def _area(poly) -> float:
    return 0.5 * sum(p[0] * q[1] - q[0] * p[1] for p, q in zip(poly, poly[1:] + poly[:1], strict=True))


def _rotated_iou(b1: list[float], b2: list[float]) -> float:
    a1, a2 = b1[2] * b1[3], b2[2] * b2[3]
    if a1 < 1e-14 or a2 < 1e-14:
        return 0.0
    p1, p2 = _rect_corners(b1), _rect_corners(b2)
    if _area(p1) < 0:
        p1 = p1[::-1]
    if _area(p2) < 0:
        p2 = p2[::-1]
    poly = p1
    for i in range(4):
        if not poly:
            break
        poly = _clip(poly, p2[i], p2[(i + 1) % 4])
    inter = abs(_area(poly)) if len(poly) > 2 else 0.0
    return inter / (a1 + a2 - inter)


def box_iou_rotated_ref(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    b1, b2 = boxes1.double().tolist(), boxes2.double().tolist()
    return torch.tensor([[_rotated_iou(p, q) for q in b2] for p in b1], dtype=torch.float64).view(
        len(b1), len(b2)
    )


def nms_rotated_ref(boxes: Tensor, scores: Tensor, thr: float) -> Tensor:
    order = _score_order(scores)
    iou = box_iou_rotated_ref(boxes, boxes)
    rank = {i: r for r, i in enumerate(order)}
    keep = _greedy(order, iou, lambda row: row >= thr)
    return torch.tensor(sorted(keep, key=rank.get), dtype=torch.int64)


def deform_conv2d_ref(input, offset, weight, bias, stride, padding, dilation, mask) -> Tensor:
    b, c, h, w = input.shape
    c_out, c_per_group, kh, kw = weight.shape
    groups = c // c_per_group
    ho, wo = offset.shape[2:]
    k = kh * kw
    og = offset.shape[1] // (2 * k)
    off = offset.reshape(b, og, k, 2, ho, wo)
    ki = torch.arange(kh).repeat_interleave(kw).to(input.dtype)  # [K]
    kj = torch.arange(kw).repeat(kh).to(input.dtype)
    oy = torch.arange(ho, dtype=input.dtype) * stride[0] - padding[0]
    ox = torch.arange(wo, dtype=input.dtype) * stride[1] - padding[1]
    y = oy[None, None, None, :, None] + (ki * dilation[0])[None, None, :, None, None] + off[:, :, :, 0]
    x = ox[None, None, None, None, :] + (kj * dilation[1])[None, None, :, None, None] + off[:, :, :, 1]
    inside = (y > -1) & (y < h) & (x > -1) & (x < w)  # [B, og, K, Ho, Wo]
    y0, x0 = y.floor(), x.floor()
    ly, lx = y - y0, x - x0
    planes = input.reshape(b, og, c // og, h * w)
    cols = 0
    for dy, dx, wgt in (
        (0, 0, (1 - ly) * (1 - lx)),
        (0, 1, (1 - ly) * lx),
        (1, 0, ly * (1 - lx)),
        (1, 1, ly * lx),
    ):
        yy, xx = (y0 + dy).long(), (x0 + dx).long()
        valid = inside & (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        index = (
            (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).reshape(b, og, 1, -1).expand(-1, -1, c // og, -1)
        )
        vals = torch.gather(planes, 3, index).view(b, og, c // og, k, ho, wo)
        cols = cols + vals * (wgt * valid)[:, :, None]
    if mask is not None:
        cols = cols * mask.reshape(b, og, 1, k, ho, wo)
    cols = cols.reshape(b, groups, c_per_group * k, ho * wo)
    out = torch.matmul(weight.reshape(groups, c_out // groups, c_per_group * k), cols).view(b, c_out, ho, wo)
    return out + bias.view(1, -1, 1, 1) if bias is not None else out
