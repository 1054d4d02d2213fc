"""``Matcher``: assign each prediction to a ground-truth element by IoU, with labels by thresholds."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dt_config import ConfigProblem
from dt_models.layers import nonzero_tuple

__all__ = ["Matcher", "check_matcher_fields"]


def check_matcher_fields(thresholds: Sequence[float], labels: Sequence[int]) -> None:
    """Config check of a matcher's ``iou_thresholds`` and ``iou_labels`` fields (``ConfigProblem``)."""
    if list(thresholds) != sorted(thresholds):
        raise ConfigProblem(f"must be increasing, got {list(thresholds)}", key="iou_thresholds")
    if len(labels) != len(thresholds) + 1:
        raise ConfigProblem(
            f"needs len(iou_thresholds) + 1 = {len(thresholds) + 1} values, got {len(labels)}",
            key="iou_labels",
        )
    if any(label not in (-1, 0, 1) for label in labels):
        raise ConfigProblem(f"values must be -1, 0 or 1, got {list(labels)}", key="iou_labels")


class Matcher:
    """Match predictions (columns) to ground truth (rows) of a quality matrix ``Tensor[G, P]``.

    With ``thresholds = [t1, t2]`` and ``labels = [0, -1, 1]``, a prediction whose best quality is
    below ``t1`` gets label 0 (negative), in ``[t1, t2)`` label -1 (ignored), ``>= t2`` label 1.

    Args:
        thresholds: increasing quality thresholds.
        labels: one more value than ``thresholds``, each in ``{-1, 0, 1}``.
        allow_low_quality_matches: also mark positive, for every ground-truth element, the
            predictions with its highest quality (ties included), as Faster R-CNN's RPN does.
    """

    def __init__(
        self, thresholds: Sequence[float], labels: Sequence[int], allow_low_quality_matches: bool = False
    ) -> None:
        thresholds = [float(t) for t in thresholds]
        if any(a > b for a, b in zip(thresholds[:-1], thresholds[1:], strict=True)):
            raise ValueError(f"thresholds must be increasing, got {thresholds}")
        if len(labels) != len(thresholds) + 1:
            raise ValueError(
                f"labels must have len(thresholds) + 1 = {len(thresholds) + 1} values, got {labels}"
            )
        if any(label not in (-1, 0, 1) for label in labels):
            raise ValueError(f"labels must be -1, 0 or 1, got {list(labels)}")
        self.thresholds = [-float("inf"), *thresholds, float("inf")]
        self.labels = list(labels)
        self.allow_low_quality_matches = allow_low_quality_matches

    def __call__(self, match_quality_matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``matches`` ``Tensor[P]`` int64 (a row index) and ``match_labels`` ``Tensor[P]`` int8."""
        if match_quality_matrix.dim() != 2:
            raise ValueError(f"match_quality_matrix must be [G, P], got {tuple(match_quality_matrix.shape)}")
        num_predictions = match_quality_matrix.shape[1]
        device = match_quality_matrix.device
        if match_quality_matrix.numel() == 0:
            matches = torch.zeros(num_predictions, dtype=torch.int64, device=device)
            # no ground truth: everything gets the label of the lowest interval (background)
            match_labels = torch.full((num_predictions,), self.labels[0], dtype=torch.int8, device=device)
            return matches, match_labels
        matched_vals, matches = match_quality_matrix.max(dim=0)  # [P]
        match_labels = torch.ones(num_predictions, dtype=torch.int8, device=device)
        for label, low, high in zip(self.labels, self.thresholds[:-1], self.thresholds[1:], strict=True):
            in_range = (matched_vals >= low) & (matched_vals < high)
            match_labels[in_range] = label
        if self.allow_low_quality_matches:
            best_per_gt, _ = match_quality_matrix.max(dim=1)  # [G]
            _, best_preds = nonzero_tuple(match_quality_matrix == best_per_gt[:, None])
            match_labels[best_preds] = 1
        return matches, match_labels
