"""``DeepLabCE``: cross entropy over the hardest pixels only (hard pixel mining, as TensorFlow DeepLab
and DeeperLab train)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["DeepLabCE"]


class DeepLabCE(nn.Module):
    """Per-pixel cross entropy, optionally times per-pixel ``weights``, averaged over the
    ``top_k_percent_pixels`` fraction of pixels with the largest loss.

    Ignored pixels (label ``ignore_label``) have loss 0 but still count in the pixel total, as in
    detectron2: with ``top_k_percent_pixels = 1`` the result is the sum of losses over all pixels,
    ignored ones included, which differs from ``F.cross_entropy``'s mean over valid pixels.

    Args:
        ignore_label: label whose pixels carry no loss.
        top_k_percent_pixels: in (0, 1]; 0.2 keeps the hardest 20%.
        weight: optional per-class weights ``Tensor[C]``.
    """

    def __init__(
        self, ignore_label: int = -1, top_k_percent_pixels: float = 1.0, weight: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        if not 0.0 < top_k_percent_pixels <= 1.0:
            raise ValueError(f"top_k_percent_pixels must be in (0, 1], got {top_k_percent_pixels}")
        self.ignore_label = ignore_label
        self.top_k_percent_pixels = top_k_percent_pixels
        self.register_buffer("weight", weight, persistent=False)

    def forward(
        self, logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``logits`` ``Tensor[N, C, H, W]``, ``labels`` ``Tensor[N, H, W]`` int64, ``weights``
        ``Tensor[N, H, W]`` or ``None``; returns a scalar."""
        pixel_losses = F.cross_entropy(
            logits, labels, weight=self.weight, ignore_index=self.ignore_label, reduction="none"
        )  # [N, H, W]
        if weights is not None:
            pixel_losses = pixel_losses * weights
        pixel_losses = pixel_losses.reshape(-1)
        if self.top_k_percent_pixels == 1.0:
            return pixel_losses.mean()
        top_k = max(int(self.top_k_percent_pixels * pixel_losses.numel()), 1)  # >= 1: no NaN on tiny maps
        return torch.topk(pixel_losses, top_k).values.mean()
