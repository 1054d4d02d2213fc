"""``Box2BoxTransform``: encode/decode boxes as deltas, and the dense box-regression loss."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from dt_models.layers import cat, ciou_loss, diou_loss, giou_loss, smooth_l1_loss

__all__ = ["BOX_REG_LOSS_TYPES", "Box2BoxTransform", "dense_box_regression_loss"]

# Largest log-ratio allowed for a width/height delta: predicted boxes at most 1000/16 times larger.
_DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)
BOX_REG_LOSS_TYPES = ("smooth_l1", "giou", "diou", "ciou")


class Box2BoxTransform:
    """R-CNN box coding: ``(dx, dy, dw, dh)`` deltas, scaled by ``weights`` ``(wx, wy, ww, wh)``.

    ``dx = wx * (x_target - x_src) / w_src`` on box centers, ``dw = ww * log(w_target / w_src)``.
    """

    def __init__(self, weights: Sequence[float], scale_clamp: float = _DEFAULT_SCALE_CLAMP) -> None:
        if len(weights) != 4:
            raise ValueError(f"weights must have 4 values (wx, wy, ww, wh), got {tuple(weights)}")
        self.weights = tuple(float(w) for w in weights)
        self.scale_clamp = scale_clamp

    def get_deltas(self, src_boxes: torch.Tensor, target_boxes: torch.Tensor) -> torch.Tensor:
        """Deltas ``Tensor[N, 4]`` turning XYXY ``src_boxes`` into ``target_boxes`` (both ``[N, 4]``)."""
        if not isinstance(src_boxes, torch.Tensor) or not isinstance(target_boxes, torch.Tensor):
            raise TypeError("src_boxes and target_boxes must be tensors")
        src_widths = src_boxes[:, 2] - src_boxes[:, 0]
        src_heights = src_boxes[:, 3] - src_boxes[:, 1]
        src_ctr_x = src_boxes[:, 0] + 0.5 * src_widths
        src_ctr_y = src_boxes[:, 1] + 0.5 * src_heights
        target_widths = target_boxes[:, 2] - target_boxes[:, 0]
        target_heights = target_boxes[:, 3] - target_boxes[:, 1]
        target_ctr_x = target_boxes[:, 0] + 0.5 * target_widths
        target_ctr_y = target_boxes[:, 1] + 0.5 * target_heights
        wx, wy, ww, wh = self.weights
        dx = wx * (target_ctr_x - src_ctr_x) / src_widths
        dy = wy * (target_ctr_y - src_ctr_y) / src_heights
        dw = ww * torch.log(target_widths / src_widths)
        dh = wh * torch.log(target_heights / src_heights)
        return torch.stack((dx, dy, dw, dh), dim=1)

    def apply_deltas(self, deltas: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Decode ``deltas`` ``Tensor[N, K*4]`` against XYXY ``boxes`` ``Tensor[N, 4]`` (same shape out)."""
        deltas = deltas.float()
        boxes = boxes.to(deltas.dtype)
        widths = boxes[:, 2] - boxes[:, 0]
        heights = boxes[:, 3] - boxes[:, 1]
        ctr_x = boxes[:, 0] + 0.5 * widths
        ctr_y = boxes[:, 1] + 0.5 * heights
        wx, wy, ww, wh = self.weights
        dx = deltas[:, 0::4] / wx
        dy = deltas[:, 1::4] / wy
        dw = torch.clamp(deltas[:, 2::4] / ww, max=self.scale_clamp)
        dh = torch.clamp(deltas[:, 3::4] / wh, max=self.scale_clamp)
        pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
        pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
        pred_w = torch.exp(dw) * widths[:, None]
        pred_h = torch.exp(dh) * heights[:, None]
        x1 = pred_ctr_x - 0.5 * pred_w
        y1 = pred_ctr_y - 0.5 * pred_h
        x2 = pred_ctr_x + 0.5 * pred_w
        y2 = pred_ctr_y + 0.5 * pred_h
        return torch.stack((x1, y1, x2, y2), dim=-1).view(deltas.shape)


def dense_box_regression_loss(
    anchors: list[torch.Tensor],
    box2box_transform: Box2BoxTransform,
    pred_anchor_deltas: list[torch.Tensor],
    gt_boxes: list[torch.Tensor],
    fg_mask: torch.Tensor,
    box_reg_loss_type: str = "smooth_l1",
    smooth_l1_beta: float = 0.0,
) -> torch.Tensor:
    """Summed box-regression loss over the foreground anchors of a batch.

    Args:
        anchors: per level, XYXY anchors ``Tensor[Ri, 4]``.
        pred_anchor_deltas: per level, ``Tensor[N, Ri, 4]``.
        gt_boxes: per image, the matched ground-truth box of every anchor, ``Tensor[R, 4]``.
        fg_mask: ``Tensor[N, R]`` bool, anchors that contribute.
    """
    if box_reg_loss_type not in BOX_REG_LOSS_TYPES:
        raise ValueError(f"box_reg_loss_type must be one of {BOX_REG_LOSS_TYPES}, got {box_reg_loss_type!r}")
    all_anchors = cat(anchors)  # [R, 4]
    if box_reg_loss_type == "smooth_l1":
        gt_deltas = torch.stack([box2box_transform.get_deltas(all_anchors, k) for k in gt_boxes])  # [N, R, 4]
        return smooth_l1_loss(
            cat(pred_anchor_deltas, dim=1)[fg_mask], gt_deltas[fg_mask], beta=smooth_l1_beta, reduction="sum"
        )
    pred_boxes = [box2box_transform.apply_deltas(k, all_anchors) for k in cat(pred_anchor_deltas, dim=1)]
    loss_fn = {"giou": giou_loss, "diou": diou_loss, "ciou": ciou_loss}[box_reg_loss_type]
    return loss_fn(torch.stack(pred_boxes)[fg_mask], torch.stack(gt_boxes)[fg_mask], reduction="sum")
