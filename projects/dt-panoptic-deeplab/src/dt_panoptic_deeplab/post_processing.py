"""Panoptic-DeepLab's post-processing: centres from the heatmap, pixels grouped to their nearest
predicted centre, and instances merged with the semantic prediction into one panoptic map.

Panoptic labels are ``class * label_divisor + instance`` (instances numbered from 1 per class; stuff
has instance 0) and ``void_label`` (-1) where nothing was kept: the label-divisor format
dt-eval's ``COCOPanopticEvaluator`` reads with ``panoptic_seg = (labels, None)``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import torch
from torch.nn import functional as F

__all__ = [
    "find_instance_centers",
    "get_instance_segmentation",
    "get_panoptic_segmentation",
    "group_pixels",
    "merge_semantic_and_instance",
]


def find_instance_centers(
    center_heatmap: torch.Tensor, threshold: float = 0.1, nms_kernel: int = 3, top_k: int | None = None
) -> torch.Tensor:
    """Centres ``Tensor[K, 2]`` (y, x) of a heatmap ``Tensor[1, H, W]``: pixels above ``threshold`` that
    are the maximum of their ``nms_kernel`` window (NMS by max pooling). With ``top_k``, only peaks
    scoring strictly above the ``top_k``-th highest value are kept (detectron2's rule: at most
    ``top_k - 1`` centres when there are ``top_k`` or more peaks)."""
    if nms_kernel < 1 or nms_kernel % 2 == 0:
        raise ValueError(f"nms_kernel must be an odd number >= 1, got {nms_kernel}")
    heat = F.threshold(center_heatmap, threshold, -1.0)  # below threshold -> -1
    pooled = F.max_pool2d(heat[None], kernel_size=nms_kernel, stride=1, padding=(nms_kernel - 1) // 2)[0]
    heat = torch.where(heat == pooled, heat, torch.full_like(heat, -1.0))[0]  # [H, W]
    if top_k is None:
        return torch.nonzero(heat > 0)
    kth = torch.topk(heat.flatten(), min(top_k, heat.numel())).values[-1].clamp(min=0)
    return torch.nonzero(heat > kth)


def group_pixels(center_points: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Instance id ``Tensor[1, H, W]`` in [1, K]: each pixel, moved by its offset ``Tensor[2, H, W]``
    ((dy, dx)), goes to the nearest of ``center_points`` ``Tensor[K, 2]`` (y, x)."""
    height, width = offsets.shape[1:]
    ys = torch.arange(height, dtype=offsets.dtype, device=offsets.device)
    xs = torch.arange(width, dtype=offsets.dtype, device=offsets.device)
    coords = torch.stack(torch.meshgrid(ys, xs, indexing="ij"))  # [2, H, W]
    voted = (coords + offsets).flatten(1).T  # [H*W, 2] where each pixel says its centre is
    distance = torch.cdist(center_points.to(offsets.dtype), voted)  # [K, H*W]
    return distance.argmin(dim=0).reshape(1, height, width) + 1


def get_instance_segmentation(
    center_heatmap: torch.Tensor,
    offsets: torch.Tensor,
    thing_seg: torch.Tensor,
    *,
    threshold: float = 0.1,
    nms_kernel: int = 3,
    top_k: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-agnostic instances ``Tensor[1, H, W]`` (0: not a thing, else the centre's 1-based index)
    within the foreground ``thing_seg`` ``Tensor[1, H, W]``, and the centres ``Tensor[1, K, 2]``."""
    centers = find_instance_centers(center_heatmap, threshold, nms_kernel, top_k)
    if centers.shape[0] == 0:
        return torch.zeros_like(thing_seg), centers[None]
    return thing_seg * group_pixels(centers, offsets), centers[None]


def merge_semantic_and_instance(
    sem_seg: torch.Tensor,
    ins_seg: torch.Tensor,
    thing_seg: torch.Tensor,
    *,
    label_divisor: int,
    thing_ids: Iterable[int],
    stuff_area: int,
    void_label: int = -1,
) -> torch.Tensor:
    """The panoptic map ``Tensor[1, H, W]`` of semantic classes ``sem_seg`` and instances ``ins_seg``
    (both ``Tensor[1, H, W]``). Each instance takes the majority class of its foreground pixels and the
    next instance number of that class; stuff classes fill the pixels no instance holds when they cover
    at least ``stuff_area`` of them; everything else is ``void_label``."""
    thing_ids = set(int(t) for t in thing_ids)
    panoptic = torch.full_like(sem_seg, void_label)
    is_thing = (ins_seg > 0) & (thing_seg > 0)
    per_class = Counter()
    for instance in torch.unique(ins_seg).tolist():
        if instance == 0:
            continue
        mask = (ins_seg == instance) & is_thing
        if not mask.any():
            continue
        category = int(torch.mode(sem_seg[mask].flatten()).values)
        per_class[category] += 1
        panoptic[mask] = category * label_divisor + per_class[category]
    for category in torch.unique(sem_seg).tolist():
        if category in thing_ids:
            continue
        mask = (sem_seg == category) & (ins_seg == 0)
        if int(mask.sum()) >= stuff_area:
            panoptic[mask] = category * label_divisor
    return panoptic


def get_panoptic_segmentation(
    sem_seg: torch.Tensor,
    center_heatmap: torch.Tensor,
    offsets: torch.Tensor,
    *,
    thing_ids: Iterable[int],
    label_divisor: int,
    stuff_area: int,
    void_label: int = -1,
    threshold: float = 0.1,
    nms_kernel: int = 7,
    top_k: int | None = 200,
    foreground_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Panoptic map ``Tensor[1, H, W]`` int64 and centres ``Tensor[1, K, 2]`` from the semantic labels
    ``Tensor[1, H, W]``, the centre heatmap ``Tensor[1, H, W]`` and offsets ``Tensor[2, H, W]``. The
    foreground (pixels that may belong to instances) is ``foreground_mask`` or the thing classes of
    ``sem_seg``."""
    for name, tensor, channels in (
        ("sem_seg", sem_seg, 1),
        ("center_heatmap", center_heatmap, 1),
        ("offsets", offsets, 2),
    ):
        if tensor.dim() != 3 or tensor.shape[0] != channels:
            raise ValueError(f"{name} must be Tensor[{channels}, H, W], got shape {tuple(tensor.shape)}")
    thing_ids = [int(t) for t in thing_ids]
    if foreground_mask is None:
        thing_seg = torch.isin(sem_seg, torch.tensor(thing_ids, device=sem_seg.device)).to(sem_seg.dtype)
    else:
        thing_seg = foreground_mask.to(sem_seg.dtype)
    instances, centers = get_instance_segmentation(
        center_heatmap, offsets, thing_seg, threshold=threshold, nms_kernel=nms_kernel, top_k=top_k
    )
    panoptic = merge_semantic_and_instance(
        sem_seg,
        instances,
        thing_seg,
        label_divisor=label_divisor,
        thing_ids=thing_ids,
        stuff_area=stuff_area,
        void_label=void_label,
    )
    return panoptic, centers
