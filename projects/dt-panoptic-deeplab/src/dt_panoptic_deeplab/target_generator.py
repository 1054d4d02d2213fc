"""``PanopticDeepLabTargetGenerator``: training targets of Panoptic-DeepLab from a panoptic label map.

For each thing instance (a segment whose class is a thing): its centre of mass gets a Gaussian peak
(``sigma``, peak 1, truncated at 3 sigma; overlapping peaks take the maximum) in the centre heatmap,
and each of its pixels the offset ``centre - pixel`` (y, x). Semantic labels come from every segment
(crowd ones optionally ignored); thing instances smaller than ``small_instance_area`` pixels weigh
``small_instance_weight`` in the semantic loss. The centre loss ignores unlabelled and crowd pixels;
the offset loss also ignores stuff with ``ignore_stuff_in_offset``. These are detectron2's rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

__all__ = ["PanopticDeepLabTargetGenerator"]


class PanopticDeepLabTargetGenerator:
    """Callable: ``(panoptic ids ndarray[H, W], segments_info) -> dict of target tensors``.

    Args:
        ignore_label: semantic label of unlabelled pixels.
        thing_ids: contiguous class ids that are things.
        sigma: standard deviation of the centre Gaussians, in pixels.
    """

    def __init__(
        self,
        *,
        ignore_label: int,
        thing_ids: Iterable[int],
        sigma: float = 8,
        ignore_stuff_in_offset: bool = False,
        small_instance_area: int = 0,
        small_instance_weight: float = 1,
        ignore_crowd_in_semantic: bool = False,
    ) -> None:
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        self.ignore_label = ignore_label
        self.thing_ids = set(thing_ids)
        self.sigma = sigma
        self.ignore_stuff_in_offset = ignore_stuff_in_offset
        self.small_instance_area = small_instance_area
        self.small_instance_weight = small_instance_weight
        self.ignore_crowd_in_semantic = ignore_crowd_in_semantic
        size = int(6 * sigma + 3)
        coords = np.arange(size, dtype=np.float64)
        mid = 3 * sigma + 1
        self.gaussian = np.exp(-((coords[None] - mid) ** 2 + (coords[:, None] - mid) ** 2) / (2 * sigma**2))

    def _paste_gaussian(self, center: np.ndarray, cy: float, cx: float) -> None:
        """Max the Gaussian of the instance centred at (``cy``, ``cx``) (rounded) into ``center``."""
        height, width = center.shape
        y, x = int(round(cy)), int(round(cx))
        left, top = int(np.round(x - 3 * self.sigma - 1)), int(np.round(y - 3 * self.sigma - 1))
        right, bottom = int(np.round(x + 3 * self.sigma + 2)), int(np.round(y + 3 * self.sigma + 2))
        gx0, gx1 = max(0, -left), min(right, width) - left
        gy0, gy1 = max(0, -top), min(bottom, height) - top
        x0, x1, y0, y1 = max(0, left), min(right, width), max(0, top), min(bottom, height)
        if x0 >= x1 or y0 >= y1:
            return
        center[y0:y1, x0:x1] = np.maximum(center[y0:y1, x0:x1], self.gaussian[gy0:gy1, gx0:gx1])

    def __call__(self, panoptic: np.ndarray, segments_info: Sequence[dict]) -> dict:
        """Targets of one image.

        Returns ``sem_seg`` ``Tensor[H, W]`` int64, ``center`` ``Tensor[H, W]`` (heatmap in [0, 1]),
        ``center_points`` (list of (y, x) centres of mass), ``offset`` ``Tensor[2, H, W]`` ((dy, dx) to the
        centre), ``sem_seg_weights`` ``Tensor[H, W]``, ``center_weights`` and ``offset_weights``
        ``Tensor[1, H, W]`` (1 where the loss counts).
        """
        height, width = panoptic.shape
        semantic = np.full((height, width), self.ignore_label, dtype=np.int64)
        center = np.zeros((height, width), dtype=np.float32)
        offset = np.zeros((2, height, width), dtype=np.float32)
        semantic_weights = np.ones((height, width), dtype=np.float32)
        center_weights = np.zeros((height, width), dtype=np.float32)
        offset_weights = np.zeros((height, width), dtype=np.float32)
        center_points = []
        for seg in segments_info:
            mask = panoptic == seg["id"]
            category, crowd = seg["category_id"], bool(seg.get("iscrowd", 0))
            if not (self.ignore_crowd_in_semantic and crowd):
                semantic[mask] = category
            if not crowd:
                center_weights[mask] = 1
                if not self.ignore_stuff_in_offset or category in self.thing_ids:
                    offset_weights[mask] = 1
            if category not in self.thing_ids:
                continue
            ys, xs = np.nonzero(mask)
            if len(ys) == 0:  # cropped away
                continue
            if len(ys) < self.small_instance_area:
                semantic_weights[mask] = self.small_instance_weight
            cy, cx = float(ys.mean()), float(xs.mean())
            center_points.append([cy, cx])
            self._paste_gaussian(center, cy, cx)
            offset[0, ys, xs] = cy - ys
            offset[1, ys, xs] = cx - xs
        return {
            "sem_seg": torch.from_numpy(semantic),
            "center": torch.from_numpy(center),
            "center_points": center_points,
            "offset": torch.from_numpy(offset),
            "sem_seg_weights": torch.from_numpy(semantic_weights),
            "center_weights": torch.from_numpy(center_weights[None]),
            "offset_weights": torch.from_numpy(offset_weights[None]),
        }
