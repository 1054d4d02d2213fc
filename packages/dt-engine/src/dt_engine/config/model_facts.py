"""``model_facts``: the few things the engine must know about a model config, read in ONE place.

The engine never reaches into a model config anywhere else: the cross-field checks of
``ExperimentConfig``, the loaders (masks, keypoints) and the dataset checks (number of classes)
all go through ``model_facts``. A meta-architecture without some part (a semantic segmentor has
no ROI heads) simply has no such fact.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import attrs

from dt_models import ModelConfig

__all__ = ["Fact", "ModelFacts", "model_facts"]

T = TypeVar("T")


@attrs.frozen
class Fact(Generic[T]):
    """A value of the model config and its dotted path in the experiment config (for messages)."""

    value: T
    key: str


@attrs.frozen(kw_only=True)
class ModelFacts:
    """``input_format``: channel order the model's ``pixel_mean``/``pixel_std`` are in;
    ``num_classes``/``detections_per_image``: of the instance head; ``mask_on``/``keypoint_on``: the
    model trains those heads (so the loaders must keep masks/keypoints)."""

    input_format: Fact[str] | None = None
    num_classes: Fact[int] | None = None
    detections_per_image: Fact[int] | None = None
    mask_on: bool = False
    keypoint_on: bool = False


def _fact(owner: Any, path: str, field: str) -> Fact[Any] | None:
    value = getattr(owner, field, None)
    return None if value is None else Fact(value, f"{path}.{field}")


def model_facts(model: ModelConfig) -> ModelFacts:
    """What ``model`` (any registered meta-architecture config) tells the engine."""
    roi_heads = getattr(model, "roi_heads", None)
    gt_fields = model.gt_fields()
    return ModelFacts(
        input_format=_fact(model, "model", "input_format"),
        num_classes=_fact(roi_heads, "model.roi_heads", "num_classes"),
        detections_per_image=_fact(roi_heads, "model.roi_heads", "detections_per_image"),
        mask_on="gt_masks" in gt_fields,
        keypoint_on="gt_keypoints" in gt_fields,
    )
