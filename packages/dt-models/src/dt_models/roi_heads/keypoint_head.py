"""Keypoints in the ROI heads: the ``KRCNNConvDeconvUpsampleHead`` (per-keypoint heatmap logits, their
loss and decoding) and the ``KeypointBranch`` (a pooler and a keypoint head), with their configs
``KRCNNConvDeconvUpsampleHeadConfig`` and ``KeypointBranchConfig`` (registered as ``KeypointBranch``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import attrs
import torch
from torch import nn
from torch.nn import functional as F

from dt_config import ConfigProblem
from dt_config import validators as check
from dt_models.layers import Conv2d, ShapeSpec, cat, nonzero_tuple, shared_channels
from dt_models.poolers import PoolerConfig, ROIPooler, build_pooler
from dt_models.registry import ROI_BRANCH_REGISTRY, ROIBranchConfig
from dt_models.roi_heads.branch import ROIBranch
from dt_structures import Instances, heatmaps_to_keypoints

__all__ = [
    "KRCNNConvDeconvUpsampleHead",
    "KRCNNConvDeconvUpsampleHeadConfig",
    "KeypointBranch",
    "KeypointBranchConfig",
    "build_keypoint_branch",
    "keypoint_rcnn_inference",
    "keypoint_rcnn_loss",
    "select_proposals_with_visible_keypoints",
]


def keypoint_rcnn_loss(
    pred_keypoint_logits: torch.Tensor, instances: Sequence[Instances], normalizer: float | None
) -> torch.Tensor:
    """Summed cross-entropy over the heatmap cells of every valid keypoint, divided by ``normalizer``.

    A keypoint is valid if it is labeled (visibility > 0) and falls inside its proposal box; its target
    is the heatmap cell it falls in (``Keypoints.to_heatmap``).

    Args:
        pred_keypoint_logits: ``Tensor[R, K, S, S]`` heatmap logits, proposals of all images in order.
        instances: per image, proposals with ``proposal_boxes`` and ``gt_keypoints`` (``Keypoints``).
        normalizer: divide the summed loss by this; ``None``: by the number of valid keypoints.

    Returns:
        A scalar; zero (still connected to the logits) when no keypoint is valid.
    """
    if pred_keypoint_logits.dim() != 4 or pred_keypoint_logits.shape[2] != pred_keypoint_logits.shape[3]:
        raise ValueError(
            f"pred_keypoint_logits must be [R, K, S, S], got {tuple(pred_keypoint_logits.shape)}"
        )
    side = pred_keypoint_logits.shape[2]
    targets, valid = [], []
    for inst in instances:
        if len(inst) == 0:
            continue
        cells, is_valid = inst.gt_keypoints.to_heatmap(inst.proposal_boxes.tensor, side)  # [Ri, K] each
        targets.append(cells.reshape(-1))
        valid.append(is_valid.reshape(-1))
    if not targets:
        return pred_keypoint_logits.sum() * 0
    valid_idx = nonzero_tuple(cat(valid, dim=0) > 0)[0]
    if valid_idx.numel() == 0:
        return pred_keypoint_logits.sum() * 0
    num_rois, num_keypoints = pred_keypoint_logits.shape[:2]
    logits = pred_keypoint_logits.reshape(num_rois * num_keypoints, side * side)
    loss = F.cross_entropy(
        logits[valid_idx], cat(targets, dim=0).to(logits.device)[valid_idx], reduction="sum"
    )
    return loss / (valid_idx.numel() if normalizer is None else normalizer)


def keypoint_rcnn_inference(pred_keypoint_logits: torch.Tensor, pred_instances: Sequence[Instances]) -> None:
    """Set ``pred_keypoints`` ``Tensor[Ri, K, 3]`` (x, y, score; input pixels) and
    ``pred_keypoint_heatmaps`` ``Tensor[Ri, K, S, S]`` (the logits) on each image's detections, in place.

    Heatmaps are decoded in each detection's ``pred_boxes`` by ``dt_structures.heatmaps_to_keypoints``.
    """
    logits = pred_keypoint_logits.detach()
    boxes = cat([i.pred_boxes.tensor for i in pred_instances], dim=0).detach()  # [R, 4]
    decoded = heatmaps_to_keypoints(logits, boxes)[:, :, [0, 1, 3]]  # [R, K, 3]: x, y, score
    counts = [len(i) for i in pred_instances]
    for keypoints, heatmaps, instances in zip(
        decoded.split(counts), logits.split(counts), pred_instances, strict=True
    ):
        instances.pred_keypoints = keypoints
        instances.pred_keypoint_heatmaps = heatmaps


def select_proposals_with_visible_keypoints(proposals: Sequence[Instances]) -> list[Instances]:
    """Per image, the proposals whose box contains at least one visible (visibility >= 1) ground-truth
    keypoint of their matched instance; images without proposals are kept as they are."""
    selected = []
    for props in proposals:
        if len(props) == 0:
            selected.append(props)
            continue
        keypoints = props.gt_keypoints.tensor  # [R, K, 3]
        boxes = props.proposal_boxes.tensor[:, None]  # [R, 1, 4]
        xs, ys = keypoints[..., 0], keypoints[..., 1]  # [R, K]
        inside = (xs >= boxes[..., 0]) & (xs <= boxes[..., 2]) & (ys >= boxes[..., 1]) & (ys <= boxes[..., 3])
        keep = (inside & (keypoints[..., 2] >= 1)).any(dim=1)  # [R]
        selected.append(props[nonzero_tuple(keep)[0]])
    return selected


class KRCNNConvDeconvUpsampleHead(nn.Module):
    """3x3 conv+ReLU layers (``conv_fcn1``, ...), a 4x4/2 transposed conv to one map per keypoint
    (``score_lowres``), then 2x bilinear upsampling: ``Tensor[R, C, S, S]`` -> ``Tensor[R, K, 4S, 4S]``.

    Args:
        input_shape: pooled feature shape (channels used).
        num_keypoints: keypoints per instance (K).
        conv_dims: channels of each 3x3 conv layer.
        loss_weight: weight of ``loss_keypoint``.
        loss_normalizer: ``None`` divides the loss by the number of valid keypoints in the batch; a
            number ``n`` divides it by ``n`` times the number of images.
    """

    def __init__(
        self,
        input_shape: ShapeSpec,
        *,
        num_keypoints: int,
        conv_dims: Sequence[int],
        loss_weight: float = 1.0,
        loss_normalizer: float | None = None,
    ) -> None:
        super().__init__()
        if num_keypoints <= 0:
            raise ValueError(f"num_keypoints must be > 0, got {num_keypoints}")
        self.num_keypoints = num_keypoints
        self.loss_weight = loss_weight
        self.loss_normalizer = loss_normalizer
        channels = input_shape.channels
        self.convs = []
        for k, dim in enumerate(conv_dims):
            conv = Conv2d(channels, dim, 3, stride=1, padding=1, activation=F.relu)
            self.add_module(f"conv_fcn{k + 1}", conv)
            self.convs.append(conv)
            channels = dim
        self.score_lowres = nn.ConvTranspose2d(channels, num_keypoints, kernel_size=4, stride=2, padding=1)
        for name, param in self.named_parameters():
            if name.endswith("bias"):
                nn.init.constant_(param, 0)
            else:
                nn.init.kaiming_normal_(param, mode="fan_out", nonlinearity="relu")

    def layers(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[R, C, S, S]`` pooled features to heatmap logits ``Tensor[R, K, 4S, 4S]``."""
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)  # faster oneDNN convolutions
        for conv in self.convs:
            x = conv(x)
        x = self.score_lowres(x)
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)

    def forward(
        self, x: torch.Tensor, instances: list[Instances]
    ) -> dict[str, torch.Tensor] | list[Instances]:
        """Training: ``{"loss_keypoint": ...}``; inference: ``instances`` with ``pred_keypoints`` set."""
        logits = self.layers(x)
        if self.training:
            normalizer = None if self.loss_normalizer is None else len(instances) * self.loss_normalizer
            return {"loss_keypoint": keypoint_rcnn_loss(logits, instances, normalizer) * self.loss_weight}
        keypoint_rcnn_inference(logits, instances)
        return instances


