"""Typed configuration of the models: ``ModelConfig`` and the config of every built-in part.

Defaults are those of detectron2's ``Base-RCNN-FPN.yaml`` (Faster R-CNN, ResNet-50-FPN, 80 classes).
Fields that hold a pluggable part are typed with a tagged-union base (``BackboneConfig``, ...):
in data they carry a ``name`` that picks the registered config class.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from dt_config import ConfigProblem, Tagged
from dt_config import validators as check

__all__ = [
    "CURRENT_VERSION",
    "AnchorGeneratorConfig",
    "BackboneConfig",
    "BoxHeadConfig",
    "FastRCNNConvFCHeadConfig",
    "FastRCNNOutputConfig",
    "GeneralizedRCNNConfig",
    "MaskHeadConfig",
    "MaskRCNNConvUpsampleHeadConfig",
    "ModelConfig",
    "PoolerConfig",
    "ProposalGeneratorConfig",
    "ProposalNetworkConfig",
    "ROIHeadsConfig",
    "RPNConfig",
    "ResNetConfig",
    "ResNetFPNConfig",
    "StandardROIHeadsConfig",
]

CURRENT_VERSION = 1
NORMS = ("", "BN", "SyncBN", "FrozenBN", "GN", "LN")
BOX_REG_LOSSES = ("smooth_l1", "giou", "diou", "ciou")
POOLER_TYPES = ("ROIAlign", "ROIAlignV2", "ROIPool")


def _matcher_fields(thresholds: tuple[float, ...], labels: tuple[int, ...], prefix: str = "") -> None:
    if list(thresholds) != sorted(thresholds):
        raise ConfigProblem(f"must be increasing, got {list(thresholds)}", key=f"{prefix}iou_thresholds")
    if len(labels) != len(thresholds) + 1:
        raise ConfigProblem(
            f"needs len(iou_thresholds) + 1 = {len(thresholds) + 1} values, got {len(labels)}",
            key=f"{prefix}iou_labels",
        )
    if any(label not in (-1, 0, 1) for label in labels):
        raise ConfigProblem(f"values must be -1, 0 or 1, got {list(labels)}", key=f"{prefix}iou_labels")


# ----------------------------------------------------------------------------------------- backbones
@attrs.define(frozen=True, kw_only=True)
class BackboneConfig(Tagged):
    """Base of backbone configs (a tagged union resolved through ``BACKBONE_REGISTRY``)."""

    def output_features(self) -> tuple[str, ...] | None:
        """Names of the feature maps the backbone will output, if known from the config."""
        return None


@attrs.define(frozen=True, kw_only=True)
class ResNetConfig(BackboneConfig):
    """ResNet / ResNeXt (``num_groups > 1``) with optional deformable convolutions per stage."""

    name: ClassVar[str] = "ResNet"
    depth: int = attrs.field(default=50, validator=check.one_of((18, 34, 50, 101, 152)))
    num_groups: int = attrs.field(default=1, validator=check.at_least(1))
    width_per_group: int = attrs.field(default=64, validator=check.at_least(1))
    stem_out_channels: int = attrs.field(default=64, validator=check.at_least(1))
    res2_out_channels: int = attrs.field(default=256, validator=check.at_least(1))
    stride_in_1x1: bool = True
    res5_dilation: int = attrs.field(default=1, validator=check.one_of((1, 2)))
    norm: str = attrs.field(default="FrozenBN", validator=check.one_of(NORMS))
    freeze_at: int = attrs.field(default=2, validator=check.between(0, 5))
    out_features: tuple[str, ...] = attrs.field(
        default=("res2", "res3", "res4", "res5"),
        validator=[check.non_empty, check.subset_of(("stem", "res2", "res3", "res4", "res5"))],
    )
    deform_on_per_stage: tuple[bool, ...] = attrs.field(default=(False,) * 4, validator=check.length(4))
    deform_modulated: bool = False
    deform_num_groups: int = attrs.field(default=1, validator=check.at_least(1))

    def __attrs_post_init__(self) -> None:
        if self.depth in (18, 34):
            if self.res2_out_channels != 64:
                raise ConfigProblem(f"must be 64 for depth {self.depth}", key="res2_out_channels")
            if self.res5_dilation != 1:
                raise ConfigProblem(f"must be 1 for depth {self.depth}", key="res5_dilation")
            if any(self.deform_on_per_stage):
                raise ConfigProblem(
                    f"deformable convs need depth >= 50, got {self.depth}", key="deform_on_per_stage"
                )

    def output_features(self) -> tuple[str, ...]:
        return self.out_features


@attrs.define(frozen=True, kw_only=True)
class ResNetFPNConfig(BackboneConfig):
    """A ResNet bottom-up with an FPN on ``in_features`` and an optional extra top block.

    ``top_block``: ``"max_pool"`` adds P6 by subsampling P5 (R-CNN), ``"p6p7"`` adds P6 and P7 by
    convolutions on ``top_block_in_feature`` (RetinaNet), ``""`` adds nothing.
    """

    name: ClassVar[str] = "ResNetFPN"
    resnet: ResNetConfig = attrs.field(factory=ResNetConfig, validator=check.instance_of(ResNetConfig))
    in_features: tuple[str, ...] = attrs.field(
        default=("res2", "res3", "res4", "res5"), validator=check.non_empty
    )
    out_channels: int = attrs.field(default=256, validator=check.at_least(1))
    norm: str = attrs.field(default="", validator=check.one_of(NORMS))
    fuse_type: str = attrs.field(default="sum", validator=check.one_of(("sum", "avg")))
    top_block: str = attrs.field(default="max_pool", validator=check.one_of(("max_pool", "p6p7", "")))
    top_block_in_feature: str = attrs.field(default="res5", validator=check.one_of(("res5", "p5")))

    def __attrs_post_init__(self) -> None:
        missing = [f for f in self.in_features if f not in self.resnet.out_features]
        if missing:
            raise ConfigProblem(
                f"{missing} not among resnet.out_features {list(self.resnet.out_features)}", key="in_features"
            )

    def output_features(self) -> tuple[str, ...]:
        levels = [int(f[3:]) for f in self.in_features if f.startswith("res")]
        extra = {"max_pool": 1, "p6p7": 2, "": 0}[self.top_block]
        return tuple(f"p{k}" for k in [*levels, *range(levels[-1] + 1, levels[-1] + 1 + extra)])


# ------------------------------------------------------------------------------ proposal generators
@attrs.define(frozen=True, kw_only=True)
class AnchorGeneratorConfig:
    """``DefaultAnchorGenerator``: sizes and aspect ratios per feature map (one entry: all maps)."""

    sizes: tuple[tuple[float, ...], ...] = attrs.field(
        default=((32.0,), (64.0,), (128.0,), (256.0,), (512.0,)), validator=check.non_empty
    )
    aspect_ratios: tuple[tuple[float, ...], ...] = attrs.field(
        default=((0.5, 1.0, 2.0),), validator=check.non_empty
    )
    offset: float = attrs.field(default=0.0, validator=check.between(0.0, 0.999999))

    def __attrs_post_init__(self) -> None:
        for key in ("sizes", "aspect_ratios"):
            values = getattr(self, key)
            if any(len(v) == 0 or min(v) <= 0 for v in values):
                raise ConfigProblem(
                    f"every entry must be a non-empty list of positive numbers, got {values}", key=key
                )

    def check_num_features(self, num_features: int, prefix: str) -> None:
        """Check sizes/aspect ratios have one entry or one per feature map, with equal anchor counts."""
        for key in ("sizes", "aspect_ratios"):
            n = len(getattr(self, key))
            if n not in (1, num_features):
                raise ConfigProblem(
                    f"has {n} entries but there are {num_features} feature maps (in_features); use 1 or "
                    f"{num_features}",
                    key=f"{prefix}{key}",
                )
        sizes = self.sizes * (num_features if len(self.sizes) == 1 else 1)
        ratios = self.aspect_ratios * (num_features if len(self.aspect_ratios) == 1 else 1)
        counts = {len(s) * len(r) for s, r in zip(sizes, ratios, strict=True)}
        if len(counts) > 1:
            raise ConfigProblem(
                f"every feature map needs the same number of anchors per cell, got {sorted(counts)}",
                key=f"{prefix}sizes",
            )


@attrs.define(frozen=True, kw_only=True)
class ProposalGeneratorConfig(Tagged):
    """Base of proposal generator configs (resolved through ``PROPOSAL_GENERATOR_REGISTRY``)."""

    in_features: tuple[str, ...] = ()


@attrs.define(frozen=True, kw_only=True)
class RPNConfig(ProposalGeneratorConfig):
    """Region proposal network with ``StandardRPNHead`` (``head_conv_dims``: -1 keeps the width)."""

    name: ClassVar[str] = "RPN"
    in_features: tuple[str, ...] = attrs.field(
        default=("p2", "p3", "p4", "p5", "p6"), validator=check.non_empty
    )
    head_conv_dims: tuple[int, ...] = attrs.field(default=(-1,), validator=check.non_empty)
    anchor_generator: AnchorGeneratorConfig = attrs.field(
        factory=AnchorGeneratorConfig, validator=check.instance_of(AnchorGeneratorConfig)
    )
    iou_thresholds: tuple[float, ...] = (0.3, 0.7)
    iou_labels: tuple[int, ...] = (0, -1, 1)
    batch_size_per_image: int = attrs.field(default=256, validator=check.at_least(1))
    positive_fraction: float = attrs.field(default=0.5, validator=check.between(0.0, 1.0))
    bbox_reg_weights: tuple[float, ...] = attrs.field(default=(1.0, 1.0, 1.0, 1.0), validator=check.length(4))
    bbox_reg_loss_type: str = attrs.field(default="smooth_l1", validator=check.one_of(BOX_REG_LOSSES))
    smooth_l1_beta: float = attrs.field(default=0.0, validator=check.at_least(0.0))
    loss_weight: float = 1.0
    bbox_reg_loss_weight: float = 1.0
    pre_nms_topk_train: int = attrs.field(default=2000, validator=check.at_least(1))
    pre_nms_topk_test: int = attrs.field(default=1000, validator=check.at_least(1))
    post_nms_topk_train: int = attrs.field(default=1000, validator=check.at_least(1))
    post_nms_topk_test: int = attrs.field(default=1000, validator=check.at_least(1))
    nms_thresh: float = attrs.field(default=0.7, validator=check.between(0.0, 1.0))
    min_box_size: float = attrs.field(default=0.0, validator=check.at_least(0.0))
    boundary_thresh: float = -1.0

    def __attrs_post_init__(self) -> None:
        _matcher_fields(self.iou_thresholds, self.iou_labels)
        self.anchor_generator.check_num_features(len(self.in_features), "anchor_generator.")


# ------------------------------------------------------------------------------------------ ROI heads
@attrs.define(frozen=True, kw_only=True)
class PoolerConfig:
    """``ROIPooler`` settings: ``type`` is ``ROIAlign``, ``ROIAlignV2`` (half-pixel) or ``ROIPool``."""

    type: str = attrs.field(default="ROIAlignV2", validator=check.one_of(POOLER_TYPES))
    resolution: int = attrs.field(default=7, validator=check.at_least(1))
    sampling_ratio: int = 0


@attrs.define(frozen=True, kw_only=True)
class BoxHeadConfig(Tagged):
    """Base of box head configs (resolved through ``ROI_BOX_HEAD_REGISTRY``)."""


@attrs.define(frozen=True, kw_only=True)
class FastRCNNConvFCHeadConfig(BoxHeadConfig):
    """``num_conv`` 3x3 convolutions of ``conv_dim`` then ``num_fc`` linear layers of ``fc_dim``."""

    name: ClassVar[str] = "FastRCNNConvFCHead"
    num_conv: int = attrs.field(default=0, validator=check.at_least(0))
    conv_dim: int = attrs.field(default=256, validator=check.at_least(1))
    num_fc: int = attrs.field(default=2, validator=check.at_least(0))
    fc_dim: int = attrs.field(default=1024, validator=check.at_least(1))
    norm: str = attrs.field(default="", validator=check.one_of(NORMS))

    def __attrs_post_init__(self) -> None:
        if self.num_conv + self.num_fc == 0:
            raise ConfigProblem("num_conv + num_fc must be > 0", key="num_fc")


@attrs.define(frozen=True, kw_only=True)
class FastRCNNOutputConfig:
    """Box predictor: box coding weights, class-agnostic regression, box loss."""

    bbox_reg_weights: tuple[float, ...] = attrs.field(
        default=(10.0, 10.0, 5.0, 5.0), validator=check.length(4)
    )
    cls_agnostic_bbox_reg: bool = False
    bbox_reg_loss_type: str = attrs.field(default="smooth_l1", validator=check.one_of(BOX_REG_LOSSES))
    smooth_l1_beta: float = attrs.field(default=0.0, validator=check.at_least(0.0))
    bbox_reg_loss_weight: float = 1.0


@attrs.define(frozen=True, kw_only=True)
class MaskHeadConfig(Tagged):
    """Base of mask head configs (resolved through ``ROI_MASK_HEAD_REGISTRY``)."""


@attrs.define(frozen=True, kw_only=True)
class MaskRCNNConvUpsampleHeadConfig(MaskHeadConfig):
    """``num_conv`` 3x3 convolutions, a 2x upsampling transposed conv, a 1x1 predictor."""

    name: ClassVar[str] = "MaskRCNNConvUpsampleHead"
    num_conv: int = attrs.field(default=4, validator=check.at_least(0))
    conv_dim: int = attrs.field(default=256, validator=check.at_least(1))
    norm: str = attrs.field(default="", validator=check.one_of(NORMS))
    cls_agnostic_mask: bool = False
    loss_weight: float = 1.0


@attrs.define(frozen=True, kw_only=True)
class ROIHeadsConfig(Tagged):
    """Base of ROI heads configs (resolved through ``ROI_HEADS_REGISTRY``)."""

    num_classes: int = 80
    in_features: tuple[str, ...] = ()


@attrs.define(frozen=True, kw_only=True)
class StandardROIHeadsConfig(ROIHeadsConfig):
    """Box head + predictor and an optional mask head (``mask_head: null`` for Faster R-CNN)."""

    name: ClassVar[str] = "StandardROIHeads"
    num_classes: int = attrs.field(default=80, validator=check.at_least(1))
    in_features: tuple[str, ...] = attrs.field(default=("p2", "p3", "p4", "p5"), validator=check.non_empty)
    iou_thresholds: tuple[float, ...] = (0.5,)
    iou_labels: tuple[int, ...] = (0, 1)
    batch_size_per_image: int = attrs.field(default=512, validator=check.at_least(1))
    positive_fraction: float = attrs.field(default=0.25, validator=check.between(0.0, 1.0))
    proposal_append_gt: bool = True
    score_thresh_test: float = attrs.field(default=0.05, validator=check.between(0.0, 1.0))
    nms_thresh_test: float = attrs.field(default=0.5, validator=check.between(0.0, 1.0))
    detections_per_image: int = 100
    box_pooler: PoolerConfig = attrs.field(factory=PoolerConfig, validator=check.instance_of(PoolerConfig))
    box_head: BoxHeadConfig = attrs.field(
        factory=FastRCNNConvFCHeadConfig, validator=check.instance_of(BoxHeadConfig)
    )
    box_predictor: FastRCNNOutputConfig = attrs.field(
        factory=FastRCNNOutputConfig, validator=check.instance_of(FastRCNNOutputConfig)
    )
    mask_pooler: PoolerConfig = attrs.field(
        factory=lambda: PoolerConfig(resolution=14), validator=check.instance_of(PoolerConfig)
    )
    mask_head: MaskHeadConfig | None = attrs.field(
        default=None, validator=attrs.validators.optional(check.instance_of(MaskHeadConfig))
    )

    def __attrs_post_init__(self) -> None:
        _matcher_fields(self.iou_thresholds, self.iou_labels)


# ------------------------------------------------------------------------------- meta-architectures
@attrs.define(frozen=True, kw_only=True)
class ModelConfig(Tagged):
    """Base of model configs: the data's ``name`` picks the meta-architecture (default
    ``GeneralizedRCNN``), resolved through ``META_ARCH_REGISTRY``."""

    version: int = attrs.field(default=CURRENT_VERSION, validator=check.one_of((CURRENT_VERSION,)))


def _check_in_features(backbone: BackboneConfig, part: Any, key: str) -> None:
    available = backbone.output_features()
    if available is None:
        return
    missing = [f for f in part.in_features if f not in available]
    if missing:
        raise ConfigProblem(f"{missing} are not backbone outputs {list(available)}", key=f"{key}.in_features")


def _check_pixels(config: Any) -> None:
    if len(config.pixel_mean) != len(config.pixel_std):
        raise ConfigProblem(
            f"has {len(config.pixel_std)} values but pixel_mean has {len(config.pixel_mean)}", key="pixel_std"
        )
    if any(s <= 0 for s in config.pixel_std):
        raise ConfigProblem(f"values must be > 0, got {list(config.pixel_std)}", key="pixel_std")
    expected = 1 if config.input_format == "L" else 3
    if len(config.pixel_mean) != expected:
        raise ConfigProblem(
            f"needs {expected} values for input_format {config.input_format!r}", key="pixel_mean"
        )


@attrs.define(frozen=True, kw_only=True)
class GeneralizedRCNNConfig(ModelConfig):
    """Faster / Mask R-CNN: backbone, proposal generator, ROI heads, input normalization.

    ``pixel_mean``/``pixel_std`` are in ``input_format`` channel order (0-255 pixel values).
    """

    name: ClassVar[str] = "GeneralizedRCNN"
    backbone: BackboneConfig = attrs.field(
        factory=ResNetFPNConfig, validator=check.instance_of(BackboneConfig)
    )
    proposal_generator: ProposalGeneratorConfig = attrs.field(
        factory=RPNConfig, validator=check.instance_of(ProposalGeneratorConfig)
    )
    roi_heads: ROIHeadsConfig = attrs.field(
        factory=StandardROIHeadsConfig, validator=check.instance_of(ROIHeadsConfig)
    )
    pixel_mean: tuple[float, ...] = (103.53, 116.28, 123.675)
    pixel_std: tuple[float, ...] = (1.0, 1.0, 1.0)
    input_format: str = attrs.field(default="BGR", validator=check.one_of(("BGR", "RGB", "L")))

    def __attrs_post_init__(self) -> None:
        _check_pixels(self)
        _check_in_features(self.backbone, self.proposal_generator, "proposal_generator")
        _check_in_features(self.backbone, self.roi_heads, "roi_heads")


@attrs.define(frozen=True, kw_only=True)
class ProposalNetworkConfig(ModelConfig):
    """RPN-only model: backbone and proposal generator."""

    name: ClassVar[str] = "ProposalNetwork"
    backbone: BackboneConfig = attrs.field(
        factory=ResNetFPNConfig, validator=check.instance_of(BackboneConfig)
    )
    proposal_generator: ProposalGeneratorConfig = attrs.field(
        factory=RPNConfig, validator=check.instance_of(ProposalGeneratorConfig)
    )
    pixel_mean: tuple[float, ...] = (103.53, 116.28, 123.675)
    pixel_std: tuple[float, ...] = (1.0, 1.0, 1.0)
    input_format: str = attrs.field(default="BGR", validator=check.one_of(("BGR", "RGB", "L")))

    def __attrs_post_init__(self) -> None:
        _check_pixels(self)
        _check_in_features(self.backbone, self.proposal_generator, "proposal_generator")
