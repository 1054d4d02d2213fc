"""Sigmoid focal loss (Lin et al. 2017), the classification loss of RetinaNet and FCOS."""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["sigmoid_focal_loss"]

_REDUCTIONS = ("none", "mean", "sum")


def sigmoid_focal_loss(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: str = "none",
) -> torch.Tensor:
    """Binary cross-entropy on logits, down-weighted by ``(1 - p_t) ** gamma`` for easy examples.

    ``loss = -alpha_t * (1 - p_t) ** gamma * log(p_t)`` elementwise, where ``p_t`` is the predicted
    probability of the target (``sigmoid(inputs)`` where ``targets`` is 1, its complement where 0)
    and ``alpha_t`` is ``alpha`` for positives, ``1 - alpha`` for negatives.

    Args:
        inputs: logits, any shape.
        targets: the same shape, binary (0/1) values of ``inputs``' dtype.
        alpha: weight of positives in ``[0, 1]``; a negative value disables the weighting.
        gamma: focusing exponent ``>= 0`` (0 gives the weighted cross-entropy).
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if inputs.shape != targets.shape:
        raise ValueError(
            "inputs and targets must have the same shape, "
            f"got {tuple(inputs.shape)} and {tuple(targets.shape)}"
        )
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    prob = inputs.sigmoid()
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss
