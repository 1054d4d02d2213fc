"""Translate a detectron2 YAML config (``cfg.dump()`` or a zoo file with ``_BASE_``) into a ``ModelConfig``.

Every ``MODEL.*`` key that dt supports is translated; a key dt cannot honour (another
architecture, an unsupported option set to a non-default value, an unknown key) is reported in a
``ConfigError`` listing all of them, never silently dropped. Sections read only by architectures
the config does not use (``MODEL.RETINANET`` in a Mask R-CNN config, ...) are ignored, exactly as
detectron2 ignores them; so are ``MODEL.DEVICE`` and ``MODEL.WEIGHTS``, which are run settings.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from dt_config import ConfigError, structure
from dt_models.compat.detectron2_archs import EXTRA_ARCHS, RCNN_BASED_ARCHS, sections_read
from dt_models.compat.detectron2_defaults import D2_DEFAULTS
from dt_models.compat.detectron2_roi_heads import ROI_SECTIONS, translate_roi_heads, unused_roi_sections
from dt_models.compat.yaml_eval import load_yaml_with_eval
from dt_models.registry import ModelConfig

__all__ = ["detectron2_model_config", "load_detectron2_yaml"]

_BACKBONES = {
    "build_resnet_fpn_backbone": ("ResNetFPN", "max_pool"),
    "build_retinanet_resnet_fpn_backbone": ("ResNetFPN", "p6p7"),
    "build_resnet_backbone": ("ResNet", None),
}
_ARCHS = ("GeneralizedRCNN", "ProposalNetwork", *EXTRA_ARCHS)
# (key, the only value dt supports)
_FIXED = {
    "MODEL.RPN.HEAD_NAME": "StandardRPNHead",
}
# MODEL.PROPOSAL_GENERATOR.NAME -> the anchor generator it needs (MODEL.ANCHOR_GENERATOR.NAME)
_ANCHOR_GENERATORS = {"RPN": "DefaultAnchorGenerator", "RRPN": "RotatedAnchorGenerator"}
# keys with no effect on the model dt builds (run settings, or options of disabled features)
_IGNORED = {
    "MODEL.DEVICE",
    "MODEL.WEIGHTS",
}
# sections read only by architectures / heads other than the ones translated here
_OTHER_SECTIONS = {
    "RETINANET",
    "SEM_SEG_HEAD",
    "PANOPTIC_FPN",
    "FCOS",
}


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_detectron2_yaml(path: str | os.PathLike, _seen: tuple[Path, ...] = ()) -> dict:
    """A detectron2 YAML file as a dict, with ``_BASE_`` files merged in (paths relative to the file)."""
    path = Path(path).resolve()
    if path in _seen:
        raise ValueError(f"_BASE_ cycle: {' -> '.join(str(p) for p in (*_seen, path))}")
    data = load_yaml_with_eval(path) or {}  # eval-tagged values by a restricted evaluator
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    base = data.pop("_BASE_", None)
    if base is not None:
        base_path = Path(os.path.expanduser(base))
        if not base_path.is_absolute():
            base_path = path.parent / base_path
        data = _merge(load_detectron2_yaml(base_path, (*_seen, path)), data)
    return data


def _flatten(data: dict, prefix: str) -> dict[str, Any]:
    flat = {}
    for key, value in data.items():
        name = f"{prefix}.{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name))
        else:
            flat[name] = value
    return flat


class _Reader:
    """Reads merged values (user over detectron2 defaults) and remembers which keys were used."""

    def __init__(self, user: dict) -> None:
        self.user = _flatten(user, "")
        self.values = _flatten(_merge(D2_DEFAULTS, user), "")
        self.used: set[str] = set()
        self.problems: list[str] = []

    def __call__(self, key: str) -> Any:
        self.used.add(key)
        return self.values[f".{key}"]

    def require(self, key: str, expected: Any) -> None:
        value = self(key)
        if value != expected:
            self.problems.append(f"{key} = {value!r} is not supported (dt supports only {expected!r})")


def _tuple2(values: Any) -> list[list[float]]:
    return [list(v) for v in values]


def _proposal_generator_name(r: _Reader) -> str:
    """``RPN``, ``RRPN`` (rotated anchors) or ``PrecomputedProposals`` (a Fast R-CNN, which dt loads
    exactly when detectron2's ``LOAD_PROPOSALS`` is on)."""
    name = r("MODEL.PROPOSAL_GENERATOR.NAME")
    supported = (*_ANCHOR_GENERATORS, "PrecomputedProposals")
    if name not in supported:
        r.problems.append(
            f"MODEL.PROPOSAL_GENERATOR.NAME = {name!r} is not supported (dt supports {list(supported)})"
        )
        name = "RPN"
    precomputed = name == "PrecomputedProposals"
    r.require("MODEL.LOAD_PROPOSALS", precomputed)
    if precomputed:
        r.require("MODEL.PROPOSAL_GENERATOR.MIN_SIZE", 0)
    else:
        r.require("MODEL.ANCHOR_GENERATOR.NAME", _ANCHOR_GENERATORS[name])
    return name


def _anchor_generator(r: _Reader, rotated: bool) -> dict:
    anchors = {
        "sizes": _tuple2(r("MODEL.ANCHOR_GENERATOR.SIZES")),
        "aspect_ratios": _tuple2(r("MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS")),
        "offset": r("MODEL.ANCHOR_GENERATOR.OFFSET"),
    }
    angles = _tuple2(r("MODEL.ANCHOR_GENERATOR.ANGLES"))  # read by rotated anchors only, as in detectron2
    if rotated:
        anchors["angles"] = angles
    return anchors


def _translate(r: _Reader) -> dict:
    for key, expected in _FIXED.items():
        r.require(key, expected)
    arch = r("MODEL.META_ARCHITECTURE")
    if arch not in _ARCHS:
        r.problems.append(f"MODEL.META_ARCHITECTURE = {arch!r} is not supported (dt supports {list(_ARCHS)})")
    backbone_name = r("MODEL.BACKBONE.NAME")
    if backbone_name not in _BACKBONES:
        r.problems.append(
            f"MODEL.BACKBONE.NAME = {backbone_name!r} is not supported (dt supports {list(_BACKBONES)})"
        )
    resnet = {
        "depth": r("MODEL.RESNETS.DEPTH"),
        "num_groups": r("MODEL.RESNETS.NUM_GROUPS"),
        "width_per_group": r("MODEL.RESNETS.WIDTH_PER_GROUP"),
        "stem_out_channels": r("MODEL.RESNETS.STEM_OUT_CHANNELS"),
        "res2_out_channels": r("MODEL.RESNETS.RES2_OUT_CHANNELS"),
        "stride_in_1x1": r("MODEL.RESNETS.STRIDE_IN_1X1"),
        "res5_dilation": r("MODEL.RESNETS.RES5_DILATION"),
        "norm": r("MODEL.RESNETS.NORM"),
        "freeze_at": r("MODEL.BACKBONE.FREEZE_AT"),
        "out_features": list(r("MODEL.RESNETS.OUT_FEATURES")),
        "deform_on_per_stage": list(r("MODEL.RESNETS.DEFORM_ON_PER_STAGE")),
        "deform_modulated": r("MODEL.RESNETS.DEFORM_MODULATED"),
        "deform_num_groups": r("MODEL.RESNETS.DEFORM_NUM_GROUPS"),
    }
    kind, top_block = _BACKBONES.get(backbone_name, ("ResNet", None))
    if kind == "ResNetFPN":
        backbone = {
            "name": "ResNetFPN",
            "resnet": resnet,
            "in_features": list(r("MODEL.FPN.IN_FEATURES")),
            "out_channels": r("MODEL.FPN.OUT_CHANNELS"),
            "norm": r("MODEL.FPN.NORM"),
            "fuse_type": r("MODEL.FPN.FUSE_TYPE"),
            "top_block": top_block,
        }
        if top_block == "p6p7":
            backbone["top_block_in_feature"] = "res5"
    else:
        backbone = {"name": "ResNet", **resnet}
    proposal_generator = _proposal_generator_name(r)
    rpn = (
        {"name": "PrecomputedProposals"}
        if proposal_generator == "PrecomputedProposals"
        else {
            "name": proposal_generator,
            "in_features": list(r("MODEL.RPN.IN_FEATURES")),
            "head_conv_dims": list(r("MODEL.RPN.CONV_DIMS")),
            "anchor_generator": _anchor_generator(r, rotated=proposal_generator == "RRPN"),
            "iou_thresholds": list(r("MODEL.RPN.IOU_THRESHOLDS")),
            "iou_labels": list(r("MODEL.RPN.IOU_LABELS")),
            "batch_size_per_image": r("MODEL.RPN.BATCH_SIZE_PER_IMAGE"),
            "positive_fraction": r("MODEL.RPN.POSITIVE_FRACTION"),
            "bbox_reg_weights": list(r("MODEL.RPN.BBOX_REG_WEIGHTS")),
            "bbox_reg_loss_type": r("MODEL.RPN.BBOX_REG_LOSS_TYPE"),
            "smooth_l1_beta": r("MODEL.RPN.SMOOTH_L1_BETA"),
            "loss_weight": r("MODEL.RPN.LOSS_WEIGHT"),
            "bbox_reg_loss_weight": r("MODEL.RPN.BBOX_REG_LOSS_WEIGHT"),
            "pre_nms_topk_train": r("MODEL.RPN.PRE_NMS_TOPK_TRAIN"),
            "pre_nms_topk_test": r("MODEL.RPN.PRE_NMS_TOPK_TEST"),
            "post_nms_topk_train": r("MODEL.RPN.POST_NMS_TOPK_TRAIN"),
            "post_nms_topk_test": r("MODEL.RPN.POST_NMS_TOPK_TEST"),
            "nms_thresh": r("MODEL.RPN.NMS_THRESH"),
            "min_box_size": r("MODEL.PROPOSAL_GENERATOR.MIN_SIZE"),
            "boundary_thresh": r("MODEL.RPN.BOUNDARY_THRESH"),
        }
    )
    model = {
        "name": arch,
        "backbone": backbone,
        "proposal_generator": rpn,
        "pixel_mean": list(r("MODEL.PIXEL_MEAN")),
        "pixel_std": list(r("MODEL.PIXEL_STD")),
        "input_format": r("INPUT.FORMAT"),
    }
    if arch in ("GeneralizedRCNN", *RCNN_BASED_ARCHS):
        model["roi_heads"] = translate_roi_heads(r)
    return EXTRA_ARCHS[arch](r, model) if arch in EXTRA_ARCHS else model


def _unused_sections(r: _Reader, model: dict) -> set[str]:
    unused = set(_OTHER_SECTIONS) - sections_read(model["name"])
    if model["name"] not in ("GeneralizedRCNN", *RCNN_BASED_ARCHS):
        unused |= {"MASK_ON", "KEYPOINT_ON", *ROI_SECTIONS}
    else:
        unused |= unused_roi_sections(r, model["roi_heads"])
    if model["backbone"]["name"] != "ResNetFPN":
        unused.add("FPN")
    if model.get("proposal_generator", {}).get("name") == "PrecomputedProposals":
        unused |= {"RPN", "ANCHOR_GENERATOR"}
    return unused


def detectron2_model_config(path: str | os.PathLike) -> ModelConfig:
    """The ``ModelConfig`` equivalent to the detectron2 config file at ``path``.

    Raises:
        ConfigError: listing every ``MODEL.*`` key dt cannot honour and every invalid value.
    """
    user = load_detectron2_yaml(path)
    reader = _Reader(user)
    model = _translate(reader)
    unused = _unused_sections(reader, model)
    for key, value in reader.user.items():
        key = key[1:]
        if not key.startswith("MODEL.") or key in reader.used or key in _IGNORED:
            continue
        if key.split(".")[1] in unused:
            continue
        reader.problems.append(f"{key} = {value!r} is not supported by dt (unknown or unused key)")
    if reader.problems:
        raise ConfigError(reader.problems, what=f"detectron2 config {path}")
    try:
        return structure(ModelConfig, model, what=f"detectron2 config {path} (translated)")
    except ConfigError as e:
        raise ConfigError(e.problems, what=f"detectron2 config {path} (as translated to dt)") from None
