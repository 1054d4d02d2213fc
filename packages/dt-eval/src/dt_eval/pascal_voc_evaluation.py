"""``PascalVOCDetectionEvaluator``: Pascal VOC box AP as detectron2 reports it.

AP at IoU 0.50:0.95 (step 0.05), AP50 and AP75, each the mean over classes of VOC AP: 11-point
interpolation for VOC2007 (``year=2007``), area under the interpolated curve otherwise. Ground truth
is read from ``<dirname>/Annotations/<image_id>.xml`` for the ids in
``<dirname>/ImageSets/Main/<split>.txt``; "difficult" objects are neither true nor false positives.
Boxes use VOC's inclusive pixel convention (+1 in widths and heights; predictions get +1 on x0/y0),
and predictions are rounded as detectron2 writes them (score 3 decimals, box 1 decimal).
"""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from dt_eval import comm
from dt_eval._table import metrics_table
from dt_eval.coco_format import _get
from dt_eval.evaluator import DatasetEvaluator

__all__ = ["PascalVOCDetectionEvaluator", "parse_rec", "voc_ap", "voc_eval"]

logger = logging.getLogger(__name__)


def parse_rec(filename: str) -> list[dict]:
    """Objects of one VOC annotation XML: ``name``, ``difficult``, ``bbox`` [x0, y0, x1, y1] (ints)."""
    objects = []
    for obj in ET.parse(filename).findall("object"):
        box = obj.find("bndbox")
        difficult = obj.find("difficult")
        objects.append(
            {
                "name": obj.find("name").text,
                "difficult": int(difficult.text) if difficult is not None else 0,
                "bbox": [int(float(box.find(k).text)) for k in ("xmin", "ymin", "xmax", "ymax")],
            }
        )
    return objects


