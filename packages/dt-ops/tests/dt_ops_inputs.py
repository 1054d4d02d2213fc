"""Random inputs shared by the tests."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["non_contiguous", "random_boxes", "random_rois", "random_rotated_boxes"]


def random_boxes(
    n: int, dtype: torch.dtype = torch.float32, size: float = 100.0, degenerate: bool = False
) -> Tensor:
    """``Tensor[n, 4]`` XYXY boxes in [0, size]; with ``degenerate`` some have zero width or height."""
    xy = torch.rand(n, 2, dtype=dtype) * size
    wh = torch.rand(n, 2, dtype=dtype) * size * 0.3
    if degenerate and n > 0:
        wh[::3, 0] = 0
        wh[1::4, 1] = 0
    return torch.cat([xy, xy + wh], dim=1)


def random_rois(
    k: int, batch: int, height: int, width: int, dtype=torch.float32, scale: float = 1.0
) -> Tensor:
    """``Tensor[k, 5]`` (batch_index, x1, y1, x2, y2) boxes, partly outside the image, in input pixels."""
    x1 = torch.rand(k, dtype=dtype) * (width + 4) - 2
    y1 = torch.rand(k, dtype=dtype) * (height + 4) - 2
    w = torch.rand(k, dtype=dtype) * width * 0.6
    h = torch.rand(k, dtype=dtype) * height * 0.6
    index = torch.randint(0, batch, (k,)).to(dtype)
    return torch.stack([index, x1, y1, x1 + w, y1 + h], dim=1) / torch.tensor(
        [1, scale, scale, scale, scale], dtype=dtype
    )


def random_rotated_boxes(n: int, dtype: torch.dtype = torch.float32, size: float = 50.0) -> Tensor:
    """``Tensor[n, 5]`` (cx, cy, w, h, angle degrees)."""
    c = torch.rand(n, 2, dtype=dtype) * size
    wh = torch.rand(n, 2, dtype=dtype) * size * 0.4 + 1
    a = torch.rand(n, 1, dtype=dtype) * 360 - 180
    return torch.cat([c, wh, a], dim=1)


def non_contiguous(t: Tensor) -> Tensor:
    """The same values in a non-contiguous layout."""
    out = (
        torch.empty(t.shape[::-1], dtype=t.dtype).t()
        if t.dim() == 2
        else t.transpose(-1, -2).contiguous().transpose(-1, -2)
    )
    out.copy_(t)
    assert not out.is_contiguous() or t.numel() <= 1
    return out
