"""DensePose outputs to IUV results: per box, part labels ``I`` and chart coordinates ``U``, ``V``.

``chart_to_box_iuv`` resamples one box's output maps to the box's pixel size (bilinear), takes the
fine part of highest score where the coarse segmentation says foreground, and reads U, V from that
part's chart (detectron2's ``ToChartResultConverter``). ``chart_to_image_iuv`` places it in the
image: ``float32[3, H, W]`` (I, U, V; zeros outside the instance).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .predictor import DensePoseChartOutput

__all__ = ["box_pixel_size", "box_window", "chart_to_box_iuv", "chart_to_image_iuv"]


def box_pixel_size(box: torch.Tensor) -> tuple[int, int]:
    """``(h, w)`` in whole pixels (at least 1) of an XYXY box, as detectron2 sizes its results."""
    w = max(int(box[2] - box[0]), 1)
    h = max(int(box[3] - box[1]), 1)
    return h, w


def chart_to_box_iuv(output: DensePoseChartOutput, box: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``output`` of one box (length 1) and its XYXY ``box`` to ``(labels int64[h, w], uv float32[2, h, w])``
    over the box (``box_pixel_size``); label 0 is background, where U = V = 0."""
    if len(output) != 1:
        raise ValueError(f"chart_to_box_iuv takes the output of one box, got {len(output)}")
    size = box_pixel_size(box)

    def resize(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t.float(), size, mode="bilinear", align_corners=False)[0]

    foreground = resize(output.coarse_segm).argmax(dim=0) > 0  # [h, w]
    labels = resize(output.fine_segm).argmax(dim=0) * foreground
    index = labels[None]  # [1, h, w]: each pixel reads its own part's chart
    u = torch.gather(resize(output.u), 0, index)[0] * foreground
    v = torch.gather(resize(output.v), 0, index)[0] * foreground
    return labels, torch.stack([u, v])


def box_window(
    box: torch.Tensor, size: tuple[int, int], image_hw: tuple[int, int]
) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
    """Where a ``size`` = ``(h, w)`` patch over the XYXY ``box`` lands in an image of ``image_hw``:
    ``(image rows, image columns), (patch rows, patch columns)`` clipped to the image, or None when
    nothing of it is inside."""
    h, w = size
    x0, y0 = int(box[0]), int(box[1])
    xa, ya = max(x0, 0), max(y0, 0)
    xb, yb = min(x0 + w, image_hw[1]), min(y0 + h, image_hw[0])
    if xb <= xa or yb <= ya:
        return None
    return (slice(ya, yb), slice(xa, xb)), (slice(ya - y0, yb - y0), slice(xa - x0, xb - x0))


def chart_to_image_iuv(
    output: DensePoseChartOutput, box: torch.Tensor, image_hw: tuple[int, int]
) -> torch.Tensor:
    """``float32[3, H, W]``: I, U, V of one box's ``output`` placed at ``box`` (clipped to the image)."""
    labels, uv = chart_to_box_iuv(output, box)
    iuv = torch.zeros(3, *image_hw)
    window = box_window(box, tuple(labels.shape), image_hw)
    if window is not None:
        (rows, cols), (patch_rows, patch_cols) = window
        iuv[:, rows, cols] = torch.cat([labels[None].float(), uv])[:, patch_rows, patch_cols]
    return iuv
