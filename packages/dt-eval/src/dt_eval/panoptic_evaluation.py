"""``COCOPanopticEvaluator`` and ``pq_compute``: panoptic quality (PQ, SQ, RQ) for all, thing and
stuff classes, with the COCO panoptic API's rules (written here; panopticapi is not on PyPI).

Matching per image and category: a predicted and a ground-truth segment match when
IoU > 0.5, where the union leaves out the prediction's pixels on void (id 0) ground truth. Crowd
ground truth is never matched; an unmatched prediction is not a false positive when more than half of
it lies on void or on a crowd region of its category.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
from collections import OrderedDict, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dt_eval import comm
from dt_eval._table import format_table
from dt_eval.coco_format import _get
from dt_eval.evaluator import DatasetEvaluator

__all__ = ["COCOPanopticEvaluator", "PQStat", "id2rgb", "pq_compute", "pq_compute_single_image", "rgb2id"]

logger = logging.getLogger(__name__)

VOID = 0
OFFSET = 256 * 256 * 256


def rgb2id(color: np.ndarray) -> np.ndarray:
    """Segment ids [H, W] of a panoptic PNG [H, W, 3] (id = R + 256 G + 256^2 B)."""
    color = np.asarray(color)
    if color.ndim == 3:
        color = color.astype(np.int64)
        return color[..., 0] + 256 * color[..., 1] + 256 * 256 * color[..., 2]
    return color.astype(np.int64)


def id2rgb(id_map: np.ndarray) -> np.ndarray:
    """Panoptic PNG colors [H, W, 3] uint8 of segment ids [H, W]."""
    id_map = np.asarray(id_map, dtype=np.int64)
    rgb = np.zeros((*id_map.shape, 3), dtype=np.uint8)
    rest = id_map.copy()
    for i in range(3):
        rgb[..., i] = rest % 256
        rest //= 256
    return rgb


class PQStat:
    """Per-category sums: IoU of matches, true positives, false positives, false negatives."""

    def __init__(self) -> None:
        self.per_cat: dict = defaultdict(lambda: {"iou": 0.0, "tp": 0, "fp": 0, "fn": 0})

    def __iadd__(self, other: PQStat) -> PQStat:
        for label, s in other.per_cat.items():
            mine = self.per_cat[label]
            for k in mine:
                mine[k] += s[k]
        return self

    def pq_average(self, categories: Mapping[int, dict], isthing: bool | None) -> tuple[dict, dict]:
        """Mean PQ/SQ/RQ over the categories that occur.

        ``isthing``: None for all categories, True for things, False for stuff.
        """
        pq = sq = rq = 0.0
        n = 0
        per_class = {}
        for label, info in categories.items():
            if isthing is not None and (info.get("isthing", 0) == 1) != isthing:
                continue
            s = self.per_cat.get(label, {"iou": 0.0, "tp": 0, "fp": 0, "fn": 0})
            tp, fp, fn, iou = s["tp"], s["fp"], s["fn"], s["iou"]
            if tp + fp + fn == 0:
                per_class[label] = {"pq": 0.0, "sq": 0.0, "rq": 0.0}
                continue
            n += 1
            pq_c = iou / (tp + 0.5 * fp + 0.5 * fn)
            sq_c = iou / tp if tp != 0 else 0.0
            rq_c = tp / (tp + 0.5 * fp + 0.5 * fn)
            per_class[label] = {"pq": pq_c, "sq": sq_c, "rq": rq_c}
            pq, sq, rq = pq + pq_c, sq + sq_c, rq + rq_c
        if n == 0:
            return {"pq": float("nan"), "sq": float("nan"), "rq": float("nan"), "n": 0}, per_class
        return {"pq": pq / n, "sq": sq / n, "rq": rq / n, "n": n}, per_class


def pq_compute_single_image(
    gt_ids: np.ndarray, gt_segments: Sequence[dict], pred_ids: np.ndarray, pred_segments: Sequence[dict],
    categories: Mapping[int, dict], image: Any = None,
) -> PQStat:  # fmt: skip
    """PQ statistics of one image from id maps [H, W] and segment infos (``id``, ``category_id``,
    ``iscrowd`` and ``area`` for the ground truth; prediction areas are counted from ``pred_ids``)."""
    stat = PQStat()
    gt_segms = {s["id"]: dict(s) for s in gt_segments}
    pred_segms = {s["id"]: dict(s) for s in pred_segments}
    if gt_ids.shape != pred_ids.shape:
        raise ValueError(
            f"image {image!r}: ground truth {gt_ids.shape} and prediction {pred_ids.shape} differ"
        )
    pred_left = set(pred_segms)
    labels, counts = np.unique(pred_ids, return_counts=True)
    for label, count in zip(labels.tolist(), counts.tolist(), strict=True):
        if label not in pred_segms:
            if label == VOID:
                continue
            raise ValueError(
                f"image {image!r}: segment id {label} is in the prediction PNG but not in its segments_info"
            )
        pred_segms[label]["area"] = count
        pred_left.discard(label)
        if pred_segms[label]["category_id"] not in categories:
            raise ValueError(
                f"image {image!r}: segment {label} has unknown category_id {pred_segms[label]['category_id']}"
            )
    if pred_left:
        raise ValueError(
            f"image {image!r}: segments {sorted(pred_left)} are in segments_info but not in the PNG"
        )

    joint = gt_ids.astype(np.uint64) * np.uint64(OFFSET) + pred_ids.astype(np.uint64)
    labels, counts = np.unique(joint, return_counts=True)
    inter = {(int(lb) // OFFSET, int(lb) % OFFSET): int(c) for lb, c in zip(labels, counts, strict=True)}

    gt_matched, pred_matched = set(), set()
    for (gt_label, pred_label), intersection in inter.items():
        if gt_label not in gt_segms or pred_label not in pred_segms:
            continue
        g, p = gt_segms[gt_label], pred_segms[pred_label]
        if g.get("iscrowd", 0) == 1 or g["category_id"] != p["category_id"]:
            continue
        union = p["area"] + g["area"] - intersection - inter.get((VOID, pred_label), 0)
        iou = intersection / union
        if iou > 0.5:
            s = stat.per_cat[g["category_id"]]
            s["tp"] += 1
            s["iou"] += iou
            gt_matched.add(gt_label)
            pred_matched.add(pred_label)

    crowd_by_cat = {}
    for gt_label, g in gt_segms.items():
        if gt_label in gt_matched:
            continue
        if g.get("iscrowd", 0) == 1:
            crowd_by_cat[g["category_id"]] = gt_label
            continue
        stat.per_cat[g["category_id"]]["fn"] += 1
    for pred_label, p in pred_segms.items():
        if pred_label in pred_matched:
            continue
        intersection = inter.get((VOID, pred_label), 0)
        if p["category_id"] in crowd_by_cat:
            intersection += inter.get((crowd_by_cat[p["category_id"]], pred_label), 0)
        if intersection / p["area"] > 0.5:
            continue
        stat.per_cat[p["category_id"]]["fp"] += 1
    return stat


def _read_ids(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return rgb2id(np.array(image, dtype=np.uint32))


def pq_compute(gt_json: str | dict, pred_json: str | dict, gt_folder: str, pred_folder: str) -> dict:
    """``{"All"|"Things"|"Stuff": {"pq", "sq", "rq", "n"}, "per_class": {...}}`` of a panoptic
    prediction json + PNG folder against the ground truth's (COCO panoptic format)."""

    def load(x):
        if isinstance(x, dict):
            return x
        with open(x) as f:
            return json.load(f)

    gt, pred = load(gt_json), load(pred_json)
    categories = {c["id"]: c for c in gt["categories"]}
    preds = {a["image_id"]: a for a in pred["annotations"]}
    stat = PQStat()
    for gt_ann in gt["annotations"]:
        image_id = gt_ann["image_id"]
        if image_id not in preds:
            raise ValueError(f"no prediction for the image with id {image_id!r}")
        pred_ann = preds[image_id]
        stat += pq_compute_single_image(
            _read_ids(os.path.join(gt_folder, gt_ann["file_name"])), gt_ann["segments_info"],
            _read_ids(os.path.join(pred_folder, pred_ann["file_name"])), pred_ann["segments_info"],
            categories, image_id,
        )  # fmt: skip
    results: dict = {}
    for name, isthing in (("All", None), ("Things", True), ("Stuff", False)):
        results[name], per_class = stat.pq_average(categories, isthing)
        if name == "All":
            results["per_class"] = per_class
    return results


