"""The seam between dt-models' parts: one tagged-union base config and one ``Registry`` per kind of part.

A field typed with a base below (``backbone: BackboneConfig``) accepts the config class of any part
registered in the matching registry; in data, its ``name`` key picks the class. Each part's concrete
config class and build function live in the module that implements the part, registered there::

    @attrs.define(frozen=True, kw_only=True)
    class MyBackboneConfig(BackboneConfig):
        name: ClassVar[str] = "MyBackbone"
        width: int = 64

    @BACKBONE_REGISTRY.register(MyBackboneConfig)
    def build_my_backbone(config: MyBackboneConfig, input_shape: ShapeSpec) -> Backbone:
        return MyBackbone(width=config.width, in_channels=input_shape.channels)

Packages outside dt declare their parts as entry points of the registry's group (``dt_models.<kind>``,
e.g. ``dt_models.roi_branch``); they are imported the first time a registry is asked for a name it
does not have, or for its names. Each registry's docstring states the keywords its build functions get.
"""

from __future__ import annotations

import attrs

from dt_config import Registry, RegistryEntry, Tagged
from dt_config import validators as check

__all__ = [
    "BACKBONE_REGISTRY",
    "CURRENT_VERSION",
    "META_ARCH_REGISTRY",
    "PROPOSAL_GENERATOR_REGISTRY",
    "ROI_BOX_HEAD_REGISTRY",
    "ROI_BOX_PREDICTOR_REGISTRY",
    "ROI_BRANCH_REGISTRY",
    "ROI_HEADS_REGISTRY",
    "ROI_MASK_HEAD_REGISTRY",
    "BackboneConfig",
    "BoxHeadConfig",
    "BoxPredictorConfig",
    "ClassCount",
    "MaskHeadConfig",
    "ModelConfig",
    "ProposalGeneratorConfig",
    "ROIBranchConfig",
    "ROIHeadsConfig",
    "Registry",
    "RegistryEntry",
]

CURRENT_VERSION = 1
"""Version of the model config schema (``ModelConfig.version``)."""


@attrs.define(frozen=True, kw_only=True)
class BackboneConfig(Tagged):
    """Base of backbone configs."""

    def output_features(self) -> tuple[str, ...] | None:
        """Names of the feature maps the backbone will output, if known from the config."""
        return None


@attrs.define(frozen=True, kw_only=True)
class ProposalGeneratorConfig(Tagged):
    """Base of proposal generator configs: ``in_features`` are the backbone maps it reads."""

    in_features: tuple[str, ...] = ()

    def input_features(self) -> dict[str, tuple[str, ...]]:
        """The backbone feature names this part reads, by the config key that holds them."""
        return {"in_features": self.in_features}


@attrs.define(frozen=True, kw_only=True)
class ROIHeadsConfig(Tagged):
    """Base of ROI heads configs: ``num_classes`` foreground classes, ``in_features`` backbone maps."""

    num_classes: int = 80
    in_features: tuple[str, ...] = ()

    def input_features(self) -> dict[str, tuple[str, ...]]:
        """The backbone feature names the heads read, by the (dotted) config key that holds them."""
        return {"in_features": self.in_features}

    def gt_fields(self) -> frozenset[str]:
        """The ground-truth ``Instances`` fields the heads train on."""
        return frozenset({"gt_boxes", "gt_classes"})


@attrs.define(frozen=True, kw_only=True)
class BoxHeadConfig(Tagged):
    """Base of box head configs (pooled box features to per-box features)."""


@attrs.define(frozen=True, kw_only=True)
class BoxPredictorConfig(Tagged):
    """Base of box predictor configs (per-box features to class scores, box deltas, losses, detections)."""


@attrs.define(frozen=True, kw_only=True)
class MaskHeadConfig(Tagged):
    """Base of mask head configs (pooled features to per-class mask logits)."""


@attrs.define(frozen=True, kw_only=True)
class ROIBranchConfig(Tagged):
    """Base of ROI branch configs: an extra head of the ROI heads (masks, keypoints, ...).

    ``in_features``: the backbone maps the branch pools from; ``None`` uses the ROI heads' own.
    """

    in_features: tuple[str, ...] | None = attrs.field(default=None, validator=check.optional(check.non_empty))

    def gt_fields(self) -> frozenset[str]:
        """The ground-truth ``Instances`` fields the branch trains on (``{"gt_masks"}``)."""
        return frozenset()


