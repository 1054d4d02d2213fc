"""``shapes``: a synthetic dataset generated deterministically from a seed on first use.

Each image shows circles, squares, triangles, stars and hexagons of random size, colour and rotation,
overlapping and occluding each other, on a textured two-region background (``sky`` above a wavy
horizon, ``ground`` below). Written once into a cache folder (``root`` argument, else
``$DT_DATASETS``, else ``~/.cache/dt``; under ``shapes/``):

- ``images/NNNNNN.jpg``; ``instances.json`` (COCO: visible-region polygons that reflect occlusion,
  XYWH boxes of the visible region, areas);
- ``sem_seg/NNNNNN.png`` (mode L; 0..4 the shapes, 5 sky, 6 ground);
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

__all__ = [
    "KEYPOINT_NAMES",
    "SHAPES_CATEGORIES",
    "generate_shapes",
    "load_shapes",
    "register_shapes",
    "shapes_root",
]

THING_NAMES = ("circle", "square", "triangle", "star", "hexagon")
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
_VERSION = 4  # 4: rotated.json
_SPLIT_CODES = {"train": 0, "val": 1}
# dataset kind -> (name suffix, evaluator type)
_KINDS = {
    "instances": ("", "coco"),
    "keypoints": ("_keypoints", "coco"),
    "panoptic": ("_panoptic", "coco_panoptic_seg"),
    "sem_seg": ("_sem_seg", "sem_seg"),
    "rotated": ("_rotated", "coco_rotated"),
}


def shapes_root(root: str | os.PathLike | None = None) -> Path:
    """The folder holding generated shapes sets: ``root``/shapes, ``$DT_DATASETS``/shapes or
    ``~/.cache/dt/shapes``."""
    if root is None:
        root = os.environ.get("DT_DATASETS") or os.path.join(os.path.expanduser("~"), ".cache", "dt")
    return Path(root) / "shapes"


def _regular_polygon(n: int, radius: float, angle: float) -> np.ndarray:
    t = angle + np.arange(n) * 2 * np.pi / n
    return np.stack([np.cos(t), np.sin(t)], axis=1) * radius


def _shape_polygon(kind: int, radius: float, angle: float) -> np.ndarray:
    """Vertices ``[K, 2]`` around the origin."""
    if kind == 0:
        return _regular_polygon(64, radius, angle)
    if kind == 1:
        return _regular_polygon(4, radius * 1.15, angle)
    if kind == 2:
        return _regular_polygon(3, radius * 1.25, angle)
    if kind == 3:
        star = _regular_polygon(10, radius * 1.2, angle)
        star[1::2] *= 0.45
        return star
    return _regular_polygon(6, radius * 1.05, angle)


def _fill(poly: np.ndarray, size: int) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(poly * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int, amplitude: float) -> np.ndarray:
    grid = rng.normal(0.0, amplitude, (cells, cells)).astype(np.float32)
    return cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """RGB float image ``[S, S, 3]`` and stuff label map ``[S, S]`` (5 sky, 6 ground)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    horizon = size * rng.uniform(0.3, 0.7) + size * rng.uniform(0.02, 0.08) * np.sin(
        xx * rng.uniform(1.0, 4.0) * 2 * np.pi / size + rng.uniform(0, 2 * np.pi)
    )
    sky = yy < horizon
    sky_color = rng.uniform(60, 230, 3).astype(np.float32)
    ground_color = rng.uniform(30, 200, 3).astype(np.float32)
    shade = (yy * np.float32(rng.uniform(-60, 60) / size)) + _smooth_noise(rng, size, 6, 18.0)
    img = sky_color + shade[..., None]  # [S, S, 3] float32
    theta = rng.uniform(0, np.pi)
    period = np.float32(rng.uniform(6, 20))
    if rng.random() < 0.5:
        phase = xx * np.float32(np.cos(theta) * 2 * np.pi) + yy * np.float32(np.sin(theta) * 2 * np.pi)
        pattern = np.sin(phase / period)
    else:
        pattern = ((xx // period + yy // period) % 2) * 2 - 1
    ground_shade = pattern * np.float32(rng.uniform(10, 35)) + _smooth_noise(rng, size, 8, 12.0)
    ground = ~sky
    img[ground] = ground_color + ground_shade[ground][:, None]
    labels = np.where(sky, 5, 6).astype(np.uint8)
    return img, labels


def _visible_ok(region: np.ndarray, full_area: int, min_area: int) -> bool:
    """One connected region without holes, big enough and not too occluded."""
    area = int(region.sum())
    if area < max(min_area, 0.3 * full_area):
        return False
    contours, hierarchy = cv2.findContours(region.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    return len(contours) == 1 and hierarchy is not None


def _polygon_of(region: np.ndarray) -> list[float]:
    """Polygon (flat x, y list) of a simply connected region, traced 0.25 px inside the pixel edges so
    that rasterizing it gives back the region."""
    up = cv2.resize(region.astype(np.uint8), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = cv2.approxPolyDP(max(contours, key=cv2.contourArea), 1.0, True).reshape(-1, 2)
    return ((contour.astype(np.float64) + 0.5) / 2).round(2).reshape(-1).tolist()


def _keypoints_of(region: np.ndarray) -> list[float]:
    """COCO keypoints ``[x, y, v] * 5`` (pixel indices, v = 2) of a region ``bool[H, W]``, in
    ``KEYPOINT_NAMES`` order; an extreme point is the middle of the region's pixels on its extreme
    row or column, so that flipping the region flips its keypoints exactly."""
    ys, xs = np.nonzero(region)

    def middle(values: np.ndarray) -> float:
        return float(values.min() + values.max()) / 2

    top, bottom, left, right = ys.min(), ys.max(), xs.min(), xs.max()
    points = [
        (float(xs.mean()), float(ys.mean())),
        (middle(xs[ys == top]), float(top)),
        (middle(xs[ys == bottom]), float(bottom)),
        (float(left), middle(ys[xs == left])),
        (float(right), middle(ys[xs == right])),
    ]
    return [round(v, 2) for x, y in points for v in (x, y, 2)]


def _rotated_box_of(region: np.ndarray) -> list[float]:
    """The minimum-area rotated rectangle around the pixels of ``region`` (bool ``[H, W]``; pixel
    ``(x, y)`` covers ``[x, x + 1] x [y, y + 1]``): ``[cx, cy, w, h, angle]``, angle in degrees
    counter-clockwise on screen in ``[-90, 90)``, ``w`` along the rotated x axis."""
    ys, xs = np.nonzero(region)
    corners = np.concatenate([np.stack([xs + dx, ys + dy], axis=1) for dx in (0, 1) for dy in (0, 1)])
    hull = cv2.convexHull(corners.astype(np.float32))
    points = cv2.boxPoints(cv2.minAreaRect(hull)).astype(np.float64)  # [4, 2], consecutive corners
    edge_w, edge_h = points[1] - points[0], points[2] - points[1]
    angle = float(np.rad2deg(np.arctan2(-edge_w[1], edge_w[0])))
    angle = (angle + 90.0) % 180.0 - 90.0  # the same rectangle turned by 180 degrees
    cx, cy = points.mean(axis=0)
    return [float(cx), float(cy), float(np.hypot(*edge_w)), float(np.hypot(*edge_h)), angle]


def _pick_center(rng: np.random.Generator, size: int, radius: float, centers: list[np.ndarray]) -> np.ndarray:
    """Anywhere in the central 80%, or (half the time) overlapping an earlier shape."""
    if centers and rng.random() < 0.5:
        near = centers[int(rng.integers(len(centers)))]
        offset = rng.normal(0, 1, 2)
        center = near + offset / (np.linalg.norm(offset) + 1e-9) * radius * rng.uniform(1.0, 1.8)
        return np.clip(center, 0.05 * size, 0.95 * size)
    return rng.uniform(0.1 * size, 0.9 * size, 2)


def _generate_image(
    rng: np.random.Generator, size: int, max_shapes: int
) -> tuple[np.ndarray, np.ndarray, list[int], np.ndarray]:
    """Returns the RGB image ``uint8[S, S, 3]``, the instance index map ``int32[S, S]`` (-1 =
    background), the category index of each instance kept and the stuff label map ``uint8[S, S]``."""
    img, stuff = _background(rng, size)
    inst = np.full((size, size), -1, np.int32)
    kept: list[tuple[int, int]] = []  # (category index, full area)
    centers: list[np.ndarray] = []
    min_area = max(12, (size // 32) ** 2)
    for _ in range(int(rng.integers(1, max_shapes + 1))):
        kind = int(rng.integers(len(THING_NAMES)))
        radius = size * rng.uniform(0.07, 0.22)
        center = _pick_center(rng, size, radius, centers)
        for _attempt in range(20):
            full = _fill(_shape_polygon(kind, radius, rng.uniform(0, 2 * np.pi)) + center, size)
            trial = inst.copy()
            trial[full] = len(kept)
            ok = _visible_ok(full, int(full.sum()), min_area) and all(
                _visible_ok(trial == j, area, min_area) for j, (_, area) in enumerate(kept)
            )
            if ok:
                break
            center = _pick_center(rng, size, radius, centers)
        else:
            continue
        color = rng.uniform(0, 255, 3).astype(np.float32)
        shade = _smooth_noise(rng, size, 4, 15.0)[full] + 4 * rng.standard_normal(int(full.sum()), np.float32)
        img[full] = color + shade[:, None]
        inst = trial
        kept.append((kind, int(full.sum())))
        centers.append(center)
    img += 3 * rng.standard_normal(img.shape, np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img, inst, [k for k, _ in kept], stuff


def _write_split(out: Path, split: str, num_images: int, image_size: int, seed: int, max_shapes: int) -> None:
    for sub in ("images", "sem_seg", "panoptic"):
        (out / sub).mkdir(parents=True)
    images, annotations, pan_annotations, keypoints, rotated = [], [], [], [], []
    ann_id = 1
    for i in range(num_images):
        rng = np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_CODES[split], i]))
        img, inst, kinds, stuff = _generate_image(rng, image_size, max_shapes)
        stem = f"{i:06d}"
        cv2.imwrite(str(out / "images" / f"{stem}.jpg"), img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
        images.append({"id": i + 1, "file_name": f"{stem}.jpg", "height": image_size, "width": image_size})
        sem = stuff.copy()
        pan = np.zeros((image_size, image_size), np.int32)
        segments = []
        for label, name_idx in ((5, 0), (6, 1)):
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
                    "segmentation": [_polygon_of(region)],
                }
            )
            keypoints.append(_keypoints_of(region))
            rotated_box = _rotated_box_of(region)
            rotated.append(rotated_box)
            ann_id += 1
        cv2.imwrite(str(out / "sem_seg" / f"{stem}.png"), sem)
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
        | ({"json_file": str(folder / "rotated.json")} if kind == "rotated" else {})
    )


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
    ``category_id`` and ``isthing``), ``"sem_seg"`` (``file_name`` and ``sem_seg_file_name`` only) or
    ``"rotated"`` (COCO dicts whose annotations hold only the rotated ``bbox`` of ``rotated.json``,
    ``bbox_mode`` XYWHA_ABS, ``category_id`` and ``iscrowd``)."""
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
    for d, s in zip(dicts, stem, strict=True):
        d["sem_seg_file_name"] = str(folder / "sem_seg" / f"{s}.png")
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
    ``_panoptic`` (evaluator ``coco_panoptic_seg``), ``_sem_seg`` (evaluator ``sem_seg``) and
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
