"""DensePose chart losses (detectron2's ``DensePoseChartLoss`` and its confidence variants).

For R training boxes with ``proposal_boxes`` (estimated), ``gt_boxes`` and ``gt_densepose``:

- annotated points (box-relative to the ground-truth box) are placed in the estimated box and read
  from the ``[R, C, H, W]`` outputs by bilinear interpolation; points outside the estimated box are
  ignored (:func:`point_samples`);
- ``loss_densepose_I``: cross entropy of the fine segmentation at the points, times ``part_weight``;
- ``loss_densepose_U``/``_V``: summed smooth-L1 (beta 1) of U and V of the point's part at
  foreground points, times ``point_regression_weight``; with a UV confidence, one
  ``loss_densepose_UV`` instead: the summed negative log-likelihood of an isotropic
  (``iid_iso``) or anisotropic (``indep_aniso``) Gaussian, times the same weight;
- ``loss_densepose_S``: cross entropy of the coarse segmentation against ``segm`` resampled from the
  ground-truth box to the estimated box (foreground/background when it has 2 channels), times
  ``index_weight``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import torch
from torch.nn import functional as F

from dt_structures import Instances

from .predictor import DensePoseChartOutput
from .structures import SEGM_SIZE

__all__ = [
    "PointSamples",
    "densepose_chart_losses",
    "iid_isotropic_uv_loss",
    "indep_anisotropic_uv_loss",
    "point_samples",
    "resample_box_labels",
]

_LOG_2PI = math.log(2 * math.pi)


@attrs.frozen
class PointSamples:
    """Annotated points of R boxes, located on ``[H, W]`` output maps (K points, valid ones only).

    ``box``: ``int64[K]`` box index; ``i``/``u``/``v``: targets; ``x_lo``, ``x_hi``, ``y_lo``, ``y_hi``:
    ``int64[K]`` neighbouring map cells, ``x_w``/``y_w``: ``float32[K]`` weights of the ``hi`` cells.
    """

    box: torch.Tensor
    i: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    x_lo: torch.Tensor
    x_hi: torch.Tensor
    x_w: torch.Tensor
    y_lo: torch.Tensor
    y_hi: torch.Tensor
    y_w: torch.Tensor

    def read(self, maps: torch.Tensor, channels: torch.Tensor | None = None) -> torch.Tensor:
        """Bilinear values of ``maps`` ``[R, C, H, W]`` at the points: ``[K, C]``, or ``[K]`` of the
        given per-point ``channels``."""

        def at(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            return maps[self.box, :, y, x] if channels is None else maps[self.box, channels, y, x]

        wx, wy = self.x_w, self.y_w
        if channels is None:
            wx, wy = wx[:, None], wy[:, None]
        return (
            at(self.y_lo, self.x_lo) * (1 - wx) * (1 - wy) + at(self.y_lo, self.x_hi) * wx * (1 - wy)
            + at(self.y_hi, self.x_lo) * (1 - wx) * wy + at(self.y_hi, self.x_hi) * wx * wy
        )  # fmt: skip


def _axis(rel: torch.Tensor, gt_lo, gt_size, est_lo, est_size, cells: int):
    """Cells and weights along one axis of points at ``rel`` (0..256 over the gt box) on a map of
    ``cells`` over the estimated box; and whether each point lies inside the estimated box."""
    pos = gt_lo + rel * gt_size / SEGM_SIZE - est_lo  # image pixels from the estimated box's edge
    valid = (pos >= 0) & (pos < est_size)
    grid = pos * cells / est_size
    lo = grid.floor().long().clamp(0, cells - 1)
    hi = (lo + 1).clamp(max=cells - 1)
    weight = (torch.minimum(hi.to(grid.dtype), grid) - lo.to(grid.dtype)).clamp(min=0)
    return lo, hi, weight, valid


def point_samples(instances: Sequence[Instances], map_hw: tuple[int, int]) -> PointSamples:
    """The annotated points of every box of ``instances`` (per image, in order) that has a
    ``gt_densepose``, located on maps of ``map_hw`` over the boxes' ``proposal_boxes``."""
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("box", "x", "y", "i", "u", "v", "gt", "est")}
    offset = 0
    for inst in instances:
        gt_boxes, est_boxes = inst.gt_boxes.tensor, inst.proposal_boxes.tensor
        for r, data in enumerate(inst.gt_densepose):
            if data is not None and len(data) > 0:
                n = len(data)
                parts["box"].append(torch.full((n,), offset + r, dtype=torch.int64))
                for k in ("x", "y", "i", "u", "v"):
                    parts[k].append(getattr(data, k))
                parts["gt"].append(gt_boxes[r].expand(n, 4))
                parts["est"].append(est_boxes[r].expand(n, 4))
        offset += len(inst)
    device = instances[0].proposal_boxes.tensor.device if instances else torch.device("cpu")
    if not parts["box"]:
        empty_i, empty_f = torch.zeros(0, dtype=torch.int64, device=device), torch.zeros(0, device=device)
        return PointSamples(
            empty_i, empty_i, empty_f, empty_f, empty_i, empty_i, empty_f, empty_i, empty_i, empty_f
        )
    cat = {k: torch.cat(v).to(device) for k, v in parts.items()}
    gt, est = cat["gt"], cat["est"]
    height, width = map_hw
    x_lo, x_hi, x_w, x_ok = _axis(
        cat["x"], gt[:, 0], gt[:, 2] - gt[:, 0], est[:, 0], est[:, 2] - est[:, 0], width
    )
    y_lo, y_hi, y_w, y_ok = _axis(
        cat["y"], gt[:, 1], gt[:, 3] - gt[:, 1], est[:, 1], est[:, 3] - est[:, 1], height
    )
    keep = x_ok & y_ok
    return PointSamples(
        box=cat["box"][keep], i=cat["i"][keep], u=cat["u"][keep], v=cat["v"][keep],
        x_lo=x_lo[keep], x_hi=x_hi[keep], x_w=x_w[keep], y_lo=y_lo[keep], y_hi=y_hi[keep], y_w=y_w[keep],
    )  # fmt: skip


