"""ROI heads made of named branches, and the box predictor as a registered part."""

from typing import ClassVar

import attrs
import pytest
import torch
import yaml
from dtm_helpers import square_instances, tiny_mask_branches, tiny_rcnn_config
from torch.nn import functional as F

from dt_config import ConfigError, structure, unstructure
from dt_config import validators as check
from dt_models import build_model
from dt_models.backbone import ResNetFPNConfig
from dt_models.build import build_backbone
from dt_models.checkpoint import detectron2_name
from dt_models.config import (
    FastRCNNOutputLayersConfig,
    MaskBranchConfig,
    ModelConfig,
    PoolerConfig,
    ProposalNetworkConfig,
    RPNConfig,
    StandardROIHeadsConfig,
)
from dt_models.layers import ShapeSpec
from dt_models.meta_arch import GeneralizedRCNN, ImageModel
from dt_models.poolers import build_pooler
from dt_models.proposal_generator import build_rpn
from dt_models.registry import (
    ROI_BOX_PREDICTOR_REGISTRY,
    ROI_BRANCH_REGISTRY,
    BoxPredictorConfig,
    ROIBranchConfig,
)
from dt_models.roi_heads import (
    FastRCNNOutputLayers,
    MaskBranch,
    ROIBranch,
    StandardROIHeads,
    build_mask_branch,
    build_standard_roi_heads,
)

# ------------------------------------------------------------------------------------ a test branch


class ClassZeroSizeBranch(ROIBranch):
    """Regresses log(box side) of each instance; trains on the foreground proposals of class 0 only."""

    def __init__(self, *, in_features, pooler, channels):
        super().__init__(in_features=in_features, pooler=pooler)
        self.predictor = torch.nn.Linear(channels, 1)
        self.trained_on: list[int] = []

    def select_training_instances(self, foreground):
        return [p[p.gt_classes == 0] for p in foreground]

    def forward(self, pooled, instances):
        pred = self.predictor(pooled.mean(dim=(2, 3)))[:, 0]  # [R]
        if self.training:
            self.trained_on = [len(i) for i in instances]
            assert all((i.gt_classes == 0).all() for i in instances)
            target = torch.cat([i.gt_boxes.area() for i in instances]).clamp(min=1).sqrt().log()
            return {"loss_size": F.l1_loss(pred, target) if len(pred) else pred.sum()}
        for inst, values in zip(instances, pred.split([len(i) for i in instances]), strict=True):
            inst.pred_log_size = values
        return instances


@attrs.define(frozen=True, kw_only=True)
class ClassZeroSizeBranchConfig(ROIBranchConfig):
    name: ClassVar[str] = "TestClassZeroSizeBranch"
    pooler: PoolerConfig = attrs.field(factory=lambda: PoolerConfig(resolution=4))
    scale: float = attrs.field(default=1.0, validator=check.greater_than(0.0))


def _build_size_branch(config, input_shape, in_features, num_classes):
    pooler = build_pooler(config.pooler, in_features, input_shape)
    return ClassZeroSizeBranch(
        in_features=in_features, pooler=pooler, channels=input_shape[in_features[0]].channels
    )


# ------------------------------------------------------------------------- a test box predictor


class TemperedOutputLayers(FastRCNNOutputLayers):
    """Softmax of the class logits divided by a temperature."""

    def __init__(self, *, temperature, **kwargs):
        super().__init__(**kwargs)
        self.temperature = temperature

    def predict_probs(self, predictions, proposals):
        scores, _ = predictions
        return list(F.softmax(scores / self.temperature, dim=-1).split([len(p) for p in proposals]))


@attrs.define(frozen=True, kw_only=True)
class TemperedOutputLayersConfig(BoxPredictorConfig):
    name: ClassVar[str] = "TestTemperedOutputLayers"
    temperature: float = attrs.field(default=1.0, validator=check.greater_than(0.0))


def _build_tempered(
    config, input_shape, num_classes, test_score_thresh, test_nms_thresh, test_topk_per_image
):
    from dt_models.box_regression import Box2BoxTransform

    return TemperedOutputLayers(
        temperature=config.temperature, input_shape=input_shape, num_classes=num_classes,
        box2box_transform=Box2BoxTransform((10.0, 10.0, 5.0, 5.0)), test_score_thresh=test_score_thresh,
        test_nms_thresh=test_nms_thresh, test_topk_per_image=test_topk_per_image,
    )  # fmt: skip


