"""Box-proposal recall (detectron2's ``_evaluate_box_proposals``): AR at a proposal budget.

For each image, proposals are sorted by objectness (descending) and cut to ``limit``; the
non-crowd ground-truth boxes whose ``area`` lies in the closed range ``[lo, hi]`` are matched to
proposals greedily, most-covered box first, each proposal and box used once. A box's recorded
overlap is the IoU of its match (0 when nothing overlaps; unmatched boxes, when there are fewer
proposals than boxes, also count as 0). Recall at threshold ``t`` is the fraction of those boxes with
overlap >= ``t``; AR is the mean recall over ``0.5:0.95:0.05``.

As in detectron2, images without proposals or without non-crowd ground truth do not count at all
(their boxes are not in the denominator), images that were never processed do not count, and the
arithmetic is detectron2's: float32, with the same torch ``sort``/``max``/``mean`` calls in the same
order (so ties in objectness or IoU resolve the same way). With no box to count, AR is NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dt_eval._extra import needs_torch_extra

with needs_torch_extra("dt_eval.box_proposals (proposal recall)"):
    import torch

    from dt_structures import pairwise_iou

__all__ = ["AREA_RANGES", "evaluate_box_proposals", "proposal_arrays", "proposal_metrics"]

AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0, 1e5**2),
    "small": (0, 32**2),
    "medium": (32**2, 96**2),
    "large": (96**2, 1e5**2),
    "96-128": (96**2, 128**2),
    "128-256": (128**2, 256**2),
    "256-512": (256**2, 512**2),
    "512-inf": (512**2, 1e5**2),
}


def proposal_arrays(proposals: Any, image_id: Any) -> dict[str, torch.Tensor]:
    """CPU copies of an Instances-like object's ``proposal_boxes`` (``Boxes`` or ``Tensor[N, 4]``,
    XYXY_ABS) and ``objectness_logits`` (``Tensor[N]``), as ``{"boxes", "objectness_logits"}``."""
    for name in ("proposal_boxes", "objectness_logits"):
        if not hasattr(proposals, name):
            raise ValueError(f"proposals of image_id={image_id!r} have no '{name}' field")
    boxes = proposals.proposal_boxes
    boxes = torch.as_tensor(getattr(boxes, "tensor", boxes)).detach().to("cpu", torch.float32)
    logits = torch.as_tensor(proposals.objectness_logits).detach().cpu()
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"proposal_boxes of image_id={image_id!r} must be [N, 4], got {list(boxes.shape)}")
    if logits.shape != (boxes.shape[0],):
        raise ValueError(
            f"objectness_logits of image_id={image_id!r} must be [{boxes.shape[0]}] "
            f"(one per proposal box), got {list(logits.shape)}"
        )
    return {"boxes": boxes, "objectness_logits": logits}


def _gt_boxes_and_areas(coco_api: Any, image_id: Any) -> tuple[torch.Tensor, torch.Tensor]:
    anns = [a for a in coco_api.loadAnns(coco_api.getAnnIds(imgIds=image_id)) if a.get("iscrowd", 0) == 0]
    xywh = torch.as_tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)  # [G, 4]
    boxes = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1)  # XYXY_ABS
    areas = torch.as_tensor([a["area"] for a in anns], dtype=torch.float32)  # [G]
    return boxes, areas


def _greedy_overlaps(overlaps: torch.Tensor) -> torch.Tensor:
    """The G overlaps [G] recorded by greedy one-to-one matching of ``overlaps`` [P, G], in matching
    order (boxes left without a proposal keep 0)."""
    overlaps = overlaps.clone()
    covered = torch.zeros(overlaps.shape[1])
    for j in range(min(overlaps.shape)):
        best_per_gt, best_box = overlaps.max(dim=0)  # [G], [G]
        best, gt_ind = best_per_gt.max(dim=0)
        covered[j] = best
        overlaps[best_box[gt_ind], :] = -1
        overlaps[:, gt_ind] = -1
    return covered


def _prepare(predictions: Sequence[dict], coco_api: Any) -> list[tuple[torch.Tensor, ...]]:
    """Per image with proposals and non-crowd ground truth: (boxes sorted by objectness [P, 4],
    ground-truth boxes [G, 4], their areas [G])."""
    prepared = []
    for prediction in predictions:
        proposals = prediction["proposals"]
        if not isinstance(proposals, dict):
            proposals = proposal_arrays(proposals, prediction["image_id"])
        order = proposals["objectness_logits"].sort(descending=True)[1]
        boxes = proposals["boxes"][order]  # [P, 4]
        gt_boxes, gt_areas = _gt_boxes_and_areas(coco_api, prediction["image_id"])
        if len(gt_boxes) and len(boxes):
            prepared.append((boxes, gt_boxes, gt_areas))
    return prepared


def _recall(
    prepared: list[tuple[torch.Tensor, ...]], area: str, limit: int | None, thresholds: torch.Tensor | None
) -> dict:
    if area not in AREA_RANGES:
        raise ValueError(f"area must be one of {list(AREA_RANGES)}, got {area!r}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 or None, got {limit}")
    lo, hi = AREA_RANGES[area]
    gt_overlaps: list[torch.Tensor] = []
    num_pos = 0
    for boxes, gt_boxes, gt_areas in prepared:
        gt_boxes = gt_boxes[(gt_areas >= lo) & (gt_areas <= hi)]
        num_pos += len(gt_boxes)
        if len(gt_boxes) == 0:
            continue
        gt_overlaps.append(_greedy_overlaps(pairwise_iou(boxes[:limit], gt_boxes)))
    overlaps = torch.sort(torch.cat(gt_overlaps) if gt_overlaps else torch.zeros(0))[0]
    if thresholds is None:
        thresholds = torch.arange(0.5, 0.95 + 1e-5, 0.05, dtype=torch.float32)
    recalls = torch.zeros_like(thresholds)
    for i, t in enumerate(thresholds):
        recalls[i] = (overlaps >= t).float().sum() / float(num_pos)  # NaN when num_pos == 0
    return {
        "ar": recalls.mean(),
        "recalls": recalls,
        "thresholds": thresholds,
        "gt_overlaps": overlaps,
        "num_pos": num_pos,
    }


def evaluate_box_proposals(
    predictions: Sequence[dict],
    coco_api: Any,
    *,
    area: str = "all",
    limit: int | None = None,
    thresholds: torch.Tensor | None = None,
) -> dict:
    """Recall of box proposals against a pycocotools ``COCO`` ground truth:
    ``{"ar", "recalls", "thresholds", "gt_overlaps", "num_pos"}`` (tensors, fractions).

    Args:
        predictions: one dict per image with ``image_id`` and ``proposals`` (``proposal_arrays``'
            output or any object with ``proposal_boxes`` and ``objectness_logits``).
        coco_api: ground truth; non-crowd annotations only.
        area: a key of ``AREA_RANGES``; bounds are inclusive on both sides.
        limit: proposals kept per image, highest objectness first (all when None).
        thresholds: IoU thresholds ``Tensor[T]`` (default ``0.5:0.95:0.05`` in float32).
    """
    return _recall(_prepare(predictions, coco_api), area, limit, thresholds)


def proposal_metrics(predictions: Sequence[dict], coco_api: Any) -> dict[str, float]:
    """detectron2's ``box_proposals`` metrics in percent (NaN without ground truth to count):
    ``AR@100``, ``ARs@100``, ``ARm@100``, ``ARl@100`` and the same at 1000 proposals per image."""
    prepared = _prepare(predictions, coco_api)
    res = {}
    for limit in (100, 1000):
        for area, suffix in (("all", ""), ("small", "s"), ("medium", "m"), ("large", "l")):
            stats = _recall(prepared, area, limit, None)
            res[f"AR{suffix}@{limit}"] = float(stats["ar"].item() * 100)
    return res
