"""Translation of detectron2's meta-architectures beyond the R-CNN family (``RetinaNet``,
``SemanticSegmentor``, ``PanopticFPN``).

:mod:`dt_models.compat.detectron2_config` translates the parts every detectron2 model shares (the
backbone, the anchor generator, the input) into an R-CNN-shaped dict, then hands it to the entry
of :data:`EXTRA_ARCHS` for ``MODEL.META_ARCHITECTURE``, which reads its own sections and returns
the dt model dict. The reader ``r`` is the one of ``detectron2_config``: ``r("MODEL.X.Y")`` is the
user's value over detectron2's defaults, and the keys it reads count as used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["EXTRA_ARCHS", "RCNN_BASED_ARCHS", "sections_read"]

# detectron2's defaults (config/defaults.py) of the sections read here
_DEFAULTS: dict[str, dict[str, Any]] = {
    "RETINANET": {
        "NUM_CLASSES": 80,
        "IN_FEATURES": ["p3", "p4", "p5", "p6", "p7"],
        "NUM_CONVS": 4,
        "IOU_THRESHOLDS": [0.4, 0.5],
        "IOU_LABELS": [0, -1, 1],
        "PRIOR_PROB": 0.01,
        "SCORE_THRESH_TEST": 0.05,
        "TOPK_CANDIDATES_TEST": 1000,
        "NMS_THRESH_TEST": 0.5,
        "BBOX_REG_WEIGHTS": [1.0, 1.0, 1.0, 1.0],
        "FOCAL_LOSS_GAMMA": 2.0,
        "FOCAL_LOSS_ALPHA": 0.25,
        "SMOOTH_L1_LOSS_BETA": 0.1,
        "BBOX_REG_LOSS_TYPE": "smooth_l1",
        "NORM": "",
    },
    "SEM_SEG_HEAD": {
        "NAME": "SemSegFPNHead",
        "IN_FEATURES": ["p2", "p3", "p4", "p5"],
        "IGNORE_VALUE": 255,
        "NUM_CLASSES": 54,
        "CONVS_DIM": 128,
        "COMMON_STRIDE": 4,
        "NORM": "GN",
        "LOSS_WEIGHT": 1.0,
    },
    "PANOPTIC_FPN": {
        "INSTANCE_LOSS_WEIGHT": 1.0,
        "COMBINE.ENABLED": True,
        "COMBINE.OVERLAP_THRESH": 0.5,
        "COMBINE.STUFF_AREA_LIMIT": 4096,
        "COMBINE.INSTANCES_CONFIDENCE_THRESH": 0.5,
    },
}


def _add_defaults(r: Any, section: str) -> None:
    for key, value in _DEFAULTS[section].items():
        r.values.setdefault(f".MODEL.{section}.{key}", value)


def _input(model: dict) -> dict:
    return {k: model[k] for k in ("backbone", "pixel_mean", "pixel_std", "input_format")}


def _retinanet(r: Any, model: dict) -> dict:
    _add_defaults(r, "RETINANET")

    def read(key: str) -> Any:
        return r(f"MODEL.RETINANET.{key}")

    return {
        "name": "RetinaNet",
        **_input(model),
        "num_classes": read("NUM_CLASSES"),
        "in_features": list(read("IN_FEATURES")),
        "head": {"num_convs": read("NUM_CONVS"), "norm": read("NORM"), "prior_prob": read("PRIOR_PROB")},
        "anchor_generator": model["proposal_generator"]["anchor_generator"],
        "iou_thresholds": list(read("IOU_THRESHOLDS")),
        "iou_labels": list(read("IOU_LABELS")),
        "bbox_reg_weights": list(read("BBOX_REG_WEIGHTS")),
        "bbox_reg_loss_type": read("BBOX_REG_LOSS_TYPE"),
        "smooth_l1_beta": read("SMOOTH_L1_LOSS_BETA"),
        "focal_loss_alpha": read("FOCAL_LOSS_ALPHA"),
        "focal_loss_gamma": read("FOCAL_LOSS_GAMMA"),
        "test_score_thresh": read("SCORE_THRESH_TEST"),
        "test_topk_candidates": read("TOPK_CANDIDATES_TEST"),
        "test_nms_thresh": read("NMS_THRESH_TEST"),
        "detections_per_image": r("TEST.DETECTIONS_PER_IMAGE"),
    }


def _sem_seg_head(r: Any) -> dict:
    _add_defaults(r, "SEM_SEG_HEAD")
    r.require("MODEL.SEM_SEG_HEAD.NAME", "SemSegFPNHead")

    def read(key: str) -> Any:
        return r(f"MODEL.SEM_SEG_HEAD.{key}")

    return {
        "in_features": list(read("IN_FEATURES")),
        "num_classes": read("NUM_CLASSES"),
        "conv_dims": read("CONVS_DIM"),
        "common_stride": read("COMMON_STRIDE"),
        "norm": read("NORM"),
        "loss_weight": read("LOSS_WEIGHT"),
        "ignore_value": read("IGNORE_VALUE"),
    }


def _semantic_segmentor(r: Any, model: dict) -> dict:
    return {"name": "SemanticSegmentor", **_input(model), "sem_seg_head": _sem_seg_head(r)}


def _panoptic_fpn(r: Any, model: dict) -> dict:
    _add_defaults(r, "PANOPTIC_FPN")
    r("MODEL.PANOPTIC_FPN.COMBINE.ENABLED")  # deprecated in detectron2 and without effect there too
    return {
        **model,
        "name": "PanopticFPN",
        "sem_seg_head": _sem_seg_head(r),
        "instance_loss_weight": r("MODEL.PANOPTIC_FPN.INSTANCE_LOSS_WEIGHT"),
        "combine_overlap_thresh": r("MODEL.PANOPTIC_FPN.COMBINE.OVERLAP_THRESH"),
        "combine_stuff_area_thresh": r("MODEL.PANOPTIC_FPN.COMBINE.STUFF_AREA_LIMIT"),
        "combine_instances_score_thresh": r("MODEL.PANOPTIC_FPN.COMBINE.INSTANCES_CONFIDENCE_THRESH"),
    }


EXTRA_ARCHS: dict[str, Callable[[Any, dict], dict]] = {
    "RetinaNet": _retinanet,
    "SemanticSegmentor": _semantic_segmentor,
    "PanopticFPN": _panoptic_fpn,
}
"""``MODEL.META_ARCHITECTURE`` -> ``(reader, R-CNN-shaped dict) -> dt model dict``."""

RCNN_BASED_ARCHS: tuple[str, ...] = ("PanopticFPN",)
"""Extra architectures built on GeneralizedRCNN: their dict carries the translated ``roi_heads``."""

_SECTIONS = {
    "RetinaNet": {"RETINANET"},
    "SemanticSegmentor": {"SEM_SEG_HEAD"},
    "PanopticFPN": {"SEM_SEG_HEAD", "PANOPTIC_FPN"},
}


def sections_read(arch: str) -> set[str]:
    """The ``MODEL.*`` sections the architecture reads (the others of its kind are ignored)."""
    return set(_SECTIONS.get(arch, ()))
