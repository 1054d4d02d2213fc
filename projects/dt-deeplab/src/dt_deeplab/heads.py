"""Semantic segmentation heads of DeepLab: ``DeepLabV3Head`` (ASPP on the last map) and
``DeepLabV3PlusHead`` (ASPP, then a decoder that fuses projected low-level maps), with their configs,
the ``SEM_SEG_HEAD_REGISTRY`` they are registered in, and the shared ``DeepLabV3PlusDecoder``.

Module names follow detectron2's (``aspp.convs.0``, ``decoder.res2.project_conv``, ``predictor``), so
its DeepLab checkpoints load unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import attrs
import torch
from torch import nn
from torch.nn import functional as F

from dt_config import ConfigProblem, Registry, Tagged
from dt_config import validators as check
from dt_models.layers import NORM_NAMES, Conv2d, ShapeSpec, get_norm

from .layers import ASPP, DepthwiseSeparableConv2d, xavier_fill
from .loss import DeepLabCE

__all__ = [
    "SEM_SEG_HEAD_REGISTRY",
    "DeepLabV3Head",
    "DeepLabV3HeadConfig",
    "DeepLabV3PlusDecoder",
    "DeepLabV3PlusHead",
    "DeepLabV3PlusHeadConfig",
    "SemSegHeadConfig",
    "SemanticLossMixin",
    "aspp_pool_kernel",
    "build_semantic_loss",
    "check_decoder_features",
    "fuse_block",
    "predictor_conv",
]

LOSS_TYPES = ("cross_entropy", "hard_pixel_mining")


def _crop_size(instance: object, attribute: attrs.Attribute, value: tuple[int, int] | None) -> None:
    if value is not None and (len(value) != 2 or any(not isinstance(v, int) or v < 1 for v in value)):
        raise ConfigProblem(f"expected null or [height, width] in pixels, got {value!r}", key=attribute.name)


@attrs.define(frozen=True, kw_only=True)
class SemSegHeadConfig(Tagged):
    """Base of semantic head configs: ``num_classes`` classes over ``in_features`` maps; pixels
    labelled ``ignore_value`` carry no loss; the head's logits are at stride ``common_stride``.

    ``loss_type``: ``cross_entropy`` (mean over valid pixels) or ``hard_pixel_mining`` (``DeepLabCE``
    over the ``loss_top_k`` hardest fraction of pixels). ``train_size``: the training crop
    ``[height, width]``; it fixes ASPP's pooling window (``null``: global pooling).
    """

    num_classes: int = attrs.field(default=19, validator=check.at_least(1))
    in_features: tuple[str, ...] = attrs.field(default=("res5",), validator=check.non_empty)
    ignore_value: int = 255
    common_stride: int = attrs.field(default=16, validator=check.at_least(1))
    norm: str = attrs.field(default="BN", validator=check.one_of(NORM_NAMES))
    loss_weight: float = attrs.field(default=1.0, validator=check.at_least(0.0))
    loss_type: str = attrs.field(default="hard_pixel_mining", validator=check.one_of(LOSS_TYPES))
    loss_top_k: float = attrs.field(default=0.2, validator=[check.greater_than(0.0), check.at_most(1.0)])
    aspp_channels: int = attrs.field(default=256, validator=check.at_least(1))
    aspp_dilations: tuple[int, int, int] = attrs.field(default=(6, 12, 18), validator=check.length(3))
    aspp_dropout: float = attrs.field(default=0.1, validator=[check.at_least(0.0), check.below(1.0)])
    use_depthwise_separable_conv: bool = False
    train_size: tuple[int, int] | None = attrs.field(default=None, validator=_crop_size)

    def input_features(self) -> dict[str, tuple[str, ...]]:
        return {"in_features": self.in_features}


SEM_SEG_HEAD_REGISTRY = Registry("sem_seg_head", SemSegHeadConfig, group="dt_deeplab.sem_seg_head")
"""Semantic heads: ``build(config, input_shape: dict[str, ShapeSpec]) -> nn.Module`` whose
``forward(features, targets=None, weights=None)`` returns ``(logits at stride 1 or None, losses)``."""


def build_semantic_loss(config: SemSegHeadConfig) -> nn.Module:
    """``loss(logits [N, C, H, W], labels [N, H, W], weights [N, H, W] | None) -> scalar``."""
    if config.loss_type == "cross_entropy":
        return _CrossEntropy(config.ignore_value)
    return DeepLabCE(ignore_label=config.ignore_value, top_k_percent_pixels=config.loss_top_k)


class _CrossEntropy(nn.Module):
    """Mean cross entropy over the pixels not labelled ``ignore_value`` (per-pixel weights unused)."""

    def __init__(self, ignore_value: int) -> None:
        super().__init__()
        self.ignore_value = ignore_value

    def forward(self, logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None):
        return F.cross_entropy(logits, labels, ignore_index=self.ignore_value)


def aspp_pool_kernel(train_size: tuple[int, int] | None, stride: int) -> tuple[int, int] | None:
    """ASPP's pooling window for training crops ``train_size`` seen at ``stride`` (``None``: global)."""
    if train_size is None:
        return None
    if train_size[0] % stride or train_size[1] % stride:
        raise ValueError(
            f"train_size {list(train_size)} must be a multiple of the ASPP input stride {stride}"
        )
    return train_size[0] // stride, train_size[1] // stride


