"""Photometric transforms built from a user function (detectron2's ``ColorTransform`` and
``PILColorTransform``); geometry and segmentation are unchanged."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from .transform import NoOpTransform, Transform

__all__ = ["ColorTransform", "PILColorTransform"]


class ColorTransform(Transform):
    """Apply ``op`` (``ndarray -> ndarray`` of the same shape) to images only."""

    def __init__(self, op: Callable[[np.ndarray], np.ndarray]) -> None:
        if not callable(op):
            raise TypeError(f"ColorTransform: op must be callable, got {type(op).__name__}")
        self.op = op

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return self.op(img)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return np.asarray(coords)

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation

    def inverse(self) -> Transform:
        return NoOpTransform()


class PILColorTransform(ColorTransform):
    """Apply ``op`` (``PIL.Image -> PIL.Image``, e.g. an ``ImageEnhance`` call) to uint8 images."""

    def __init__(self, op: Callable[[Image.Image], Image.Image]) -> None:
        super().__init__(op)

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        if img.dtype != np.uint8:
            raise TypeError(f"PILColorTransform needs a uint8 image, got {img.dtype}")
        single = img.ndim == 3 and img.shape[2] == 1
        out = np.asarray(self.op(Image.fromarray(img[:, :, 0] if single else img)))
        return out[:, :, None] if single else out
