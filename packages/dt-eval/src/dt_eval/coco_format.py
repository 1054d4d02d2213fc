"""Conversions between model outputs, dataset dicts and COCO json (detectron2's conventions)."""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from dt_eval._extra import needs_torch_extra

__all__ = [
    "coco_api_from_dataset_dicts",
    "convert_to_coco_dict",
    "convert_to_coco_json",
    "instances_to_coco_json",
    "validate_results",
]

logger = logging.getLogger(__name__)


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "tensor"):  # Boxes / Keypoints wrappers
        x = x.tensor
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _has(instances: Any, name: str) -> bool:
    has = getattr(instances, "has", None)
    return bool(has(name)) if callable(has) else hasattr(instances, name)


def instances_to_coco_json(instances: Any, img_id: Any) -> list[dict]:
    """COCO result dicts of one image's predictions.

    ``instances`` is duck-typed like detectron2's ``Instances``: ``pred_boxes`` (Tensor[N, 4] or Boxes,
    XYXY_ABS, written as XYWH; or Tensor[N, 5] / RotatedBoxes, XYWHA_ABS, written as they are:
    ``[cx, cy, w, h, angle]``), ``scores`` [N], ``pred_classes`` [N] (contiguous ids), optionally
    ``pred_masks`` (bool [N, H, W]) and ``pred_keypoints`` ([N, K, 3], x/y in pixel-corner coordinates: 0.5 is
    subtracted to follow COCO's pixel-centre convention, as detectron2 does).
    """
    num = len(instances)
    if num == 0:
        return []
    boxes = _numpy(instances.pred_boxes).astype(np.float64)
    if boxes.shape == (num, 5):  # rotated: XYWHA_ABS as it is
        boxes = boxes.tolist()
    else:
        boxes = boxes.reshape(num, 4)
        boxes = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1).tolist()  # XYWH_ABS
    scores = _numpy(instances.scores).tolist()
    classes = _numpy(instances.pred_classes).astype(np.int64).tolist()
    rles = None
    if _has(instances, "pred_masks"):
        masks = _numpy(instances.pred_masks)
        rles = []
        for m in masks:
            rle = mask_utils.encode(np.asfortranarray(m[:, :, None], dtype=np.uint8))[0]
            rle["counts"] = rle["counts"].decode("utf-8")
            rles.append(rle)
    keypoints = None
    if _has(instances, "pred_keypoints"):
        keypoints = _numpy(instances.pred_keypoints).astype(np.float64).copy()
        keypoints[:, :, :2] -= 0.5
    results = []
    for k in range(num):
        result = {"image_id": img_id, "category_id": classes[k], "bbox": boxes[k], "score": scores[k]}
        if rles is not None:
            result["segmentation"] = rles[k]
        if keypoints is not None:
            result["keypoints"] = keypoints[k].reshape(-1).tolist()
        results.append(result)
    return results


def _get(meta: Any, name: str, default: Any = None) -> Any:
    if meta is None:
        return default
    if isinstance(meta, Mapping):
        return meta.get(name, default)
    return getattr(meta, name, default)


