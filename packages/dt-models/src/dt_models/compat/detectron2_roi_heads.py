"""Translation of detectron2's ROI heads sections (``MODEL.ROI_HEADS``, ``ROI_BOX_HEAD``,
``ROI_MASK_HEAD``, ``ROI_KEYPOINT_HEAD``, ``ROI_BOX_CASCADE_HEAD``) into dt's ROI heads config data
(``StandardROIHeads``, ``Res5ROIHeads``, ``CascadeROIHeads``, the rotated ``RROIHeads``).

``reader`` is the translator's reader: ``reader(key)`` returns the merged value of a dotted key and
marks it used; ``reader.require(key, value)`` records a problem unless the key has that value;
``reader.problems`` lists the problems found.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["ROI_SECTIONS", "translate_roi_heads", "unused_roi_sections"]

ROI_SECTIONS = ("ROI_HEADS", "ROI_BOX_HEAD", "ROI_MASK_HEAD", "ROI_KEYPOINT_HEAD", "ROI_BOX_CASCADE_HEAD")
"""The sections this module reads (all unused by architectures without ROI heads)."""

_BOX_HEAD_KEYS = ("NAME", "NUM_CONV", "CONV_DIM", "NUM_FC", "FC_DIM", "NORM")
_FIXED_BOX = {"MODEL.ROI_BOX_HEAD.TRAIN_ON_PRED_BOXES": False}


def _pooler(r: Any, section: str) -> dict:
    return {
        "type": r(f"MODEL.{section}.POOLER_TYPE"),
        "resolution": r(f"MODEL.{section}.POOLER_RESOLUTION"),
        "sampling_ratio": r(f"MODEL.{section}.POOLER_SAMPLING_RATIO"),
    }


def _sampled_heads(r: Any, name: str) -> dict:
    """Fields of ``SampledROIHeadsConfig``."""
    return {
        "name": name,
        "num_classes": r("MODEL.ROI_HEADS.NUM_CLASSES"),
        "in_features": list(r("MODEL.ROI_HEADS.IN_FEATURES")),
        "iou_thresholds": list(r("MODEL.ROI_HEADS.IOU_THRESHOLDS")),
        "iou_labels": list(r("MODEL.ROI_HEADS.IOU_LABELS")),
        "batch_size_per_image": r("MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE"),
        "positive_fraction": r("MODEL.ROI_HEADS.POSITIVE_FRACTION"),
        "proposal_append_gt": r("MODEL.ROI_HEADS.PROPOSAL_APPEND_GT"),
        "score_thresh_test": r("MODEL.ROI_HEADS.SCORE_THRESH_TEST"),
        "nms_thresh_test": r("MODEL.ROI_HEADS.NMS_THRESH_TEST"),
        "detections_per_image": r("TEST.DETECTIONS_PER_IMAGE"),
        "box_pooler": _pooler(r, "ROI_BOX_HEAD"),
    }


def _box_predictor(r: Any) -> dict:
    for key, expected in _FIXED_BOX.items():
        r.require(key, expected)
    return {
        "name": "FastRCNNOutputLayers",
        "bbox_reg_weights": list(r("MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS")),
        "cls_agnostic_bbox_reg": r("MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG"),
        "bbox_reg_loss_type": r("MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_TYPE"),
        "smooth_l1_beta": r("MODEL.ROI_BOX_HEAD.SMOOTH_L1_BETA"),
        "bbox_reg_loss_weight": r("MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_WEIGHT"),
        "use_sigmoid_ce": r("MODEL.ROI_BOX_HEAD.USE_SIGMOID_CE"),
        "use_fed_loss": r("MODEL.ROI_BOX_HEAD.USE_FED_LOSS"),
        "fed_loss_num_classes": r("MODEL.ROI_BOX_HEAD.FED_LOSS_NUM_CLASSES"),
        "fed_loss_freq_weight_power": r("MODEL.ROI_BOX_HEAD.FED_LOSS_FREQ_WEIGHT_POWER"),
    }


def _box_head(r: Any) -> dict:
    r.require("MODEL.ROI_BOX_HEAD.NAME", "FastRCNNConvFCHead")
    return {
        "name": "FastRCNNConvFCHead",
        "num_conv": r("MODEL.ROI_BOX_HEAD.NUM_CONV"),
        "conv_dim": r("MODEL.ROI_BOX_HEAD.CONV_DIM"),
        "num_fc": r("MODEL.ROI_BOX_HEAD.NUM_FC"),
        "fc_dim": r("MODEL.ROI_BOX_HEAD.FC_DIM"),
        "norm": r("MODEL.ROI_BOX_HEAD.NORM"),
    }


def _mask_head(r: Any) -> dict:
    r.require("MODEL.ROI_MASK_HEAD.NAME", "MaskRCNNConvUpsampleHead")
    return {
        "name": "MaskRCNNConvUpsampleHead",
        "num_conv": r("MODEL.ROI_MASK_HEAD.NUM_CONV"),
        "conv_dim": r("MODEL.ROI_MASK_HEAD.CONV_DIM"),
        "norm": r("MODEL.ROI_MASK_HEAD.NORM"),
        "cls_agnostic_mask": r("MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK"),
    }


def _keypoint_branch(r: Any) -> dict:
    r.require("MODEL.ROI_KEYPOINT_HEAD.NAME", "KRCNNConvDeconvUpsampleHead")
    num_keypoints = r("MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS")
    normalizer = None
    if not r("MODEL.ROI_KEYPOINT_HEAD.NORMALIZE_LOSS_BY_VISIBLE_KEYPOINTS"):
        sampled = r("MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE") * r("MODEL.ROI_HEADS.POSITIVE_FRACTION")
        normalizer = num_keypoints * sampled
    return {
        "name": "KeypointBranch",
        "pooler": _pooler(r, "ROI_KEYPOINT_HEAD"),
        "head": {
            "num_keypoints": num_keypoints,
            "conv_dims": list(r("MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS")),
            "loss_weight": r("MODEL.ROI_KEYPOINT_HEAD.LOSS_WEIGHT"),
            "loss_normalizer": normalizer,
        },
        "min_keypoints_per_image": r("MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE"),
    }


def _branches(r: Any) -> dict:
    branches = {}
    if r("MODEL.MASK_ON"):
        branches["mask"] = {
            "name": "MaskBranch",
            "pooler": _pooler(r, "ROI_MASK_HEAD"),
            "head": _mask_head(r),
        }
    if r("MODEL.KEYPOINT_ON"):
        branches["keypoint"] = _keypoint_branch(r)
    return branches


def _standard(r: Any) -> dict:
    heads = _sampled_heads(r, "StandardROIHeads")
    heads.update(box_head=_box_head(r), box_predictor=_box_predictor(r), branches=_branches(r))
    return heads


def _rotated(r: Any) -> dict:
    """detectron2's ``RROIHeads``: boxes only, a rotated pooler (``ROIAlignRotated``) and predictor."""
    for key in ("MODEL.MASK_ON", "MODEL.KEYPOINT_ON"):
        if r(key):
            r.problems.append(f"{key} = True is not supported with RROIHeads (nor by detectron2)")
    heads = _sampled_heads(r, "RROIHeads")
    predictor = _box_predictor(r)
    del predictor["name"]  # RROIHeadsConfig holds its one predictor type, RotatedFastRCNNOutputLayers
    heads.update(box_head=_box_head(r), box_predictor=predictor)
    return heads


