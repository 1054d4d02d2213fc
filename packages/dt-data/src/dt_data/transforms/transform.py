"""Deterministic transforms (fvcore/detectron2 semantics).

A :class:`Transform` holds every parameter it needs (no randomness) and applies the same geometric or
photometric change to an image (``ndarray[H, W]`` or ``[H, W, C]``), to coordinates (``ndarray[N, 2]``
of absolute ``(x, y)`` in pixel units, 0 at the image's left/top edge), to boxes (``ndarray[N, 4]``,
XYXY_ABS), to polygons (``list[ndarray[K, 2]]``) and to segmentation maps (nearest interpolation).
Inputs are never modified in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import cv2
import numpy as np
import shapely
import torch
import torch.nn.functional as F
from PIL import Image
from shapely.geometry.base import BaseMultipartGeometry

from .rotated_boxes import rotated_boxes_by_coords

__all__ = [
    "BlendTransform",
    "CropTransform",
    "ExtentTransform",
    "HFlipTransform",
    "NoOpTransform",
    "PadTransform",
    "ResizeTransform",
    "RotationTransform",
    "Transform",
    "TransformList",
    "VFlipTransform",
]


class Transform:
    """Base class of deterministic transforms. Subclasses implement ``apply_image`` and
    ``apply_coords``; boxes, polygons and segmentation are derived from them unless overridden."""

    def _set_attributes(self, params: dict[str, Any]) -> None:
        for key, value in params.items():
            if key != "self" and not key.startswith("_"):
                setattr(self, key, value)

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        """``ndarray[N, 2]`` of (x, y) -> transformed ``ndarray[N, 2]``."""
        raise NotImplementedError

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        """Label map ``ndarray[H, W]``; geometric transforms use nearest interpolation."""
        return self.apply_image(segmentation)

    def apply_box(self, box: np.ndarray) -> np.ndarray:
        """``ndarray[N, 4]`` XYXY_ABS -> the axis-aligned box enclosing the 4 transformed corners."""
        box = np.asarray(box, dtype=np.float64).reshape(-1, 4)
        idxs = np.array([(0, 1), (2, 1), (0, 3), (2, 3)]).flatten()
        coords = box[:, idxs].reshape(-1, 2)
        corners = self.apply_coords(coords).reshape(-1, 4, 2)
        return np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)

    def apply_polygons(self, polygons: list[np.ndarray]) -> list[np.ndarray]:
        """Each polygon ``ndarray[K, 2]`` of (x, y) -> transformed polygon."""
        return [self.apply_coords(np.asarray(p, dtype=np.float64)) for p in polygons]

    def apply_rotated_box(self, rotated_boxes: np.ndarray) -> np.ndarray:
        """``ndarray[N, 5]`` XYWHA_ABS boxes moved with ``apply_coords`` (``rotated_boxes_by_coords``)."""
        return rotated_boxes_by_coords(self.apply_coords, rotated_boxes)

    def inverse(self) -> Transform:
        raise NotImplementedError(f"{type(self).__name__} has no inverse")

    @classmethod
    def register_type(cls, data_type: str, func: Callable[[Transform, Any], Any]) -> None:
        """Add ``apply_<data_type>`` to this transform class (detectron2's extension point)."""
        if not callable(func):
            raise TypeError(f"register_type: func must be callable, got {type(func).__name__}")
        setattr(cls, f"apply_{data_type}", lambda self, x: func(self, x))

    def __repr__(self) -> str:
        items = ", ".join(
            f"{k}={v!r}" for k, v in self.__dict__.items() if not k.startswith("_") and np.ndim(v) < 2
        )
        return f"{type(self).__name__}({items})"


class TransformList(Transform):
    """A sequence of transforms applied in order; nested lists are flattened."""

    def __init__(self, transforms: Iterable[Transform]) -> None:
        flat: list[Transform] = []
        for t in transforms:
            if isinstance(t, TransformList):
                flat.extend(t.transforms)
            elif isinstance(t, Transform):
                flat.append(t)
            else:
                raise TypeError(f"TransformList: expected Transform items, got {type(t).__name__}")
        self.transforms = [t for t in flat if not isinstance(t, NoOpTransform)]

    def _apply(self, method: str, x: Any) -> Any:
        for t in self.transforms:
            x = getattr(t, method)(x)
        return x

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return self._apply("apply_image", img)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return self._apply("apply_coords", np.asarray(coords, dtype=np.float64))

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self._apply("apply_segmentation", segmentation)

    def apply_box(self, box: np.ndarray) -> np.ndarray:
        return self._apply("apply_box", box)

    def apply_polygons(self, polygons: list[np.ndarray]) -> list[np.ndarray]:
        return self._apply("apply_polygons", polygons)

    def apply_rotated_box(self, rotated_boxes: np.ndarray) -> np.ndarray:
        return self._apply("apply_rotated_box", rotated_boxes)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("apply_"):
            return lambda x: self._apply(name, x)
        raise AttributeError(name)

    def inverse(self) -> TransformList:
        return TransformList([t.inverse() for t in reversed(self.transforms)])

    def __add__(self, other: Transform) -> TransformList:
        return TransformList([self, other])

    def __radd__(self, other: Transform) -> TransformList:
        return TransformList([other, self])

    def __len__(self) -> int:
        return len(self.transforms)

    def __getitem__(self, idx: int) -> Transform:
        return self.transforms[idx]

    def __repr__(self) -> str:
        return f"TransformList[{', '.join(map(repr, self.transforms))}]"


class NoOpTransform(Transform):
    """Identity."""

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return img

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return np.asarray(coords)

    def apply_rotated_box(self, rotated_boxes: np.ndarray) -> np.ndarray:
        return rotated_boxes

    def inverse(self) -> Transform:
        return self


class HFlipTransform(Transform):
    """Mirror left-right: ``x -> width - x``."""

    def __init__(self, width: int) -> None:
        self.width = width

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return np.flip(img, axis=1) if img.ndim <= 3 else np.flip(img, axis=-2)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords = np.array(coords, dtype=np.float64)
        coords[:, 0] = self.width - coords[:, 0]
        return coords

    def apply_rotated_box(self, rotated_boxes: np.ndarray) -> np.ndarray:
        """``ndarray[N, 5]`` (cx, cy, w, h, angle degrees CCW)."""
        boxes = np.array(rotated_boxes, dtype=np.float64)
        boxes[:, 0] = self.width - boxes[:, 0]
        boxes[:, 4] = -boxes[:, 4]
        return boxes

    def inverse(self) -> Transform:
        return self


class VFlipTransform(Transform):
    """Mirror top-bottom: ``y -> height - y``."""

    def __init__(self, height: int) -> None:
        self.height = height

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return np.flip(img, axis=0) if img.ndim <= 3 else np.flip(img, axis=-3)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords = np.array(coords, dtype=np.float64)
        coords[:, 1] = self.height - coords[:, 1]
        return coords

    def apply_rotated_box(self, rotated_boxes: np.ndarray) -> np.ndarray:
        """``ndarray[N, 5]`` (cx, cy, w, h, angle degrees CCW): ``cy -> height - cy``, ``angle -> -angle``."""
        boxes = np.array(rotated_boxes, dtype=np.float64)
        boxes[:, 1], boxes[:, 4] = self.height - boxes[:, 1], -boxes[:, 4]
        return boxes

    def inverse(self) -> Transform:
        return self


class CropTransform(Transform):
    """Keep the window ``[x0, x0 + w) x [y0, y0 + h)``; ``orig_w``/``orig_h`` (the input size) make it
    invertible (as a pad)."""

    def __init__(
        self, x0: int, y0: int, w: int, h: int, orig_w: int | None = None, orig_h: int | None = None
    ) -> None:
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        if img.ndim <= 3:
            return img[self.y0 : self.y0 + self.h, self.x0 : self.x0 + self.w]
        return img[..., self.y0 : self.y0 + self.h, self.x0 : self.x0 + self.w, :]

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return np.asarray(coords, dtype=np.float64) - np.array([self.x0, self.y0], dtype=np.float64)

    def apply_polygons(self, polygons: list[np.ndarray]) -> list[np.ndarray]:
        """Intersect each polygon ``ndarray[K, 2]`` with the crop window using shapely, as fvcore does.

        Each polygon is first repaired with ``buffer(0)``; a polygon the window cuts into several
        pieces becomes several polygons; holes, and pieces without area (lines, points), are dropped.
        Each output is the exterior ring as GEOS returns it (start vertex and orientation included),
        without the repeated closing vertex, shifted to the crop origin: ``ndarray[M, 2]``, float64.
        """
        window = shapely.box(self.x0, self.y0, self.x0 + self.w, self.y0 + self.h).buffer(0.0)
        pieces = []
        for i, poly in enumerate(polygons):
            poly = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
            if len(poly) < 3:
                raise ValueError(f"polygons[{i}] must have at least 3 points, got {len(poly)}")
            cropped = shapely.Polygon(poly).buffer(0.0).intersection(window)
            if cropped.is_empty:
                continue
            parts = cropped.geoms if isinstance(cropped, BaseMultipartGeometry) else [cropped]
            for part in parts:
                if isinstance(part, shapely.Polygon) and part.is_valid and not part.is_empty:
                    pieces.append(np.asarray(part.exterior.coords, dtype=np.float64)[:-1])
        return [self.apply_coords(p) for p in pieces]

    def inverse(self) -> Transform:
        if self.orig_w is None or self.orig_h is None:
            raise NotImplementedError("CropTransform.inverse needs orig_w and orig_h")
        pad_x1 = self.orig_w - self.x0 - self.w
        pad_y1 = self.orig_h - self.y0 - self.h
        return PadTransform(self.x0, self.y0, pad_x1, pad_y1, orig_w=self.w, orig_h=self.h)


class PadTransform(Transform):
    """Pad ``x0``/``y0`` pixels on the left/top and ``x1``/``y1`` on the right/bottom, with ``pad_value``
    for images and ``seg_pad_value`` for segmentation maps."""

    def __init__(
        self,
        x0: int,
        y0: int,
        x1: int,
        y1: int,
        orig_w: int | None = None,
        orig_h: int | None = None,
        pad_value: float = 0,
        seg_pad_value: int = 0,
    ) -> None:
        self._set_attributes(locals())

    def _pad(self, img: np.ndarray, value: float) -> np.ndarray:
        padding = [(self.y0, self.y1), (self.x0, self.x1)] + [(0, 0)] * (img.ndim - 2)
        return np.pad(img, padding, mode="constant", constant_values=value)

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return self._pad(img, self.pad_value)

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self._pad(segmentation, self.seg_pad_value)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return np.asarray(coords, dtype=np.float64) + np.array([self.x0, self.y0], dtype=np.float64)

    def inverse(self) -> Transform:
        if self.orig_w is None or self.orig_h is None:
            raise NotImplementedError("PadTransform.inverse needs orig_w and orig_h")
        neww = self.orig_w + self.x0 + self.x1
        newh = self.orig_h + self.y0 + self.y1
        return CropTransform(self.x0, self.y0, self.orig_w, self.orig_h, orig_w=neww, orig_h=newh)


class BlendTransform(Transform):
    """``src_weight * src_image + dst_weight * image`` (uint8 images are clipped to [0, 255]);
    geometry is unchanged."""

    def __init__(self, src_image: np.ndarray | float, src_weight: float, dst_weight: float) -> None:
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        if img.dtype == np.uint8:
            out = self.src_weight * self.src_image + self.dst_weight * img.astype(np.float32)
            return np.clip(out, 0, 255).astype(np.uint8)
        return self.src_weight * self.src_image + self.dst_weight * img

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return np.asarray(coords)

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation

    def inverse(self) -> Transform:
        return NoOpTransform()


_INTERP_MODE = {Image.NEAREST: "nearest", Image.BILINEAR: "bilinear", Image.BICUBIC: "bicubic"}


class ResizeTransform(Transform):
    """Resize ``(h, w) -> (new_h, new_w)``. uint8 images go through PIL (``interp`` is a PIL filter,
    default bilinear), other dtypes through ``torch.nn.functional.interpolate``."""

    def __init__(self, h: int, w: int, new_h: int, new_w: int, interp: int = Image.BILINEAR) -> None:
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray, interp: int | None = None) -> np.ndarray:
        if img.shape[:2] != (self.h, self.w):
            raise ValueError(
                f"ResizeTransform: image of size {img.shape[:2]} does not match "
                f"the expected {(self.h, self.w)}"
            )
        method = interp if interp is not None else self.interp
        if img.dtype == np.uint8:
            single = img.ndim > 2 and img.shape[2] == 1
            pil = Image.fromarray(img[:, :, 0] if single else img)
            out = np.asarray(pil.resize((self.new_w, self.new_h), method))
            return out[:, :, None] if single else out
        if method not in _INTERP_MODE:
            raise ValueError(
                f"ResizeTransform: interp {method} has no torch equivalent for {img.dtype} images"
            )
        tensor = torch.from_numpy(np.ascontiguousarray(img))
        shape = list(tensor.shape)
        shape_4d = shape[:2] + [1] * (4 - len(shape)) + shape[2:]
        tensor = tensor.view(shape_4d).permute(2, 3, 0, 1)  # [H, W, N, C] -> [N, C, H, W]
        mode = _INTERP_MODE[method]
        tensor = F.interpolate(
            tensor, (self.new_h, self.new_w), mode=mode, align_corners=None if mode == "nearest" else False
        )
        shape[:2] = [self.new_h, self.new_w]
        return tensor.permute(2, 3, 0, 1).reshape(shape).numpy()

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords = np.array(coords, dtype=np.float64)
        coords[:, 0] *= self.new_w * 1.0 / self.w
        coords[:, 1] *= self.new_h * 1.0 / self.h
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self.apply_image(segmentation, interp=Image.NEAREST)

    def apply_rotated_box(self, rotated_boxes: np.ndarray) -> np.ndarray:
        """``ndarray[N, 5]`` (cx, cy, w, h, angle degrees CCW) under anisotropic scaling."""
        boxes = np.array(rotated_boxes, dtype=np.float64)
        sx, sy = self.new_w * 1.0 / self.w, self.new_h * 1.0 / self.h
        boxes[:, 0] *= sx
        boxes[:, 1] *= sy
        theta = boxes[:, 4] * np.pi / 180.0
        c, s = np.cos(theta), np.sin(theta)
        boxes[:, 2] *= np.sqrt(np.square(sx * c) + np.square(sy * s))
        boxes[:, 3] *= np.sqrt(np.square(sx * s) + np.square(sy * c))
        boxes[:, 4] = np.arctan2(sx * s, sy * c) * 180 / np.pi
        return boxes

    def inverse(self) -> Transform:
        return ResizeTransform(self.new_h, self.new_w, self.h, self.w, self.interp)


