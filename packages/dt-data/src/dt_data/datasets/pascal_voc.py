"""Pascal VOC detection annotations (XML; detectron2 semantics)."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from dt_structures import BoxMode

from ..catalog import DatasetCatalog, MetadataCatalog
from ._validate import AnnotationError

__all__ = ["CLASS_NAMES", "load_voc_instances", "register_pascal_voc"]

CLASS_NAMES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)  # fmt: skip


def _text(node: ET.Element, path: str, anno_file: str, what: str) -> str:
    found = node.find(path)
    if found is None or found.text is None:
        raise AnnotationError(f"{anno_file}: {what} has no <{path}>")
    return found.text.strip()


def load_voc_instances(dirname: str, split: str, class_names: Sequence[str] = CLASS_NAMES) -> list[dict]:
    """Read ``ImageSets/Main/{split}.txt`` and the ``Annotations/*.xml`` it lists. Boxes are XYXY_ABS
    with 1 subtracted from xmin/ymin (VOC boxes are 1-based inclusive pixel indices); "difficult"
    objects are kept; ``image_id`` is the file id string."""
    list_file = os.path.join(dirname, "ImageSets", "Main", split + ".txt")
    try:
        with open(list_file) as f:
            fileids = [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        raise FileNotFoundError(f"Pascal VOC split file not found: {list_file}") from None
    class_names = list(class_names)
    dicts = []
    for fileid in fileids:
        anno_file = os.path.join(dirname, "Annotations", fileid + ".xml")
        try:
            tree = ET.parse(anno_file)
        except FileNotFoundError:
            raise FileNotFoundError(f"Pascal VOC annotation not found: {anno_file}") from None
        except ET.ParseError as e:
            raise AnnotationError(f"{anno_file}: malformed XML ({e})") from None
        root = tree.getroot()
        record = {
            "file_name": os.path.join(dirname, "JPEGImages", fileid + ".jpg"),
            "image_id": fileid,
            "height": int(_text(root, "size/height", anno_file, "<annotation>")),
            "width": int(_text(root, "size/width", anno_file, "<annotation>")),
        }
        instances = []
        for i, obj in enumerate(root.findall("object")):
            what = f"object {i}"
            cls = _text(obj, "name", anno_file, what)
            if cls not in class_names:
                raise AnnotationError(f"{anno_file}: {what} has unknown class {cls!r}")
            try:
                bbox = [
                    float(_text(obj, f"bndbox/{k}", anno_file, what))
                    for k in ("xmin", "ymin", "xmax", "ymax")
                ]
            except ValueError as e:
                raise AnnotationError(f"{anno_file}: {what} has a non-numeric bndbox ({e})") from None
            bbox[0] -= 1.0
            bbox[1] -= 1.0
            if bbox[2] < bbox[0] or bbox[3] < bbox[1]:
                raise AnnotationError(f"{anno_file}: {what} has an inverted bndbox {bbox}")
            instances.append(
                {"category_id": class_names.index(cls), "bbox": bbox, "bbox_mode": BoxMode.XYXY_ABS}
            )
        record["annotations"] = instances
        dicts.append(record)
    return dicts


def register_pascal_voc(
    name: str, dirname: str, split: str, year: int, class_names: Sequence[str] = CLASS_NAMES
) -> None:
    """Register a VOC split (evaluator ``pascal_voc``)."""
    DatasetCatalog.register(name, lambda: load_voc_instances(dirname, split, class_names))
    MetadataCatalog.get(name).set(
        thing_classes=list(class_names), dirname=dirname, year=year, split=split, evaluator_type="pascal_voc"
    )
