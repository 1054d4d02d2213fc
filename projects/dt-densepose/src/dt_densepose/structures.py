"""``DensePoseDataRelative``: the DensePose annotation of one instance, relative to its box.

DensePose-COCO annotates an instance with points (``dp_x``, ``dp_y`` in ``[0, 256]``: the box mapped
to a 256 x 256 square; ``dp_I`` the fine part 1..24; ``dp_U``, ``dp_V`` in ``[0, 1]``: the location on
that part's chart) and ``dp_masks``: one compressed RLE mask (256 x 256, over the box) per coarse
part, or an empty entry. This module validates them and carries them through geometric transforms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
import pycocotools.mask as mask_util
import torch

from dt_data import transforms as T

from .symmetry import ChartSymmetry

__all__ = [
    "DENSEPOSE_KEYS",
    "DensePoseAnnotationError",
    "DensePoseDataRelative",
    "DensePoseList",
    "has_densepose",
]

DENSEPOSE_KEYS = ("dp_x", "dp_y", "dp_I", "dp_U", "dp_V")
SEGM_SIZE = 256
"""Side of the box-relative coarse segmentation (DensePose-COCO's ``dp_masks`` size)."""


class DensePoseAnnotationError(ValueError):
    """A DensePose annotation that cannot be used; the message names the annotation and the field."""


def has_densepose(annotation: dict) -> bool:
    """Whether ``annotation`` carries DensePose points (any ``dp_*`` key)."""
    return any(k in annotation for k in DENSEPOSE_KEYS)


def _numbers(annotation: dict, key: str, loc: str) -> np.ndarray:
    values = annotation[key]
    if not isinstance(values, (list, tuple, np.ndarray)):
        raise DensePoseAnnotationError(f"{loc}: {key} must be a list of numbers, got {type(values).__name__}")
    try:
        array = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise DensePoseAnnotationError(f"{loc}: {key} must be a list of numbers") from None
    if not np.isfinite(array).all():
        raise DensePoseAnnotationError(f"{loc}: {key} holds a non-finite value")
    return array


def _decode_masks(masks: Any, num_mask_parts: int, loc: str) -> np.ndarray:
    """``uint8[256, 256]`` label map: label k + 1 where mask k is set (later masks win)."""
    if not isinstance(masks, (list, tuple)) or len(masks) > num_mask_parts:
        raise DensePoseAnnotationError(
            f"{loc}: dp_masks must be a list of at most {num_mask_parts} RLE masks, got "
            f"{len(masks) if isinstance(masks, (list, tuple)) else type(masks).__name__}"
        )
    segm = np.zeros((SEGM_SIZE, SEGM_SIZE), np.uint8)
    for k, rle in enumerate(masks):
        if not rle:
            continue
        if not isinstance(rle, dict) or "counts" not in rle or list(rle.get("size", [])) != [SEGM_SIZE] * 2:
            raise DensePoseAnnotationError(
                f"{loc}: dp_masks[{k}] must be an RLE dict with counts and size [256, 256]"
            )
        try:
            counts = rle["counts"]
            if isinstance(counts, list):
                rle = mask_util.frPyObjects(rle, SEGM_SIZE, SEGM_SIZE)
            elif isinstance(counts, str):
                rle = {"size": rle["size"], "counts": counts.encode("ascii")}
            mask = mask_util.decode(rle)
        except Exception as err:  # pycocotools raises bare Exceptions on corrupt RLE
            raise DensePoseAnnotationError(f"{loc}: dp_masks[{k}] is not a valid RLE ({err})") from None
        segm[mask > 0] = k + 1
    return segm


def _resample_box_map(
    segm: np.ndarray, box: np.ndarray, new_box: np.ndarray, transforms: T.Transform, image_hw: tuple[int, int]
) -> np.ndarray:
    """The box-relative label map ``segm`` ``[S, S]`` over XYXY ``box`` (before ``transforms``), seen
    over ``new_box`` (after them), at the same size: pasted into the image, transformed as a
    segmentation (nearest), and sampled at the centres of the new box's S x S cells."""
    side = segm.shape[0]
    height, width = image_hw
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    wh = np.maximum(box[2:] - box[:2], 1e-6)
    col = np.floor((xs - box[0]) / wh[0] * side).astype(np.int64)
    row = np.floor((ys - box[1]) / wh[1] * side).astype(np.int64)
    inside = (col >= 0) & (col < side) & (row >= 0) & (row < side)
    image_map = np.zeros((height, width), np.uint8)
    image_map[inside] = segm[row[inside], col[inside]]
    moved = transforms.apply_segmentation(image_map)
    centres = (np.arange(side) + 0.5) / side
    new_wh = new_box[2:] - new_box[:2]
    px = np.floor(new_box[0] + centres * new_wh[0]).astype(np.int64)
    py = np.floor(new_box[1] + centres * new_wh[1]).astype(np.int64)
    valid_x = (px >= 0) & (px < moved.shape[1])
    valid_y = (py >= 0) & (py < moved.shape[0])
    out = np.zeros((side, side), np.uint8)
    out[np.ix_(valid_y, valid_x)] = moved[np.ix_(py[valid_y], px[valid_x])]
    return out


def _is_flipped(transforms: T.Transform) -> bool:
    """An odd number of horizontal flips in ``transforms``."""
    parts = transforms.transforms if isinstance(transforms, T.TransformList) else [transforms]
    return sum(isinstance(t, T.HFlipTransform) for t in parts) % 2 == 1


def _scales_and_flips_only(transforms: T.Transform) -> bool:
    parts = transforms.transforms if isinstance(transforms, T.TransformList) else [transforms]
    return all(isinstance(t, (T.ResizeTransform, T.HFlipTransform, T.NoOpTransform)) for t in parts)


@attrs.frozen(eq=False)
class DensePoseDataRelative:
    """Points and coarse segmentation of one instance, relative to its box (XYXY, image pixels).

    Attributes:
        x, y: ``float32[N]`` in ``[0, 256]``: ``box_x0 + x / 256 * box_w`` is the image x.
        i: ``int64[N]`` fine part label of each point, 1..P.
        u, v: ``float32[N]`` chart coordinates in ``[0, 1]``.
        segm: ``uint8[256, 256]`` coarse part labels over the box (0: background), or None.
    """

    x: torch.Tensor
    y: torch.Tensor
    i: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    segm: torch.Tensor | None

    @staticmethod
    def from_annotation(
        annotation: dict, *, num_parts: int = 24, num_mask_parts: int = 14, loc: str = "annotation"
    ) -> DensePoseDataRelative:
        """Validate and load the ``dp_*`` fields of ``annotation``; errors name ``loc`` and the field."""
        missing = [k for k in DENSEPOSE_KEYS if k not in annotation]
        if missing:
            raise DensePoseAnnotationError(f"{loc}: DensePose annotation lacks {', '.join(missing)}")
        arrays = {k: _numbers(annotation, k, loc) for k in DENSEPOSE_KEYS}
        counts = {k: len(a) for k, a in arrays.items()}
        if len(set(counts.values())) != 1:
            raise DensePoseAnnotationError(f"{loc}: dp_x, dp_y, dp_I, dp_U, dp_V differ in length: {counts}")
        for key in ("dp_x", "dp_y"):
            if ((arrays[key] < 0) | (arrays[key] > SEGM_SIZE)).any():
                raise DensePoseAnnotationError(f"{loc}: {key} must lie in [0, 256] (box-relative)")
        for key in ("dp_U", "dp_V"):
            if ((arrays[key] < 0) | (arrays[key] > 1)).any():
                raise DensePoseAnnotationError(f"{loc}: {key} must lie in [0, 1]")
        parts = arrays["dp_I"]
        if (parts != np.round(parts)).any() or (parts < 1).any() or (parts > num_parts).any():
            raise DensePoseAnnotationError(f"{loc}: dp_I must be integers in 1..{num_parts}")
        masks = annotation.get("dp_masks")
        segm = None if masks is None else torch.from_numpy(_decode_masks(masks, num_mask_parts, loc))
        return DensePoseDataRelative(
            x=torch.as_tensor(arrays["dp_x"], dtype=torch.float32),
            y=torch.as_tensor(arrays["dp_y"], dtype=torch.float32),
            i=torch.as_tensor(parts, dtype=torch.int64),
            u=torch.as_tensor(arrays["dp_U"], dtype=torch.float32),
            v=torch.as_tensor(arrays["dp_V"], dtype=torch.float32),
            segm=segm,
        )

    def __len__(self) -> int:
        """The number of annotated points."""
        return int(self.x.shape[0])

    def transformed(
        self,
        box: Sequence[float],
        new_box: Sequence[float],
        transforms: T.Transform,
        image_hw: tuple[int, int],
        symmetry: ChartSymmetry | None,
    ) -> DensePoseDataRelative:
        """This annotation after ``transforms`` (resize, crop, flip, ...), relative to ``new_box``.

        ``box``/``new_box``: the instance's XYXY box before/after; ``image_hw``: the image size before.
        Points leaving ``new_box`` are dropped. After a horizontal flip, part labels and U, V follow
        ``symmetry`` (required then); ``ValueError`` otherwise.
        """
        box_np, new_np = np.asarray(box, np.float64), np.asarray(new_box, np.float64)
        wh, new_wh = box_np[2:] - box_np[:2], np.maximum(new_np[2:] - new_np[:2], 1e-6)
        rel = torch.stack([self.x, self.y], dim=1).double().numpy()
        moved = transforms.apply_coords(box_np[:2] + rel / SEGM_SIZE * wh)
        new_rel = (moved - new_np[:2]) / new_wh * SEGM_SIZE
        keep = torch.from_numpy(((new_rel >= 0) & (new_rel <= SEGM_SIZE)).all(axis=1))
        new_rel = torch.from_numpy(new_rel).float()
        i, u, v = self.i, self.u, self.v
        flipped = _is_flipped(transforms)
        if flipped:
            if symmetry is None:
                raise ValueError("a horizontal flip of DensePose annotations needs a ChartSymmetry")
            i, u, v = symmetry.flip_points(i, u, v)
        segm = self.segm
        if segm is not None:
            if _scales_and_flips_only(transforms):  # the box-relative map is only mirrored
                segm = segm.flip(1) if flipped else segm
            else:
                segm = torch.from_numpy(_resample_box_map(segm.numpy(), box_np, new_np, transforms, image_hw))
            if flipped:
                segm = symmetry.flip_mask_labels(segm)
        return DensePoseDataRelative(
            x=new_rel[keep, 0], y=new_rel[keep, 1], i=i[keep], u=u[keep], v=v[keep], segm=segm
        )


class DensePoseList:
    """The ``gt_densepose`` field of ``Instances``: one ``DensePoseDataRelative`` or ``None`` per
    instance; indexes like a tensor (int, slice, bool mask, index tensor or list) and concatenates."""

    def __init__(self, items: Sequence[DensePoseDataRelative | None]) -> None:
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def __getitem__(self, item: Any) -> DensePoseList:
        if isinstance(item, int):
            return DensePoseList([self.items[item]])
        if isinstance(item, slice):
            return DensePoseList(self.items[item])
        index = torch.as_tensor(item)
        if index.dtype == torch.bool:
            if index.shape != (len(self),):
                raise IndexError(f"bool mask of shape {tuple(index.shape)} for {len(self)} instances")
            index = index.nonzero().flatten()
        return DensePoseList([self.items[k] for k in index.reshape(-1).tolist()])

    def to(self, *args: Any, **kwargs: Any) -> DensePoseList:
        """The same annotations (they stay on the CPU; the loss moves what it uses)."""
        return self

    @classmethod
    def cat(cls, lists: Sequence[DensePoseList]) -> DensePoseList:
        return DensePoseList([item for lst in lists for item in lst.items])

    def __repr__(self) -> str:
        annotated = sum(item is not None for item in self.items)
        return f"DensePoseList(len={len(self)}, annotated={annotated})"
