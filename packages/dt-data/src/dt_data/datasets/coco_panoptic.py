"""COCO panoptic annotations, standard and "separated" (detectron2 semantics)."""

from __future__ import annotations

import copy
import json
import os

from ..catalog import DatasetCatalog, MetadataCatalog
from .coco import load_coco_json, load_sem_seg

__all__ = [
    "load_coco_panoptic_json",
    "merge_to_panoptic",
    "register_coco_panoptic",
    "register_coco_panoptic_separated",
]


def load_coco_panoptic_json(json_file: str, image_dir: str, gt_dir: str, meta: dict) -> list[dict]:
    """Read a COCO panoptic JSON. Each dict has ``file_name`` (``image_dir``/<stem>.jpg),
    ``image_id``, ``pan_seg_file_name`` (``gt_dir``/<png>) and ``segments_info`` whose
    ``category_id`` is made contiguous through ``meta["thing_dataset_id_to_contiguous_id"]`` (things,
    ``isthing=True``) or ``meta["stuff_dataset_id_to_contiguous_id"]`` (stuff, ``isthing=False``)."""
    for key in ("thing_dataset_id_to_contiguous_id", "stuff_dataset_id_to_contiguous_id"):
        if key not in meta:
            raise ValueError(f"load_coco_panoptic_json: meta needs {key!r}")
    try:
        with open(json_file) as f:
            json_info = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"panoptic annotation file not found: {json_file}") from None
    things, stuff = meta["thing_dataset_id_to_contiguous_id"], meta["stuff_dataset_id_to_contiguous_id"]
    ret = []
    for ann in json_info["annotations"]:
        segments = []
        for seg in ann["segments_info"]:
            seg = dict(seg)
            cat = seg["category_id"]
            if cat in things:
                seg["category_id"], seg["isthing"] = things[cat], True
            elif cat in stuff:
                seg["category_id"], seg["isthing"] = stuff[cat], False
            else:
                raise ValueError(
                    f"{json_file}: segment id={seg.get('id')} of image id={ann['image_id']} has unknown "
                    f"category_id={cat}"
                )
            segments.append(seg)
        ret.append(
            {
                "file_name": os.path.join(image_dir, os.path.splitext(ann["file_name"])[0] + ".jpg"),
                "image_id": int(ann["image_id"]),
                "pan_seg_file_name": os.path.join(gt_dir, ann["file_name"]),
                "segments_info": segments,
            }
        )
    if not ret:
        raise ValueError(f"{json_file}: no annotations (images in {image_dir})")
    for key in ("file_name", "pan_seg_file_name"):
        if not os.path.isfile(ret[0][key]):
            raise FileNotFoundError(f"{json_file}: {key} {ret[0][key]} does not exist")
    return ret


def register_coco_panoptic(
    name: str,
    metadata: dict,
    image_root: str,
    panoptic_root: str,
    panoptic_json: str,
    instances_json: str | None = None,
) -> None:
    """Register the standard panoptic dataset ``name`` (evaluator ``coco_panoptic_seg``)."""
    DatasetCatalog.register(
        name, lambda: load_coco_panoptic_json(panoptic_json, image_root, panoptic_root, metadata)
    )
    MetadataCatalog.get(name).set(
        panoptic_root=panoptic_root,
        image_root=image_root,
        panoptic_json=panoptic_json,
        json_file=instances_json,
        evaluator_type="coco_panoptic_seg",
        ignore_label=255,
        label_divisor=1000,
        **metadata,
    )


def merge_to_panoptic(detection_dicts: list[dict], sem_seg_dicts: list[dict]) -> list[dict]:
    """Add the semantic keys (``sem_seg_file_name``) to the instance dicts of the same image."""
    by_file = {d["file_name"]: d for d in sem_seg_dicts}
    if not by_file:
        raise ValueError("merge_to_panoptic: no semantic segmentation dicts")
    out = []
    for det in detection_dicts:
        if det["file_name"] not in by_file:
            raise ValueError(f"merge_to_panoptic: no semantic label map for {det['file_name']}")
        merged = copy.copy(det)
        merged.update(by_file[det["file_name"]])
        out.append(merged)
    return out


def register_coco_panoptic_separated(
    name: str,
    metadata: dict,
    image_root: str,
    panoptic_root: str,
    panoptic_json: str,
    sem_seg_root: str,
    instances_json: str,
) -> None:
    """Register ``{name}_separated`` (instances from ``instances_json`` + stuff label maps from
    ``sem_seg_root``, for Panoptic FPN) and ``{name}_stuffonly`` (semantic only)."""
    panoptic_name = name + "_separated"
    DatasetCatalog.register(
        panoptic_name,
        lambda: merge_to_panoptic(
            load_coco_json(instances_json, image_root, panoptic_name), load_sem_seg(sem_seg_root, image_root)
        ),
    )
    MetadataCatalog.get(panoptic_name).set(
        panoptic_root=panoptic_root,
        image_root=image_root,
        panoptic_json=panoptic_json,
        sem_seg_root=sem_seg_root,
        json_file=instances_json,
        evaluator_type="coco_panoptic_seg",
        ignore_label=255,
        **metadata,
    )
    semantic_name = name + "_stuffonly"
    DatasetCatalog.register(semantic_name, lambda: load_sem_seg(sem_seg_root, image_root))
    MetadataCatalog.get(semantic_name).set(
        sem_seg_root=sem_seg_root,
        image_root=image_root,
        evaluator_type="sem_seg",
        ignore_label=255,
        **metadata,
    )