def _res5(r: Any) -> dict:
    if r("MODEL.KEYPOINT_ON"):
        r.problems.append("MODEL.KEYPOINT_ON = True is not supported with Res5ROIHeads (nor by detectron2)")
    if r("MODEL.RESNETS.DEFORM_ON_PER_STAGE")[-1]:
        r.problems.append(
            "MODEL.RESNETS.DEFORM_ON_PER_STAGE: a deformable res5 is not supported in Res5ROIHeads"
        )
    heads = _sampled_heads(r, "Res5ROIHeads")
    heads["res5"] = {
        "num_groups": r("MODEL.RESNETS.NUM_GROUPS"),
        "width_per_group": r("MODEL.RESNETS.WIDTH_PER_GROUP"),
        "res2_out_channels": r("MODEL.RESNETS.RES2_OUT_CHANNELS"),
        "stride_in_1x1": r("MODEL.RESNETS.STRIDE_IN_1X1"),
        "norm": r("MODEL.RESNETS.NORM"),
    }
    heads["box_predictor"] = _box_predictor(r)
    heads["mask_head"] = _mask_head(r) if r("MODEL.MASK_ON") else None
    for key in _BOX_HEAD_KEYS:  # detectron2's Res5ROIHeads has no box head: these are never read
        r(f"MODEL.ROI_BOX_HEAD.{key}")
    return heads


def _cascade(r: Any) -> dict:
    heads = _sampled_heads(r, "CascadeROIHeads")
    ious = list(r("MODEL.ROI_BOX_CASCADE_HEAD.IOUS"))
    weights = [list(w) for w in r("MODEL.ROI_BOX_CASCADE_HEAD.BBOX_REG_WEIGHTS")]
    if len(weights) != len(ious):
        r.problems.append(
            f"MODEL.ROI_BOX_CASCADE_HEAD: {len(ious)} IOUS but {len(weights)} BBOX_REG_WEIGHTS "
            "(one of each per stage)"
        )
    predictor = _box_predictor(r)  # every stage's, with the stage's own box coding weights
    heads.update(
        stage_iou_thresholds=ious,
        box_head=_box_head(r),
        box_predictors=[{**predictor, "bbox_reg_weights": w} for w in weights],
        branches=_branches(r),
    )
    return heads


_TRANSLATORS: dict[str, Callable[[Any], dict]] = {
    "StandardROIHeads": _standard,
    "Res5ROIHeads": _res5,
    "CascadeROIHeads": _cascade,
    "RROIHeads": _rotated,
}


def translate_roi_heads(r: Any) -> dict:
    """dt's ROI heads config data for the detectron2 config read by ``r``."""
    name = r("MODEL.ROI_HEADS.NAME")
    if name not in _TRANSLATORS:
        r.problems.append(
            f"MODEL.ROI_HEADS.NAME = {name!r} is not supported (dt supports {list(_TRANSLATORS)})"
        )
        name = "StandardROIHeads"
    return _TRANSLATORS[name](r)


def unused_roi_sections(r: Any, heads: dict) -> set[str]:
    """The ROI sections the translated ``heads`` do not read (their keys are ignored, as detectron2
    ignores them)."""
    unused = {"ROI_BOX_CASCADE_HEAD"} if heads["name"] != "CascadeROIHeads" else set()
    if not r("MODEL.MASK_ON"):
        unused.add("ROI_MASK_HEAD")
    if not r("MODEL.KEYPOINT_ON"):
        unused.add("ROI_KEYPOINT_HEAD")
    return unused
