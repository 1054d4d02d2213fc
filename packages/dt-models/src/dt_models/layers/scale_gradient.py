"""``scale_gradient``: identity in the forward pass, gradient multiplied by a constant in the backward
pass (Cascade R-CNN divides each stage's gradient into the shared features by the number of stages)."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["scale_gradient"]


class _ScaleGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad_output * ctx.scale, None


def scale_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` unchanged; the gradient flowing back through it is multiplied by ``scale``."""
    return _ScaleGradient.apply(x, scale)
