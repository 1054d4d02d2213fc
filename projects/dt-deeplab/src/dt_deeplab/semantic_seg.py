"""``DeepLabSegmentor``: a semantic segmentation meta-architecture (backbone + a semantic head from
``SEM_SEG_HEAD_REGISTRY``) on dt-models' ``ImageModel``, and its config (registered as ``DeepLabSegmentor``).

Training inputs carry ``sem_seg`` (``Tensor[H, W]`` int64, ``ignore_value`` where unlabelled); outputs
are ``[{"sem_seg": Tensor[C, height, width]}]`` logits at each input's ``height``/``width``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
import torch
from torch import nn
from torch.nn import functional as F

from dt_config import validators as check
from dt_models.build import build_backbone
from dt_models.meta_arch import ImageModel, ImageModelConfig
from dt_models.registry import META_ARCH_REGISTRY, BackboneConfig
from dt_structures import ImageList

from .backbone import DeepLabResNetConfig
from .heads import SEM_SEG_HEAD_REGISTRY, DeepLabV3PlusHeadConfig, SemSegHeadConfig

__all__ = ["DeepLabSegmentor", "DeepLabSegmentorConfig", "build_deeplab_segmentor", "sem_seg_postprocess"]


def sem_seg_postprocess(
    result: torch.Tensor, image_size: tuple[int, int], output_height: int, output_width: int
) -> torch.Tensor:
    """``Tensor[C, H', W']`` predictions on a padded batch: crop to the ``image_size`` the network saw,
    resize (bilinear) to ``(output_height, output_width)``: ``Tensor[C, output_height, output_width]``."""
    result = result[None, :, : image_size[0], : image_size[1]]
    return F.interpolate(result, size=(output_height, output_width), mode="bilinear", align_corners=False)[0]


def padded_targets(
    batched_inputs: Sequence[dict[str, Any]],
    key: str,
    images: ImageList,
    pad_value: float,
    device: torch.device,
) -> torch.Tensor:
    """The per-image ``key`` tensors (``[..., H, W]``) padded like ``images``: ``Tensor[N, ..., H', W']``."""
    missing = [i for i, x in enumerate(batched_inputs) if key not in x]
    if missing:
        raise ValueError(f"training needs {key!r} in every input; missing in {missing}")
    batch = ImageList.from_tensors([x[key].to(device) for x in batched_inputs], 0, pad_value).tensor
    height, width = images.tensor.shape[-2:]
    pad = (0, width - batch.shape[-1], 0, height - batch.shape[-2])
    return F.pad(batch, pad, value=pad_value)


class DeepLabSegmentor(ImageModel):
    """Backbone features to a semantic head: per-pixel losses in training, logits at inference.

    Args:
        sem_seg_head: ``forward(features, targets, weights) -> (logits | None, losses)`` with an
            ``ignore_value`` attribute or argument (pixels padded onto targets get it).
        Others: as :class:`dt_models.ImageModel`.
    """

    def __init__(self, *, sem_seg_head: nn.Module, ignore_value: int, **image_model_kwargs) -> None:
        super().__init__(**image_model_kwargs)
        self.sem_seg_head = sem_seg_head
        self.ignore_value = ignore_value

    def forward(self, batched_inputs: list[dict[str, Any]]):
        images = self.preprocess_image(batched_inputs)
        features = self.extract_features(images)
        targets = None
        if self.training:
            targets = padded_targets(batched_inputs, "sem_seg", images, self.ignore_value, self.device)
        results, losses = self.sem_seg_head(features, targets)
        if self.training:
            return losses
        outputs = []
        for result, item, size in zip(results, batched_inputs, images.image_sizes, strict=True):
            height, width = item.get("height", size[0]), item.get("width", size[1])
            outputs.append({"sem_seg": sem_seg_postprocess(result, size, height, width)})
        return outputs


@attrs.define(frozen=True, kw_only=True)
class DeepLabSegmentorConfig(ImageModelConfig):
    """A DeepLab semantic segmentor: ``backbone`` (default the DeepLab ResNet-101) and ``sem_seg_head``
    (``DeepLabV3Head`` or ``DeepLabV3PlusHead``), whose ``in_features`` must be backbone outputs."""

    name: ClassVar[str] = "DeepLabSegmentor"
    backbone: BackboneConfig = attrs.field(
        factory=DeepLabResNetConfig, validator=check.instance_of(BackboneConfig)
    )
    sem_seg_head: SemSegHeadConfig = attrs.field(
        factory=DeepLabV3PlusHeadConfig, validator=check.instance_of(SemSegHeadConfig)
    )

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.check_input_features(self.sem_seg_head, "sem_seg_head")


@META_ARCH_REGISTRY.register(DeepLabSegmentorConfig)
def build_deeplab_segmentor(config: DeepLabSegmentorConfig) -> DeepLabSegmentor:
    backbone = build_backbone(config.backbone, config.input_shape())
    head = SEM_SEG_HEAD_REGISTRY.build(config.sem_seg_head, input_shape=backbone.output_shape())
    return DeepLabSegmentor(
        backbone=backbone,
        sem_seg_head=head,
        ignore_value=config.sem_seg_head.ignore_value,
        **config.input_kwargs(),
    )