class KeypointBranch(ROIBranch):
    """Instance keypoints: ``loss_keypoint`` in training, ``pred_keypoints`` ``Tensor[R, K, 3]`` (x, y,
    score) at inference. Trains only on proposals with a visible keypoint inside them.

    Args:
        in_features, pooler: as for :class:`ROIBranch`.
        head: pooled features and instances to ``{"loss_keypoint": ...}`` (training) or instances with
            ``pred_keypoints`` (inference), like :class:`KRCNNConvDeconvUpsampleHead`.
    """

    def __init__(self, *, in_features: Sequence[str], pooler: ROIPooler, head: nn.Module) -> None:
        super().__init__(in_features=in_features, pooler=pooler)
        self.head = head

    def select_training_instances(self, foreground: list[Instances]) -> list[Instances]:
        return select_proposals_with_visible_keypoints(foreground)

    def forward(
        self, pooled: torch.Tensor, instances: list[Instances]
    ) -> dict[str, torch.Tensor] | list[Instances]:
        return self.head(pooled, instances)


@attrs.define(frozen=True, kw_only=True)
class KRCNNConvDeconvUpsampleHeadConfig:
    """The Keypoint R-CNN head: ``conv_dims`` 3x3 convs, a transposed conv, 2x bilinear upsampling.

    ``loss_normalizer``: ``null`` normalises the loss by the visible keypoints of the batch; a number
    ``n`` by ``n`` per image (detectron2's ``NUM_KEYPOINTS * BATCH_SIZE_PER_IMAGE * POSITIVE_FRACTION``
    when ``NORMALIZE_LOSS_BY_VISIBLE_KEYPOINTS`` is off).
    """

    num_keypoints: int = attrs.field(default=17, validator=check.at_least(1))
    conv_dims: tuple[int, ...] = attrs.field(default=(512,) * 8)
    loss_weight: float = 1.0
    loss_normalizer: float | None = attrs.field(default=None, validator=check.optional(check.greater_than(0)))

    @conv_dims.validator
    def _check_conv_dims(self, attribute: attrs.Attribute, value: tuple[int, ...]) -> None:
        if any(dim < 1 for dim in value):
            raise ConfigProblem(f"every channel count must be >= 1, got {list(value)}", key=attribute.name)


