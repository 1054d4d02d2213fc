"""``SemanticSegmentor``: a backbone and a per-pixel head (Semantic FPN); its config
``SemanticSegmentorConfig`` (registered as ``SemanticSegmentor``), ``build_semantic_segmentor`` and
``sem_seg_postprocess``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
import torch
from torch.nn import functional as F

from dt_config import validators as check
from dt_models.backbone import Backbone
from dt_models.build import build_backbone
from dt_models.meta_arch.image_model import ImageModel, ImageModelConfig
from dt_models.meta_arch.sem_seg_head import SemSegFPNHead, SemSegFPNHeadConfig, build_sem_seg_fpn_head
from dt_models.registry import META_ARCH_REGISTRY, ClassCount
from dt_structures import ImageList

__all__ = [
    "SemanticSegmentor",
    "SemanticSegmentorConfig",
    "build_semantic_segmentor",
    "gt_sem_seg",
    "sem_seg_postprocess",
]


def sem_seg_postprocess(
    result: torch.Tensor, img_size: tuple[int, int], output_height: int, output_width: int
) -> torch.Tensor:
    """Per-class scores ``Tensor[C, H', W']`` of a padded batch item: crop to the image's own
    ``img_size`` (its size before padding), then resize bilinearly to ``Tensor[C, output_height,
    output_width]``."""
    result = result[:, : img_size[0], : img_size[1]].expand(1, -1, -1, -1)
    return F.interpolate(result, size=(output_height, output_width), mode="bilinear", align_corners=False)[0]


def gt_sem_seg(
    model: ImageModel, batched_inputs: Sequence[dict[str, Any]], ignore_value: int
) -> torch.Tensor:
    """The ``sem_seg`` label maps ``Tensor[H, W]`` of the inputs on ``model``'s device, padded like the
    images (with ``ignore_value``) into ``Tensor[N, H', W']``."""
    missing = [i for i, x in enumerate(batched_inputs) if "sem_seg" not in x]
    if missing:
        raise ValueError(f"training needs 'sem_seg' in every input; missing in {missing}")
    return ImageList.from_tensors(
        [x["sem_seg"].to(model.device) for x in batched_inputs], model.size_divisibility, ignore_value,
        model.padding_constraints,
    ).tensor  # fmt: skip


class SemanticSegmentor(ImageModel):
    """Backbone + semantic segmentation head.

    Training inputs carry ``sem_seg`` (``Tensor[H, W]`` int64 labels; the head's ``ignore_value``
    is not learned) and the model returns ``{"loss_sem_seg": ...}``; eval mode returns
    ``[{"sem_seg": Tensor[C, height, width]}]`` per-class logits at each input's ``height``/``width``.

    Args:
        backbone: feature extractor.
        sem_seg_head: ``(features, targets) -> (logits, losses)`` with an ``ignore_value``.
        pixel_mean, pixel_std, input_format: as for :class:`ImageModel`.
    """

    def __init__(
        self,
        *,
        backbone: Backbone,
        sem_seg_head: SemSegFPNHead,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        input_format: str = "BGR",
    ) -> None:
        super().__init__(
            backbone=backbone, pixel_mean=pixel_mean, pixel_std=pixel_std, input_format=input_format
        )
        self.sem_seg_head = sem_seg_head

    def forward(self, batched_inputs: Sequence[dict[str, Any]]):
        images = self.preprocess_image(batched_inputs)
        features = self.extract_features(images)
        if self.training:
            targets = gt_sem_seg(self, batched_inputs, self.sem_seg_head.ignore_value)
            _, losses = self.sem_seg_head(features, targets)
            return losses
        results, _ = self.sem_seg_head(features, None)
        return [
            {"sem_seg": sem_seg_postprocess(r, size, x.get("height", size[0]), x.get("width", size[1]))}
            for r, x, size in zip(results, batched_inputs, images.image_sizes, strict=True)
        ]


@attrs.define(frozen=True, kw_only=True)
class SemanticSegmentorConfig(ImageModelConfig):
    """Semantic FPN: the ResNet-50-FPN backbone and ``SemSegFPNHead`` (detectron2's
    Misc/semantic_R_50_FPN defaults)."""

    name: ClassVar[str] = "SemanticSegmentor"
    sem_seg_head: SemSegFPNHeadConfig = attrs.field(
        factory=SemSegFPNHeadConfig, validator=check.instance_of(SemSegFPNHeadConfig)
    )

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.check_input_features(self.sem_seg_head, "sem_seg_head")

    def class_counts(self) -> tuple[ClassCount, ...]:
        return (self.sem_seg_head.class_count("sem_seg_head"),)


@META_ARCH_REGISTRY.register(SemanticSegmentorConfig)
def build_semantic_segmentor(config: SemanticSegmentorConfig) -> SemanticSegmentor:
    """Backbone + ``SemSegFPNHead``."""
    backbone = build_backbone(config.backbone, config.input_shape())
    head = build_sem_seg_fpn_head(config.sem_seg_head, backbone.output_shape())
    return SemanticSegmentor(backbone=backbone, sem_seg_head=head, **config.input_kwargs())