def predictor_conv(in_channels: int, num_classes: int) -> Conv2d:
    """A 1x1 conv to ``num_classes`` outputs, initialised near zero (std 0.001) as DeepLab's are."""
    predictor = Conv2d(in_channels, num_classes, 1)
    nn.init.normal_(predictor.weight, 0, 0.001)
    nn.init.constant_(predictor.bias, 0)
    return predictor


class SemanticLossMixin:
    """Upsample stride-``common_stride`` logits to the labels' resolution and apply ``self.loss``."""

    common_stride: int
    loss: nn.Module
    loss_weight: float

    def upsample(self, logits: torch.Tensor) -> torch.Tensor:
        return F.interpolate(logits, scale_factor=self.common_stride, mode="bilinear", align_corners=False)

    def losses(
        self, logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        return {"loss_sem_seg": self.loss(self.upsample(logits), targets, weights) * self.loss_weight}

    def predict_or_loss(self, logits: torch.Tensor, targets, weights):
        """Training: ``(None, losses)``; inference: ``(Tensor[N, C, H, W] logits at stride 1, {})``."""
        if self.training:  # type: ignore[attr-defined]
            if targets is None:
                raise ValueError("training needs semantic targets ('sem_seg' in every input)")
            return None, self.losses(logits, targets, weights)
        return self.upsample(logits), {}


class DeepLabV3Head(SemanticLossMixin, nn.Module):
    """ASPP on one map, then a 1x1 predictor: ``{in_feature: Tensor[N, C_in, H/s, W/s]}`` to logits."""

    def __init__(
        self,
        *,
        in_feature: str,
        aspp: ASPP,
        predictor: nn.Module,
        loss: nn.Module,
        common_stride: int,
        loss_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.in_features = [in_feature]
        self.aspp, self.predictor, self.loss = aspp, predictor, loss
        self.common_stride, self.loss_weight = common_stride, loss_weight

    def forward(self, features: Mapping[str, torch.Tensor], targets=None, weights=None):
        x = self.predictor(self.aspp(features[self.in_features[0]]))  # [N, K, H/s, W/s]
        return self.predict_or_loss(x, targets, weights)


class DeepLabV3PlusDecoder(nn.Module):
    """DeepLabV3+'s decoder: ASPP on the coarsest of ``input_shape``'s maps, then from coarse to fine,
    upsample, concatenate the finer map's 1x1 projection (``project_channels``) and fuse with two 3x3
    convs (or one 5x5 depthwise-separable conv) into ``decoder_channels`` channels.

    ``decode(features) -> Tensor[N, decoder_channels, H/s0, W/s0]`` at the finest map's stride ``s0``.
    ``self.decoder[name]`` holds each map's ``project_conv`` (ASPP for the coarsest) and ``fuse_conv``.
    """

    def __init__(
        self,
        input_shape: Mapping[str, ShapeSpec],
        *,
        project_channels: tuple[int, ...],
        decoder_channels: int,
        aspp_channels: int,
        aspp_dilations: tuple[int, int, int],
        aspp_dropout: float,
        norm: str,
        train_size: tuple[int, int] | None = None,
        use_depthwise_separable_conv: bool = False,
    ) -> None:
        super().__init__()
        ordered = sorted(input_shape.items(), key=lambda item: item[1].stride)
        self.in_features = [name for name, _ in ordered]
        if len(project_channels) != len(ordered) - 1:
            raise ValueError(f"need {len(ordered) - 1} project_channels, got {list(project_channels)}")
        self.use_depthwise_separable_conv = use_depthwise_separable_conv
        bias = not norm
        self.decoder = nn.ModuleDict()
        for idx, (name, shape) in enumerate(ordered):
            stage = nn.ModuleDict()
            if idx == len(ordered) - 1:
                stage["project_conv"] = ASPP(
                    shape.channels,
                    aspp_channels,
                    aspp_dilations,
                    norm=norm,
                    pool_kernel_size=aspp_pool_kernel(train_size, shape.stride),
                    dropout=aspp_dropout,
                    use_depthwise_separable_conv=use_depthwise_separable_conv,
                )
                stage["fuse_conv"] = None
            else:
                project = Conv2d(
                    shape.channels,
                    project_channels[idx],
                    1,
                    bias=bias,
                    norm=get_norm(norm, project_channels[idx]),
                    activation=F.relu,
                )
                xavier_fill(project)
                coarser = aspp_channels if idx == len(ordered) - 2 else decoder_channels
                stage["project_conv"] = project
                stage["fuse_conv"] = fuse_block(
                    project_channels[idx] + coarser, decoder_channels, norm, use_depthwise_separable_conv
                )
            self.decoder[name] = stage

    def decode(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        y = None
        for name in reversed(self.in_features):
            stage = self.decoder[name]
            projected = stage["project_conv"](features[name])
            if y is None:
                y = projected  # ASPP output of the coarsest map
                continue
            y = F.interpolate(y, size=projected.shape[-2:], mode="bilinear", align_corners=False)
            y = stage["fuse_conv"](torch.cat([projected, y], dim=1))
        return y


def fuse_block(
    in_channels: int,
    out_channels: int,
    norm: str,
    depthwise_separable: bool,
    *,
    mid_channels: int | None = None,
) -> nn.Module:
    """Two 3x3 convs (``in -> mid -> out``; ``mid`` defaults to ``out``), or one 5x5 depthwise-separable
    conv of the same receptive field (Panoptic-DeepLab's lighter variant)."""
    if depthwise_separable:
        return DepthwiseSeparableConv2d(in_channels, out_channels, kernel_size=5, padding=2, norm=norm)
    mid_channels = out_channels if mid_channels is None else mid_channels
    convs = [
        Conv2d(c_in, c_out, 3, padding=1, bias=not norm, norm=get_norm(norm, c_out), activation=F.relu)
        for c_in, c_out in ((in_channels, mid_channels), (mid_channels, out_channels))
    ]
    for conv in convs:
        xavier_fill(conv)
    return nn.Sequential(*convs)


class DeepLabV3PlusHead(SemanticLossMixin, DeepLabV3PlusDecoder):
    """:class:`DeepLabV3PlusDecoder` followed by a 1x1 predictor of ``num_classes`` logits."""

    def __init__(
        self,
        input_shape: Mapping[str, ShapeSpec],
        *,
        num_classes: int,
        loss: nn.Module,
        common_stride: int,
        loss_weight: float = 1.0,
        **decoder_kwargs,
    ) -> None:
        super().__init__(input_shape, **decoder_kwargs)
        self.predictor = predictor_conv(decoder_kwargs["decoder_channels"], num_classes)
        self.loss, self.common_stride, self.loss_weight = loss, common_stride, loss_weight

    def forward(self, features: Mapping[str, torch.Tensor], targets=None, weights=None):
        return self.predict_or_loss(self.predictor(self.decode(features)), targets, weights)


@attrs.define(frozen=True, kw_only=True)
class DeepLabV3HeadConfig(SemSegHeadConfig):
    """ASPP on ``in_features[0]`` (one map); ``common_stride`` must be that map's stride."""

    name: ClassVar[str] = "DeepLabV3Head"

    def __attrs_post_init__(self) -> None:
        if len(self.in_features) != 1:
            raise ConfigProblem(
                f"DeepLabV3Head reads one map, got {list(self.in_features)}", key="in_features"
            )


@SEM_SEG_HEAD_REGISTRY.register(DeepLabV3HeadConfig)
def build_deeplab_v3_head(config: DeepLabV3HeadConfig, input_shape: Mapping[str, ShapeSpec]) -> DeepLabV3Head:
    shape = input_shape[config.in_features[0]]
    if shape.stride is not None and shape.stride != config.common_stride:
        raise ValueError(
            f"DeepLabV3Head: common_stride {config.common_stride} differs from {config.in_features[0]}'s "
            f"stride {shape.stride}"
        )
    aspp = ASPP(
        shape.channels,
        config.aspp_channels,
        config.aspp_dilations,
        norm=config.norm,
        pool_kernel_size=aspp_pool_kernel(config.train_size, config.common_stride),
        dropout=config.aspp_dropout,
        use_depthwise_separable_conv=config.use_depthwise_separable_conv,
    )
    return DeepLabV3Head(
        in_feature=config.in_features[0],
        aspp=aspp,
        predictor=predictor_conv(config.aspp_channels, config.num_classes),
        loss=build_semantic_loss(config),
        common_stride=config.common_stride,
        loss_weight=config.loss_weight,
    )


def check_decoder_features(in_features: tuple[str, ...], project_channels: tuple[int, ...]) -> None:
    """The rule of a DeepLabV3+ decoder config: two or more maps, one projection width per low-level map."""
    if len(in_features) < 2:
        raise ConfigProblem(
            f"needs a low-level map and the ASPP map, got {list(in_features)}", key="in_features"
        )
    if len(project_channels) != len(in_features) - 1:
        raise ConfigProblem(
            f"needs {len(in_features) - 1} values (one per low-level map), got {list(project_channels)}",
            key="project_channels",
        )


@attrs.define(frozen=True, kw_only=True)
class DeepLabV3PlusHeadConfig(SemSegHeadConfig):
    """ASPP on the coarsest of ``in_features``, fused with the others (``project_channels`` each, one
    fewer than ``in_features``) into ``convs_dim`` channels at the finest map's stride."""

    name: ClassVar[str] = "DeepLabV3PlusHead"
    in_features: tuple[str, ...] = attrs.field(default=("res2", "res5"), validator=check.non_empty)
    project_channels: tuple[int, ...] = (48,)
    convs_dim: int = attrs.field(default=256, validator=check.at_least(1))
    common_stride: int = attrs.field(default=4, validator=check.at_least(1))

    def __attrs_post_init__(self) -> None:
        check_decoder_features(self.in_features, self.project_channels)

    def decoder_kwargs(self) -> dict:
        """The :class:`DeepLabV3PlusDecoder` arguments this config sets."""
        return dict(
            project_channels=self.project_channels,
            decoder_channels=self.convs_dim,
            aspp_channels=self.aspp_channels,
            aspp_dilations=self.aspp_dilations,
            aspp_dropout=self.aspp_dropout,
            norm=self.norm,
            train_size=self.train_size,
            use_depthwise_separable_conv=self.use_depthwise_separable_conv,
        )


@SEM_SEG_HEAD_REGISTRY.register(DeepLabV3PlusHeadConfig)
def build_deeplab_v3_plus_head(
    config: DeepLabV3PlusHeadConfig, input_shape: Mapping[str, ShapeSpec]
) -> DeepLabV3PlusHead:
    return DeepLabV3PlusHead(
        {f: input_shape[f] for f in config.in_features},
        num_classes=config.num_classes,
        loss=build_semantic_loss(config),
        common_stride=config.common_stride,
        loss_weight=config.loss_weight,
        **config.decoder_kwargs(),
    )
