"""``model_facts``: the few things the engine must know about a model config, read in ONE place.

The engine never reaches into a model config anywhere else: the cross-field checks of
``ExperimentConfig``, the loaders (masks, keypoints) and the dataset checks (number of classes)
all go through ``model_facts``. A meta-architecture without some part (a semantic segmentor has
no ROI heads) simply has no such fact. The class counts come from the model config itself
(``ModelConfig.class_counts()``: RetinaNet's ``num_classes``, a semantic head's, both of Panoptic
FPN's), so a new meta-architecture declares its own.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import attrs

from dt_models import ModelConfig
from dt_models.registry import ClassCount

__all__ = ["Fact", "ModelFacts", "model_facts"]

T = TypeVar("T")


@attrs.frozen
class Fact(Generic[T]):
    """A value of the model config and its dotted path in the experiment config (for messages)."""

    value: T
    key: str


@attrs.frozen(kw_only=True)
class ModelFacts:
    """``meta_architecture``: the model config's registered name (``"GeneralizedRCNN"``, ...);
    ``precomputed_proposals``: the model reads proposals from the datasets' proposal files instead of
    generating them; ``input_format``: channel order the model's ``pixel_mean``/``pixel_std`` are in;
    ``class_counts``: classes of every head that predicts classes (keys in the experiment config);
    ``num_classes``: of the instance head (the first ``"thing"`` count); ``detections_per_image``: of
    the ROI heads; ``mask_on``/``keypoint_on``: the model trains those heads (so the loaders must keep
    masks/keypoints); ``min_keypoints_per_image``: training images with fewer visible keypoints are
    dropped (a keypoint branch's ``min_keypoints_per_image``, 0 without one);
    ``fed_loss_freq_weight_power``: the box predictor trains a federated loss whose class weights
    are the training data's image counts to this power (``None``: no federated loss);
    ``things_as_one_stuff_class``: the semantic head labels every thing pixel 0 and the stuff classes
    from 1 (Panoptic FPN, whose combination skips label 0), so its datasets must be in detectron2's
    separated panoptic form."""

    meta_architecture: str
    precomputed_proposals: bool = False
    input_format: Fact[str] | None = None
    class_counts: tuple[ClassCount, ...] = ()
    num_classes: Fact[int] | None = None
    detections_per_image: Fact[int] | None = None
    mask_on: bool = False
    keypoint_on: bool = False
    min_keypoints_per_image: int = 0
    fed_loss_freq_weight_power: float | None = None
    things_as_one_stuff_class: bool = False


def _fact(owner: Any, path: str, field: str) -> Fact[Any] | None:
    value = getattr(owner, field, None)
    return None if value is None else Fact(value, f"{path}.{field}")


def model_facts(model: ModelConfig) -> ModelFacts:
    """What ``model`` (any registered meta-architecture config) tells the engine."""
    roi_heads = getattr(model, "roi_heads", None)
    gt_fields = model.gt_fields()
    counts = tuple(
        attrs.evolve(c, key=f"model.{c.key}", ignore_key=c.ignore_key and f"model.{c.ignore_key}")
        for c in model.class_counts()
    )
    things = [Fact(c.num_classes, c.key) for c in counts if c.kind == "thing"]
    branches = getattr(roi_heads, "branches", {}) or {}
    min_keypoints = [getattr(b, "min_keypoints_per_image", 0) for b in branches.values()]
    box_predictor = getattr(roi_heads, "box_predictor", None)
    fed_loss = getattr(box_predictor, "use_fed_loss", False)
    proposal_generator = getattr(model, "proposal_generator", None)
    return ModelFacts(
        meta_architecture=type(model).name,
        precomputed_proposals=getattr(proposal_generator, "name", None) == "PrecomputedProposals",
        input_format=_fact(model, "model", "input_format"),
        class_counts=counts,
        num_classes=things[0] if things else None,
        detections_per_image=_fact(roi_heads, "model.roi_heads", "detections_per_image"),
        mask_on="gt_masks" in gt_fields,
        keypoint_on="gt_keypoints" in gt_fields,
        min_keypoints_per_image=max(min_keypoints, default=0),
        fed_loss_freq_weight_power=box_predictor.fed_loss_freq_weight_power if fed_loss else None,
        things_as_one_stuff_class=type(model).name == "PanopticFPN",
    )
