"""``PanopticDeepLab``: bottom-up panoptic segmentation (Cheng et al. 2020) on dt-models' ``ImageModel``,
and its config (registered as ``PanopticDeepLab``).

Training inputs carry the target generator's ``sem_seg``, ``sem_seg_weights``, ``center``,
``center_weights``, ``offset``, ``offset_weights``. Outputs per image: ``sem_seg`` (``Tensor[C, H, W]``
logits), ``panoptic_seg`` = ``(Tensor[H, W] labels, None)`` in the label-divisor format
(``class * label_divisor + instance``, -1 void) and, with ``predict_instances``, ``instances``
(``pred_masks``, ``pred_classes``, ``pred_boxes``, ``scores`` = mean class probability x centre score).
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import torch
from torch import nn
from torch.nn import functional as F

from dt_config import ConfigProblem
from dt_config import validators as check
from dt_deeplab.backbone import DeepLabResNetConfig
from dt_deeplab.heads import SEM_SEG_HEAD_REGISTRY, SemSegHeadConfig
from dt_deeplab.semantic_seg import padded_targets, sem_seg_postprocess
from dt_models.build import build_backbone
from dt_models.meta_arch import ImageModel, ImageModelConfig
from dt_models.registry import META_ARCH_REGISTRY, BackboneConfig
from dt_structures import BitMasks, Instances

from .heads import PanopticDeepLabInsEmbedHeadConfig, PanopticDeepLabSemSegHeadConfig, build_ins_embed_head
from .post_processing import get_panoptic_segmentation

__all__ = ["PanopticDeepLab", "PanopticDeepLabConfig", "build_panoptic_deeplab", "panoptic_to_instances"]


def panoptic_to_instances(
    panoptic: torch.Tensor,
    semantic_prob: torch.Tensor,
    center: torch.Tensor,
    thing_ids: set[int],
    label_divisor: int,
) -> Instances:
    """One instance per thing segment of ``panoptic`` ``Tensor[H, W]``: its mask, class, box and score
    (mean probability of its class ``semantic_prob[c]`` over the mask times the centre heatmap
    ``Tensor[1, H, W]`` at the mask's centre of mass)."""
    labels = [
        int(v) for v in torch.unique(panoptic).tolist() if v >= 0 and int(v) // label_divisor in thing_ids
    ]
    result = Instances(tuple(panoptic.shape))
    if not labels:
        result.pred_masks = torch.zeros((0, *panoptic.shape), dtype=torch.bool, device=panoptic.device)
        result.pred_classes = torch.zeros(0, dtype=torch.int64, device=panoptic.device)
        result.scores = torch.zeros(0, device=panoptic.device)
        result.pred_boxes = BitMasks(result.pred_masks).get_bounding_boxes()
        return result
    masks = torch.stack([panoptic == label for label in labels])  # [R, H, W]
    classes = torch.tensor([label // label_divisor for label in labels], device=panoptic.device)
    scores = []
    for mask, category in zip(masks, classes.tolist(), strict=True):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        center_score = center[0, int(ys.float().mean()), int(xs.float().mean())]
        scores.append(semantic_prob[category][mask].mean() * center_score)
    result.pred_masks = masks
    result.pred_classes = classes
    result.scores = torch.stack(scores)
    result.pred_boxes = BitMasks(masks).get_bounding_boxes()
    return result


class PanopticDeepLab(ImageModel):
    """Backbone, a semantic head and an instance (centre + offset) head, each with its own decoder;
    panoptic post-processing at inference (see :mod:`dt_panoptic_deeplab.post_processing`).

    Args:
        thing_ids: contiguous semantic class ids that are things (the others are stuff).
        label_divisor: panoptic label = class * label_divisor + instance number.
        stuff_area: stuff segments smaller than this (pixels) become void.
        center_threshold, nms_kernel, top_k: centre selection.
        predict_instances: also output ``instances`` (for instance evaluation).
        ignore_value: semantic label padded onto targets.
    """

    def __init__(
        self,
        *,
        sem_seg_head: nn.Module,
        ins_embed_head: nn.Module,
        thing_ids: tuple[int, ...],
        label_divisor: int,
        stuff_area: int,
        center_threshold: float,
        nms_kernel: int,
        top_k: int,
        predict_instances: bool,
        ignore_value: int,
        **image_model_kwargs,
    ) -> None:
        super().__init__(**image_model_kwargs)
        self.sem_seg_head, self.ins_embed_head = sem_seg_head, ins_embed_head
        self.thing_ids, self.label_divisor = tuple(thing_ids), label_divisor
        self.stuff_area, self.center_threshold = stuff_area, center_threshold
        self.nms_kernel, self.top_k = nms_kernel, top_k
        self.predict_instances, self.ignore_value = predict_instances, ignore_value

    def forward(self, batched_inputs: list[dict[str, Any]]):
        images = self.preprocess_image(batched_inputs)
        features = self.extract_features(images)
        if self.training:
            return self._losses(batched_inputs, images, features)
        sem_seg, _ = self.sem_seg_head(features)
        center, offset, _ = self.ins_embed_head(features)
        outputs = []
        for i, (item, size) in enumerate(zip(batched_inputs, images.image_sizes, strict=True)):
            height, width = item.get("height", size[0]), item.get("width", size[1])
            outputs.append(self._postprocess(sem_seg[i], center[i], offset[i], size, height, width))
        return outputs

    def _losses(self, batched_inputs, images, features) -> dict[str, torch.Tensor]:
        def pad(key: str, value: float = 0.0) -> torch.Tensor:
            return padded_targets(batched_inputs, key, images, value, self.device)

        _, losses = self.sem_seg_head(features, pad("sem_seg", self.ignore_value), pad("sem_seg_weights"))
        *_, instance_losses = self.ins_embed_head(
            features, pad("center")[:, None], pad("center_weights"), pad("offset"), pad("offset_weights")
        )
        return {**losses, **instance_losses}

    def _postprocess(self, sem_seg, center, offset, size, height: int, width: int) -> dict[str, Any]:
        """Resize one image's maps to ``(height, width)`` (offsets scaled with the image) and merge them."""
        sem_seg = sem_seg_postprocess(sem_seg, size, height, width)  # [C, height, width]
        center = sem_seg_postprocess(center, size, height, width)  # [1, height, width]
        scale = torch.tensor([height / size[0], width / size[1]], device=offset.device).view(2, 1, 1)
        offset = sem_seg_postprocess(offset, size, height, width) * scale  # [2, height, width]
        panoptic, _ = get_panoptic_segmentation(
            sem_seg.argmax(dim=0, keepdim=True),
            center,
            offset,
            thing_ids=self.thing_ids,
            label_divisor=self.label_divisor,
            stuff_area=self.stuff_area,
            void_label=-1,
            threshold=self.center_threshold,
            nms_kernel=self.nms_kernel,
            top_k=self.top_k,
        )
        output: dict[str, Any] = {"sem_seg": sem_seg, "panoptic_seg": (panoptic[0], None)}
        if self.predict_instances:
            output["instances"] = panoptic_to_instances(
                panoptic[0], F.softmax(sem_seg, dim=0), center, set(self.thing_ids), self.label_divisor
            )
        return output


def _default_backbone() -> DeepLabResNetConfig:
    return DeepLabResNetConfig(depth=50, out_features=("res2", "res3", "res5"))


@attrs.define(frozen=True, kw_only=True)
class PanopticDeepLabConfig(ImageModelConfig):
    """Panoptic-DeepLab. ``thing_ids`` are the contiguous semantic ids of thing classes (the dataset's
    ``thing_dataset_id_to_contiguous_id`` values); ``size_divisibility`` pads inputs (0: the backbone's)."""

    name: ClassVar[str] = "PanopticDeepLab"
    backbone: BackboneConfig = attrs.field(
        factory=_default_backbone, validator=check.instance_of(BackboneConfig)
    )
    sem_seg_head: SemSegHeadConfig = attrs.field(
        factory=PanopticDeepLabSemSegHeadConfig, validator=check.instance_of(SemSegHeadConfig)
    )
    ins_embed_head: PanopticDeepLabInsEmbedHeadConfig = attrs.field(factory=PanopticDeepLabInsEmbedHeadConfig)
    thing_ids: tuple[int, ...] = attrs.field(default=tuple(range(11, 19)))
    label_divisor: int = attrs.field(default=1000, validator=check.at_least(1))
    stuff_area: int = attrs.field(default=2048, validator=check.at_least(0))
    center_threshold: float = attrs.field(default=0.1, validator=check.between(0.0, 1.0))
    nms_kernel: int = attrs.field(default=7, validator=check.at_least(1))
    top_k_instance: int = attrs.field(default=200, validator=check.at_least(1))
    predict_instances: bool = True
    size_divisibility: int = attrs.field(default=0, validator=check.at_least(0))

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.check_input_features(self.sem_seg_head, "sem_seg_head")
        self.check_input_features(self.ins_embed_head, "ins_embed_head")
        if self.nms_kernel % 2 == 0:
            raise ConfigProblem(
                f"must be odd (a centred max-pooling window), got {self.nms_kernel}", key="nms_kernel"
            )
        num_classes = self.sem_seg_head.num_classes
        outside = [t for t in self.thing_ids if not 0 <= t < num_classes]
        if outside:
            raise ConfigProblem(
                f"{outside} are not classes of sem_seg_head (0..{num_classes - 1})", key="thing_ids"
            )


@META_ARCH_REGISTRY.register(PanopticDeepLabConfig)
def build_panoptic_deeplab(config: PanopticDeepLabConfig) -> PanopticDeepLab:
    backbone = build_backbone(config.backbone, config.input_shape())
    shapes = backbone.output_shape()
    return PanopticDeepLab(
        backbone=backbone,
        sem_seg_head=SEM_SEG_HEAD_REGISTRY.build(config.sem_seg_head, input_shape=shapes),
        ins_embed_head=build_ins_embed_head(config.ins_embed_head, shapes),
        thing_ids=config.thing_ids,
        label_divisor=config.label_divisor,
        stuff_area=config.stuff_area,
        center_threshold=config.center_threshold,
        nms_kernel=config.nms_kernel,
        top_k=config.top_k_instance,
        predict_instances=config.predict_instances,
        ignore_value=config.sem_seg_head.ignore_value,
        size_divisibility=config.size_divisibility or None,
        **config.input_kwargs(),
    )
