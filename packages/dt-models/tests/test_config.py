from typing import ClassVar, Literal

import attrs
import pytest
import torch
import yaml

from dt_config import ConfigError, Registry, Tagged, structure, unstructure
from dt_models import build_model
from dt_models.backbone import Backbone
from dt_models.config import (
    AnchorGeneratorConfig,
    BackboneConfig,
    GeneralizedRCNNConfig,
    ModelConfig,
    ProposalNetworkConfig,
    RPNConfig,
    StandardROIHeadsConfig,
)
from dt_models.registry import BACKBONE_REGISTRY


def _problems(data):
    with pytest.raises(ConfigError) as info:
        structure(ModelConfig, data)
    return info.value.problems


def test_defaults_round_trip_through_yaml():
    cfg = GeneralizedRCNNConfig(roi_heads=StandardROIHeadsConfig(num_classes=3))
    text = yaml.safe_dump(unstructure(cfg))
    assert structure(ModelConfig, yaml.safe_load(text)) == cfg
    assert yaml.safe_dump(unstructure(structure(ModelConfig, yaml.safe_load(text)))) == text
    assert unstructure(cfg)["name"] == "GeneralizedRCNN"
    assert unstructure(cfg)["backbone"]["name"] == "ResNetFPN"


def test_name_defaults_to_generalized_rcnn_and_selects_architecture():
    assert isinstance(structure(ModelConfig, {}), GeneralizedRCNNConfig)
    assert isinstance(structure(ModelConfig, {"name": "ProposalNetwork"}), ProposalNetworkConfig)


def test_unknown_key_has_path_and_suggestion():
    (line,) = _problems({"roi_heads": {"name": "StandardROIHeads", "num_clases": 3}})
    assert line.startswith("$.roi_heads.num_clases: unknown key (did you mean 'num_classes'?)")


def test_wrong_types_are_all_reported_with_expected_and_given():
    problems = _problems(
        {
            "roi_heads": {"name": "StandardROIHeads", "num_classes": "ten"},
            "proposal_generator": {"name": "RPN", "nms_thresh": True},
            "pixel_mean": [1, 2, "x"],
        }
    )
    assert "$.roi_heads.num_classes: expected int, got str 'ten'" in problems
    assert "$.proposal_generator.nms_thresh: expected float, got bool True" in problems
    assert "$.pixel_mean[2]: expected float, got str 'x'" in problems


def test_float_is_not_silently_truncated_to_int():
    (line,) = _problems({"roi_heads": {"name": "StandardROIHeads", "num_classes": 2.5}})
    assert line == "$.roi_heads.num_classes: expected int, got float 2.5"


def test_unknown_part_name_suggests_registered_ones():
    (line,) = _problems({"backbone": {"name": "ResNetFNP"}})
    assert line.startswith("$.backbone.name: unknown backbone 'ResNetFNP' (did you mean 'ResNetFPN'?)")
    (line,) = _problems({"backbone": {"depth": 50}})
    assert line == "$.backbone.name: missing required key"


def test_anchor_sizes_must_match_feature_maps():
    data = {"proposal_generator": {"name": "RPN", "anchor_generator": {"sizes": [[32], [64], [128]]}}}
    (line,) = _problems(data)
    assert line.startswith(
        "$.proposal_generator.anchor_generator.sizes: has 3 entries but there are 5 feature maps"
    )
    with pytest.raises(ValueError, match="anchor_generator.sizes"):
        RPNConfig(anchor_generator=AnchorGeneratorConfig(sizes=((32.0,), (64.0,))))


def test_cross_part_feature_names_are_checked():
    (line,) = _problems({"roi_heads": {"name": "StandardROIHeads", "in_features": ["p2", "p9"]}})
    assert line.startswith("$.roi_heads.in_features: ['p9'] are not backbone outputs")


