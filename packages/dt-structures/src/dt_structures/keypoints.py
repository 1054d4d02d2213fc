"""Keypoints: annotations (``Keypoints``), heatmap training targets and heatmap decoding.

Pixel convention (Heckbert 1990, as detectron2): discrete cell ``d`` covers the continuous
interval [d, d + 1) and has its center at ``d + 0.5``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from ._utils import is_integer_index
from .boxes import Boxes

__all__ = ["Keypoints", "heatmaps_to_keypoints", "keypoints_to_heatmap"]


def _rois_tensor(rois: Boxes | torch.Tensor, name: str) -> torch.Tensor:
    if isinstance(rois, Boxes):
        rois = rois.tensor
    if not isinstance(rois, torch.Tensor) or rois.dim() != 2 or rois.shape[1] != 4:
        got = tuple(rois.shape) if isinstance(rois, torch.Tensor) else type(rois).__name__
        raise ValueError(f"{name} must be Boxes or a Tensor[R, 4] (XYXY_ABS), got {got}")
    return rois


class Keypoints:
    """Keypoint annotations: ``tensor`` is ``Tensor[N, K, 3]`` float32 of (x, y, visibility).

    Visibility follows COCO: 0 not labeled (x = y = 0), 1 labeled but hidden, 2 labeled and visible.
    """

    def __init__(self, keypoints: torch.Tensor | np.ndarray | Sequence[Sequence[Sequence[float]]]):
        if isinstance(keypoints, torch.Tensor):
            t = keypoints.to(torch.float32)
        elif isinstance(keypoints, (np.ndarray, list, tuple)):
            t = torch.as_tensor(np.asarray(keypoints, dtype=np.float32))
        else:
            raise TypeError(f"Keypoints takes a Tensor, np.ndarray or list, got {type(keypoints).__name__}")
        if t.dim() != 3 or t.shape[2] != 3:
            raise ValueError(f"Keypoints expects shape [N, K, 3] of (x, y, visibility), got {tuple(t.shape)}")
        self.tensor = t

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def to(self, *args: Any, **kwargs: Any) -> Keypoints:
        """The keypoints moved with ``Tensor.to(*args, **kwargs)``; they stay float32 (as detectron2)."""
        return Keypoints(self.tensor.to(*args, **kwargs))

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def to_heatmap(self, boxes: Boxes | torch.Tensor, heatmap_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Training targets of the keypoint head for these keypoints in ``boxes`` (one box per instance).

        Returns:
            heatmaps: ``Tensor[N, K]`` int64, the flat index ``y * heatmap_size + x`` of each keypoint's
                cell in the box's ``heatmap_size`` x ``heatmap_size`` grid (0 where not valid).
            valid: ``Tensor[N, K]`` int64, 1 where the keypoint is labeled and inside its box.
        """
        return keypoints_to_heatmap(self.tensor, boxes, heatmap_size)

    def __getitem__(self, item: int | slice | torch.Tensor | Sequence[int]) -> Keypoints:
        """Select instances by int (keeps a length-1 Keypoints), slice, bool mask or index tensor."""
        selected = self.tensor[item]
        if is_integer_index(item):
            selected = selected.unsqueeze(0)
        if selected.dim() != 3:
            raise IndexError(f"indexing Keypoints with {item!r} returned shape {tuple(selected.shape)}")
        return Keypoints(selected)

    def __repr__(self) -> str:
        return f"Keypoints(num_instances={len(self)}, num_keypoints={self.tensor.shape[1]})"

    @staticmethod
    def cat(keypoints_list: Sequence[Keypoints]) -> Keypoints:
        """Concatenate Keypoints with the same number of keypoints."""
        if not isinstance(keypoints_list, (list, tuple)) or len(keypoints_list) == 0:
            raise ValueError("keypoints_list must be a non-empty list of Keypoints")
        for i, k in enumerate(keypoints_list):
            if not isinstance(k, Keypoints):
                raise TypeError(f"keypoints_list[{i}] must be Keypoints, got {type(k).__name__}")
        return Keypoints(torch.cat([k.tensor for k in keypoints_list], dim=0))


