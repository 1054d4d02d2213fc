"""Comparing an exported model's detections with the eager model's (the check ``dt export`` runs)."""

from __future__ import annotations

import attrs
import torch

__all__ = ["BOX_TOLERANCE", "MASK_AGREEMENT", "SCORE_TOLERANCE", "Comparison", "compare_detections"]

BOX_TOLERANCE = 1e-2  # pixels
SCORE_TOLERANCE = 1e-4
MASK_AGREEMENT = 0.999  # fraction of equal pixels over all masks


@attrs.define(frozen=True, kw_only=True)
class Comparison:
    """Exported vs eager on one image: detection counts, whether classes are equal, the largest box
    and score differences and the fraction of equal mask pixels (1.0 without masks)."""

    size: tuple[int, int]
    count: int
    expected_count: int
    classes_equal: bool
    box_error: float
    score_error: float
    mask_agreement: float

    @property
    def ok(self) -> bool:
        return (
            self.count == self.expected_count
            and self.classes_equal
            and self.box_error <= BOX_TOLERANCE
            and self.score_error <= SCORE_TOLERANCE
            and self.mask_agreement >= MASK_AGREEMENT
        )

    def describe(self) -> str:
        """One phrase: ``384x512: 100/100 detections, classes equal, boxes 4.9e-04 px, scores ...``."""
        height, width = self.size
        text = f"{height}x{width}: {self.count}/{self.expected_count} detections"
        if self.count == self.expected_count:
            text += f", classes {'equal' if self.classes_equal else 'DIFFER'}"
            text += f", boxes {self.box_error:.1e} px, scores {self.score_error:.1e}"
            text += f", masks {100 * self.mask_agreement:.2f}%"
        return text


def _pair_up(expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """For every expected detection the index of its actual one: the same class, a score within
    ``SCORE_TOLERANCE`` and the nearest box among those not taken yet (detections of exactly equal
    score may come in either order from different NMS implementations). ``None`` if one has no match."""
    classes_equal = expected["classes"].long()[:, None] == actual["classes"].long()[None, :]  # [R, R]
    scores_close = (expected["scores"][:, None] - actual["scores"][None, :]).abs() <= SCORE_TOLERANCE
    distance = (expected["boxes"][:, None, :] - actual["boxes"][None, :, :]).abs().amax(dim=2)  # [R, R]
    distance = distance.masked_fill(~(classes_equal & scores_close), float("inf"))
    pairs = []
    for row in distance:
        j = int(row.argmin())
        if not torch.isfinite(row[j]):
            return None
        pairs.append(j)
        distance[:, j] = float("inf")
    return torch.tensor(pairs, dtype=torch.int64)


def compare_detections(
    expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor], size: tuple[int, int]
) -> Comparison:
    """``expected``/``actual`` on an image of ``size`` (h, w): ``boxes`` ``[R, 4]``, ``scores`` ``[R]``,
    ``classes`` ``[R]``, optional ``masks`` ``[R, H, W]`` bool, by decreasing score. Detections are
    paired by class, score and box (see ``_pair_up``), then compared pair by pair."""
    count, expected_count = len(actual["boxes"]), len(expected["boxes"])
    pairs = _pair_up(expected, actual) if count == expected_count else None
    if pairs is None:
        return Comparison(
            size=size, count=count, expected_count=expected_count, classes_equal=False,
            box_error=float("inf"), score_error=float("inf"), mask_agreement=0.0,
        )  # fmt: skip
    actual = {name: value[pairs] for name, value in actual.items()}

    def max_error(name: str) -> float:
        diff = (actual[name].float() - expected[name].float()).abs()
        return float(diff.max()) if diff.numel() else 0.0

    agreement = 1.0
    if "masks" in expected and expected["masks"].numel():
        agreement = float((actual["masks"].bool() == expected["masks"].bool()).float().mean())
    return Comparison(
        size=size, count=count, expected_count=expected_count,
        classes_equal=bool(torch.equal(actual["classes"].long(), expected["classes"].long())),
        box_error=max_error("boxes"), score_error=max_error("scores"), mask_agreement=agreement,
    )  # fmt: skip
