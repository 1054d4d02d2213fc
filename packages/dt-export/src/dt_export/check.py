"""Comparing an exported model's outputs with the eager model's (the check ``dt export`` runs)."""

from __future__ import annotations

import attrs
import torch

__all__ = [
    "BOX_TOLERANCE",
    "KEYPOINT_TOLERANCE",
    "MASK_AGREEMENT",
    "PIXEL_AGREEMENT",
    "SCORE_TOLERANCE",
    "Comparison",
    "compare_detections",
    "compare_outputs",
]

BOX_TOLERANCE = 1e-2  # pixels
SCORE_TOLERANCE = 1e-4
MASK_AGREEMENT = 0.999  # fraction of equal pixels over all masks
KEYPOINT_TOLERANCE = 1e-2  # pixels (and keypoint scores)
PIXEL_AGREEMENT = 0.999  # fraction of equal semantic labels / panoptic ids


@attrs.define(frozen=True, kw_only=True)
class Comparison:
    """Exported vs eager on one image: detection counts, whether classes are equal, the largest box,
    score and keypoint differences, the fraction of equal mask pixels, of equal semantic labels
    (argmax) and of equal panoptic ids. Fields a model does not output keep their perfect value;
    ``fields`` names the outputs compared; ``index`` is the image's place in a batch (``None``: the
    export takes one image)."""

    size: tuple[int, int]
    fields: tuple[str, ...]
    index: int | None = None
    count: int = 0
    expected_count: int = 0
    classes_equal: bool = True
    box_error: float = 0.0
    score_error: float = 0.0
    mask_agreement: float = 1.0
    keypoint_error: float = 0.0
    semantic_agreement: float = 1.0
    panoptic_agreement: float = 1.0

    @property
    def ok(self) -> bool:
        return (
            self.count == self.expected_count
            and self.classes_equal
            and self.box_error <= BOX_TOLERANCE
            and self.score_error <= SCORE_TOLERANCE
            and self.mask_agreement >= MASK_AGREEMENT
            and self.keypoint_error <= KEYPOINT_TOLERANCE
            and self.semantic_agreement >= PIXEL_AGREEMENT
            and self.panoptic_agreement >= PIXEL_AGREEMENT
        )

    def describe(self) -> str:
        """One phrase: ``384x512: 100/100 detections, classes equal, boxes 4.9e-04 px, scores ...``."""
        height, width = self.size
        parts = []
        if {"boxes", "rotated_boxes"} & set(self.fields):
            parts.append(f"{self.count}/{self.expected_count} detections")
            if self.count == self.expected_count:
                parts.append(f"classes {'equal' if self.classes_equal else 'DIFFER'}")
                parts.append(f"boxes {self.box_error:.1e} px, scores {self.score_error:.1e}")
                if "masks" in self.fields:
                    parts.append(f"masks {100 * self.mask_agreement:.2f}%")
                if "keypoints" in self.fields:
                    parts.append(f"keypoints {self.keypoint_error:.1e} px")
        if "sem_seg" in self.fields:
            parts.append(f"semantic labels {100 * self.semantic_agreement:.2f}%")
        if "panoptic_seg" in self.fields:
            parts.append(f"panoptic ids {100 * self.panoptic_agreement:.2f}%")
        where = "" if self.index is None else f" (batch image {self.index})"
        return f"{height}x{width}{where}: {', '.join(parts)}"


def _box_field(outputs: dict[str, torch.Tensor]) -> str:
    return "rotated_boxes" if "rotated_boxes" in outputs else "boxes"


def _pair_up(expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """For every expected detection the index of its actual one: the same class, a score within
    ``SCORE_TOLERANCE`` and the nearest box among those not taken yet (detections of exactly equal
    score may come in either order from different NMS implementations). ``None`` if one has no match."""
    classes_equal = expected["classes"].long()[:, None] == actual["classes"].long()[None, :]  # [R, R]
    scores_close = (expected["scores"][:, None] - actual["scores"][None, :]).abs() <= SCORE_TOLERANCE
    box = _box_field(expected)
    distance = (expected[box][:, None, :] - actual[box][None, :, :]).abs().amax(dim=2)  # [R, R]
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
    """``expected``/``actual`` on an image of ``size`` (h, w): ``boxes`` ``[R, 4]`` (or ``rotated_boxes``
    ``[R, 5]``, the angle held to the pixel tolerance in degrees), ``scores`` ``[R]``, ``classes``
    ``[R]``, optional ``masks`` ``[R, H, W]`` bool and ``keypoints`` ``[R, K, 3]``, by decreasing
    score. Detections are paired by class, score and box (see ``_pair_up``), then compared pair by
    pair."""
    box = _box_field(expected)
    names = (box, "scores", "classes", "masks", "keypoints")
    fields = tuple(n for n in names if n in expected)
    count, expected_count = len(actual[box]), len(expected[box])
    pairs = _pair_up(expected, actual) if count == expected_count else None
    if pairs is None:
        return Comparison(
            size=size, fields=fields, count=count, expected_count=expected_count, classes_equal=False,
            box_error=float("inf"), score_error=float("inf"), mask_agreement=0.0,
            keypoint_error=float("inf"),
        )  # fmt: skip
    actual = {name: actual[name][pairs] for name in fields}

    def max_error(name: str) -> float:
        if name not in expected:
            return 0.0
        diff = (actual[name].float() - expected[name].float()).abs()
        return float(diff.max()) if diff.numel() else 0.0

    agreement = 1.0
    if "masks" in expected and expected["masks"].numel():
        agreement = float((actual["masks"].bool() == expected["masks"].bool()).float().mean())
    return Comparison(
        size=size, fields=fields, count=count, expected_count=expected_count,
        classes_equal=bool(torch.equal(actual["classes"].long(), expected["classes"].long())),
        box_error=max_error(box), score_error=max_error("scores"), mask_agreement=agreement,
        keypoint_error=max_error("keypoints"),
    )  # fmt: skip


def _pixel_agreement(expected: torch.Tensor, actual: torch.Tensor) -> float:
    if expected.shape != actual.shape:
        return 0.0
    return float((expected == actual).float().mean()) if expected.numel() else 1.0


def compare_outputs(
    expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor], size: tuple[int, int]
) -> Comparison:
    """Every output ``expected`` has: detections (:func:`compare_detections`), ``sem_seg``
    ``[C, H, W]`` by its argmax, ``panoptic_seg`` ``[H, W]`` by its ids."""
    comparison = (
        compare_detections(expected, actual, size)
        if {"boxes", "rotated_boxes"} & set(expected)
        else Comparison(size=size, fields=())
    )
    changes: dict = {}
    if "sem_seg" in expected:
        changes["semantic_agreement"] = _pixel_agreement(
            expected["sem_seg"].argmax(dim=0), actual["sem_seg"].argmax(dim=0)
        )
    if "panoptic_seg" in expected:
        changes["panoptic_agreement"] = _pixel_agreement(
            expected["panoptic_seg"].long(), actual["panoptic_seg"].long()
        )
    more = tuple(n for n in ("sem_seg", "panoptic_seg") if n in expected)
    return attrs.evolve(comparison, fields=comparison.fields + more, **changes)