@attrs.frozen(kw_only=True)
class ClassCount:
    """How many classes one head of a model predicts, so the training data can be checked against it.

    ``kind``: ``"thing"`` (instance classes, a dataset's ``thing_classes``) or ``"stuff"`` (semantic
    labels, indices into ``stuff_classes``); ``key``: the dotted path of the field in the model config;
    ``ignore_value``/``ignore_key``: the label a semantic head ignores (a dataset's ``ignore_label``).
    """

    kind: str = attrs.field(validator=check.one_of(("thing", "stuff")))
    num_classes: int
    key: str
    ignore_value: int | None = None
    ignore_key: str | None = None


@attrs.define(frozen=True, kw_only=True)
class ModelConfig(Tagged):
    """Base of model configs; the data's ``name`` picks the meta-architecture (default: GeneralizedRCNN)."""

    version: int = attrs.field(default=CURRENT_VERSION, validator=check.one_of((CURRENT_VERSION,)))
    weights: str | None = None
    """The weights ``dt train`` starts from (detectron2's ``MODEL.WEIGHTS``): a file, or a name a
    weights source knows (``zoo:NAME``); ``--weights`` overrides it and a resumed checkpoint wins over
    both. ``build_model`` does not read it."""

    def gt_fields(self) -> frozenset[str]:
        """The ground-truth ``Instances`` fields the model trains on (``gt_boxes``, ``gt_masks``, ...)."""
        return frozenset()

    def class_counts(self) -> tuple[ClassCount, ...]:
        """The number of classes of each head that predicts classes (none for a class-agnostic model)."""
        return ()


BACKBONE_REGISTRY = Registry("backbone", BackboneConfig, group="dt_models.backbone")
"""Backbones: ``build(config, input_shape: ShapeSpec) -> Backbone``."""
PROPOSAL_GENERATOR_REGISTRY = Registry(
    "proposal_generator", ProposalGeneratorConfig, group="dt_models.proposal_generator"
)
"""Proposal generators: ``build(config, input_shape: dict[str, ShapeSpec]) -> nn.Module``."""
ROI_HEADS_REGISTRY = Registry("roi_heads", ROIHeadsConfig, group="dt_models.roi_heads")
"""ROI heads: ``build(config, input_shape: dict[str, ShapeSpec]) -> ROIHeads``."""
ROI_BOX_HEAD_REGISTRY = Registry(
    "roi_box_head", BoxHeadConfig, group="dt_models.roi_box_head", default="FastRCNNConvFCHead"
)
"""Box heads: ``build(config, input_shape: ShapeSpec) -> nn.Module`` with an ``output_shape``."""
ROI_BOX_PREDICTOR_REGISTRY = Registry(
    "roi_box_predictor",
    BoxPredictorConfig,
    group="dt_models.roi_box_predictor",
    default="FastRCNNOutputLayers",
)
"""Box predictors: ``build(config, input_shape: ShapeSpec, num_classes: int, test_score_thresh: float,
test_nms_thresh: float, test_topk_per_image: int) -> nn.Module`` with the interface of
``FastRCNNOutputLayers`` (``forward``, ``losses``, ``inference``)."""
ROI_MASK_HEAD_REGISTRY = Registry(
    "roi_mask_head", MaskHeadConfig, group="dt_models.roi_mask_head", default="MaskRCNNConvUpsampleHead"
)
"""Mask heads: ``build(config, input_shape: ShapeSpec, num_classes: int) -> nn.Module``."""
ROI_BRANCH_REGISTRY = Registry("roi_branch", ROIBranchConfig, group="dt_models.roi_branch")
"""ROI branches: ``build(config, input_shape: dict[str, ShapeSpec], in_features: tuple[str, ...],
num_classes: int) -> ROIBranch``; ``in_features`` is resolved (the ROI heads' when the config's is
``None``)."""
META_ARCH_REGISTRY = Registry(
    "meta_arch", ModelConfig, group="dt_models.meta_arch", default="GeneralizedRCNN"
)
"""Meta-architectures: ``build(config) -> nn.Module``."""
