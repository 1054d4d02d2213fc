"""DensePose-COCO datasets: COCO person annotations with the ``dp_*`` fields kept.

``register_densepose_coco(name, json_file, image_root)`` registers one annotation file (e.g.
``densepose_coco_2014_train.json`` with the COCO 2014 images) under ``name`` with the ``densepose``
evaluator and SMPL geodesics; the recipes use the names ``densepose_coco_2014_train``,
``densepose_coco_2014_valminusminival`` and ``densepose_coco_2014_minival``.
"""

from __future__ import annotations

from dt_data import DatasetCatalog, MetadataCatalog
from dt_data.datasets import load_coco_json

from .structures import DENSEPOSE_KEYS

__all__ = ["DENSEPOSE_ANNOTATION_KEYS", "register_densepose_coco"]

DENSEPOSE_ANNOTATION_KEYS = [*DENSEPOSE_KEYS, "dp_masks"]


def register_densepose_coco(name: str, json_file: str, image_root: str) -> None:
    """Register ``name``: DensePose-COCO ``json_file`` (images under ``image_root``), evaluator
    ``densepose``. Nothing is read until the dataset is first loaded."""
    DatasetCatalog.register(
        name,
        lambda: load_coco_json(json_file, image_root, name, extra_annotation_keys=DENSEPOSE_ANNOTATION_KEYS),
    )
    MetadataCatalog.get(name).set(
        json_file=json_file, image_root=image_root, evaluator_type="densepose", densepose_geodesics="smpl"
    )
