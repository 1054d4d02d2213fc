"""Tiny datasets of every built-in ``evaluator_type``, written under a folder and registered.

``register_eval_datasets(root)`` returns ``{evaluator_type: dataset name}``. The files are derived
from the first two images of the built-in shapes sets (COCO, LVIS, Pascal VOC, semantic, panoptic)
or drawn (Cityscapes ``gtFine``). Calling it again (another process, same ``root``) registers the
same datasets over the files already written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
from engine_tiny_datasets import register_tiny_datasets
from PIL import Image

from dt_data import DatasetCatalog, MetadataCatalog
from dt_data.datasets import register_pascal_voc
from dt_structures import BoxMode

SHAPES = ("circle", "square", "triangle", "star", "hexagon")
CITYSCAPES_THINGS = ["person", "rider", "car", "truck", "bus"]  # 5 classes, as the tiny R-CNN
CITY_NAMES = ["aachen_000000_000019", "aachen_000001_000019"]
STUFF_KEYS = ("stuff_classes", "stuff_colors", "stuff_dataset_id_to_contiguous_id", "ignore_label")
THING_KEYS = ("thing_classes", "thing_colors", "thing_dataset_id_to_contiguous_id")


def _register(name: str, dicts: list[dict], **metadata: object) -> None:
    if name not in DatasetCatalog:
        DatasetCatalog.register(name, lambda: [dict(d) for d in dicts])
        MetadataCatalog.get(name).set(**metadata)


def _copied(source: str, keys: tuple[str, ...]) -> dict[str, object]:
    return {k: MetadataCatalog.get(source).get(k) for k in keys}


def _sem_seg() -> str:
    name = "engine_eval_sem_seg"
    dicts = DatasetCatalog.get("shapes_val_sem_seg")[:2]
    _register(name, dicts, evaluator_type="sem_seg", **_copied("shapes_val_sem_seg", STUFF_KEYS))
    return name


def _panoptic(root: Path) -> str:
    name = "engine_eval_panoptic"
    dicts = DatasetCatalog.get("shapes_val_panoptic")[:2]
    meta = MetadataCatalog.get("shapes_val_panoptic")
    gt_json = root / "panoptic2.json"
    if not gt_json.exists():  # the panoptic ground truth of the two images only (PQ needs them all predicted)
        full = json.loads(Path(meta.panoptic_json).read_text())
        ids = {d["image_id"] for d in dicts}
        full["images"] = [i for i in full["images"] if i["id"] in ids]
        full["annotations"] = [a for a in full["annotations"] if a["image_id"] in ids]
        gt_json.write_text(json.dumps(full))
    metadata = _copied("shapes_val_panoptic", STUFF_KEYS + THING_KEYS)
    metadata.update(evaluator_type="coco_panoptic_seg", panoptic_json=str(gt_json))
    metadata.update(panoptic_root=meta.panoptic_root)
    _register(name, dicts, **metadata)
    return name


def _lvis(root: Path) -> str:
    name = "engine_eval_lvis"
    dicts = DatasetCatalog.get("shapes_val")[:2]
    path = root / "lvis2.json"
    if not path.exists():
        unannotated = {"neg_category_ids": [], "not_exhaustive_category_ids": []}
        images = [
            {"id": d["image_id"], **{k: d[k] for k in ("height", "width")}, **unannotated} for d in dicts
        ]
        annotations = []
        for d in dicts:
            for a in d["annotations"]:
                x, y, w, h = BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYWH_ABS)
                annotation = {"id": len(annotations) + 1, "image_id": d["image_id"], "bbox": [x, y, w, h]}
                annotation.update(area=w * h, category_id=a["category_id"] + 1)
                annotation["segmentation"] = a["segmentation"]
                annotations.append(annotation)
        categories = [
            {"id": i + 1, "name": n, "frequency": "frc"[i % 3], "synset": n} for i, n in enumerate(SHAPES)
        ]
        path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    _register(
        name, dicts, evaluator_type="lvis", json_file=str(path), thing_classes=list(SHAPES),
        thing_dataset_id_to_contiguous_id={i + 1: i for i in range(len(SHAPES))},
    )  # fmt: skip
    return name


def _voc(root: Path) -> str:
    name = "engine_eval_voc"
    voc = root / "voc"
    if not (voc / "ImageSets" / "Main" / "val.txt").exists():
        for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
            (voc / sub).mkdir(parents=True, exist_ok=True)
        ids = []
        for d in DatasetCatalog.get("shapes_val")[:2]:
            file_id = f"{d['image_id']:06d}"
            ids.append(file_id)
            shutil.copy(d["file_name"], voc / "JPEGImages" / f"{file_id}.jpg")
            xml = ET.Element("annotation")
            size = ET.SubElement(xml, "size")
            for key in ("height", "width"):
                ET.SubElement(size, key).text = str(d[key])
            for a in d["annotations"]:
                x0, y0, x1, y1 = BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS)
                obj = ET.SubElement(xml, "object")
                ET.SubElement(obj, "name").text = SHAPES[a["category_id"]]
                ET.SubElement(obj, "difficult").text = "0"
                box = ET.SubElement(obj, "bndbox")
                for key, value in zip(
                    ("xmin", "ymin", "xmax", "ymax"), (x0 + 1, y0 + 1, x1, y1), strict=True
                ):
                    ET.SubElement(box, key).text = str(int(value))
            ET.ElementTree(xml).write(voc / "Annotations" / f"{file_id}.xml")
        (voc / "ImageSets" / "Main" / "val.txt").write_text("\n".join(ids) + "\n")
    if name not in DatasetCatalog:
        register_pascal_voc(name, str(voc), "val", 2012, class_names=SHAPES)
    return name


def _cityscapes(root: Path) -> tuple[str, str]:
    """A two-image ``gtFine`` (label and instance ids: sky, road, a car and a person) and images."""
    from cityscapesscripts.helpers.labels import name2label

    gt_dir, image_dir = root / "gtFine" / "val", root / "leftImg8bit" / "val"
    dicts = []
    for k, stem in enumerate(CITY_NAMES):
        image = image_dir / "aachen" / f"{stem}_leftImg8bit.png"
        dicts.append({"file_name": str(image), "image_id": stem, "height": 64, "width": 128})
        if image.exists():
            continue
        labels = np.full((64, 128), name2label["road"].id, dtype=np.uint8)
        labels[:32] = name2label["sky"].id
        instances = labels.astype(np.uint16)
        for j, (cls, x0) in enumerate((("car", 10 + 5 * k), ("person", 70))):
            labels[20:50, x0 : x0 + 30] = name2label[cls].id
            instances[20:50, x0 : x0 + 30] = name2label[cls].id * 1000 + j
        for folder in (gt_dir / "aachen", image_dir / "aachen"):
            folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(labels).save(gt_dir / "aachen" / f"{stem}_gtFine_labelIds.png")
        Image.fromarray(instances).save(gt_dir / "aachen" / f"{stem}_gtFine_instanceIds.png")
        pixels = np.random.default_rng(k).integers(0, 256, (64, 128, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(image)
    instance, semantic = "engine_eval_cityscapes_instance", "engine_eval_cityscapes_sem_seg"
    _register(
        instance,
        dicts,
        evaluator_type="cityscapes_instance",
        gt_dir=str(gt_dir),
        thing_classes=CITYSCAPES_THINGS,
    )
    _register(semantic, dicts, evaluator_type="cityscapes_sem_seg", gt_dir=str(gt_dir), ignore_label=255)
    return instance, semantic


def register_eval_datasets(root: str | Path) -> dict[str, str]:
    """Write (once) and register one tiny dataset per built-in evaluator type under ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    register_tiny_datasets()
    instance, semantic = _cityscapes(root)
    return {
        "coco": "engine_shapes_val2",
        "lvis": _lvis(root),
        "sem_seg": _sem_seg(),
        "coco_panoptic_seg": _panoptic(root),
        "pascal_voc": _voc(root),
        "cityscapes_instance": instance,
        "cityscapes_sem_seg": semantic,
    }
