"""Drawing DensePose chart outputs, with the meaning of detectron2 DensePose's visualizations
(``dp_segm``, ``dp_u``, ``dp_v``, ``dp_contour`` of its ``apply_net show``).

Every function takes a BGR ``uint8[H, W, 3]`` image (cv2's channel order), the
:class:`~dt_densepose.DensePoseChartOutput` of R detections and their XYXY boxes ``Tensor[R, 4]`` in
the image's pixels, and returns a new BGR ``uint8[H, W, 3]`` image. Each detection is first turned
into part labels and U, V over its box (:func:`~dt_densepose.chart_to_box_iuv`); nothing is drawn
outside the boxes nor where a detection is background (label 0).

- :func:`draw_fine_segmentation`: the part index through a colour map (part ``P`` of the model's
  ``P`` parts at its top), blended with weight ``alpha`` over the image;
- :func:`draw_u`, :func:`draw_v`: U or V in [0, 1] through the colour map, blended the same way;
- :func:`draw_uv_contours`: iso-lines of U and of V inside each part, coloured by their value.

:func:`encode_iuv_png` / :func:`decode_iuv_png` are the results format of ``dt predict``
(``densepose_results.json``, see :mod:`dt_densepose.prediction_output`).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator

import cv2
import numpy as np
import torch

from .iuv import box_window, chart_to_box_iuv
from .predictor import DensePoseChartOutput

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_COLORMAP",
    "decode_iuv_png",
    "draw_fine_segmentation",
    "draw_u",
    "draw_uv_contours",
    "draw_v",
    "encode_iuv_png",
]

DEFAULT_COLORMAP = cv2.COLORMAP_PARULA
DEFAULT_ALPHA = 0.7

_Window = tuple[tuple[slice, slice], tuple[slice, slice]]


def _check_image(image_bgr: np.ndarray) -> np.ndarray:
    if not (isinstance(image_bgr, np.ndarray) and image_bgr.ndim == 3 and image_bgr.shape[2] == 3):
        got = list(image_bgr.shape) if isinstance(image_bgr, np.ndarray) else type(image_bgr).__name__
        raise ValueError(f"expected a BGR uint8 image of shape [H, W, 3], got {got}")
    if image_bgr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image_bgr.dtype}")
    return image_bgr.copy()


def _box_results(
    densepose: DensePoseChartOutput, boxes: torch.Tensor, image_hw: tuple[int, int]
) -> Iterator[tuple[np.ndarray, np.ndarray, _Window]]:
    """Per detection inside the image: labels ``int64[h, w]`` and UV ``float32[2, h, w]`` cut to the
    part of the box inside the image, and where that part lies (``box_window``)."""
    if len(densepose) != len(boxes):
        raise ValueError(f"{len(densepose)} DensePose outputs for {len(boxes)} boxes")
    for i in range(len(densepose)):
        labels, uv = chart_to_box_iuv(densepose[i].to("cpu"), boxes[i].cpu())
        window = box_window(boxes[i], tuple(labels.shape), image_hw)
        if window is not None:
            patch_rows, patch_cols = window[1]
            yield labels[patch_rows, patch_cols].numpy(), uv[:, patch_rows, patch_cols].numpy(), window


def _overlay(
    image_bgr: np.ndarray,
    densepose: DensePoseChartOutput,
    boxes: torch.Tensor,
    values: Callable[[np.ndarray, np.ndarray], np.ndarray],
    alpha: float,
    colormap: int,
) -> np.ndarray:
    """Blend ``colormap(values(labels, uv))`` (``uint8[h, w]``) over each detection's foreground."""
    out = _check_image(image_bgr)
    for labels, uv, ((rows, cols), _) in _box_results(densepose, boxes, out.shape[:2]):
        foreground = labels > 0
        colors = cv2.applyColorMap(np.ascontiguousarray(values(labels, uv)), colormap)  # [h, w, 3] BGR
        region = out[rows, cols]  # a view into out
        blended = region[foreground] * (1.0 - alpha) + colors[foreground] * alpha
        region[foreground] = np.round(blended).astype(np.uint8)
    return out


def _to_byte(values: np.ndarray) -> np.ndarray:
    return np.round(np.clip(values, 0.0, 255.0)).astype(np.uint8)


