"""Cityscapes instances and semantic segmentation from the ``gtFine`` files (detectron2 semantics).

Instances come from the ``*_gtFine_polygons.json`` files by default (detectron2's ``from_json=True``:
overlaps resolved with shapely so each instance keeps only its visible part), or from
``*_gtFine_instanceIds.png`` (``from_json=False``: ids >= 1000 are ``label_id * 1000 + k``, crowd
regions carry the bare label id); semantic maps are the ``*_gtFine_labelTrainIds.png`` files made by
cityscapesScripts' ``createTrainIdLabelImgs``.
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

import cv2
import numpy as np
import pycocotools.mask as mask_util
import shapely
from PIL import Image

from dt_structures import BoxMode

from ..catalog import DatasetCatalog, MetadataCatalog
from ._validate import AnnotationError

__all__ = [
    "CITYSCAPES_LABELS",
    "load_cityscapes_instances",
    "load_cityscapes_semantic",
    "register_cityscapes",
]


class Label(NamedTuple):
    name: str
    id: int
    train_id: int
    has_instances: bool
    ignore_in_eval: bool


CITYSCAPES_LABELS = [
    Label(*row)
    for row in [
        ("unlabeled", 0, 255, False, True), ("ego vehicle", 1, 255, False, True),
        ("rectification border", 2, 255, False, True), ("out of roi", 3, 255, False, True),
        ("static", 4, 255, False, True), ("dynamic", 5, 255, False, True), ("ground", 6, 255, False, True),
        ("road", 7, 0, False, False), ("sidewalk", 8, 1, False, False), ("parking", 9, 255, False, True),
        ("rail track", 10, 255, False, True), ("building", 11, 2, False, False),
        ("wall", 12, 3, False, False), ("fence", 13, 4, False, False),
        ("guard rail", 14, 255, False, True), ("bridge", 15, 255, False, True),
        ("tunnel", 16, 255, False, True), ("pole", 17, 5, False, False), ("polegroup", 18, 255, False, True),
        ("traffic light", 19, 6, False, False), ("traffic sign", 20, 7, False, False),
        ("vegetation", 21, 8, False, False), ("terrain", 22, 9, False, False), ("sky", 23, 10, False, False),
        ("person", 24, 11, True, False), ("rider", 25, 12, True, False), ("car", 26, 13, True, False),
        ("truck", 27, 14, True, False), ("bus", 28, 15, True, False), ("caravan", 29, 255, True, True),
        ("trailer", 30, 255, True, True), ("train", 31, 16, True, False), ("motorcycle", 32, 17, True, False),
        ("bicycle", 33, 18, True, False), ("license plate", -1, -1, False, True),
    ]
]  # fmt: skip
_ID2LABEL = {lb.id: lb for lb in CITYSCAPES_LABELS}
_NAME2LABEL = {lb.name: lb for lb in CITYSCAPES_LABELS}
_THINGS = [lb for lb in CITYSCAPES_LABELS if lb.has_instances and not lb.ignore_in_eval]
THING_CLASSES = [lb.name for lb in _THINGS]
STUFF_CLASSES = [
    lb.name for lb in sorted(CITYSCAPES_LABELS, key=lambda x: x.train_id) if 0 <= lb.train_id < 255
]


def _cityscapes_files(image_dir: str, gt_dir: str) -> list[tuple[str, str, str, str]]:
    """(image, instanceIds, labelIds, polygons json) per image, over ``image_dir``/<city>/."""
    if not os.path.isdir(image_dir):
        raise FileNotFoundError(f"Cityscapes image directory not found: {image_dir}")
    files = []
    suffix = "leftImg8bit.png"
    for city in sorted(os.listdir(image_dir)):
        city_img_dir = os.path.join(image_dir, city)
        city_gt_dir = os.path.join(gt_dir, city)
        for basename in sorted(os.listdir(city_img_dir)):
            if not basename.endswith(suffix):
                continue
            stem = basename[: -len(suffix)]
            gt = os.path.join(city_gt_dir, stem + "gtFine_")
            files.append(
                (
                    os.path.join(city_img_dir, basename),
                    gt + "instanceIds.png",
                    gt + "labelIds.png",
                    gt + "polygons.json",
                )
            )
    if not files:
        raise FileNotFoundError(f"no *{suffix} images found under {image_dir}")
    return files


def load_cityscapes_instances(
    image_dir: str, gt_dir: str, from_json: bool = True, to_polygons: bool = True
) -> list[dict]:
    """Instance dicts for Cityscapes ("leftImg8bit/train" and "gtFine/train"-style folders);
    ``category_id`` is contiguous over the 8 instance classes.

    ``from_json`` (detectron2's default) reads ``*_gtFine_polygons.json``: boxes are the float XYXY_ABS
    bounds of each instance's visible polygons, ``*group`` labels are crowd, and segmentation is a list
    of flat polygons (``to_polygons`` must be True). Otherwise ``*_gtFine_instanceIds.png`` is read:
    boxes are pixel-index extents and masks are outer contour polygons (``to_polygons``) or RLE.
    """
    if from_json and not to_polygons:
        raise ValueError("to_polygons must be True when from_json=True (the JSON annotations are polygons)")
    contiguous = {lb.id: i for i, lb in enumerate(_THINGS)}
    dicts = []
    for image_file, instance_file, _, json_file in _cityscapes_files(image_dir, gt_dir):
        if from_json:
            record = _instances_from_json(image_file, json_file)
        else:
            record = _instances_from_png(image_file, instance_file, to_polygons)
        for anno in record["annotations"]:
            anno["category_id"] = contiguous[anno["category_id"]]
        dicts.append(record)
    return dicts


def _json_label(label_name: Any, json_file: str, index: int) -> Label:
    label = _NAME2LABEL.get(label_name) if isinstance(label_name, str) else None
    if label is None and isinstance(label_name, str) and label_name.endswith("group"):
        label = _NAME2LABEL.get(label_name[: -len("group")])
    if label is None:
        raise AnnotationError(f"{json_file}: object {index} has unknown label {label_name!r}")
    return label


def _instances_from_json(image_file: str, json_file: str) -> dict:
    """One image from its polygons JSON. cityscapesScripts draws objects in order, later ones over
    earlier ones; walking them in reverse, each polygon keeps only what no later object covers."""
    try:
        with open(json_file) as f:
            info = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"Cityscapes polygons file not found: {json_file}") from None
    except json.JSONDecodeError as e:
        raise AnnotationError(f"{json_file}: malformed JSON: {e}") from None
    objects = info.get("objects", [])
    covered = shapely.Polygon()
    annos = []
    for index in range(len(objects) - 1, -1, -1):
        obj = objects[index]
        if "deleted" in obj:
            continue
        label = _json_label(obj.get("label"), json_file, index)
        if label.id < 0:
            continue
        try:
            coords = np.asarray(obj["polygon"], dtype=np.float32).reshape(-1, 2) + 0.5
            # +0.5: pixel centres; buffer(0.5) dilates like PIL's rasterization in cityscapesScripts
            shape = shapely.Polygon(coords).buffer(0.5, quad_segs=4)
        except (KeyError, TypeError, ValueError) as e:
            raise AnnotationError(f"{json_file}: object {index} has a malformed polygon: {e}") from None
        if not label.has_instances or label.ignore_in_eval:
            covered = covered.union(shape)  # not stored, but it still hides what lies beneath it
            continue
        visible = shape.difference(covered)
        if visible.is_empty:
            continue
        covered = covered.union(shape)
        if isinstance(visible, shapely.Polygon):
            parts = [visible]
        elif isinstance(visible, shapely.MultiPolygon):
            parts = list(visible.geoms)
        else:
            raise AnnotationError(
                f"{json_file}: object {index}: unexpected visible geometry {visible.geom_type}"
            )
        # exterior rings only (holes are not representable in COCO polygons); the closing vertex stays
        segmentation = [np.asarray(p.exterior.coords, dtype=np.float64).reshape(-1).tolist() for p in parts]
        annos.append(
            {
                "iscrowd": obj["label"].endswith("group"),
                "category_id": label.id,
                "segmentation": segmentation,
                "bbox": [float(v) for v in visible.bounds],
                "bbox_mode": BoxMode.XYXY_ABS,
            }
        )
    return {
        "file_name": image_file,
        "image_id": os.path.basename(image_file),
        "height": info["imgHeight"],
        "width": info["imgWidth"],
        "annotations": annos,
    }


def _instances_from_png(image_file: str, instance_file: str, to_polygons: bool) -> dict:
    """One image from its ``instanceIds`` PNG (detectron2's ``from_json=False`` path)."""
    try:
        inst_image = np.asarray(Image.open(instance_file), order="F")
    except FileNotFoundError:
        raise FileNotFoundError(f"Cityscapes instance map not found: {instance_file}") from None
    annos = []
    for instance_id in np.unique(inst_image[inst_image >= 24]):
        label_id = int(instance_id // 1000 if instance_id >= 1000 else instance_id)
        label = _ID2LABEL.get(label_id)
        if label is None:
            raise ValueError(f"{instance_file}: instance id {instance_id} has unknown label id {label_id}")
        if not label.has_instances or label.ignore_in_eval:
            continue
        mask = np.asarray(inst_image == instance_id, dtype=np.uint8, order="F")
        ys, xs = np.nonzero(mask)
        xmin, xmax, ymin, ymax = int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())
        if xmax <= xmin or ymax <= ymin:
            continue
        anno = {
            "iscrowd": bool(instance_id < 1000),
            "category_id": label.id,
            "bbox": [float(xmin), float(ymin), float(xmax), float(ymax)],
            "bbox_mode": BoxMode.XYXY_ABS,
        }
        if to_polygons:
            contours = cv2.findContours(mask.copy(), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)[-2]
            polygons = [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]
            if not polygons:
                continue
            anno["segmentation"] = polygons
        else:
            anno["segmentation"] = mask_util.encode(mask[:, :, None])[0]
        annos.append(anno)
    return {
        "file_name": image_file,
        "image_id": os.path.basename(image_file),
        "height": inst_image.shape[0],
        "width": inst_image.shape[1],
        "annotations": annos,
    }


def load_cityscapes_semantic(image_dir: str, gt_dir: str) -> list[dict]:
    """Semantic dicts: ``file_name``, ``sem_seg_file_name`` (the ``labelTrainIds`` PNG), ``height``,
    ``width`` (from the polygons JSON, else from the label map)."""
    dicts = []
    for image_file, _, label_file, json_file in _cityscapes_files(image_dir, gt_dir):
        train_ids = label_file.replace("labelIds", "labelTrainIds")
        if not os.path.isfile(train_ids):
            raise FileNotFoundError(
                f"{train_ids} not found; create it with "
                "cityscapesscripts/preparation/createTrainIdLabelImgs.py"
            )
        if os.path.isfile(json_file):
            with open(json_file) as f:
                info = json.load(f)
            height, width = info["imgHeight"], info["imgWidth"]
        else:
            with Image.open(train_ids) as im:
                width, height = im.size
        dicts.append(
            {"file_name": image_file, "sem_seg_file_name": train_ids, "height": height, "width": width}
        )
    return dicts


def register_cityscapes(name: str, image_dir: str, gt_dir: str) -> None:
    """Register ``{name}_instance_seg`` (evaluator ``cityscapes_instance``; instances from the polygons
    JSON, as detectron2's builtin Cityscapes sets) and ``{name}_sem_seg`` (evaluator
    ``cityscapes_sem_seg``)."""
    meta = {"thing_classes": THING_CLASSES, "stuff_classes": STUFF_CLASSES}
    inst, sem = f"{name}_instance_seg", f"{name}_sem_seg"
    DatasetCatalog.register(inst, lambda: load_cityscapes_instances(image_dir, gt_dir))
    MetadataCatalog.get(inst).set(
        image_dir=image_dir, gt_dir=gt_dir, evaluator_type="cityscapes_instance", **meta
    )
    DatasetCatalog.register(sem, lambda: load_cityscapes_semantic(image_dir, gt_dir))
    MetadataCatalog.get(sem).set(
        image_dir=image_dir, gt_dir=gt_dir, evaluator_type="cityscapes_sem_seg", ignore_label=255, **meta
    )
