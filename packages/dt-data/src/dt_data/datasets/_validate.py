"""Validation of annotation fields with errors that name the file, the annotation id and the problem."""

from __future__ import annotations

import math
from typing import Any

from ..errors import DataError

__all__ = ["AnnotationError", "check_bbox", "check_polygons", "check_rle", "rle_string_counts"]


class AnnotationError(DataError):
    """A malformed annotation; the message names the file, the annotation id and what is wrong."""


def where(source: str, ann_id: Any, image_id: Any = None) -> str:
    img = f" of image id={image_id}" if image_id is not None else ""
    return f"{source}: annotation id={ann_id}{img}"


def _finite_numbers(values: Any) -> bool:
    try:
        return all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
        )
    except TypeError:
        return False


def check_bbox(bbox: Any, n: int, loc: str) -> list[float]:
    """``bbox`` must be ``n`` finite numbers; for XYWH (n == 4) width/height must be >= 0."""
    if not isinstance(bbox, (list, tuple)) or len(bbox) != n or not _finite_numbers(bbox):
        raise AnnotationError(f"{loc}: bbox must be {n} finite numbers, got {bbox!r}")
    if n == 4 and (bbox[2] < 0 or bbox[3] < 0):
        raise AnnotationError(
            f"{loc}: bbox {list(bbox)} has a negative width or height (expected [x, y, w, h], w, h >= 0)"
        )
    return [float(v) for v in bbox]


def check_polygons(segm: list, loc: str) -> list[list[float]]:
    """Each polygon: a flat list of an even number of finite coordinates. Polygons with fewer than 3
    points are dropped (detectron2 semantics); the valid ones are returned."""
    valid = []
    for i, poly in enumerate(segm):
        if not isinstance(poly, (list, tuple)) or not _finite_numbers(poly):
            raise AnnotationError(
                f"{loc}: polygon {i} must be a flat list of finite numbers, got {poly!r:.80}"
            )
        if len(poly) % 2 != 0:
            raise AnnotationError(f"{loc}: polygon {i} has an odd number of coordinates ({len(poly)})")
        if len(poly) >= 6:
            valid.append(list(poly))
    return valid


def rle_string_counts(s: bytes) -> list[int]:
    """Decode the run lengths of a COCO compressed RLE string (pycocotools' LEB128-like encoding)."""
    counts: list[int] = []
    p = 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            if p >= len(s):
                raise ValueError("truncated RLE string")
            c = s[p] - 48
            if not 0 <= c < 64:
                raise ValueError(f"invalid character {chr(s[p])!r} in RLE string")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def check_rle(segm: dict, height: int | None, width: int | None, loc: str) -> None:
    """An RLE dict needs ``size`` [h, w] (matching the image when known) and ``counts`` (a list of
    non-negative run lengths, or a compressed string) whose runs sum to h * w."""
    size = segm.get("size")
    counts = segm.get("counts")
    if not isinstance(size, (list, tuple)) or len(size) != 2 or not all(isinstance(v, int) for v in size):
        raise AnnotationError(f"{loc}: RLE 'size' must be [height, width], got {size!r}")
    if height is not None and width is not None and tuple(size) != (height, width):
        raise AnnotationError(
            f"{loc}: RLE size {list(size)} does not match the image size [{height}, {width}]"
        )
    total = size[0] * size[1]
    if isinstance(counts, list):
        if not all(isinstance(c, int) and c >= 0 for c in counts):
            raise AnnotationError(f"{loc}: RLE 'counts' must be non-negative integers")
        runs = counts
    elif isinstance(counts, (str, bytes)):
        raw = counts.encode("ascii", "replace") if isinstance(counts, str) else counts
        try:
            runs = rle_string_counts(raw)
        except ValueError as e:
            raise AnnotationError(f"{loc}: broken compressed RLE: {e}") from None
        if any(c < 0 for c in runs):
            raise AnnotationError(f"{loc}: broken compressed RLE: negative run length")
    else:
        raise AnnotationError(f"{loc}: RLE 'counts' must be a list or a string, got {type(counts).__name__}")
    if sum(runs) != total:
        raise AnnotationError(
            f"{loc}: RLE runs cover {sum(runs)} pixels, expected {total} ({size[0]}x{size[1]})"
        )