def draw_fine_segmentation(
    image_bgr: np.ndarray,
    densepose: DensePoseChartOutput,
    boxes: torch.Tensor,
    *,
    alpha: float = DEFAULT_ALPHA,
    colormap: int = DEFAULT_COLORMAP,
) -> np.ndarray:
    """The part labels (``dp_segm``): part ``i`` of ``P`` coloured as ``colormap(255 i / P)``."""
    parts = int(densepose.fine_segm.shape[1]) - 1
    return _overlay(
        image_bgr, densepose, boxes, lambda labels, uv: _to_byte(labels * (255.0 / parts)), alpha, colormap
    )


def draw_u(
    image_bgr: np.ndarray,
    densepose: DensePoseChartOutput,
    boxes: torch.Tensor,
    *,
    alpha: float = DEFAULT_ALPHA,
    colormap: int = DEFAULT_COLORMAP,
) -> np.ndarray:
    """The U coordinate (``dp_u``) of each foreground pixel, coloured as ``colormap(255 U)``."""
    return _overlay(image_bgr, densepose, boxes, lambda labels, uv: _to_byte(uv[0] * 255.0), alpha, colormap)


def draw_v(
    image_bgr: np.ndarray,
    densepose: DensePoseChartOutput,
    boxes: torch.Tensor,
    *,
    alpha: float = DEFAULT_ALPHA,
    colormap: int = DEFAULT_COLORMAP,
) -> np.ndarray:
    """The V coordinate (``dp_v``) of each foreground pixel, coloured as ``colormap(255 V)``."""
    return _overlay(image_bgr, densepose, boxes, lambda labels, uv: _to_byte(uv[1] * 255.0), alpha, colormap)


def _iso_line(labels: np.ndarray, chart: np.ndarray, value: float) -> np.ndarray:
    """``bool[h, w]``: pixels whose right or lower neighbour is of the same (foreground) part and lies
    on the other side of ``value``; lines therefore stay inside one part."""
    above = chart >= value
    line = np.zeros(labels.shape, dtype=bool)
    same = (labels[:, :-1] == labels[:, 1:]) & (labels[:, :-1] > 0)
    line[:, :-1] |= same & (above[:, :-1] != above[:, 1:])
    same = (labels[:-1] == labels[1:]) & (labels[:-1] > 0)
    line[:-1] |= same & (above[:-1] != above[1:])
    return line


def draw_uv_contours(
    image_bgr: np.ndarray,
    densepose: DensePoseChartOutput,
    boxes: torch.Tensor,
    *,
    levels: int = 9,
    colormap: int = DEFAULT_COLORMAP,
) -> np.ndarray:
    """Iso-lines of U and of V (``dp_contour``) at the ``levels`` values ``k / (levels + 1)``, one pixel
    wide, each coloured as ``colormap(255 value)``."""
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    values = np.arange(1, levels + 1) / (levels + 1)
    colors = cv2.applyColorMap(_to_byte(values * 255.0)[:, None], colormap)[:, 0]  # [levels, 3] BGR
    out = _check_image(image_bgr)
    for labels, uv, ((rows, cols), _) in _box_results(densepose, boxes, out.shape[:2]):
        region = out[rows, cols]  # a view into out
        for chart in uv:  # U, then V
            for value, color in zip(values, colors, strict=True):
                region[_iso_line(labels, chart, value)] = color
    return out


def encode_iuv_png(labels: torch.Tensor, uv: torch.Tensor) -> str:
    """One box's labels ``int64[h, w]`` and UV ``float32[2, h, w]`` as a base64 PNG whose red, green
    and blue channels are I, ``round(255 U)`` and ``round(255 V)`` (detectron2's quantized IUV)."""
    iuv = (
        np.stack([labels.numpy().clip(0, 255), *(np.clip(uv.numpy(), 0, 1) * 255.0)]).round().astype(np.uint8)
    )
    ok, png = cv2.imencode(".png", np.ascontiguousarray(iuv.transpose(1, 2, 0)[:, :, ::-1]))  # cv2 writes BGR
    if not ok:
        raise ValueError(f"cannot encode an IUV patch of shape {list(iuv.shape)} as PNG")
    return base64.b64encode(png.tobytes()).decode("ascii")


def decode_iuv_png(data: str) -> np.ndarray:
    """``uint8[3, h, w]`` (I, 255 U, 255 V) from :func:`encode_iuv_png`'s text."""
    image = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.ndim != 3:
        raise ValueError("not a base64 IUV PNG (expected the 'iuv_png' of a densepose_results.json record)")
    return np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1))
