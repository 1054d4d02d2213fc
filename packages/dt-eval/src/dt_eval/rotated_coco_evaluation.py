"""``RotatedCOCOEvaluator``: the COCO box protocol (AP over IoU 0.50:0.95, area ranges, detection
limits) on rotated boxes ``[cx, cy, w, h, angle]`` (XYWHA_ABS, degrees counter-clockwise), matched
by rotated IoU instead of axis-aligned IoU, as detectron2's ``RotatedCOCOEvaluator``.

Ground truth and results keep their five numbers in ``bbox`` (axis-aligned ground truth becomes
angle 0); ``area`` is ``w * h``. Rotated IoU comes from dt-structures' ``pairwise_iou_rotated``
(dt-ops): install ``dt-eval[rotated]``. Crowd regions have no rotated form and are rejected.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval as PycocotoolsCOCOeval

from dt_eval.coco_evaluation import COCOEvaluator
from dt_eval.coco_format import _numpy
from dt_structures import pairwise_iou_rotated

__all__ = ["RotatedCOCOEvaluator", "RotatedCOCOeval"]


class RotatedCOCOeval(PycocotoolsCOCOeval):
    """pycocotools' ``COCOeval`` (``"bbox"``) whose IoU between detections and ground truth is rotated
    IoU of their XYWHA ``bbox``. With ``max_dets_ap`` (the last detection limit when it is not 100),
    ``stats[0]`` (AP@[.50:.95]) is taken at that limit, as ``COCOEvaluator`` does."""

    def __init__(self, coco_gt: COCO, coco_dt: COCO, max_dets_ap: int | None = None) -> None:
        super().__init__(coco_gt, coco_dt, "bbox")
        self._max_dets_ap = max_dets_ap

    def computeIoU(self, imgId: Any, catId: Any) -> np.ndarray | list:
        """``float64[D, G]`` rotated IoU of the image's best ``maxDets[-1]`` detections (by score) and
        its ground truth (of ``catId`` when ``useCats``); ``[]`` when either is empty."""
        p = self.params
        if p.useCats:
            gt, dt = self._gts[imgId, catId], self._dts[imgId, catId]
        else:
            gt = [g for c in p.catIds for g in self._gts[imgId, c]]
            dt = [d for c in p.catIds for d in self._dts[imgId, c]]
        if len(gt) == 0 or len(dt) == 0:
            return []
        order = np.argsort([-d["score"] for d in dt], kind="mergesort")
        dt = [dt[i] for i in order[: p.maxDets[-1]]]
        crowd = [g for g in gt if g.get("iscrowd", 0)]
        if crowd:
            raise ValueError(f"image {imgId}: crowd annotation id={crowd[0].get('id')} has no rotated form")
        dt_boxes = torch.tensor([d["bbox"] for d in dt], dtype=torch.float64)  # [D, 5]
        gt_boxes = torch.tensor([g["bbox"] for g in gt], dtype=torch.float64)  # [G, 5]
        return pairwise_iou_rotated(dt_boxes.float(), gt_boxes.float()).double().numpy()

    def summarize(self) -> None:
        super().summarize()
        if self._max_dets_ap is not None:
            m = self.params.maxDets.index(self._max_dets_ap)
            precision = self.eval["precision"][:, :, :, 0, m]  # [T, R, K] over all areas
            valid = precision[precision > -1]
            self.stats[0] = float(np.mean(valid)) if valid.size else -1.0


class RotatedCOCOEvaluator(COCOEvaluator):
    """COCO box AP of rotated predictions (detectron2's ``RotatedCOCOEvaluator``): ``COCOEvaluator``'s
    arguments, with ``tasks`` ``("bbox",)`` only; outputs carry ``instances`` with rotated
    ``pred_boxes``. Ground truth from ``dataset_dicts`` may mix XYWHA_ABS and axis-aligned boxes;
    a ``coco_json`` must hold ``[cx, cy, w, h, angle]`` boxes. Returns ``{"bbox": {"AP": ...}}``."""

    rotated = True

    def __init__(
        self, dataset_name: str = "dataset", tasks=None, distributed: bool = True, output_dir=None, **kwargs
    ):
        if tasks is not None and tuple(tasks) != ("bbox",):
            raise ValueError(
                f"RotatedCOCOEvaluator evaluates boxes only: tasks must be ('bbox',), got {tasks}"
            )
        super().__init__(dataset_name, ("bbox",), distributed, output_dir, **kwargs)

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        """As ``COCOEvaluator.process``, after checking that every output's ``pred_boxes`` are
        rotated (``[N, 5]``: cx, cy, w, h, angle)."""
        for out in outputs:
            if "instances" in out and len(out["instances"]) > 0:
                shape = tuple(_numpy(out["instances"].pred_boxes).shape)
                if len(shape) != 2 or shape[1] != 5:
                    raise ValueError(
                        f"RotatedCOCOEvaluator needs rotated pred_boxes [N, 5] (cx, cy, w, h, angle), "
                        f"got {shape}"
                    )
        super().process(inputs, outputs)

    def _make_cocoeval(self, coco_gt: COCO, coco_dt: COCO, task: str) -> RotatedCOCOeval:
        return RotatedCOCOeval(
            coco_gt, coco_dt, max_dets_ap=self._max_dets[2] if self._max_dets[2] != 100 else None
        )