def resample_box_labels(
    labels: torch.Tensor, src_boxes: torch.Tensor, dst_boxes: torch.Tensor, out_hw: tuple[int, int]
) -> torch.Tensor:
    """Label maps ``[N, S, S]`` over XYXY ``src_boxes`` ``[N, 4]``, sampled (nearest, at cell centres)
    on an ``out_hw`` grid over ``dst_boxes``: ``int64[N, H, W]``, 0 outside the source box."""
    height, width = out_hw
    src_wh = (src_boxes[:, 2:] - src_boxes[:, :2]).clamp(min=1e-6)
    dst_wh = dst_boxes[:, 2:] - dst_boxes[:, :2]
    cx = (torch.arange(width, device=labels.device) + 0.5) / width
    cy = (torch.arange(height, device=labels.device) + 0.5) / height
    gx = (dst_boxes[:, 0:1] + cx[None] * dst_wh[:, 0:1] - src_boxes[:, 0:1]) / src_wh[
        :, 0:1
    ] * 2 - 1  # [N, W]
    gy = (dst_boxes[:, 1:2] + cy[None] * dst_wh[:, 1:2] - src_boxes[:, 1:2]) / src_wh[
        :, 1:2
    ] * 2 - 1  # [N, H]
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)  # [N, H, W, 2]
    sampled = F.grid_sample(labels[:, None].float(), grid, mode="nearest", align_corners=False)
    return sampled[:, 0].round().long()


def iid_isotropic_uv_loss(
    u: torch.Tensor, v: torch.Tensor, sigma_u: torch.Tensor, target_u: torch.Tensor, target_v: torch.Tensor,
    sigma_lower_bound: float = 0.01,
) -> torch.Tensor:  # fmt: skip
    """Summed NLL of (u, v) under an isotropic Gaussian at the target, variance ``softplus(sigma_u) +
    sigma_lower_bound``."""
    sigma2 = F.softplus(sigma_u) + sigma_lower_bound
    delta2 = (u - target_u) ** 2 + (v - target_v) ** 2
    return (0.5 * (_LOG_2PI + 2 * torch.log(sigma2) + delta2 / sigma2)).sum()


def indep_anisotropic_uv_loss(
    u: torch.Tensor, v: torch.Tensor, sigma_u: torch.Tensor, kappa_u: torch.Tensor, kappa_v: torch.Tensor,
    target_u: torch.Tensor, target_v: torch.Tensor, sigma_lower_bound: float = 0.01,
) -> torch.Tensor:  # fmt: skip
    """Summed NLL under a Gaussian with covariance ``sigma2 I + r r^T``, ``r = (kappa_u, kappa_v)``."""
    sigma2 = F.softplus(sigma_u) + sigma_lower_bound
    r2 = kappa_u**2 + kappa_v**2
    du, dv = u - target_u, v - target_v
    delta2 = du**2 + dv**2
    delta_r2 = (du * kappa_u + dv * kappa_v) ** 2
    denom2 = sigma2 * (sigma2 + r2)
    return (0.5 * (_LOG_2PI + torch.log(denom2) + delta2 / sigma2 - delta_r2 / denom2)).sum()