def test_value_validators_name_the_field():
    problems = _problems({"backbone": {"name": "ResNetFPN", "resnet": {"depth": 42, "norm": "BatchNorm"}}})
    assert any(
        p.startswith("$.backbone.resnet.depth: must be one of [18, 34, 50, 101, 152], got 42")
        for p in problems
    )
    (line,) = _problems(
        {"roi_heads": {"name": "StandardROIHeads", "iou_thresholds": [0.5], "iou_labels": [0]}}
    )
    assert line.startswith("$.roi_heads.iou_labels: needs len(iou_thresholds) + 1 = 2 values")


def test_error_message_lists_every_problem():
    with pytest.raises(ConfigError, match=r"invalid config \(2 problems\)"):
        structure(ModelConfig, {"input_format": 3, "foo": 1})


def test_registering_a_custom_backbone_brings_its_own_config():
    @attrs.define(frozen=True, kw_only=True)
    class TinyBackboneConfig(BackboneConfig):
        name: ClassVar[str] = "TinyTestBackbone"
        channels: int = 8

        def output_features(self):
            return ("p2", "p3", "p4", "p5", "p6")

    class TinyBackbone(Backbone):
        def __init__(self, channels):
            super().__init__()
            self.convs = torch.nn.ModuleList(
                [torch.nn.Conv2d(3, channels, 1, stride=2**k) for k in range(2, 7)]
            )
            self._out_features = ["p2", "p3", "p4", "p5", "p6"]
            self._out_feature_channels = dict.fromkeys(self._out_features, channels)
            self._out_feature_strides = {f"p{k}": 2**k for k in range(2, 7)}

        @property
        def size_divisibility(self):
            return 64

        def forward(self, x):
            return {name: conv(x) for name, conv in zip(self._out_features, self.convs, strict=True)}

    if "TinyTestBackbone" not in BACKBONE_REGISTRY:
        BACKBONE_REGISTRY.register(TinyBackboneConfig)(
            lambda config, input_shape: TinyBackbone(config.channels)
        )
    cfg = structure(ModelConfig, {"backbone": {"name": "TinyTestBackbone", "channels": 4}})
    assert cfg.backbone.channels == 4
    (line,) = _problems({"backbone": {"name": "TinyTestBackbone", "chanels": 4}})
    assert line.startswith("$.backbone.chanels: unknown key (did you mean 'channels'?)")
    model = build_model(cfg)
    assert model.backbone.convs[0].out_channels == 4
    assert not model.backbone.channels_last_on_cpu  # opt-in: a custom backbone gets NCHW images
    model.eval()
    with torch.no_grad():
        assert "instances" in model([{"image": torch.zeros(3, 64, 64)}])[0]
    with pytest.raises(ValueError, match="already registered"):
        BACKBONE_REGISTRY.register(TinyBackboneConfig)(lambda config, input_shape: None)


def test_registry_rejects_bad_registrations():
    with pytest.raises(TypeError, match="attrs subclass"):
        BACKBONE_REGISTRY.register(StandardROIHeadsConfig)
    with pytest.raises(ValueError, match="already a tagged union"):
        Registry("more_backbones", BackboneConfig, group="dt_models.more_backbones")

    @attrs.define(frozen=True, kw_only=True)
    class PartConfig(Tagged):
        pass

    registry = Registry("test_parts", PartConfig, group="dt_models.test_parts")
    with pytest.raises(ValueError, match="unknown test_parts 'x'; registered: "):
        registry.get("x")


@attrs.define(frozen=True, kw_only=True)
class _ChoicesConfig:
    optimizer: Literal["SGD", "AdamW"] = "SGD"
    mode: str = attrs.field(default="a", validator=attrs.validators.in_(("a", "b")))


def test_literal_and_attrs_choice_errors_read_well():
    with pytest.raises(ConfigError) as info:
        structure(_ChoicesConfig, {"optimizer": "Adam", "mode": "c"})
    (line,) = info.value.problems  # the literal fails first: attrs validators run on a built object
    assert line == "$.optimizer: expected one of 'SGD', 'AdamW', got str 'Adam' (did you mean 'AdamW'?)"
    with pytest.raises(ConfigError) as info:
        structure(_ChoicesConfig, {"mode": "c"})
    (line,) = info.value.problems
    assert "'mode' must be in ('a', 'b')" in line and "Attribute(" not in line