if "TestClassZeroSizeBranch" not in ROI_BRANCH_REGISTRY:
    ROI_BRANCH_REGISTRY.register(ClassZeroSizeBranchConfig)(_build_size_branch)
if "TestTemperedOutputLayers" not in ROI_BOX_PREDICTOR_REGISTRY:
    ROI_BOX_PREDICTOR_REGISTRY.register(TemperedOutputLayersConfig)(_build_tempered)


# ----------------------------------------------------------------------------------------- helpers


def _data(**roi_heads):
    """Plain config data of the tiny Mask R-CNN with ``roi_heads`` keys replaced."""
    data = unstructure(tiny_rcnn_config())
    data["roi_heads"].update(roi_heads)
    return data


def _problems(data):
    with pytest.raises(ConfigError) as info:
        structure(ModelConfig, data)
    return info.value.problems


def _batch(with_gt=True):
    g = torch.Generator().manual_seed(3)
    batch = []
    for h, w in ((96, 128), (80, 64)):
        item = {"image": (torch.rand(3, h, w, generator=g) * 255).to(torch.uint8)}
        if with_gt:
            item["instances"] = square_instances((h, w), [[4, 6, 40, 50], [20, 10, 60, 30]], [0, 2])
        batch.append(item)
    return batch


def _with_size_branch(in_features=("p3", "p4")):
    branches = dict(unstructure(tiny_rcnn_config())["roi_heads"]["branches"])
    branches["size"] = {"name": "TestClassZeroSizeBranch", "in_features": list(in_features)}
    return structure(ModelConfig, _data(branches=branches))


# --------------------------------------------------------------------------------------------- tests


def test_registries_list_registered_parts():
    assert "MaskBranch" in ROI_BRANCH_REGISTRY and "TestClassZeroSizeBranch" in ROI_BRANCH_REGISTRY
    assert {"MaskBranch", "TestClassZeroSizeBranch"} <= set(ROI_BRANCH_REGISTRY.names())
    assert "FastRCNNOutputLayers" in ROI_BOX_PREDICTOR_REGISTRY
    assert {"FastRCNNOutputLayers", "TestTemperedOutputLayers"} <= set(ROI_BOX_PREDICTOR_REGISTRY.names())
    assert "MaskBrnch" not in ROI_BRANCH_REGISTRY
    assert ROI_BRANCH_REGISTRY.config_class("MaskBranch") is MaskBranchConfig


def test_branches_round_trip_through_yaml():
    cfg = _with_size_branch()
    text = yaml.safe_dump(unstructure(cfg))
    assert structure(ModelConfig, yaml.safe_load(text)) == cfg
    data = unstructure(cfg)["roi_heads"]
    assert data["branches"]["mask"]["name"] == "MaskBranch"
    assert data["branches"]["mask"]["head"]["name"] == "MaskRCNNConvUpsampleHead"
    assert data["branches"]["size"] == {
        "name": "TestClassZeroSizeBranch", "in_features": ["p3", "p4"],
        "pooler": {"type": "ROIAlignV2", "resolution": 4, "sampling_ratio": 0}, "scale": 1.0,
    }  # fmt: skip
    assert data["box_predictor"]["name"] == "FastRCNNOutputLayers"


def test_defaults_of_names_and_branches():
    faster = structure(ModelConfig, {"roi_heads": {"name": "StandardROIHeads"}})
    assert faster.roi_heads.branches == {}
    assert faster.gt_fields() == {"gt_boxes", "gt_classes"}
    mask = structure(
        ModelConfig,
        {"roi_heads": {"name": "StandardROIHeads", "box_predictor": {"smooth_l1_beta": 0.5},
                       "branches": {"mask": {"name": "MaskBranch", "head": {"conv_dim": 8}}}}},
    )  # fmt: skip
    assert mask.roi_heads.box_predictor == FastRCNNOutputLayersConfig(smooth_l1_beta=0.5)
    assert mask.roi_heads.branches["mask"].head.conv_dim == 8
    assert mask.roi_heads.branches["mask"].pooler.resolution == 14
    assert mask.gt_fields() == {"gt_boxes", "gt_classes", "gt_masks"}
    assert ProposalNetworkConfig().gt_fields() == {"gt_boxes"}