def keypoints_to_heatmap(
    keypoints: torch.Tensor, rois: Boxes | torch.Tensor, heatmap_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode keypoints ``Tensor[N, K, 3]`` in boxes ``rois`` ``[N, 4]`` as heatmap cell indices.

    A box's half-open range [x0, x1) maps onto cells 0 .. heatmap_size - 1 (``floor((x - x0) * scale)``);
    a keypoint exactly on the right/bottom edge goes to the last cell. See ``Keypoints.to_heatmap``.
    """
    rois = _rois_tensor(rois, "rois")
    if not isinstance(keypoints, torch.Tensor) or keypoints.dim() != 3 or keypoints.shape[2] != 3:
        raise ValueError("keypoints must be a Tensor[N, K, 3]")
    if keypoints.shape[0] != rois.shape[0]:
        raise ValueError(f"keypoints has {keypoints.shape[0]} instances but rois has {rois.shape[0]} boxes")
    if rois.numel() == 0:
        empty = torch.zeros(0, keypoints.shape[1], dtype=torch.int64, device=rois.device)
        return empty, empty.clone()
    offset_x = rois[:, 0][:, None]  # [N, 1]
    offset_y = rois[:, 1][:, None]
    scale_x = (heatmap_size / (rois[:, 2] - rois[:, 0]))[:, None]
    scale_y = (heatmap_size / (rois[:, 3] - rois[:, 1]))[:, None]

    x = keypoints[..., 0]  # [N, K]
    y = keypoints[..., 1]
    x_boundary = x == rois[:, 2][:, None]
    y_boundary = y == rois[:, 3][:, None]
    x = ((x - offset_x) * scale_x).floor().long()
    y = ((y - offset_y) * scale_y).floor().long()
    x[x_boundary] = heatmap_size - 1
    y[y_boundary] = heatmap_size - 1

    inside = (x >= 0) & (y >= 0) & (x < heatmap_size) & (y < heatmap_size)
    valid = (inside & (keypoints[..., 2] > 0)).long()
    heatmaps = (y * heatmap_size + x) * valid
    return heatmaps, valid


def heatmaps_to_keypoints(maps: torch.Tensor, rois: Boxes | torch.Tensor) -> torch.Tensor:
    """Decode predicted keypoint heatmaps, exactly as detectron2.

    Each ROI's logits are resized bicubically to the box size rounded up (``ceil``, at least 1
    pixel); the arg-max cell ``d`` gives the continuous position ``(d + 0.5) * size / ceil(size)``
    from the box corner. The score is a softmax over the resized map normalized by the sum of
    exponentials over the original (pooled) map.

    Args:
        maps: ``Tensor[R, K, H, W]`` heatmap logits.
        rois: ``Boxes`` or ``Tensor[R, 4]`` XYXY_ABS, the box of each ROI.

    Returns:
        ``Tensor[R, K, 4]``: (x, y, logit, score) per keypoint. Not differentiable.
    """
    rois = _rois_tensor(rois, "rois")
    if not isinstance(maps, torch.Tensor) or maps.dim() != 4:
        raise ValueError("maps must be a Tensor[R, K, H, W]")
    if maps.shape[0] != rois.shape[0]:
        raise ValueError(f"maps has {maps.shape[0]} ROIs but rois has {rois.shape[0]} boxes")
    maps = maps.detach()
    rois = rois.detach()
    num_rois, num_keypoints = maps.shape[:2]
    sizes = torch.stack([rois[:, 2] - rois[:, 0], rois[:, 3] - rois[:, 1]], 1).clamp(min=1)  # [R, 2] w, h
    cells = sizes.ceil()
    # Only the peak of each resized map is needed: its value is the logit, its softmax score is
    # exp(0) over the pooled map's normaliser, so the resized map is never exponentiated.
    peak_logit = maps.new_zeros(num_rois, num_keypoints)
    peak_index = torch.zeros(num_rois, num_keypoints, dtype=torch.int64, device=maps.device)
    for i, (cells_w, cells_h) in enumerate(cells.tolist()):
        resized = F.interpolate(maps[i : i + 1], size=(int(cells_h), int(cells_w)), mode="bicubic")
        peak_logit[i], peak_index[i] = resized.reshape(num_keypoints, -1).max(1)
    normaliser = (maps - peak_logit[:, :, None, None]).exp().sum((2, 3))  # [R, K]
    columns = cells[:, 0:1].long()
    cell_xy = torch.stack([peak_index % columns, peak_index // columns], -1).to(maps.dtype)  # [R, K, 2]
    xy = (cell_xy + 0.5) * (sizes / cells)[:, None, :] + rois[:, None, :2]
    return torch.cat([xy, peak_logit[..., None], normaliser.reciprocal()[..., None]], -1)
