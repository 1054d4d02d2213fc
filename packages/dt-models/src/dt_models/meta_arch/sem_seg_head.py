"""``SemSegFPNHead``: Panoptic FPN's semantic segmentation head (Kirillov et al. 2019) and its config
``SemSegFPNHeadConfig``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import attrs
import torch
from torch import nn
from torch.nn import functional as F

from dt_config import ConfigProblem
from dt_config import validators as check
from dt_models.layers import NORM_NAMES, Conv2d, ShapeSpec, get_norm
from dt_models.registry import ClassCount

__all__ = ["SemSegFPNHead", "SemSegFPNHeadConfig", "build_sem_seg_fpn_head"]


def _msra_fill(conv: nn.Conv2d) -> None:
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.constant_(conv.bias, 0)


class SemSegFPNHead(nn.Module):
    """Each input map goes through ``max(1, log2(stride / common_stride))`` 3x3 conv + norm + ReLU
    steps, each followed by a 2x bilinear upsampling while above ``common_stride``; the towers are
    summed and a 1x1 convolution predicts per-class logits at ``common_stride``, upsampled
    bilinearly to the input resolution for the loss and the output.

    Args:
        input_shape: the maps it reads, by name (any order: they are sorted by stride).
        num_classes: classes predicted per pixel.
        conv_dims: channels of the tower convolutions.
        common_stride: the stride the towers meet at.
        loss_weight: multiplies the per-pixel cross-entropy.
        norm: normalization of the tower convolutions (``""``: none, with biases).
        ignore_value: ground-truth label excluded from the loss (also the padding of targets).
    """

    def __init__(
        self,
        input_shape: Mapping[str, ShapeSpec],
        *,
        num_classes: int,
        conv_dims: int,
        common_stride: int,
        loss_weight: float = 1.0,
        norm: str = "",
        ignore_value: int = -1,
    ) -> None:
        super().__init__()
        if not input_shape:
            raise ValueError("SemSegFPNHead needs at least one input feature map")
        shapes = sorted(input_shape.items(), key=lambda item: item[1].stride)
        self.in_features = [name for name, _ in shapes]
        self.ignore_value = ignore_value
        self.common_stride = common_stride
        self.loss_weight = loss_weight
        self.scale_heads: list[nn.Sequential] = []
        for name, shape in shapes:
            if shape.stride < common_stride:
                raise ValueError(
                    f"{name} has stride {shape.stride}, finer than common_stride {common_stride}"
                )
            ops: list[nn.Module] = []
            for k in range(max(1, int(math.log2(shape.stride) - math.log2(common_stride)))):
                conv = Conv2d(
                    shape.channels if k == 0 else conv_dims, conv_dims, kernel_size=3, padding=1,
                    bias=not norm, norm=get_norm(norm, conv_dims), activation=F.relu,
                )  # fmt: skip
                _msra_fill(conv)
                ops.append(conv)
                if shape.stride != common_stride:
                    ops.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            tower = nn.Sequential(*ops)
            self.add_module(name, tower)  # detectron2's checkpoint names: sem_seg_head.p2.0.weight
            self.scale_heads.append(tower)
        self.predictor = Conv2d(conv_dims, num_classes, kernel_size=1)
        _msra_fill(self.predictor)

    def layers(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Logits ``Tensor[N, num_classes, H / common_stride, W / common_stride]``."""
        x = None
        for name, tower in zip(self.in_features, self.scale_heads, strict=True):
            y = tower(features[name])
            x = y if x is None else x + y
        return self.predictor(x)

    def forward(
        self, features: Mapping[str, torch.Tensor], targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """Training (``targets`` ``Tensor[N, H, W]`` int64): ``(None, {"loss_sem_seg": ...})``;
        inference: ``(logits Tensor[N, C, H, W] at the padded input size, {})``."""
        x = self.layers(features)
        if self.training:
            if targets is None:
                raise ValueError("SemSegFPNHead needs targets in training")
            return None, self.losses(x, targets)
        return F.interpolate(x, scale_factor=self.common_stride, mode="bilinear", align_corners=False), {}

    def losses(self, predictions: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Mean cross-entropy over non-ignored pixels, times ``loss_weight``."""
        predictions = F.interpolate(
            predictions.float(), scale_factor=self.common_stride, mode="bilinear", align_corners=False
        )
        loss = F.cross_entropy(predictions, targets, reduction="mean", ignore_index=self.ignore_value)
        return {"loss_sem_seg": loss * self.loss_weight}


@attrs.define(frozen=True, kw_only=True)
class SemSegFPNHeadConfig:
    """``SemSegFPNHead``; defaults are detectron2's ``MODEL.SEM_SEG_HEAD`` (54 COCO stuff classes +
    "things", 128 channels, stride 4, GroupNorm, ignore 255)."""

    in_features: tuple[str, ...] = attrs.field(default=("p2", "p3", "p4", "p5"), validator=check.non_empty)
    num_classes: int = attrs.field(default=54, validator=check.at_least(1))
    conv_dims: int = attrs.field(default=128, validator=check.at_least(1))
    common_stride: int = attrs.field(default=4, validator=check.at_least(1))
    norm: str = attrs.field(default="GN", validator=check.one_of(NORM_NAMES))
    loss_weight: float = attrs.field(default=1.0, validator=check.at_least(0.0))
    ignore_value: int = 255

    def __attrs_post_init__(self) -> None:
        if self.common_stride & (self.common_stride - 1):
            raise ConfigProblem(f"must be a power of 2, got {self.common_stride}", key="common_stride")

    def input_features(self) -> dict[str, tuple[str, ...]]:
        return {"in_features": self.in_features}

    def class_count(self, key: str) -> ClassCount:
        """Its semantic classes, for the model config that holds it at ``key`` (e.g. ``"sem_seg_head"``)."""
        return ClassCount(
            kind="stuff", num_classes=self.num_classes, key=f"{key}.num_classes",
            ignore_value=self.ignore_value, ignore_key=f"{key}.ignore_value",
        )  # fmt: skip


def build_sem_seg_fpn_head(
    config: SemSegFPNHeadConfig, input_shape: Mapping[str, ShapeSpec]
) -> SemSegFPNHead:
    """``SemSegFPNHead`` on the ``config.in_features`` maps of ``input_shape``."""
    missing: Sequence[str] = [f for f in config.in_features if f not in input_shape]
    if missing:
        raise ValueError(
            f"sem_seg_head.in_features {list(missing)} are not backbone outputs {list(input_shape)}"
        )
    return SemSegFPNHead(
        {f: input_shape[f] for f in config.in_features}, num_classes=config.num_classes,
        conv_dims=config.conv_dims, common_stride=config.common_stride, loss_weight=config.loss_weight,
        norm=config.norm, ignore_value=config.ignore_value,
    )  # fmt: skip