def test_errors_inside_branches_have_their_path():
    (line,) = _problems(_data(branches={"mask": {"name": "MaskBrnch"}}))
    assert line.startswith(
        "$.roi_heads.branches.mask.name: unknown roi_branch 'MaskBrnch' (did you mean 'MaskBranch'?)"
    )
    (line,) = _problems(_data(branches={"mask": {"name": "MaskBranch", "head": {"conv_dimm": 8}}}))
    assert line.startswith("$.roi_heads.branches.mask.head.conv_dimm: unknown key (did you mean 'conv_dim'?)")
    (line,) = _problems(_data(branches={"mask": {"name": "MaskBranch", "poolr": {}}}))
    assert line.startswith("$.roi_heads.branches.mask.poolr: unknown key (did you mean 'pooler'?)")
    problems = _problems(
        _data(branches={"a": {"name": "TestClassZeroSizeBranch", "scale": 0.0}, "b": {"pooler": {}}})
    )
    assert problems == [
        "$.roi_heads.branches.a.scale: must be > 0.0, got 0.0",
        "$.roi_heads.branches.b.name: missing required key",
    ]
    (line,) = _problems(_data(branches=[{"name": "MaskBranch"}]))
    assert line.startswith("$.roi_heads.branches: expected a mapping, got list")
    (line,) = _problems(_data(branches={"mask head": {"name": "MaskBranch"}}))
    assert line.startswith("$.roi_heads.branches: branch names must be identifiers") and "'mask head'" in line
    (line,) = _problems(_data(branches={"train": {"name": "MaskBranch"}}))
    assert "'train'" in line  # would clash with nn.ModuleDict.train


def test_branch_in_features_are_checked_against_the_backbone():
    (line,) = _problems(_data(branches={"mask": {"name": "MaskBranch", "in_features": ["p2", "p7"]}}))
    assert line.startswith("$.roi_heads.branches.mask.in_features: ['p7'] are not backbone outputs")
    (line,) = _problems(_data(branches={"mask": {"name": "MaskBranch", "in_features": []}}))
    assert line == "$.roi_heads.branches.mask.in_features: must not be empty"


def test_code_built_branch_configs_are_checked():
    with pytest.raises(ValueError, match="branches.mask: expected a ROIBranchConfig"):
        StandardROIHeadsConfig(branches={"mask": PoolerConfig()})


def test_a_registered_branch_trains_and_predicts_alongside_mask():
    torch.manual_seed(0)
    model = build_model(_with_size_branch())
    size_branch = model.roi_heads.branches["size"]
    assert list(model.roi_heads.branches) == ["mask", "size"] and size_branch.in_features == ["p3", "p4"]
    assert model.roi_heads.branches["mask"].in_features == ["p2", "p3", "p4", "p5"]
    model.train()
    losses = model(_batch())
    assert set(losses) == {
        "loss_cls",
        "loss_box_reg",
        "loss_mask",
        "loss_size",
        "loss_rpn_cls",
        "loss_rpn_loc",
    }
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    assert sum(size_branch.trained_on) > 0  # class-0 foreground proposals only (checked in forward)
    sum(losses.values()).backward()
    assert size_branch.predictor.weight.grad is not None and size_branch.predictor.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        out = model(_batch(with_gt=False))
    for result in out:
        inst = result["instances"]
        assert len(inst) > 0
        assert inst.pred_log_size.shape == (len(inst),) and inst.pred_masks.shape[0] == len(inst)


def test_adding_a_branch_leaves_mask_rcnn_outputs_unchanged():
    torch.manual_seed(0)
    plain = build_model(tiny_rcnn_config()).eval()
    both = build_model(_with_size_branch()).eval()
    missing, unexpected = both.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("roi_heads.branches.size.") for k in missing)
    with torch.no_grad():
        a, b = plain(_batch(with_gt=False))[0]["instances"], both(_batch(with_gt=False))[0]["instances"]
    assert torch.equal(a.pred_boxes.tensor, b.pred_boxes.tensor) and torch.equal(a.pred_masks, b.pred_masks)
    plain.train()
    both.train()
    torch.manual_seed(1)
    la = plain(_batch())
    torch.manual_seed(1)
    lb = both(_batch())
    assert {k: v.item() for k, v in la.items()} == {k: v.item() for k, v in lb.items() if k != "loss_size"}


