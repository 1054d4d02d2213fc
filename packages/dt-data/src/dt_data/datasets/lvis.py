"""LVIS instance annotations (detectron2 semantics; the JSON is read directly, no ``lvis`` package)."""

from __future__ import annotations

import logging
import os

from dt_structures import BoxMode

from ..catalog import DatasetCatalog, MetadataCatalog
from ._validate import AnnotationError, check_bbox, check_polygons, where
from .coco import _read_json

__all__ = ["load_lvis_json", "register_lvis_instances"]

logger = logging.getLogger(__name__)


def _file_name(image_root: str, img: dict) -> str:
    if "coco_url" in img:  # e.g. http://images.cocodataset.org/train2017/000000155379.jpg
        split_folder, file_name = img["coco_url"].split("/")[-2:]
        return os.path.join(image_root, split_folder, file_name)
    return os.path.join(image_root, img["file_name"])


def load_lvis_json(
    json_file: str,
    image_root: str,
    dataset_name: str | None = None,
    extra_annotation_keys: list[str] | None = None,
) -> list[dict]:
    """Read an LVIS JSON into dataset dicts: image paths from ``coco_url`` (``image_root``/<split>/<file>),
    ``not_exhaustive_category_ids`` and ``neg_category_ids`` per image, polygons only (every polygon
    must have >= 3 points). Category ids become contiguous through the dataset's
    ``thing_dataset_id_to_contiguous_id`` when set, else ``id - 1``; with ``dataset_name`` and no
    metadata, ``thing_classes`` and the mapping are taken from the JSON's categories."""
    data = _read_json(json_file)
    id_map = None
    if dataset_name is not None:
        meta = MetadataCatalog.get(dataset_name)
        if meta.get("thing_dataset_id_to_contiguous_id") is None:
            cats = sorted(data.get("categories", []), key=lambda c: c["id"])
            meta.thing_classes = [c["name"] for c in cats]
            meta.thing_dataset_id_to_contiguous_id = {c["id"]: i for i, c in enumerate(cats)}
        id_map = meta.thing_dataset_id_to_contiguous_id

    def contiguous(cat: int, loc: str) -> int:
        if id_map is None:
            return cat - 1
        if cat not in id_map:
            raise AnnotationError(f"{loc}: category_id={cat} is not a known category")
        return id_map[cat]

    anns_per_image: dict = {img["id"]: [] for img in data["images"]}
    seen: set = set()
    for ann in data.get("annotations", []):
        if ann.get("id") in seen:
            raise AnnotationError(f"{json_file}: annotation id={ann.get('id')} is not unique")
        seen.add(ann.get("id"))
        if ann.get("image_id") not in anns_per_image:
            raise AnnotationError(
                f"{where(json_file, ann.get('id'))}: image_id={ann.get('image_id')!r} is not in 'images'"
            )
        anns_per_image[ann["image_id"]].append(ann)
    dicts = []
    for img in sorted(data["images"], key=lambda i: i["id"]):
        image_id = img["id"]
        loc_img = f"{json_file}: image id={image_id}"
        record = {
            "file_name": _file_name(image_root, img),
            "height": img["height"],
            "width": img["width"],
            "not_exhaustive_category_ids": [
                contiguous(c, loc_img) for c in img.get("not_exhaustive_category_ids", [])
            ],
            "neg_category_ids": [contiguous(c, loc_img) for c in img.get("neg_category_ids", [])],
            "image_id": image_id,
        }
        objs = []
        for ann in anns_per_image[image_id]:
            loc = where(json_file, ann.get("id"), image_id)
            segm = ann.get("segmentation")
            if not isinstance(segm, list) or not segm:
                raise AnnotationError(f"{loc}: LVIS annotations need polygon segmentations")
            valid = check_polygons(segm, loc)
            if len(valid) != len(segm):
                raise AnnotationError(f"{loc}: a polygon has fewer than 3 points")
            obj = {
                "id": ann.get("id"),
                "bbox": check_bbox(ann.get("bbox"), 4, loc),
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": contiguous(ann.get("category_id"), loc),
                "segmentation": valid,
            }
            for key in extra_annotation_keys or []:
                obj[key] = ann[key]
            objs.append(obj)
        record["annotations"] = objs
        dicts.append(record)
    return dicts


def register_lvis_instances(name: str, metadata: dict, json_file: str, image_root: str) -> None:
    """Register an LVIS-format dataset (evaluator ``lvis``)."""
    DatasetCatalog.register(name, lambda: load_lvis_json(json_file, image_root, name))
    MetadataCatalog.get(name).set(
        json_file=json_file, image_root=image_root, evaluator_type="lvis", **metadata
    )
