"""Instance masks: full-image bitmaps (``BitMasks``), polygons (``PolygonMasks``) and per-box masks
(``ROIMasks``), plus polygon rasterization. Numerics follow detectron2's ``structures/masks.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pycocotools.mask as mask_util
import torch

from ._utils import is_integer_index, require_dt_ops
from .boxes import Boxes
from .mask_paste import paste_masks_in_image

__all__ = [
    "BitMasks",
    "PolygonMasks",
    "ROIMasks",
    "polygon_area",
    "polygons_to_bitmask",
    "rasterize_polygons_within_box",
]


def polygon_area(x: np.ndarray, y: np.ndarray) -> float:
    """Area of the polygon with vertices (x[i], y[i]) (shoelace formula)."""
    return 0.5 * np.abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


def _check_polygon(polygon: np.ndarray, where: str) -> None:
    if polygon.ndim != 1 or len(polygon) % 2 != 0 or len(polygon) < 6:
        raise ValueError(
            f"{where} must be a flat [x0, y0, x1, y1, ...] list of at least 3 points, "
            f"got shape {polygon.shape}"
        )


def polygons_to_bitmask(polygons: Sequence[np.ndarray], height: int, width: int) -> np.ndarray:
    """Rasterize one instance given as polygons ``[x0, y0, x1, y1, ...]`` (the union of all of them)
    with the COCO API into a bool ``ndarray[height, width]``; no polygons give an empty mask."""
    if len(polygons) == 0:
        return np.zeros((height, width), dtype=bool)
    polygons = [np.asarray(p, dtype=np.float64) for p in polygons]
    for i, p in enumerate(polygons):
        _check_polygon(p, f"polygons[{i}]")
    rles = mask_util.frPyObjects(polygons, height, width)
    return mask_util.decode(mask_util.merge(rles)).astype(bool)


def rasterize_polygons_within_box(
    polygons: Sequence[np.ndarray], box: np.ndarray, mask_size: int
) -> torch.Tensor:
    """Rasterize the polygons of one instance inside ``box`` into a ``mask_size`` x ``mask_size`` grid.

    The polygons are shifted to the box's corner and stretched so the box spans the grid (a side
    shorter than 0.1 counts as 0.1), then rasterized with the COCO API. This makes the Mask R-CNN
    mask targets.

    Args:
        polygons: ``[x0, y0, x1, y1, ...]`` arrays in image coordinates (not modified); float
            arrays are computed in their own dtype (as detectron2), others in float64.
        box: 4 numbers, XYXY_ABS.
        mask_size: side of the output.

    Returns:
        ``Tensor[mask_size, mask_size]`` bool.
    """
    box = np.asarray(box)
    w, h = box[2] - box[0], box[3] - box[1]
    ratio_w = mask_size / max(w, 0.1)
    ratio_h = mask_size / max(h, 0.1)
    shifted = []
    for p in polygons:
        q = np.array(p)  # a copy
        if q.dtype.kind != "f":
            q = q.astype(np.float64)
        q[0::2] = (q[0::2] - box[0]) * ratio_w
        q[1::2] = (q[1::2] - box[1]) * ratio_h
        shifted.append(q)
    return torch.from_numpy(polygons_to_bitmask(shifted, mask_size, mask_size))


def _boxes_tensor(boxes: Boxes | torch.Tensor, n: int, name: str = "boxes") -> torch.Tensor:
    if isinstance(boxes, Boxes):
        boxes = boxes.tensor
    if not isinstance(boxes, torch.Tensor) or boxes.dim() != 2 or boxes.shape[1] != 4:
        got = tuple(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes).__name__
        raise ValueError(f"{name} must be Boxes or a Tensor[N, 4], got {got}")
    if len(boxes) != n:
        raise ValueError(f"{name} has {len(boxes)} boxes but there are {n} masks")
    return boxes


def _check_mask_size(mask_size: Any) -> int:
    if not isinstance(mask_size, int) or isinstance(mask_size, bool) or mask_size <= 0:
        raise ValueError(f"mask_size must be a positive int, got {mask_size!r}")
    return mask_size


class BitMasks:
    """``N`` full-image masks: ``tensor`` is ``Tensor[N, H, W]`` bool; ``image_size`` is (H, W)."""

    def __init__(self, tensor: torch.Tensor | np.ndarray):
        if isinstance(tensor, torch.Tensor):
            tensor = tensor.to(torch.bool)
        elif isinstance(tensor, np.ndarray):
            tensor = torch.as_tensor(tensor.astype(bool, copy=False))
        else:
            raise TypeError(f"BitMasks takes a Tensor or np.ndarray, got {type(tensor).__name__}")
        if tensor.dim() != 3:
            raise ValueError(f"BitMasks expects a tensor of shape [N, H, W], got {tuple(tensor.shape)}")
        self.tensor = tensor
        self.image_size = tensor.shape[1:]

    def to(self, *args: Any, **kwargs: Any) -> BitMasks:
        """The masks moved with ``Tensor.to(*args, **kwargs)``; they stay bool (as detectron2)."""
        return BitMasks(self.tensor.to(*args, **kwargs))

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def __getitem__(self, item: int | slice | torch.Tensor | Sequence[int]) -> BitMasks:
        """Select masks by int (keeps a length-1 BitMasks), slice, bool mask or index tensor."""
        selected = self.tensor[item]
        if is_integer_index(item):
            selected = selected.unsqueeze(0)
        if selected.dim() != 3:
            raise IndexError(f"indexing BitMasks with {item!r} returned shape {tuple(selected.shape)}")
        return BitMasks(selected)

    def __iter__(self) -> Iterator[torch.Tensor]:
        yield from self.tensor

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def __repr__(self) -> str:
        return f"BitMasks(num_instances={len(self)}, image_size={tuple(self.image_size)})"

    def nonempty(self) -> torch.Tensor:
        """``Tensor[N]`` bool: True for masks with at least one pixel set."""
        return self.tensor.flatten(1).any(dim=1)

    @staticmethod
    def from_polygon_masks(
        polygon_masks: PolygonMasks | Sequence[Sequence[np.ndarray]], height: int, width: int
    ) -> BitMasks:
        """Rasterize polygon masks into ``[N, height, width]`` bitmaps."""
        if isinstance(polygon_masks, PolygonMasks):
            polygon_masks = polygon_masks.polygons
        masks = [torch.from_numpy(polygons_to_bitmask(p, height, width)) for p in polygon_masks]
        if not masks:
            return BitMasks(torch.zeros(0, height, width, dtype=torch.bool))
        return BitMasks(torch.stack(masks))

    @staticmethod
    def from_roi_masks(
        roi_masks: ROIMasks, boxes: Boxes | torch.Tensor, height: int, width: int, threshold: float = 0.5
    ) -> BitMasks:
        """Paste per-box masks into ``[N, height, width]`` bitmaps (see ``ROIMasks.to_bitmasks``)."""
        if not isinstance(roi_masks, ROIMasks):
            raise TypeError(f"roi_masks must be ROIMasks, got {type(roi_masks).__name__}")
        return roi_masks.to_bitmasks(boxes, height, width, threshold)

    def crop_and_resize(self, boxes: Boxes | torch.Tensor, mask_size: int) -> torch.Tensor:
        """Crop mask ``i`` to ``boxes[i]`` and resample it to ``mask_size`` x ``mask_size``.

        ROIAlign (dt-ops ``roi_align``, aligned=True, adaptive sampling) on the float masks, then
        ``>= 0.5``: the Mask R-CNN targets of detectron2. Needs ``dt-structures[ops]``.

        Returns:
            ``Tensor[N, mask_size, mask_size]`` bool on the masks' device.
        """
        boxes = _boxes_tensor(boxes, len(self))
        mask_size = _check_mask_size(mask_size)
        dt_ops = require_dt_ops("BitMasks.crop_and_resize")
        device = self.tensor.device
        bit_masks = self.tensor.to(dtype=torch.float32)
        batch_inds = torch.arange(len(boxes), device=device).to(dtype=boxes.dtype)[:, None]
        rois = torch.cat([batch_inds, boxes.to(device)], dim=1).to(dtype=bit_masks.dtype)  # [N, 5]
        output = dt_ops.roi_align(
            bit_masks[:, None, :, :],
            rois,
            (mask_size, mask_size),
            spatial_scale=1.0,
            sampling_ratio=0,
            aligned=True,
        )  # [N, 1, mask_size, mask_size]
        return output.squeeze(1) >= 0.5

    def get_bounding_boxes(self) -> Boxes:
        """Tight boxes (XYXY_ABS, pixel edges) around each mask; all zeros for empty masks.

        The boxes are on the CPU whatever the masks' device, as detectron2 returns them.
        """
        n, h, w = self.tensor.shape
        device = self.tensor.device
        if h == 0 or w == 0:
            return Boxes(torch.zeros(n, 4))
        x_any = self.tensor.any(dim=1)  # [N, W]
        y_any = self.tensor.any(dim=2)  # [N, H]
        xs = torch.arange(w, device=device)
        ys = torch.arange(h, device=device)
        x0 = torch.where(x_any, xs, w).min(dim=1).values
        x1 = torch.where(x_any, xs, -1).max(dim=1).values + 1
        y0 = torch.where(y_any, ys, h).min(dim=1).values
        y1 = torch.where(y_any, ys, -1).max(dim=1).values + 1
        boxes = torch.stack([x0, y0, x1, y1], dim=1).to(torch.float32)  # [N, 4]
        return Boxes(torch.where(x_any.any(dim=1)[:, None], boxes, 0.0).cpu())

    @staticmethod
    def cat(bitmasks_list: Sequence[BitMasks]) -> BitMasks:
        """Concatenate BitMasks of the same image size."""
        if not isinstance(bitmasks_list, (list, tuple)) or len(bitmasks_list) == 0:
            raise ValueError("bitmasks_list must be a non-empty list of BitMasks")
        for i, m in enumerate(bitmasks_list):
            if not isinstance(m, BitMasks):
                raise TypeError(f"bitmasks_list[{i}] must be BitMasks, got {type(m).__name__}")
        return BitMasks(torch.cat([m.tensor for m in bitmasks_list], dim=0))


class PolygonMasks:
    """``N`` instance masks as polygons: ``polygons[i]`` is the list of float64 ``[x0, y0, x1, y1, ...]``
    arrays (at least 3 points each) whose union is instance ``i``. Polygons always live on the CPU.
    """

    def __init__(self, polygons: Sequence[Sequence[np.ndarray | torch.Tensor | Sequence[float]]]):
        if not isinstance(polygons, (list, tuple)):
            raise TypeError(
                f"polygons must be a list (per instance) of lists of polygons, got {type(polygons).__name__}"
            )
        self.polygons: list[list[np.ndarray]] = []
        for i, per_instance in enumerate(polygons):
            if not isinstance(per_instance, (list, tuple)):
                raise TypeError(
                    f"polygons[{i}] must be a list of the polygons of one instance, "
                    f"got {type(per_instance).__name__}"
                )
            arrays = []
            for j, p in enumerate(per_instance):
                if isinstance(p, torch.Tensor):
                    p = p.detach().cpu().numpy()
                arr = np.asarray(p).astype(np.float64)
                _check_polygon(arr, f"polygons[{i}][{j}]")
                arrays.append(arr)
            self.polygons.append(arrays)

    def to(self, *args: Any, **kwargs: Any) -> PolygonMasks:
        """Polygons stay on the CPU; returns ``self``."""
        return self

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def get_bounding_boxes(self) -> Boxes:
        """Boxes around each instance's polygons, as detectron2 computes them: the lower corner
        starts at +inf and the upper corner at 0 (so an instance without polygons gets
        (inf, inf, 0, 0), and the upper corner is never negative)."""
        boxes = torch.zeros(len(self.polygons), 4, dtype=torch.float32)
        for i, per_instance in enumerate(self.polygons):
            lo = torch.full((2,), float("inf"))
            hi = torch.zeros(2)
            for p in per_instance:
                coords = torch.from_numpy(p).view(-1, 2).to(torch.float32)
                lo = torch.min(lo, coords.min(dim=0).values)
                hi = torch.max(hi, coords.max(dim=0).values)
            boxes[i, :2] = lo
            boxes[i, 2:] = hi
        return Boxes(boxes)

    def nonempty(self) -> torch.Tensor:
        """``Tensor[N]`` bool: True for instances with at least one polygon."""
        return torch.as_tensor([len(p) > 0 for p in self.polygons], dtype=torch.bool)

    def __getitem__(self, item: int | slice | Sequence[int] | torch.Tensor) -> PolygonMasks:
        """Select instances by int (keeps a length-1 PolygonMasks), slice, list of ints, bool mask
        or integer tensor."""
        if is_integer_index(item):
            selected = [self.polygons[int(item)]]
        elif isinstance(item, slice):
            selected = self.polygons[item]
        elif isinstance(item, torch.Tensor):
            if item.dtype == torch.bool:
                if item.shape != (len(self),):
                    raise IndexError(f"bool mask of shape {tuple(item.shape)} for {len(self)} instances")
                indices = item.nonzero().flatten().tolist()
            elif item.dtype in (torch.int32, torch.int64):
                indices = item.flatten().tolist()
            else:
                raise TypeError(f"cannot index PolygonMasks with a tensor of dtype {item.dtype}")
            selected = [self.polygons[i] for i in indices]
        elif isinstance(item, (list, tuple, np.ndarray)):
            selected = [self.polygons[int(i)] for i in item]
        else:
            raise TypeError(f"cannot index PolygonMasks with {type(item).__name__}")
        return PolygonMasks(selected)

    def __iter__(self) -> Iterator[list[np.ndarray]]:
        return iter(self.polygons)

    def __len__(self) -> int:
        return len(self.polygons)

    def __repr__(self) -> str:
        return f"PolygonMasks(num_instances={len(self)})"

    def crop_and_resize(self, boxes: Boxes | torch.Tensor, mask_size: int) -> torch.Tensor:
        """Rasterize instance ``i`` within ``boxes[i]`` (see ``rasterize_polygons_within_box``).

        Returns:
            ``Tensor[N, mask_size, mask_size]`` bool on the boxes' device.
        """
        boxes = _boxes_tensor(boxes, len(self))
        mask_size = _check_mask_size(mask_size)
        device = boxes.device
        cpu_boxes = boxes.to("cpu").numpy()
        results = [
            rasterize_polygons_within_box(poly, box, mask_size)
            for poly, box in zip(self.polygons, cpu_boxes, strict=True)
        ]
        if not results:
            return torch.zeros(0, mask_size, mask_size, dtype=torch.bool, device=device)
        return torch.stack(results, dim=0).to(device=device)

    def area(self) -> torch.Tensor:
        """``Tensor[N]`` float64: polygon areas (shoelace), summed per instance."""
        areas = [sum((polygon_area(p[0::2], p[1::2]) for p in per), 0.0) for per in self.polygons]
        return torch.tensor(areas, dtype=torch.float64)

    @staticmethod
    def cat(polymasks_list: Sequence[PolygonMasks]) -> PolygonMasks:
        """Concatenate PolygonMasks."""
        if not isinstance(polymasks_list, (list, tuple)) or len(polymasks_list) == 0:
            raise ValueError("polymasks_list must be a non-empty list of PolygonMasks")
        for i, m in enumerate(polymasks_list):
            if not isinstance(m, PolygonMasks):
                raise TypeError(f"polymasks_list[{i}] must be PolygonMasks, got {type(m).__name__}")
        return PolygonMasks(list(itertools.chain.from_iterable(m.polygons for m in polymasks_list)))


class ROIMasks:
    """``N`` masks defined inside their boxes: ``tensor`` is ``Tensor[N, M, M]`` (e.g. mask head
    probabilities). ``to_bitmasks`` pastes them into the image once the boxes are known."""

    def __init__(self, tensor: torch.Tensor):
        if not isinstance(tensor, torch.Tensor) or tensor.dim() != 3:
            got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise ValueError(f"ROIMasks expects a Tensor[N, M, M], got {got}")
        self.tensor = tensor

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> ROIMasks:
        return ROIMasks(self.tensor.to(device=device, non_blocking=non_blocking))

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def __getitem__(self, item: int | slice | torch.Tensor | Sequence[int]) -> ROIMasks:
        selected = self.tensor[item]
        if is_integer_index(item):
            selected = selected.unsqueeze(0)
        if selected.dim() != 3:
            raise IndexError(f"indexing ROIMasks with {item!r} returned shape {tuple(selected.shape)}")
        return ROIMasks(selected)

    def __repr__(self) -> str:
        return f"ROIMasks(num_instances={len(self)})"

    def to_bitmasks(
        self, boxes: Boxes | torch.Tensor, height: int, width: int, threshold: float = 0.5
    ) -> BitMasks:
        """Paste mask ``i`` into ``boxes[i]`` of a ``height`` x ``width`` image and binarize it at
        ``threshold`` (see ``paste_masks_in_image``)."""
        boxes = _boxes_tensor(boxes, len(self))
        return BitMasks(paste_masks_in_image(self.tensor, boxes, (height, width), threshold=threshold))