class COCOPanopticEvaluator(DatasetEvaluator):
    """PQ/SQ/RQ of ``output["panoptic_seg"]`` = (ids [H, W], segments_info) against a COCO panoptic
    ground truth (``gt_json`` and its PNG folder ``gt_folder``; from ``metadata.panoptic_json`` /
    ``metadata.panoptic_root`` when not given).

    Predicted segments carry ``category_id`` and ``isthing`` (contiguous ids, mapped back through
    ``thing_dataset_id_to_contiguous_id`` / ``stuff_dataset_id_to_contiguous_id``) or, without
    ``isthing``, dataset category ids. Segment id 0 is void.

    ``panoptic_seg`` may also be ``(labels, None)``: detectron2's label-divisor format (Panoptic-DeepLab),
    where each pixel holds ``contiguous_class * metadata.label_divisor + instance`` and -1 is void; a
    class is a thing when it is among ``thing_dataset_id_to_contiguous_id``'s values.
    """

    def __init__(
        self,
        dataset_name: str = "dataset",
        output_dir: str | None = None,
        *,
        gt_json: str | None = None,
        gt_folder: str | None = None,
        metadata: Any = None,
        distributed: bool = True,
    ) -> None:
        self._gt_json = gt_json or _get(metadata, "panoptic_json")
        self._gt_folder = gt_folder or _get(metadata, "panoptic_root")
        if self._gt_json is None or self._gt_folder is None:
            raise ValueError(
                "COCOPanopticEvaluator needs gt_json and gt_folder (or metadata.panoptic_json/root)"
            )
        things = _get(metadata, "thing_dataset_id_to_contiguous_id") or {}
        stuff = _get(metadata, "stuff_dataset_id_to_contiguous_id") or {}
        self._thing_to_dataset = {v: k for k, v in things.items()}
        self._stuff_to_dataset = {v: k for k, v in stuff.items()}
        self._label_divisor = _get(metadata, "label_divisor")
        if self._label_divisor is not None and (
            isinstance(self._label_divisor, bool) or not isinstance(self._label_divisor, int | np.integer)
            or self._label_divisor < 1
        ):  # fmt: skip
            raise ValueError(f"metadata.label_divisor must be a positive int, got {self._label_divisor!r}")
        self._dataset_name = dataset_name
        self._output_dir = output_dir
        self._distributed = distributed
        self._predictions: list[dict] = []

    def reset(self) -> None:
        self._predictions = []

    def _convert_category_id(self, segment: dict) -> dict:
        segment = dict(segment)
        isthing = segment.pop("isthing", None)
        if isthing is None:
            return segment
        table = self._thing_to_dataset if isthing else self._stuff_to_dataset
        if table:
            if segment["category_id"] not in table:
                kind = "thing" if isthing else "stuff"
                raise ValueError(
                    f"predicted {kind} class {segment['category_id']} has no dataset id in the metadata"
                )
            segment["category_id"] = table[segment["category_id"]]
        return segment

    def _from_label_divisor(self, labels: np.ndarray, image: Any) -> tuple[np.ndarray, list[dict]]:
        """Segment ids [H, W] (label + 1, void 0) and segments_info of a label-divisor map [H, W]."""
        if self._label_divisor is None:
            raise ValueError(
                f"image {image!r}: panoptic_seg has no segments_info, so it must be in the label-divisor "
                "format, which needs metadata.label_divisor"
            )
        values = np.unique(labels)
        if values.size and values[0] < -1:
            raise ValueError(
                f"image {image!r}: label-divisor panoptic labels must be >= -1 (-1 is void), got {values[0]}"
            )
        segments = []
        for label in values[values != -1].tolist():
            category = label // self._label_divisor
            segments.append(
                {"id": label + 1, "category_id": category, "isthing": category in self._thing_to_dataset}
            )
        return labels + 1, segments

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        """Encode each panoptic prediction as a PNG (in memory) plus its segments_info."""
        from PIL import Image

        for inp, out in zip(inputs, outputs, strict=True):
            ids, segments = out["panoptic_seg"]
            ids = np.asarray(ids.detach().cpu().numpy() if hasattr(ids, "detach") else ids, dtype=np.int64)
            if segments is None:
                ids, segments = self._from_label_divisor(ids, inp.get("image_id"))
            if ids.size and (ids.min() < 0 or ids.max() >= OFFSET):
                raise ValueError(
                    f"image {inp.get('image_id')!r}: panoptic segment ids must be in [0, 256^3) to fit a "
                    f"panoptic PNG, got [{ids.min()}, {ids.max()}]"
                )
            png = io.BytesIO()
            Image.fromarray(id2rgb(ids)).save(png, format="PNG")
            base = os.path.splitext(os.path.basename(inp.get("file_name", str(inp["image_id"]))))[0]
            self._predictions.append(
                {"image_id": inp["image_id"], "file_name": base + ".png", "png_string": png.getvalue(),
                 "segments_info": [self._convert_category_id(s) for s in segments]}
            )  # fmt: skip

    def evaluate(self) -> dict:
        """``{"panoptic_seg": {"PQ", "SQ", "RQ", "PQ_th", "SQ_th", "RQ_th", "PQ_st", "SQ_st", "RQ_st"}}``."""
        predictions = comm.gather_list(self._predictions, self._distributed)
        if predictions is None:
            return {}
        with open(self._gt_json) as f:
            gt = json.load(f)
        with tempfile.TemporaryDirectory(prefix="panoptic_eval") as pred_dir:
            annotations = []
            for p in predictions:
                with open(os.path.join(pred_dir, p["file_name"]), "wb") as f:
                    f.write(p["png_string"])
                annotations.append({k: v for k, v in p.items() if k != "png_string"})
            pred = {**gt, "annotations": annotations}
            if self._output_dir:
                os.makedirs(self._output_dir, exist_ok=True)
                with open(os.path.join(self._output_dir, "predictions.json"), "w") as f:
                    json.dump(pred, f)
            res = pq_compute(gt, pred, self._gt_folder, pred_dir)
        out = {}
        for key, name in (("All", ""), ("Things", "_th"), ("Stuff", "_st")):
            for metric in ("pq", "sq", "rq"):
                out[metric.upper() + name] = 100 * res[key][metric]
        rows = [[key, 100 * res[key]["pq"], 100 * res[key]["sq"], 100 * res[key]["rq"], res[key]["n"]]
                for key in ("All", "Things", "Stuff")]  # fmt: skip
        logger.info(
            "Panoptic evaluation results:\n%s", format_table(["", "PQ", "SQ", "RQ", "#categories"], rows)
        )
        return OrderedDict({"panoptic_seg": out})