def test_a_registered_box_predictor_is_built_from_config():
    data = _data(box_predictor={"name": "TestTemperedOutputLayers", "temperature": 1e4})
    model = build_model(structure(ModelConfig, data)).eval()
    assert isinstance(model.roi_heads.box_predictor, TemperedOutputLayers)
    with torch.no_grad():
        inst = model(_batch(with_gt=False))[0]["instances"]
    assert len(inst) > 0 and (inst.scores - 0.25).abs().max() < 0.01  # 3 classes + background, flattened
    (line,) = _problems(_data(box_predictor={"name": "TestTemperedOutputLayers", "temprature": 2.0}))
    assert line.startswith("$.roi_heads.box_predictor.temprature: unknown key (did you mean 'temperature'?)")
    (line,) = _problems(_data(box_predictor={"name": "FastRCNNOutputLayer"}))
    assert line.startswith("$.roi_heads.box_predictor.name: unknown roi_box_predictor 'FastRCNNOutputLayer'")


def test_roi_heads_composed_in_code():
    cfg = tiny_rcnn_config()
    backbone = build_backbone(cfg.backbone)
    shapes = backbone.output_shape()
    heads = build_standard_roi_heads(attrs.evolve(cfg.roi_heads, branches={}), shapes)
    mask = build_mask_branch(tiny_mask_branches()["mask"], shapes, ("p2", "p3", "p4", "p5"), 3)
    parts = dict(
        num_classes=3, batch_size_per_image=32, positive_fraction=0.25,
        proposal_matcher=heads.proposal_matcher, box_in_features=heads.box_in_features,
        box_pooler=heads.box_pooler, box_head=heads.box_head, box_predictor=heads.box_predictor,
    )  # fmt: skip
    composed = StandardROIHeads(**parts, branches={"mask": mask, "mask_again": mask})
    model = GeneralizedRCNN(
        backbone=backbone, proposal_generator=build_rpn(cfg.proposal_generator, shapes), roi_heads=composed,
        pixel_mean=cfg.pixel_mean, pixel_std=cfg.pixel_std,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"branch 'mask_again' returns losses \['loss_mask'\]"):
        model(_batch())
    with pytest.raises(TypeError, match="branches must be ROIBranch modules"):
        StandardROIHeads(**parts, branches={"mask": mask.head})
    assert isinstance(mask, MaskBranch)


def test_detectron2_names_of_branch_modules():
    assert (
        detectron2_name("roi_heads.branches.mask.head.mask_fcn1.weight")
        == "roi_heads.mask_head.mask_fcn1.weight"
    )
    assert detectron2_name("roi_heads.branches.densepose.predictor.ann_index_lowres.bias") == (
        "roi_heads.densepose_predictor.ann_index_lowres.bias"
    )
    assert (
        detectron2_name("roi_heads.box_predictor.cls_score.weight")
        == "roi_heads.box_predictor.cls_score.weight"
    )


class _Sizes(ImageModel):
    """A minimal project meta-architecture on the public base: returns the padded batch size."""

    def forward(self, batched_inputs):
        images = self.preprocess_image(batched_inputs)
        features = self.extract_features(images)
        return tuple(images.tensor.shape), sorted(features)


def test_image_model_is_a_public_base():
    backbone = build_backbone(ResNetFPNConfig(), ShapeSpec(channels=1))
    model = _Sizes(backbone=backbone, pixel_mean=[128.0], pixel_std=[64.0], input_format="L")
    assert model.size_divisibility == 32 and model.padding_constraints == {"square_size": 0}
    shape, names = model([{"image": torch.zeros(1, 50, 70)}, {"image": torch.zeros(1, 40, 90)}])
    assert shape == (2, 1, 64, 96) and names == ["p2", "p3", "p4", "p5", "p6"]
    square = _Sizes(
        backbone=backbone, pixel_mean=[0.0], pixel_std=[1.0], input_format="L", size_divisibility=64,
        padding_constraints={"square_size": 128},
    )  # fmt: skip
    assert square([{"image": torch.zeros(1, 50, 70)}])[0] == (1, 1, 128, 128)
    assert square.device == torch.device("cpu")
    with pytest.raises(ValueError, match="input_format 'BGR' does not match 1 pixel_mean values"):
        _Sizes(backbone=backbone, pixel_mean=[0.0], pixel_std=[1.0])
    assert RPNConfig().input_features() == {"in_features": ("p2", "p3", "p4", "p5", "p6")}