def voc_ap(rec: np.ndarray, prec: np.ndarray, use_07_metric: bool = False) -> float:
    """VOC AP of a precision/recall curve: 11-point (2007) or area under the monotone envelope."""
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            p = 0.0 if np.sum(rec >= t) == 0 else np.max(prec[rec >= t])
            ap += p / 11.0
        return float(ap)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def voc_eval(
    detections: Sequence[tuple[str, float, Sequence[float]]],
    annotations: dict[str, list[dict]],
    classname: str,
    ovthresh: float = 0.5,
    use_07_metric: bool = False,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Recall, precision and AP of one class.

    ``detections``: (image id, score, [x0, y0, x1, y1]) in VOC coordinates; ``annotations``: the
    objects of every image of the split (``parse_rec`` form).
    """
    class_recs = {}
    npos = 0
    for image_id, objs in annotations.items():
        R = [o for o in objs if o["name"] == classname]
        bbox = np.array([o["bbox"] for o in R], dtype=np.float64).reshape(-1, 4)
        difficult = np.array([o["difficult"] for o in R]).astype(bool)
        npos += int(np.sum(~difficult))
        class_recs[image_id] = {"bbox": bbox, "difficult": difficult, "det": [False] * len(R)}
    image_ids = [d[0] for d in detections]
    confidence = np.array([d[1] for d in detections], dtype=np.float64)
    BB = np.array([d[2] for d in detections], dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-confidence)
    BB = BB[order, :]
    image_ids = [image_ids[x] for x in order]
    nd = len(image_ids)
    tp, fp = np.zeros(nd), np.zeros(nd)
    for d in range(nd):
        if image_ids[d] not in class_recs:
            raise ValueError(f"detection for image {image_ids[d]!r}, which is not in the evaluated split")
        R = class_recs[image_ids[d]]
        bb = BB[d, :]
        ovmax = -np.inf
        BBGT = R["bbox"]
        if BBGT.size > 0:
            ixmin = np.maximum(BBGT[:, 0], bb[0])
            iymin = np.maximum(BBGT[:, 1], bb[1])
            ixmax = np.minimum(BBGT[:, 2], bb[2])
            iymax = np.minimum(BBGT[:, 3], bb[3])
            iw = np.maximum(ixmax - ixmin + 1.0, 0.0)
            ih = np.maximum(iymax - iymin + 1.0, 0.0)
            inters = iw * ih
            uni = (
                (bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0)
                + (BBGT[:, 2] - BBGT[:, 0] + 1.0) * (BBGT[:, 3] - BBGT[:, 1] + 1.0)
                - inters
            )
            overlaps = inters / uni
            ovmax = np.max(overlaps)
            jmax = np.argmax(overlaps)
        if ovmax > ovthresh:
            if not R["difficult"][jmax]:
                if not R["det"][jmax]:
                    tp[d] = 1.0
                    R["det"][jmax] = True
                else:
                    fp[d] = 1.0
        else:
            fp[d] = 1.0
    fp, tp = np.cumsum(fp), np.cumsum(tp)
    rec = tp / float(npos) if npos > 0 else np.full(nd, np.nan)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return rec, prec, voc_ap(rec, prec, use_07_metric)


class PascalVOCDetectionEvaluator(DatasetEvaluator):
    """Pascal VOC detection AP (percent) from ``output["instances"]`` (XYXY_ABS boxes, contiguous classes).

    Args:
        dataset_name: name for logs.
        dirname, split, class_names, year: the VOC dataset (default: ``metadata.dirname``, ``.split``,
            ``.thing_classes``, ``.year``); ``year == 2007`` selects the 11-point metric.
    """

    def __init__(
        self,
        dataset_name: str = "voc",
        *,
        dirname: str | None = None,
        split: str | None = None,
        class_names: Sequence[str] | None = None,
        year: int | None = None,
        metadata: Any = None,
        distributed: bool = True,
    ) -> None:
        self._dirname = dirname or _get(metadata, "dirname")
        self._split = split or _get(metadata, "split")
        names = class_names if class_names is not None else _get(metadata, "thing_classes")
        year = year if year is not None else _get(metadata, "year")
        if self._dirname is None or self._split is None or names is None or year is None:
            raise ValueError(
                "PascalVOCDetectionEvaluator needs dirname, split, class_names and year (or metadata)"
            )
        self._class_names = list(names)
        self._is_2007 = int(year) == 2007
        self._dataset_name = dataset_name
        self._distributed = distributed
        self._predictions: dict = defaultdict(list)

    def reset(self) -> None:
        self._predictions = defaultdict(list)

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        for inp, out in zip(inputs, outputs, strict=True):
            instances = out["instances"]
            boxes = instances.pred_boxes
            boxes = boxes.tensor if hasattr(boxes, "tensor") else boxes
            boxes = np.asarray(boxes.detach().cpu().numpy() if hasattr(boxes, "detach") else boxes).reshape(
                -1, 4
            )
            scores = instances.scores
            scores = np.asarray(
                scores.detach().cpu().numpy() if hasattr(scores, "detach") else scores
            ).tolist()
            classes = instances.pred_classes
            classes = np.asarray(
                classes.detach().cpu().numpy() if hasattr(classes, "detach") else classes
            ).tolist()
            for (x0, y0, x1, y1), score, cls in zip(boxes.tolist(), scores, classes, strict=True):
                # VOC's 1-based pixel coordinates, rounded as detectron2 writes its result files
                line = f"{inp['image_id']} {score:.3f} {x0 + 1:.1f} {y0 + 1:.1f} {x1:.1f} {y1:.1f}"
                self._predictions[int(cls)].append(line)

    def evaluate(self) -> dict:
        """``{"bbox": {"AP", "AP50", "AP75"}}`` in percent (means over classes)."""
        predictions = self._predictions
        if self._distributed:
            comm.synchronize()
            gathered = comm.gather(dict(predictions))
            if not comm.is_main_process():
                return {}
            predictions = defaultdict(list)
            for part in gathered:
                for cls, lines in part.items():
                    predictions[cls].extend(lines)
        with open(os.path.join(self._dirname, "ImageSets", "Main", self._split + ".txt")) as f:
            image_ids = [line.strip() for line in f if line.strip()]
        annotations = {
            i: parse_rec(os.path.join(self._dirname, "Annotations", i + ".xml")) for i in image_ids
        }
        aps: dict = defaultdict(list)
        for cls, name in enumerate(self._class_names):
            dets = []
            for line in predictions.get(cls, []):
                parts = line.split(" ")
                dets.append((parts[0], float(parts[1]), [float(v) for v in parts[2:]]))
            for thresh in range(50, 100, 5):
                _, _, ap = voc_eval(
                    dets, annotations, name, ovthresh=thresh / 100.0, use_07_metric=self._is_2007
                )
                aps[thresh].append(ap * 100)
        mean = {t: float(np.mean(v)) for t, v in aps.items()}
        res = {"AP": float(np.mean(list(mean.values()))), "AP50": mean[50], "AP75": mean[75]}
        logger.info("Pascal VOC results on %s:\n%s", self._dataset_name, metrics_table(res))
        return OrderedDict({"bbox": res})
