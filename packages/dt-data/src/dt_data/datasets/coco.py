"""COCO-format instance annotations and semantic-segmentation folders (detectron2 semantics)."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import pycocotools.mask as mask_util

from dt_structures import BoxMode

from ..catalog import DatasetCatalog, MetadataCatalog
from ._validate import AnnotationError, check_bbox, check_polygons, check_rle, where

__all__ = ["load_coco_json", "load_sem_seg", "register_coco_instances"]

logger = logging.getLogger(__name__)


def _read_json(json_file: str) -> Any:
    try:
        with open(json_file) as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"annotation file not found: {json_file}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{json_file}: not valid JSON ({e})") from None


def _check_image_entry(img: Any, json_file: str) -> None:
    if not isinstance(img, dict) or "id" not in img or "file_name" not in img:
        raise ValueError(f"{json_file}: image entry needs 'id' and 'file_name', got {img!r:.120}")
    for key in ("height", "width"):
        if key in img and (not isinstance(img[key], int) or img[key] <= 0):
            raise ValueError(f"{json_file}: image id={img['id']} has invalid {key} {img[key]!r}")


def load_coco_json(
    json_file: str,
    image_root: str,
    dataset_name: str | None = None,
    extra_annotation_keys: list[str] | None = None,
) -> list[dict]:
    """Read a COCO instances JSON into dataset dicts.

    With ``dataset_name``, its metadata gets ``thing_classes`` (sorted by category id) and
    ``thing_dataset_id_to_contiguous_id``, and ``category_id`` becomes contiguous in [0, #categories).
    Boxes are XYWH_ABS; polygons with fewer than 3 points are dropped (and the instance, if none is
    left); uncompressed RLE is compressed; keypoint x, y get +0.5 (COCO stores pixel indices).
    Malformed annotations raise :class:`AnnotationError` naming the file and annotation id.
    """
    data = _read_json(json_file)
    if not isinstance(data, dict) or "images" not in data:
        raise ValueError(f"{json_file}: not a COCO instances file (no 'images' list)")
    categories = data.get("categories", [])
    if not isinstance(categories, list):
        raise AnnotationError(f"{json_file}: 'categories' must be a list, got {type(categories).__name__}")
    for cat in categories:
        valid = isinstance(cat, dict) and isinstance(cat.get("id"), int) and isinstance(cat.get("name"), str)
        if not valid:
            raise AnnotationError(
                f"{json_file}: category {cat!r:.80} is malformed (expected {{'id': int, 'name': str}})"
            )
    cat_ids = sorted(c["id"] for c in categories)
    known_cats = set(cat_ids)
    id_map = None
    if dataset_name is not None:
        meta = MetadataCatalog.get(dataset_name)
        meta.thing_classes = [c["name"] for c in sorted(categories, key=lambda c: c["id"])]
        if cat_ids and not (min(cat_ids) == 1 and max(cat_ids) == len(cat_ids)):
            logger.info(
                "%s: category ids are not in [1, #categories]; mapping them to contiguous ids", json_file
            )
        id_map = {v: i for i, v in enumerate(cat_ids)}
        meta.thing_dataset_id_to_contiguous_id = id_map

    images = data["images"]
    for img in images:
        _check_image_entry(img, json_file)
    anns_per_image: dict[Any, list[dict]] = {img["id"]: [] for img in images}
    seen_ann_ids: set = set()
    for ann in data.get("annotations", []):
        ann_id = ann.get("id")
        if ann_id in seen_ann_ids:
            raise AnnotationError(f"{json_file}: annotation id={ann_id} is not unique")
        seen_ann_ids.add(ann_id)
        if ann.get("image_id") not in anns_per_image:
            raise AnnotationError(
                f"{where(json_file, ann_id)}: image_id={ann.get('image_id')!r} is not in 'images'"
            )
        anns_per_image[ann["image_id"]].append(ann)

    ann_keys = ["iscrowd", "bbox", "keypoints", "category_id", *(extra_annotation_keys or [])]
    dataset_dicts = []
    num_without_valid_segm = 0
    for img in sorted(images, key=lambda i: i["id"]):
        image_id = img["id"]
        record = {"file_name": os.path.join(image_root, img["file_name"])}
        record.update({k: img[k] for k in ("height", "width") if k in img})
        record["image_id"] = image_id
        objs = []
        for ann in anns_per_image[image_id]:
            loc = where(json_file, ann.get("id"), image_id) + f" ({img['file_name']})"
            obj = _convert_annotation(ann, ann_keys, record, loc, known_cats, id_map)
            if obj is None:
                num_without_valid_segm += 1
                continue
            objs.append(obj)
        record["annotations"] = objs
        dataset_dicts.append(record)
    if num_without_valid_segm:
        logger.warning(
            "%s: filtered out %d instances without a valid segmentation (polygons with < 3 points)",
            json_file,
            num_without_valid_segm,
        )
    return dataset_dicts


def _convert_annotation(
    ann: dict, ann_keys: list[str], record: dict, loc: str, known_cats: set, id_map: dict | None
) -> dict | None:
    if ann.get("ignore", 0) != 0:
        raise AnnotationError(f"{loc}: the 'ignore' field is not supported")
    obj = {key: ann[key] for key in ann_keys if key in ann}
    if "id" in ann:
        obj["id"] = ann["id"]
    if "bbox" not in obj:
        raise AnnotationError(f"{loc}: missing 'bbox'")
    obj["bbox"] = check_bbox(obj["bbox"], 4, loc)
    cat = obj.get("category_id")
    if cat not in known_cats:
        raise AnnotationError(
            f"{loc}: category_id={cat!r} does not exist in 'categories' {sorted(known_cats)}"
        )
    segm = ann.get("segmentation")
    if segm:
        if isinstance(segm, dict):
            check_rle(segm, record.get("height"), record.get("width"), loc)
            if isinstance(segm["counts"], list):
                segm = mask_util.frPyObjects(segm, *segm["size"])
        elif isinstance(segm, list):
            segm = check_polygons(segm, loc)
            if not segm:
                return None
        else:
            raise AnnotationError(
                f"{loc}: segmentation must be polygons or an RLE dict, got {type(segm).__name__}"
            )
        obj["segmentation"] = segm
    keypoints = ann.get("keypoints")
    if keypoints:
        if len(keypoints) % 3 != 0:
            raise AnnotationError(f"{loc}: keypoints must be (x, y, v) triples, got {len(keypoints)} numbers")
        obj["keypoints"] = [v + 0.5 if i % 3 != 2 else v for i, v in enumerate(keypoints)]
    obj["bbox_mode"] = BoxMode.XYWH_ABS
    if id_map is not None:
        obj["category_id"] = id_map[cat]
    return obj


def register_coco_instances(name: str, metadata: dict, json_file: str, image_root: str) -> None:
    """Register ``name`` as the COCO instances file ``json_file`` with images under ``image_root``;
    metadata gets ``json_file``, ``image_root``, ``evaluator_type="coco"`` and ``metadata``."""
    if not isinstance(name, str):
        raise TypeError(f"register_coco_instances: name must be a str, got {type(name).__name__}")
    json_file, image_root = os.fspath(json_file), os.fspath(image_root)
    DatasetCatalog.register(name, lambda: load_coco_json(json_file, image_root, name))
    MetadataCatalog.get(name).set(
        json_file=json_file, image_root=image_root, evaluator_type="coco", **metadata
    )


def load_sem_seg(gt_root: str, image_root: str, gt_ext: str = "png", image_ext: str = "jpg") -> list[dict]:
    """Pair images and ground-truth label maps by file name (without extension, relative to their
    roots). Returns dicts with ``file_name`` and ``sem_seg_file_name``, sorted by file name."""

    def files(root: str, ext: str) -> dict[str, str]:
        out = {}
        for dirpath, _, names in os.walk(root):
            for n in names:
                if n.endswith(ext):
                    full = os.path.join(dirpath, n)
                    out[os.path.relpath(full, root)[: -len(ext)]] = full
        return out

    if not os.path.isdir(gt_root) or not os.path.isdir(image_root):
        missing = gt_root if not os.path.isdir(gt_root) else image_root
        raise FileNotFoundError(f"load_sem_seg: directory not found: {missing}")
    inputs = files(image_root, "." + image_ext.lstrip("."))
    gts = files(gt_root, "." + gt_ext.lstrip("."))
    keys = sorted(set(inputs) & set(gts))
    if len(keys) != len(inputs) or len(keys) != len(gts):
        logger.warning(
            "load_sem_seg: %s has %d images and %s has %d label maps; using the %d that pair up",
            image_root,
            len(inputs),
            gt_root,
            len(gts),
            len(keys),
        )
    if not keys:
        raise FileNotFoundError(f"load_sem_seg: no image in {image_root} has a label map in {gt_root}")
    return [{"file_name": inputs[k], "sem_seg_file_name": gts[k]} for k in keys]