@attrs.define(frozen=True, kw_only=True)
class KeypointBranchConfig(ROIBranchConfig):
    """The Keypoint R-CNN branch: a ``pooler`` (14x14 by default) and a keypoint ``head``; trains on
    ``gt_keypoints``. ``min_keypoints_per_image``: training images with fewer visible keypoints are
    dropped from the dataset (read by the data loader, as detectron2's ``MIN_KEYPOINTS_PER_IMAGE``)."""

    name: ClassVar[str] = "KeypointBranch"
    pooler: PoolerConfig = attrs.field(
        factory=lambda: PoolerConfig(resolution=14), validator=check.instance_of(PoolerConfig)
    )
    head: KRCNNConvDeconvUpsampleHeadConfig = attrs.field(
        factory=KRCNNConvDeconvUpsampleHeadConfig,
        validator=check.instance_of(KRCNNConvDeconvUpsampleHeadConfig),
    )
    min_keypoints_per_image: int = attrs.field(default=1, validator=check.at_least(0))

    def gt_fields(self) -> frozenset[str]:
        return frozenset({"gt_keypoints"})


@ROI_BRANCH_REGISTRY.register(KeypointBranchConfig)
def build_keypoint_branch(
    config: KeypointBranchConfig,
    input_shape: dict[str, ShapeSpec],
    in_features: tuple[str, ...],
    num_classes: int,
) -> KeypointBranch:
    """Keypoint branch pooling ``in_features`` of ``input_shape`` (``num_classes`` is not used:
    keypoints are class-agnostic)."""
    side = config.pooler.resolution
    channels = shared_channels(input_shape, in_features, "KeypointBranch")
    head = KRCNNConvDeconvUpsampleHead(
        ShapeSpec(channels=channels, height=side, width=side),
        num_keypoints=config.head.num_keypoints, conv_dims=config.head.conv_dims,
        loss_weight=config.head.loss_weight, loss_normalizer=config.head.loss_normalizer,
    )  # fmt: skip
    return KeypointBranch(
        in_features=in_features, pooler=build_pooler(config.pooler, in_features, input_shape), head=head
    )
