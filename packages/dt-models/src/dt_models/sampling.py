"""``subsample_labels``: draw a fixed-size, class-balanced sample of positives and negatives."""

from __future__ import annotations

import torch

from dt_models.layers import nonzero_tuple

__all__ = ["subsample_labels"]


def subsample_labels(
    labels: torch.Tensor, num_samples: int, positive_fraction: float, bg_label: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly pick at most ``num_samples`` elements, at most ``positive_fraction`` of them positive.

    Args:
        labels: ``Tensor[N]``; ``-1`` is ignored, ``bg_label`` is negative, anything else positive.
        num_samples: total number of samples wanted; negatives fill what positives leave.
        positive_fraction: in ``[0, 1]``.
        bg_label: the label of negatives.

    Returns:
        ``(pos_idx, neg_idx)``: 1-D int64 indices into ``labels``.
    """
    if not 0.0 <= positive_fraction <= 1.0:
        raise ValueError(f"positive_fraction must be in [0, 1], got {positive_fraction}")
    if num_samples < 0:
        raise ValueError(f"num_samples must be >= 0, got {num_samples}")
    positive = nonzero_tuple((labels != -1) & (labels != bg_label))[0]
    negative = nonzero_tuple(labels == bg_label)[0]
    num_pos = min(positive.numel(), int(num_samples * positive_fraction))
    num_neg = min(negative.numel(), num_samples - num_pos)
    perm_pos = torch.randperm(positive.numel(), device=positive.device)[:num_pos]
    perm_neg = torch.randperm(negative.numel(), device=negative.device)[:num_neg]
    return positive[perm_pos], negative[perm_neg]