def _zero_losses(out: DensePoseChartOutput, names: Sequence[str]) -> dict[str, torch.Tensor]:
    """Zeros connected to every output (so every parameter gets a gradient, as DDP needs)."""
    zero = sum(t.sum() for t in (out.coarse_segm, out.fine_segm, out.u, out.v) if t is not None) * 0
    for extra in (out.sigma_2, out.kappa_u, out.kappa_v):
        if extra is not None:
            zero = zero + extra.sum() * 0
    return dict.fromkeys(names, zero)


def densepose_chart_losses(
    outputs: DensePoseChartOutput,
    instances: Sequence[Instances],
    *,
    part_weight: float = 1.0,
    index_weight: float = 5.0,
    point_regression_weight: float = 0.01,
    uv_confidence: str = "none",
    sigma_lower_bound: float = 0.01,
) -> dict[str, torch.Tensor]:
    """The chart losses (see the module docstring) of ``outputs`` for the boxes of ``instances``."""
    uv_names = ["loss_densepose_UV"] if uv_confidence != "none" else ["loss_densepose_U", "loss_densepose_V"]
    names = [*uv_names, "loss_densepose_I", "loss_densepose_S"]
    height, width = outputs.fine_segm.shape[-2:]
    points = point_samples(instances, (height, width))
    if points.box.numel() == 0:
        return _zero_losses(outputs, names)
    losses = {}
    fine = points.read(outputs.fine_segm)  # [K, P + 1]
    losses["loss_densepose_I"] = F.cross_entropy(fine, points.i) * part_weight
    fg = points.i > 0
    part = points.i[fg]
    fg_points = PointSamples(*(getattr(points, f.name)[fg] for f in attrs.fields(PointSamples)))
    u_est, v_est = fg_points.read(outputs.u, part), fg_points.read(outputs.v, part)
    if uv_confidence == "none":
        losses["loss_densepose_U"] = (
            F.smooth_l1_loss(u_est, fg_points.u, reduction="sum") * point_regression_weight
        )
        losses["loss_densepose_V"] = (
            F.smooth_l1_loss(v_est, fg_points.v, reduction="sum") * point_regression_weight
        )
    elif uv_confidence == "iid_iso":
        sigma = fg_points.read(outputs.sigma_2, part)
        loss = iid_isotropic_uv_loss(u_est, v_est, sigma, fg_points.u, fg_points.v, sigma_lower_bound)
        losses["loss_densepose_UV"] = loss * point_regression_weight
    else:
        sigma = fg_points.read(outputs.sigma_2, part)
        kappa_u, kappa_v = fg_points.read(outputs.kappa_u, part), fg_points.read(outputs.kappa_v, part)
        loss = indep_anisotropic_uv_loss(
            u_est, v_est, sigma, kappa_u, kappa_v, fg_points.u, fg_points.v, sigma_lower_bound
        )
        losses["loss_densepose_UV"] = loss * point_regression_weight
    losses["loss_densepose_S"] = _segm_loss(outputs.coarse_segm, instances) * index_weight
    return losses


def _segm_loss(coarse_segm: torch.Tensor, instances: Sequence[Instances]) -> torch.Tensor:
    """Cross entropy of ``coarse_segm`` ``[R, C, H, W]`` over the boxes whose annotation has ``segm``."""
    labels, src, dst, index = [], [], [], []
    offset = 0
    for inst in instances:
        for r, data in enumerate(inst.gt_densepose):
            if data is not None and data.segm is not None:
                labels.append(data.segm.to(coarse_segm.device))
                src.append(inst.gt_boxes.tensor[r])
                dst.append(inst.proposal_boxes.tensor[r])
                index.append(offset + r)
        offset += len(inst)
    if not labels:
        return coarse_segm.sum() * 0
    target = resample_box_labels(
        torch.stack(labels), torch.stack(src), torch.stack(dst), coarse_segm.shape[-2:]
    )
    if coarse_segm.shape[1] == 2:
        target = (target > 0).long()
    return F.cross_entropy(coarse_segm[torch.as_tensor(index, device=coarse_segm.device)], target)
