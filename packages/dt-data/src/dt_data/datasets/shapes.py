"""``shapes``: a synthetic dataset generated deterministically from a seed on first use.

Each image shows circles, squares, triangles, stars and hexagons of random size, colour and rotation,
overlapping and occluding each other, on a textured two-region background (``sky`` above a wavy
horizon, ``ground`` below). Written once into a cache folder (``root`` argument, else
``$DT_DATASETS``, else ``~/.cache/dt``; under ``shapes/``):

- ``images/NNNNNN.jpg``; ``instances.json`` (COCO: visible-region polygons that reflect occlusion,
  XYWH boxes of the visible region, areas);
- ``sem_seg/NNNNNN.png`` (mode L; 0..4 the shapes, 5 sky, 6 ground);
- ``panoptic_stuff/NNNNNN.png`` (mode L; 0 any shape, 1 sky, 2 ground): the stuff-only label maps
  Panoptic FPN's semantic head trains on, where all things are one class 0 (what detectron2's
  ``prepare_panoptic_fpn.py`` makes of COCO panoptic for its ``_separated`` datasets);
- ``panoptic/NNNNNN.png`` (RGB, id = R + 256 G + 256^2 B) with ``panoptic.json`` (COCO panoptic);
- ``keypoints.json``: the instances with five keypoints each (COCO keypoints, pixel indices):
  the visible region's centroid and its top, bottom, left and right extreme points (the middle of
  the extreme row or column), all visible; a horizontal flip swaps ``left`` and ``right``;
- ``rotated.json``: the instances with rotated boxes (detectron2's rotated COCO json): ``bbox`` is
  the minimum-area rotated rectangle of the visible region's pixels, ``[cx, cy, w, h, angle]``
  (XYWHA_ABS, degrees counter-clockwise in [-90, 90)), ``area`` is ``w * h``.

Image ``i`` depends only on (seed, split, i), so sets of different sizes share their first images.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from dt_structures import BoxMode

from ..catalog import DatasetCatalog, MetadataCatalog
from .coco import load_coco_json
from .shapes_drawing import GROUND, SKY, THING_NAMES, generate_image, keypoints_of, polygon_of, rotated_box_of

__all__ = [
    "KEYPOINT_NAMES",
    "SHAPES_CATEGORIES",
    "generate_shapes",
    "load_shapes",
    "register_shapes",
    "shapes_root",
]

STUFF_NAMES = ("sky", "ground")
SHAPES_CATEGORIES = [
    {"id": i + 1, "name": n, "isthing": 1, "supercategory": "shape"} for i, n in enumerate(THING_NAMES)
] + [
    {"id": len(THING_NAMES) + i + 1, "name": n, "isthing": 0, "supercategory": "stuff"}
    for i, n in enumerate(STUFF_NAMES)
]
_COLORS = [
    (220, 20, 60),
    (0, 130, 200),
    (60, 180, 75),
    (245, 130, 48),
    (145, 30, 180),
    (70, 170, 230),
    (140, 110, 60),
]
KEYPOINT_NAMES = ("center", "top", "bottom", "left", "right")
KEYPOINT_FLIP_MAP = (("left", "right"),)
KEYPOINT_SKELETON = (("center", "top"), ("center", "bottom"), ("center", "left"), ("center", "right"))
KEYPOINT_OKS_SIGMAS = (0.05,) * len(KEYPOINT_NAMES)  # about COCO's sigmas for well-defined joints
_VERSION = 5  # 4: rotated.json; 5: panoptic_stuff
_SPLIT_CODES = {"train": 0, "val": 1}
# dataset kind -> (name suffix, evaluator type)
_KINDS = {
    "instances": ("", "coco"),
    "keypoints": ("_keypoints", "coco"),
    "panoptic": ("_panoptic", "coco_panoptic_seg"),
    "panoptic_separated": ("_panoptic_separated", "coco_panoptic_seg"),
    "sem_seg": ("_sem_seg", "sem_seg"),
    "rotated": ("_rotated", "coco_rotated"),
}


def shapes_root(root: str | os.PathLike | None = None) -> Path:
    """The folder holding generated shapes sets: ``root``/shapes, ``$DT_DATASETS``/shapes or
    ``~/.cache/dt/shapes``."""
    if root is None:
        root = os.environ.get("DT_DATASETS") or os.path.join(os.path.expanduser("~"), ".cache", "dt")
    return Path(root) / "shapes"


def _write_split(out: Path, split: str, num_images: int, image_size: int, seed: int, max_shapes: int) -> None:
    for sub in ("images", "sem_seg", "panoptic_stuff", "panoptic"):
        (out / sub).mkdir(parents=True)
    images, annotations, pan_annotations, keypoints, rotated = [], [], [], [], []
    ann_id = 1
    for i in range(num_images):
        rng = np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_CODES[split], i]))
        img, inst, kinds, stuff = generate_image(rng, image_size, max_shapes)
        stem = f"{i:06d}"
        cv2.imwrite(str(out / "images" / f"{stem}.jpg"), img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
        images.append({"id": i + 1, "file_name": f"{stem}.jpg", "height": image_size, "width": image_size})
        sem = stuff.copy()
        pan = np.zeros((image_size, image_size), np.int32)
        segments = []
        for label, name_idx in ((SKY, 0), (GROUND, 1)):
            region = (inst < 0) & (stuff == label)
            if region.any():
                segments.append(_segment(len(segments) + 1, len(THING_NAMES) + name_idx + 1, region))
                pan[region] = segments[-1]["id"]
        for j, kind in enumerate(kinds):
            region = inst == j
            sem[region] = kind
            seg = _segment(len(segments) + 1, kind + 1, region)
            segments.append(seg)
            pan[region] = seg["id"]
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": i + 1,
                    "category_id": kind + 1,
                    "bbox": seg["bbox"],
                    "area": seg["area"],
                    "iscrowd": 0,
                    "segmentation": [polygon_of(region)],
                }
            )
            keypoints.append(keypoints_of(region))
            rotated_box = rotated_box_of(region)
            rotated.append(rotated_box)
            ann_id += 1
        cv2.imwrite(str(out / "sem_seg" / f"{stem}.png"), sem)
        stuff_only = np.where(inst >= 0, 0, stuff - SKY + 1).astype(np.uint8)
        cv2.imwrite(str(out / "panoptic_stuff" / f"{stem}.png"), stuff_only)
        rgb = np.stack([pan % 256, pan // 256 % 256, pan // 65536], axis=-1).astype(np.uint8)
        cv2.imwrite(str(out / "panoptic" / f"{stem}.png"), rgb[:, :, ::-1])
        pan_annotations.append({"image_id": i + 1, "file_name": f"{stem}.png", "segments_info": segments})
    things = [c for c in SHAPES_CATEGORIES if c["isthing"]]
    with open(out / "instances.json", "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": things}, f)
    skeleton = [[KEYPOINT_NAMES.index(a) + 1, KEYPOINT_NAMES.index(b) + 1] for a, b in KEYPOINT_SKELETON]
    with open(out / "keypoints.json", "w") as f:
        json.dump(
            {
                "images": images,
                "annotations": [
                    a | {"keypoints": k, "num_keypoints": len(KEYPOINT_NAMES)}
                    for a, k in zip(annotations, keypoints, strict=True)
                ],
                "categories": [c | {"keypoints": list(KEYPOINT_NAMES), "skeleton": skeleton} for c in things],
            },
            f,
        )
    with open(out / "rotated.json", "w") as f:
        rotated_annotations = [
            {k: a[k] for k in ("id", "image_id", "category_id", "iscrowd")} | {"bbox": b, "area": b[2] * b[3]}
            for a, b in zip(annotations, rotated, strict=True)
        ]
        json.dump({"images": images, "annotations": rotated_annotations, "categories": things}, f)
    with open(out / "panoptic.json", "w") as f:
        json.dump({"images": images, "annotations": pan_annotations, "categories": SHAPES_CATEGORIES}, f)


def _segment(seg_id: int, category_id: int, region: np.ndarray) -> dict:
    ys, xs = np.nonzero(region)
    x0, y0 = int(xs.min()), int(ys.min())
    bbox = [x0, y0, int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0]
    return {"id": seg_id, "category_id": category_id, "iscrowd": 0, "bbox": bbox, "area": int(region.sum())}


def generate_shapes(
    split: str = "train",
    num_images: int = 1000,
    image_size: int = 256,
    seed: int = 0,
    root: str | os.PathLike | None = None,
    max_shapes: int = 6,
) -> Path:
    """Generate (once) a shapes split and return its folder. Concurrent callers are safe: each writes
    a temporary folder and the first to finish renames it into place."""
    if split not in _SPLIT_CODES:
        raise ValueError(f"generate_shapes: split must be one of {sorted(_SPLIT_CODES)}, got {split!r}")
    if num_images <= 0 or image_size < 32 or max_shapes <= 0:
        raise ValueError(
            f"generate_shapes: need num_images > 0, image_size >= 32, max_shapes > 0; "
            f"got {num_images}, {image_size}, {max_shapes}"
        )
    base = shapes_root(root)
    out = base / f"{split}-n{num_images}-s{image_size}-m{max_shapes}-seed{seed}-v{_VERSION}"
    if (out / "panoptic.json").is_file():
        return out
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=base))
    try:
        _write_split(tmp / "data", split, num_images, image_size, seed, max_shapes)
        try:
            os.rename(tmp / "data", out)
        except OSError:
            if not (out / "panoptic.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _metadata(folder: Path, kind: str) -> dict:
    things = [c for c in SHAPES_CATEGORIES if c["isthing"]]
    keypoint_metadata = {
        "json_file": str(folder / "keypoints.json"),
        "keypoint_names": list(KEYPOINT_NAMES),
        "keypoint_flip_map": [list(pair) for pair in KEYPOINT_FLIP_MAP],
        "keypoint_connection_rules": [(a, b, (255, 255, 0)) for a, b in KEYPOINT_SKELETON],
        "keypoint_oks_sigmas": list(KEYPOINT_OKS_SIGMAS),
    }
    return (
        {
            "thing_classes": [c["name"] for c in things],
            "thing_colors": _COLORS[: len(things)],
            "thing_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(things)},
            "stuff_classes": [c["name"] for c in SHAPES_CATEGORIES],
            "stuff_colors": _COLORS,
            "stuff_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(SHAPES_CATEGORIES)},
            "image_root": str(folder / "images"),
            "json_file": str(folder / "instances.json"),
            "sem_seg_root": str(folder / "sem_seg"),
            "panoptic_root": str(folder / "panoptic"),
            "panoptic_json": str(folder / "panoptic.json"),
            "ignore_label": 255,
            "label_divisor": 1000,
        }
        | (keypoint_metadata if kind == "keypoints" else {})
        | (_separated_metadata(folder) if kind == "panoptic_separated" else {})
        | ({"json_file": str(folder / "rotated.json")} if kind == "rotated" else {})
    )


def _separated_metadata(folder: Path) -> dict:
    """The stuff side of a ``_panoptic_separated`` set, as detectron2's separated COCO panoptic: the
    semantic classes are "things" (0, every shape) and the stuff categories (1, 2), dataset id 0 for
    the things."""
    stuff = [c for c in SHAPES_CATEGORIES if not c["isthing"]]
    return {
        "stuff_classes": ["things"] + [c["name"] for c in stuff],
        "stuff_colors": [(128, 128, 128)] + _COLORS[len(THING_NAMES) :],
        "stuff_dataset_id_to_contiguous_id": {0: 0} | {c["id"]: i + 1 for i, c in enumerate(stuff)},
        "sem_seg_root": str(folder / "panoptic_stuff"),
    }


def load_shapes(
    split: str = "train",
    num_images: int = 1000,
    image_size: int = 256,
    seed: int = 0,
    root: str | os.PathLike | None = None,
    kind: str = "instances",
    dataset_name: str | None = None,
) -> list[dict]:
    """Dataset dicts of a shapes split (generated on first use). ``kind``: ``"instances"`` (COCO
    dicts), ``"keypoints"`` (COCO dicts whose annotations have ``keypoints``), ``"panoptic"`` (plus
    ``sem_seg_file_name``, ``pan_seg_file_name`` and ``segments_info`` with contiguous
    ``category_id`` and ``isthing``), ``"panoptic_separated"`` (the same, with ``sem_seg_file_name``
    naming the stuff-only map of ``panoptic_stuff/``: 0 things, 1 sky, 2 ground), ``"sem_seg"``
    (``file_name`` and ``sem_seg_file_name`` only) or ``"rotated"`` (COCO dicts whose annotations
    hold only the rotated ``bbox`` of ``rotated.json``, ``bbox_mode`` XYWHA_ABS, ``category_id`` and
    ``iscrowd``)."""
    if kind not in _KINDS:
        raise ValueError(f"load_shapes: kind must be one of {', '.join(_KINDS)}, got {kind!r}")
    folder = generate_shapes(split, num_images, image_size, seed, root)
    json_name = "keypoints.json" if kind == "keypoints" else "instances.json"
    dicts = load_coco_json(str(folder / json_name), str(folder / "images"), dataset_name)
    if dataset_name is None:  # load_coco_json maps ids to contiguous ones only for a named dataset
        for d in dicts:
            for anno in d["annotations"]:
                anno["category_id"] -= 1
    if kind in ("instances", "keypoints"):
        return dicts
    if kind == "rotated":
        with open(folder / "rotated.json") as f:
            boxes = {a["id"]: a["bbox"] for a in json.load(f)["annotations"]}
        for d in dicts:
            d["annotations"] = [
                {"bbox": boxes[a["id"]], "bbox_mode": BoxMode.XYWHA_ABS}
                | {k: a[k] for k in ("id", "category_id", "iscrowd")}
                for a in d["annotations"]
            ]
        return dicts
    stem = [os.path.splitext(os.path.basename(d["file_name"]))[0] for d in dicts]
    if kind == "sem_seg":
        return [
            {k: d[k] for k in ("file_name", "height", "width", "image_id")}
            | {"sem_seg_file_name": str(folder / "sem_seg" / f"{s}.png")}
            for d, s in zip(dicts, stem, strict=True)
        ]
    with open(folder / "panoptic.json") as f:
        pan = {a["image_id"]: a for a in json.load(f)["annotations"]}
    contiguous = {c["id"]: i for i, c in enumerate(c for c in SHAPES_CATEGORIES if c["isthing"])}
    stuff_contiguous = {c["id"]: i for i, c in enumerate(SHAPES_CATEGORIES)}
    sem_seg_folder = folder / ("panoptic_stuff" if kind == "panoptic_separated" else "sem_seg")
    for d, s in zip(dicts, stem, strict=True):
        d["sem_seg_file_name"] = str(sem_seg_folder / f"{s}.png")
        d["pan_seg_file_name"] = str(folder / "panoptic" / pan[d["image_id"]]["file_name"])
        d["segments_info"] = [
            seg
            | {
                "category_id": contiguous[seg["category_id"]]
                if seg["category_id"] in contiguous
                else stuff_contiguous[seg["category_id"]],
                "isthing": seg["category_id"] in contiguous,
            }
            for seg in pan[d["image_id"]]["segments_info"]
        ]
    return dicts


def register_shapes(
    prefix: str = "shapes",
    num_train: int = 1000,
    num_val: int = 200,
    image_size: int = 256,
    seed: int = 0,
    root: str | os.PathLike | None = None,
) -> list[str]:
    """Register ``{prefix}_train``/``{prefix}_val`` (COCO instances, evaluator ``coco``) and their
    ``_keypoints`` (evaluator ``coco``; keypoint names, flip map and OKS sigmas in the metadata),
    ``_panoptic`` (evaluator ``coco_panoptic_seg``; semantic labels over all 7 categories, as
    Panoptic-DeepLab trains on), ``_panoptic_separated`` (the same panoptic ground truth; semantic
    labels things = 0, sky, ground, as Panoptic FPN trains on), ``_sem_seg`` (evaluator ``sem_seg``) and
    ``_rotated`` (rotated boxes, evaluator ``coco_rotated``) variants. Nothing is generated until a
    dataset is first loaded. Returns the registered names."""
    names = []
    root = shapes_root(root).parent  # resolve $DT_DATASETS now, so metadata and data agree
    for split, n in (("train", num_train), ("val", num_val)):
        folder = shapes_root(root) / f"{split}-n{n}-s{image_size}-m6-seed{seed}-v{_VERSION}"
        for kind, (suffix, evaluator) in _KINDS.items():
            name = f"{prefix}_{split}{suffix}"

            def load(split: str = split, n: int = n, kind: str = kind) -> list[dict]:
                return load_shapes(split, n, image_size, seed, root, kind)

            DatasetCatalog.register(name, load)
            MetadataCatalog.get(name).set(evaluator_type=evaluator, **_metadata(folder, kind))
            names.append(name)
    return names
