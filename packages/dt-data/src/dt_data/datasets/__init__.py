"""Dataset loaders and registration helpers; importing this registers the built-in ``shapes`` sets
(``shapes_train``, ``shapes_val`` and their ``_panoptic``/``_sem_seg``/``_keypoints``/``_rotated``
variants)."""

from .cityscapes import load_cityscapes_instances, load_cityscapes_semantic, register_cityscapes
from .coco import load_coco_json, load_sem_seg, register_coco_instances
from .coco_panoptic import (
    load_coco_panoptic_json,
    merge_to_panoptic,
    register_coco_panoptic,
    register_coco_panoptic_separated,
)
from .lvis import load_lvis_json, register_lvis_instances
from .pascal_voc import load_voc_instances, register_pascal_voc
from .shapes import SHAPES_CATEGORIES, generate_shapes, load_shapes, register_shapes, shapes_root

__all__ = [
    "SHAPES_CATEGORIES",
    "generate_shapes",
    "load_cityscapes_instances",
    "load_cityscapes_semantic",
    "load_coco_json",
    "load_coco_panoptic_json",
    "load_lvis_json",
    "load_sem_seg",
    "load_shapes",
    "load_voc_instances",
    "merge_to_panoptic",
    "register_cityscapes",
    "register_coco_instances",
    "register_coco_panoptic",
    "register_coco_panoptic_separated",
    "register_lvis_instances",
    "register_pascal_voc",
    "register_shapes",
    "shapes_root",
]

register_shapes()