class RotationTransform(Transform):
    """Rotate by ``angle`` degrees counter-clockwise around ``center`` (absolute (x, y), default the
    image centre); ``expand`` grows the canvas to hold the whole rotated image. ``interp`` is a cv2 flag."""

    def __init__(
        self,
        h: int,
        w: int,
        angle: float,
        expand: bool = True,
        center: tuple[float, float] | None = None,
        interp: int | None = None,
    ) -> None:
        image_center = np.array((w / 2, h / 2))
        if center is None:
            center = image_center
        if interp is None:
            interp = cv2.INTER_LINEAR
        abs_cos, abs_sin = abs(np.cos(np.deg2rad(angle))), abs(np.sin(np.deg2rad(angle)))
        if expand:
            bound_w, bound_h = np.rint([h * abs_sin + w * abs_cos, h * abs_cos + w * abs_sin]).astype(int)
        else:
            bound_w, bound_h = w, h
        self.h, self.w, self.angle, self.expand, self.interp = h, w, angle, expand, interp
        self.center, self.image_center = np.asarray(center, dtype=np.float64), image_center
        self.bound_w, self.bound_h = int(bound_w), int(bound_h)
        self.rm_coords = self._rotation_matrix()
        self.rm_image = self._rotation_matrix(offset=-0.5)  # pixel centres vs pixel corners

    def _rotation_matrix(self, offset: float = 0) -> np.ndarray:
        center = (float(self.center[0]) + offset, float(self.center[1]) + offset)
        rm = cv2.getRotationMatrix2D(center, self.angle, 1)
        if self.expand:
            rot_im_center = cv2.transform(self.image_center[None, None, :] + offset, rm)[0, 0, :]
            new_center = np.array([self.bound_w / 2, self.bound_h / 2]) + offset - rot_im_center
            rm[:, 2] += new_center
        return rm

    def apply_image(self, img: np.ndarray, interp: int | None = None) -> np.ndarray:
        if len(img) == 0 or self.angle % 360 == 0:
            return img
        if img.shape[:2] != (self.h, self.w):
            raise ValueError(
                f"RotationTransform: image of size {img.shape[:2]} does not match "
                f"the expected {(self.h, self.w)}"
            )
        flags = interp if interp is not None else self.interp
        return cv2.warpAffine(img, self.rm_image, (self.bound_w, self.bound_h), flags=flags)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords = np.asarray(coords, dtype=np.float64)
        if len(coords) == 0 or self.angle % 360 == 0:
            return coords
        return cv2.transform(coords[:, np.newaxis, :], self.rm_coords)[:, 0, :]

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self.apply_image(segmentation, interp=cv2.INTER_NEAREST)

    def inverse(self) -> Transform:
        if not self.expand:
            raise NotImplementedError("RotationTransform.inverse needs expand=True")
        rotation = RotationTransform(self.bound_h, self.bound_w, -self.angle, True, None, self.interp)
        crop = CropTransform(
            (rotation.bound_w - self.w) // 2, (rotation.bound_h - self.h) // 2, self.w, self.h
        )
        return TransformList([rotation, crop])


