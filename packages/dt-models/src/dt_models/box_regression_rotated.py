"""``Box2BoxTransformRotated``: Rotated R-CNN box coding of ``(cx, cy, w, h, angle)`` boxes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["Box2BoxTransformRotated", "wrap_angle_degrees"]

_DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)


def wrap_angle_degrees(angle: torch.Tensor) -> torch.Tensor:
    """Angles in degrees brought to ``[-180, 180)``."""
    return (angle + 180.0) % 360.0 - 180.0


class Box2BoxTransformRotated:
    """Deltas ``(dx, dy, dw, dh, da)`` between rotated boxes ``(cx, cy, w, h, angle)`` (angles in
    degrees, counter-clockwise), scaled by ``weights`` ``(wx, wy, ww, wh, wa)``.

    ``dx = wx * (cx_target - cx_src) / w_src``, ``dw = ww * log(w_target / w_src)`` as for axis-aligned
    boxes (centre offsets along the image axes), and ``da = wa * radians(angle_target - angle_src)``
    with the difference wrapped to ``[-180, 180)`` degrees first, so that 170 and -170 degrees are 20
    degrees apart; decoded angles are wrapped to ``[-180, 180)`` too.
    """

    def __init__(self, weights: Sequence[float], scale_clamp: float = _DEFAULT_SCALE_CLAMP) -> None:
        if len(weights) != 5:
            raise ValueError(f"weights must have 5 values (wx, wy, ww, wh, wa), got {tuple(weights)}")
        self.weights = tuple(float(w) for w in weights)
        self.scale_clamp = scale_clamp

    def get_deltas(self, src_boxes: torch.Tensor, target_boxes: torch.Tensor) -> torch.Tensor:
        """Deltas ``Tensor[N, 5]`` turning ``src_boxes`` into ``target_boxes`` (both ``[N, 5]``)."""
        if not isinstance(src_boxes, torch.Tensor) or not isinstance(target_boxes, torch.Tensor):
            raise TypeError("src_boxes and target_boxes must be tensors")
        src_x, src_y, src_w, src_h, src_a = src_boxes.unbind(dim=1)
        tgt_x, tgt_y, tgt_w, tgt_h, tgt_a = target_boxes.unbind(dim=1)
        wx, wy, ww, wh, wa = self.weights
        dx = wx * (tgt_x - src_x) / src_w
        dy = wy * (tgt_y - src_y) / src_h
        dw = ww * torch.log(tgt_w / src_w)
        dh = wh * torch.log(tgt_h / src_h)
        da = wrap_angle_degrees(tgt_a - src_a) * (wa * math.pi / 180.0)
        return torch.stack((dx, dy, dw, dh, da), dim=1)

    def apply_deltas(self, deltas: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Decode ``deltas`` ``Tensor[N, k*5]`` against ``boxes`` ``Tensor[N, 5]`` (same shape out)."""
        if deltas.shape[1] % 5 != 0 or boxes.shape[1] != 5:
            raise ValueError(
                f"expected deltas [N, k*5] and boxes [N, 5], got {tuple(deltas.shape)}, {tuple(boxes.shape)}"
            )
        boxes = boxes.to(deltas.dtype).unsqueeze(2)  # [N, 5, 1]
        ctr_x, ctr_y, widths, heights, angles = boxes.unbind(dim=1)  # each [N, 1]
        wx, wy, ww, wh, wa = self.weights
        dw = torch.clamp(deltas[:, 2::5] / ww, max=self.scale_clamp)
        dh = torch.clamp(deltas[:, 3::5] / wh, max=self.scale_clamp)
        pred = torch.empty_like(deltas)
        pred[:, 0::5] = deltas[:, 0::5] / wx * widths + ctr_x
        pred[:, 1::5] = deltas[:, 1::5] / wy * heights + ctr_y
        pred[:, 2::5] = torch.exp(dw) * widths
        pred[:, 3::5] = torch.exp(dh) * heights
        pred[:, 4::5] = wrap_angle_degrees(deltas[:, 4::5] / wa * 180.0 / math.pi + angles)
        return pred
