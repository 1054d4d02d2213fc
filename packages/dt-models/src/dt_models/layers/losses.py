"""Box regression losses: smooth-L1 and the IoU family (GIoU, DIoU, CIoU) on XYXY boxes."""

from __future__ import annotations

import math

import torch

__all__ = ["ciou_loss", "diou_loss", "giou_loss", "smooth_l1_loss"]

_REDUCTIONS = ("none", "mean", "sum")


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean() if loss.numel() > 0 else 0.0 * loss.sum()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check(a: torch.Tensor, b: torch.Tensor, reduction: str, last_dim: int | None = None) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if a.shape != b.shape:
        raise ValueError(
            f"input and target must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if last_dim is not None and a.shape[-1] != last_dim:
        raise ValueError(f"boxes must have shape [..., {last_dim}], got {tuple(a.shape)}")


def smooth_l1_loss(
    input: torch.Tensor, target: torch.Tensor, beta: float, reduction: str = "none"
) -> torch.Tensor:
    """Smooth L1 (Huber-like) loss; ``beta < 1e-5`` gives the exact L1 loss.

    ``0.5 * d**2 / beta`` for ``|d| < beta``, ``|d| - 0.5 * beta`` otherwise, with ``d = input - target``.
    """
    _check(input, target, reduction)
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    diff = torch.abs(input - target)
    if beta < 1e-5:
        loss = diff
    else:
        loss = torch.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta)
    return _reduce(loss, reduction)


def _box_geometry(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float):
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    inter_w = (torch.min(x2, x2g) - torch.max(x1, x1g)).clamp(min=0)
    inter_h = (torch.min(y2, y2g) - torch.max(y1, y1g)).clamp(min=0)
    intersection = inter_w * inter_h
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - intersection
    iou = intersection / (union + eps)
    # smallest enclosing box
    enc_x1, enc_y1 = torch.min(x1, x1g), torch.min(y1, y1g)
    enc_x2, enc_y2 = torch.max(x2, x2g), torch.max(y2, y2g)
    return iou, union, (enc_x1, enc_y1, enc_x2, enc_y2)


def giou_loss(
    boxes1: torch.Tensor, boxes2: torch.Tensor, reduction: str = "none", eps: float = 1e-7
) -> torch.Tensor:
    """Generalized IoU loss ``1 - GIoU`` of matching XYXY boxes ``Tensor[..., 4]`` (Rezatofighi et al.)."""
    _check(boxes1, boxes2, reduction, 4)
    iou, union, (ex1, ey1, ex2, ey2) = _box_geometry(boxes1, boxes2, eps)
    enclosing = (ex2 - ex1) * (ey2 - ey1)
    giou = iou - (enclosing - union) / (enclosing + eps)
    return _reduce(1 - giou, reduction)


def _center_distance(boxes1: torch.Tensor, boxes2: torch.Tensor, enclosing, eps: float):
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    ex1, ey1, ex2, ey2 = enclosing
    diagonal_sq = (ex2 - ex1) ** 2 + (ey2 - ey1) ** 2 + eps
    center_sq = ((x1 + x2) / 2 - (x1g + x2g) / 2) ** 2 + ((y1 + y2) / 2 - (y1g + y2g) / 2) ** 2
    return center_sq / diagonal_sq


def diou_loss(
    boxes1: torch.Tensor, boxes2: torch.Tensor, reduction: str = "none", eps: float = 1e-7
) -> torch.Tensor:
    """Distance IoU loss ``1 - IoU + d_center^2 / d_enclosing^2`` of XYXY boxes (Zheng et al.)."""
    _check(boxes1, boxes2, reduction, 4)
    iou, _, enclosing = _box_geometry(boxes1, boxes2, eps)
    return _reduce(1 - iou + _center_distance(boxes1, boxes2, enclosing, eps), reduction)


def ciou_loss(
    boxes1: torch.Tensor, boxes2: torch.Tensor, reduction: str = "none", eps: float = 1e-7
) -> torch.Tensor:
    """Complete IoU loss: DIoU plus an aspect-ratio consistency term, for XYXY boxes (Zheng et al.)."""
    _check(boxes1, boxes2, reduction, 4)
    iou, _, enclosing = _box_geometry(boxes1, boxes2, eps)
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    w_pred, h_pred = x2 - x1, y2 - y1
    w_gt, h_gt = x2g - x1g, y2g - y1g
    v = (4 / math.pi**2) * torch.pow(torch.atan(w_gt / (h_gt + eps)) - torch.atan(w_pred / (h_pred + eps)), 2)
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    loss = 1 - iou + _center_distance(boxes1, boxes2, enclosing, eps) + alpha * v
    return _reduce(loss, reduction)