class ExtentTransform(Transform):
    """Map the source rectangle ``src_rect`` (x0, y0, x1, y1; may extend past the image) onto an output
    of ``output_size`` (h, w), filling outside pixels with ``fill`` (PIL ``Image.transform`` EXTENT)."""

    def __init__(
        self,
        src_rect: tuple[float, float, float, float],
        output_size: tuple[int, int],
        interp: int = Image.BILINEAR,
        fill: int = 0,
    ) -> None:
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray, interp: int | None = None) -> np.ndarray:
        h, w = self.output_size
        single = img.ndim > 2 and img.shape[2] == 1
        pil = Image.fromarray(img[:, :, 0] if single else img)
        pil = pil.transform(
            size=(w, h),
            method=Image.EXTENT,
            data=tuple(float(v) for v in self.src_rect),
            resample=interp if interp is not None else self.interp,
            fill=self.fill,
        )
        out = np.asarray(pil)
        return out[:, :, None] if single else out

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        h, w = self.output_size
        x0, y0, x1, y1 = self.src_rect
        out = np.asarray(coords).astype(np.float32)
        out[:, 0] -= 0.5 * (x0 + x1)
        out[:, 1] -= 0.5 * (y0 + y1)
        out[:, 0] *= w / (x1 - x0)
        out[:, 1] *= h / (y1 - y0)
        out[:, 0] += 0.5 * w
        out[:, 1] += 0.5 * h
        return out

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self.apply_image(segmentation, interp=Image.NEAREST)
