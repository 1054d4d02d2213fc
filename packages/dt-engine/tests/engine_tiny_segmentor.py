"""A tiny segmentation meta-architecture for the evaluator tests (importing this registers it).

``EngineTinySegmentor``: a 1x1 convolution over the image gives class logits, resized to the
input's ``height``/``width``. Its outputs follow the dt model contract: ``sem_seg`` (``[C, H, W]``
scores); with ``num_things > 0`` also ``instances`` (one per thing class present in the argmax:
its mask and box); with ``panoptic`` also ``panoptic_seg`` (``ids [H, W]``, ``segments_info``, the
first ``num_things`` classes being things). Random weights are fine: the tests check which
evaluators ran and what they report, not the numbers.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from dt_config import validators as check
from dt_models import ModelConfig
from dt_models.registry import META_ARCH_REGISTRY
from dt_structures import Boxes, Instances


@attrs.define(frozen=True, kw_only=True)
class TinySegmentorConfig(ModelConfig):
    name: ClassVar[str] = "EngineTinySegmentor"
    num_classes: int = attrs.field(default=7, validator=check.at_least(1))
    num_things: int = attrs.field(default=0, validator=check.at_least(0))
    panoptic: bool = False
    input_format: str = attrs.field(default="BGR", validator=check.one_of(("BGR", "RGB")))


class TinySegmentor(nn.Module):
    def __init__(self, num_classes: int, num_things: int, panoptic: bool, input_format: str) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, num_classes, kernel_size=1)
        self.num_things = num_things
        self.panoptic = panoptic
        self.input_format = input_format

    def _logits(self, item: dict[str, Any]) -> torch.Tensor:
        image = item["image"].to(torch.float32)[None] / 255.0  # [1, 3, H', W']
        size = (item.get("height", image.shape[2]), item.get("width", image.shape[3]))
        return F.interpolate(self.head(image), size=size, mode="bilinear", align_corners=False)[
            0
        ]  # [C, H, W]

    def forward(self, batched_inputs: list[dict[str, Any]]) -> Any:
        if self.training:
            losses = [
                F.cross_entropy(self._logits(x)[None], x["sem_seg"][None], ignore_index=255)
                for x in batched_inputs
            ]
            return {"loss_sem_seg": torch.stack(losses).mean()}
        outputs = []
        for item in batched_inputs:
            logits = self._logits(item)
            labels = logits.argmax(dim=0)  # [H, W]
            output: dict[str, Any] = {"sem_seg": logits}
            present = labels.unique().tolist()
            if self.num_things:
                output["instances"] = self._instances(labels, [c for c in present if c < self.num_things])
            if self.panoptic:
                segments = [{"id": c + 1, "category_id": c, "isthing": c < self.num_things} for c in present]
                output["panoptic_seg"] = (labels + 1, segments)
            outputs.append(output)
        return outputs

    @staticmethod
    def _instances(labels: torch.Tensor, classes: list[int]) -> Instances:
        masks = (
            torch.stack([labels == c for c in classes])
            if classes
            else labels.new_zeros((0, *labels.shape), dtype=torch.bool)
        )
        boxes = []
        for mask in masks:
            ys, xs = torch.nonzero(mask, as_tuple=True)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        return Instances(
            tuple(labels.shape),
            pred_boxes=Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)),
            scores=torch.full((len(classes),), 0.5),
            pred_classes=torch.tensor(classes, dtype=torch.int64),
            pred_masks=masks,
        )


@META_ARCH_REGISTRY.register(TinySegmentorConfig)
def build_tiny_segmentor(config: TinySegmentorConfig) -> TinySegmentor:
    return TinySegmentor(config.num_classes, config.num_things, config.panoptic, config.input_format)