def _polygon_area(poly: Sequence[float]) -> float:
    xy = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
    x, y = xy[:, 0], xy[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _to_coco_box(bbox: Sequence[float], mode: Any, rotated: bool) -> list[float]:
    with needs_torch_extra("converting dataset dicts to COCO json"):
        from dt_structures import BoxMode

    mode = BoxMode(int(mode))
    if mode == BoxMode.XYWHA_ABS and not rotated:
        raise ValueError("rotated boxes (XYWHA_ABS) have no COCO json form (evaluate them as rotated)")
    target = BoxMode.XYWHA_ABS if rotated else BoxMode.XYWH_ABS
    return [float(v) for v in BoxMode.convert(list(bbox), mode, target)]


def convert_to_coco_dict(dataset_dicts: Sequence[dict], metadata: Any = None, rotated: bool = False) -> dict:
    """COCO json dict of dataset dicts in dt's (detectron2's) standard format.

    ``metadata`` supplies ``thing_classes`` and ``thing_dataset_id_to_contiguous_id`` (attribute or
    key); without the mapping, ``category_id`` values are taken as the dataset ids. Boxes are converted
    to XYWH_ABS (with ``rotated``, to XYWHA_ABS ``[cx, cy, w, h, angle]``, as detectron2's rotated
    json); ``area`` is the polygon (shoelace) or RLE area when there is a mask, else the box area
    (``w * h``); keypoint x/y get -0.5 (dataset dicts use pixel corners, COCO pixel centres), as
    detectron2 does.
    """
    classes = list(_get(metadata, "thing_classes", []) or [])
    mapping = _get(metadata, "thing_dataset_id_to_contiguous_id")
    reverse = {v: k for k, v in mapping.items()} if mapping else None
    if reverse:
        categories = [{"id": reverse[i], "name": name} for i, name in enumerate(classes) if i in reverse]
    else:
        categories = [{"id": i, "name": name} for i, name in enumerate(classes)]
    images, annotations = [], []
    for index, record in enumerate(dataset_dicts):
        image_id = record.get("image_id", index)
        images.append(
            {"id": image_id, "width": int(record["width"]), "height": int(record["height"]),
             "file_name": str(record.get("file_name", ""))}
        )  # fmt: skip
        for ann in record.get("annotations", []):
            bbox = _to_coco_box(ann["bbox"], ann.get("bbox_mode", 0), rotated)
            coco_ann: dict = {"id": len(annotations) + 1, "image_id": image_id, "bbox": bbox, "iscrowd": 0}
            segm = ann.get("segmentation")
            if segm:
                if isinstance(segm, list):
                    polys = [[float(v) for v in p] for p in segm]
                    area = sum(_polygon_area(p) for p in polys)
                    coco_ann["segmentation"] = polys
                else:
                    if isinstance(segm.get("counts"), list):
                        segm = mask_utils.frPyObjects(segm, *segm["size"])
                    area = float(mask_utils.area(segm))
                    counts = segm["counts"]
                    coco_ann["segmentation"] = {
                        "size": list(segm["size"]),
                        "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
                    }
            else:
                area = bbox[2] * bbox[3]
            coco_ann["area"] = area
            if "keypoints" in ann:
                kps = [float(v) for v in ann["keypoints"]]
                for i in range(0, len(kps), 3):  # dataset dicts hold pixel-corner coordinates
                    kps[i] -= 0.5
                    kps[i + 1] -= 0.5
                coco_ann["keypoints"] = kps
                coco_ann["num_keypoints"] = int(sum(v > 0 for v in kps[2::3]))
            coco_ann["iscrowd"] = int(ann.get("iscrowd", 0))
            category = int(ann["category_id"])
            coco_ann["category_id"] = reverse[category] if reverse else category
            annotations.append(coco_ann)
    info = {"date_created": str(datetime.datetime.now()), "description": "converted by dt_eval"}
    return {"info": info, "images": images, "categories": categories, "annotations": annotations}


def coco_api_from_dataset_dicts(
    dataset_dicts: Sequence[dict], metadata: Any = None, rotated: bool = False
) -> Any:
    """A ``pycocotools.coco.COCO`` of dataset dicts (e.g. from dt-data's loaders), for ``COCOeval``
    (``rotated``: see :func:`convert_to_coco_dict`)."""
    import contextlib
    import io

    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = convert_to_coco_dict(dataset_dicts, metadata, rotated)
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def convert_to_coco_json(
    dataset_dicts: Sequence[dict],
    metadata: Any,
    output_file: str,
    allow_cached: bool = True,
    rotated: bool = False,
):
    """Write ``convert_to_coco_dict`` to ``output_file`` (atomically); reuse an existing file if allowed."""
    if allow_cached and os.path.exists(output_file):
        logger.info("Using the cached COCO-format annotations at %s", output_file)
        return
    os.makedirs(os.path.dirname(os.path.abspath(output_file)), exist_ok=True)
    coco = convert_to_coco_dict(dataset_dicts, metadata, rotated)
    tmp = output_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(coco, f)
    os.replace(tmp, output_file)


def _finite_numbers(value: Any, n: int | None) -> bool:
    if not isinstance(value, (list, tuple)) or (n is not None and len(value) != n):
        return False
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)


def validate_results(
    results: Sequence[Any],
    image_ids: set,
    category_ids: set,
    num_keypoints: int | None = None,
    rotated: bool = False,
):
    """Raise ``ValueError`` naming the first bad entry of a COCO results list.

    Checks: a dict with a known ``image_id`` and ``category_id``, a number ``score``, ``bbox`` of 4
    (``rotated``: 5, ``[cx, cy, w, h, angle]``) finite numbers with non-negative width/height,
    ``segmentation`` as an RLE dict (``size``, ``counts``) or polygons, ``keypoints`` as 3 numbers
    per keypoint.
    """
    for i, r in enumerate(results):
        where = f"results[{i}]"
        if not isinstance(r, dict):
            raise ValueError(f"{where} must be a dict, got {type(r).__name__}")
        if r.get("image_id") not in image_ids:
            raise ValueError(f"{where}: unknown image_id {r.get('image_id')!r} (not in the ground truth)")
        if r.get("category_id") not in category_ids:
            raise ValueError(
                f"{where}: unknown category_id {r.get('category_id')!r} (not in the ground truth)"
            )
        score = r.get("score")
        if not isinstance(score, (int, float)) or isinstance(score, bool) or not math.isfinite(score):
            raise ValueError(f"{where}: 'score' must be a finite number, got {score!r}")
        box_dim, box_form = (5, "[cx, cy, w, h, angle]") if rotated else (4, "[x, y, w, h]")
        if "bbox" in r and (not _finite_numbers(r["bbox"], box_dim) or r["bbox"][2] < 0 or r["bbox"][3] < 0):
            raise ValueError(f"{where}: 'bbox' must be {box_form} with w, h >= 0, got {r['bbox']!r}")
        if "segmentation" in r:
            segm = r["segmentation"]
            if isinstance(segm, dict):
                ok = _finite_numbers(segm.get("size"), 2) and isinstance(
                    segm.get("counts"), (str, bytes, list)
                )
            else:
                ok = (
                    isinstance(segm, list)
                    and len(segm) > 0
                    and all(_finite_numbers(p, None) and len(p) >= 6 for p in segm)
                )
            if not ok:
                raise ValueError(
                    f"{where}: 'segmentation' must be an RLE dict or polygons, got {str(segm)[:80]}"
                )
        if "keypoints" in r and (
            not _finite_numbers(r["keypoints"], None)
            or len(r["keypoints"]) % 3
            or (num_keypoints is not None and len(r["keypoints"]) != 3 * num_keypoints)
        ):
            raise ValueError(
                f"{where}: 'keypoints' must be 3 numbers per keypoint, got {len(r['keypoints'])} values"
            )
        if not any(k in r for k in ("bbox", "segmentation", "keypoints")):
            raise ValueError(f"{where} has none of 'bbox', 'segmentation', 'keypoints'")
