"""``DenseDetector``: the base of one-stage detectors (RetinaNet, FCOS) that predict at every location
of every feature level, and ``DenseDetectorConfig``, the base of their configs."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import attrs
import torch
from torch import nn

import dt_ops
from dt_config import ConfigProblem
from dt_config import validators as check
from dt_models.backbone import Backbone, ResNetConfig, ResNetFPNConfig
from dt_models.meta_arch.image_model import ImageModel, ImageModelConfig
from dt_models.meta_arch.postprocessing import detector_postprocess
from dt_models.registry import BackboneConfig, ClassCount
from dt_structures import Boxes, ImageList, Instances

__all__ = ["DenseDetector", "DenseDetectorConfig", "permute_to_N_HWA_K", "retinanet_backbone_config"]


def permute_to_N_HWA_K(tensor: torch.Tensor, K: int) -> torch.Tensor:
    """``Tensor[N, A*K, H, W]`` to ``Tensor[N, H*W*A, K]``: locations row-major, then the A anchors."""
    if tensor.dim() != 4:
        raise ValueError(f"expected a Tensor[N, A*K, H, W], got shape {tuple(tensor.shape)}")
    n, _, h, w = tensor.shape
    return tensor.reshape(n, -1, K, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, K)


class DenseDetector(ImageModel, abc.ABC):
    """A backbone and one head run on every ``head_in_features`` map; detections are decoded per level.

    ``forward`` runs the head on the feature list and hands its per-level predictions to
    :meth:`forward_training` (a dict of losses) or :meth:`forward_inference` (``Instances`` per image
    at the network input size, rescaled here to each input's ``height``/``width``).

    Post-processing, shared by the subclasses (:meth:`decode_multi_level_predictions`,
    :meth:`select_detections`): per level, scores above ``test_score_thresh`` and of those the
    ``test_topk_candidates`` best are decoded; then class-wise NMS at ``test_nms_thresh`` over all
    levels and the ``max_detections_per_image`` best are kept.

    Args:
        backbone: feature extractor.
        head: ``list[Tensor[N, C, Hi, Wi]]`` to a tuple of per-level prediction lists.
        head_in_features: backbone maps the head runs on, finest first.
        box2box_transform: decodes the box predictions against anchors (``apply_deltas``).
        test_score_thresh, test_topk_candidates, test_nms_thresh, max_detections_per_image: inference.
        pixel_mean, pixel_std, input_format: as for :class:`ImageModel`.
    """

    def __init__(
        self,
        *,
        backbone: Backbone,
        head: nn.Module,
        head_in_features: Sequence[str],
        box2box_transform: Any,
        test_score_thresh: float = 0.05,
        test_topk_candidates: int = 1000,
        test_nms_thresh: float = 0.5,
        max_detections_per_image: int = 100,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        input_format: str = "BGR",
    ) -> None:
        super().__init__(
            backbone=backbone, pixel_mean=pixel_mean, pixel_std=pixel_std, input_format=input_format
        )
        shapes = backbone.output_shape()
        missing = [f for f in head_in_features if f not in shapes]
        if not head_in_features or missing:
            raise ValueError(
                f"head_in_features must be backbone outputs {list(shapes)}, got {head_in_features}"
            )
        if test_topk_candidates < 1 or max_detections_per_image < 1:
            raise ValueError("test_topk_candidates and max_detections_per_image must be >= 1")
        self.head = head
        self.head_in_features = list(head_in_features)
        self.box2box_transform = box2box_transform
        self.test_score_thresh = test_score_thresh
        self.test_topk_candidates = test_topk_candidates
        self.test_nms_thresh = test_nms_thresh
        self.max_detections_per_image = max_detections_per_image

    def forward(self, batched_inputs: Sequence[dict[str, Any]]):
        """Losses in training; ``[{"instances": Instances}]`` (``pred_boxes``, ``scores``,
        ``pred_classes``) at each input's ``height``/``width`` in eval mode."""
        images = self.preprocess_image(batched_inputs)
        gt_instances = self.gt_instances(batched_inputs) if self.training else None
        features = self.extract_features(images)
        features = [features[f] for f in self.head_in_features]
        predictions = self.head(features)
        if self.training:
            return self.forward_training(images, features, predictions, gt_instances)
        with torch.no_grad():
            results = self.forward_inference(images, features, predictions)
        return [
            {"instances": detector_postprocess(r, x.get("height", size[0]), x.get("width", size[1]))}
            for r, x, size in zip(results, batched_inputs, images.image_sizes, strict=True)
        ]

    @abc.abstractmethod
    def forward_training(
        self,
        images: ImageList,
        features: list[torch.Tensor],
        predictions: tuple[list[torch.Tensor], ...],
        gt_instances: list[Instances],
    ) -> dict[str, torch.Tensor]:
        """The named losses of the head's ``predictions`` against ``gt_instances``."""

    @abc.abstractmethod
    def forward_inference(
        self, images: ImageList, features: list[torch.Tensor], predictions: tuple[list[torch.Tensor], ...]
    ) -> list[Instances]:
        """Detections per image at the network input size."""

    @staticmethod
    def transpose_dense_predictions(
        predictions: Sequence[list[torch.Tensor]], dims_per_anchor: Sequence[int]
    ) -> list[list[torch.Tensor]]:
        """Each per-level ``Tensor[N, Ai*K, Hi, Wi]`` of each prediction kind to ``[N, Hi*Wi*Ai, K]``,
        with ``K`` from ``dims_per_anchor`` (the number of classes, 4 for boxes, 1 for centerness)."""
        if len(predictions) != len(dims_per_anchor):
            raise ValueError(f"{len(predictions)} prediction kinds but {len(dims_per_anchor)} dims given")
        return [
            [permute_to_N_HWA_K(x, k) for x in levels]
            for levels, k in zip(predictions, dims_per_anchor, strict=True)
        ]

    def ema_update(self, name: str, value: float, initial_value: float, momentum: float = 0.9) -> float:
        """``self.<name> = momentum * old + (1 - momentum) * value`` (``old`` starts at
        ``initial_value``) and return it: the loss normalizer, an average of the foreground count
        that stays stable with few images per batch (detectron2's EMA normalizer)."""
        new = getattr(self, name, initial_value) * momentum + value * (1 - momentum)
        setattr(self, name, new)
        return new

    def decode_per_level_predictions(
        self,
        anchors: Boxes,
        pred_scores: torch.Tensor,
        pred_deltas: torch.Tensor,
        score_thresh: float,
        topk_candidates: int,
        image_size: tuple[int, int],
    ) -> Instances:
        """One level of one image: scores ``Tensor[R, K]`` above ``score_thresh``, the best
        ``topk_candidates`` of them, and their boxes decoded from ``pred_deltas`` ``Tensor[R, 4]``
        against ``anchors`` (``R`` of them)."""
        keep = pred_scores > score_thresh  # [R, K]
        candidate_scores = pred_scores[keep]
        candidate_idxs = torch.nonzero(keep)  # [M, 2]: (anchor, class), row-major
        num_topk = min(candidate_idxs.shape[0], topk_candidates)
        scores, idxs = candidate_scores.topk(num_topk)
        anchor_idxs, class_idxs = candidate_idxs[idxs].unbind(dim=1)
        boxes = self.box2box_transform.apply_deltas(pred_deltas[anchor_idxs], anchors.tensor[anchor_idxs])
        return Instances(image_size, pred_boxes=Boxes(boxes), scores=scores, pred_classes=class_idxs)

    def decode_multi_level_predictions(
        self,
        anchors: Sequence[Boxes],
        pred_scores: Sequence[torch.Tensor],
        pred_deltas: Sequence[torch.Tensor],
        score_thresh: float,
        topk_candidates: int,
        image_size: tuple[int, int],
    ) -> Instances:
        """:meth:`decode_per_level_predictions` on every level, concatenated (finest level first)."""
        per_level = [
            self.decode_per_level_predictions(a, s, d, score_thresh, topk_candidates, image_size)
            for a, s, d in zip(anchors, pred_scores, pred_deltas, strict=True)
        ]
        return Instances.cat(per_level)

    def select_detections(self, candidates: Instances) -> Instances:
        """Class-wise NMS (``dt_ops.batched_nms``) at ``test_nms_thresh``, then the best
        ``max_detections_per_image`` in decreasing score order."""
        keep = dt_ops.batched_nms(
            candidates.pred_boxes.tensor, candidates.scores, candidates.pred_classes, self.test_nms_thresh
        )
        return candidates[keep[: self.max_detections_per_image]]


def retinanet_backbone_config() -> ResNetFPNConfig:
    """detectron2's RetinaNet backbone: ResNet-50 C3-C5, FPN P3-P5 and P6/P7 convolved from C5."""
    return ResNetFPNConfig(
        resnet=ResNetConfig(out_features=("res3", "res4", "res5")),
        in_features=("res3", "res4", "res5"),
        top_block="p6p7",
        top_block_in_feature="res5",
    )


@attrs.define(frozen=True, kw_only=True)
class DenseDetectorConfig(ImageModelConfig):
    """Base of one-stage detector configs: classes, the maps the head reads, and inference settings.

    The default backbone is detectron2's RetinaNet ResNet-50-FPN (P3-P7).
    """

    backbone: BackboneConfig = attrs.field(
        factory=retinanet_backbone_config, validator=check.instance_of(BackboneConfig)
    )
    num_classes: int = attrs.field(default=80, validator=check.at_least(1))
    in_features: tuple[str, ...] = attrs.field(
        default=("p3", "p4", "p5", "p6", "p7"), validator=check.non_empty
    )
    test_score_thresh: float = attrs.field(default=0.05, validator=check.between(0.0, 1.0))
    test_topk_candidates: int = attrs.field(default=1000, validator=check.at_least(1))
    test_nms_thresh: float = attrs.field(default=0.5, validator=check.between(0.0, 1.0))
    detections_per_image: int = attrs.field(default=100, validator=check.at_least(1))

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        available = self.backbone.output_features()
        missing = [f for f in self.in_features if available is not None and f not in available]
        if missing:
            raise ConfigProblem(f"{missing} are not backbone outputs {list(available)}", key="in_features")

    def gt_fields(self) -> frozenset[str]:
        return frozenset({"gt_boxes", "gt_classes"})

    def class_counts(self) -> tuple[ClassCount, ...]:
        return (ClassCount(kind="thing", num_classes=self.num_classes, key="num_classes"),)

    def inference_kwargs(self) -> dict[str, Any]:
        """The :class:`DenseDetector` inference arguments the config sets."""
        return {
            "test_score_thresh": self.test_score_thresh,
            "test_topk_candidates": self.test_topk_candidates,
            "test_nms_thresh": self.test_nms_thresh,
            "max_detections_per_image": self.detections_per_image,
        }
