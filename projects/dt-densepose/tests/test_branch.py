"""The DensePose branch inside dt's R-CNN: registered through the entry point, trains, predicts, and
loads detectron2's DensePose key names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from dt_config import ConfigError, structure
from dt_densepose import DensePoseChartOutput, DensePoseDataRelative, chart_to_box_iuv
from dt_densepose.structures import DensePoseList
from dt_models import ModelConfig, build_model, load_weights
from dt_models.layers import ShapeSpec
from dt_models.registry import ROI_HEADS_REGISTRY, ROIHeadsConfig
from dt_structures import Boxes, Instances

KEYS = Path(__file__).parent / "data" / "detectron2_keys" / "densepose_R_50_FPN.json"
BRANCH = {
    "name": "DensePoseBranch", "decoder": {"conv_dim": 32, "num_classes": 32}, "pooler": {"resolution": 7},
    "num_convs": 1, "conv_dim": 32, "num_parts": 3, "uv_confidence": "indep_aniso", "fg_iou_threshold": 0.3,
}  # fmt: skip
TINY = {
    "name": "GeneralizedRCNN",
    "backbone": {"name": "ResNetFPN", "out_channels": 32,
                 "resnet": {"depth": 18, "stem_out_channels": 16, "res2_out_channels": 64, "norm": "BN"}},
    "proposal_generator": {"name": "RPN", "pre_nms_topk_train": 50, "post_nms_topk_train": 20,
                           "pre_nms_topk_test": 50, "post_nms_topk_test": 10},
    "roi_heads": {"name": "StandardROIHeads", "num_classes": 1, "batch_size_per_image": 16,
                  "box_head": {"fc_dim": 32}, "score_thresh_test": 0.0, "detections_per_image": 5,
                  "branches": {"densepose": BRANCH}},
}  # fmt: skip


def _target() -> Instances:
    inst = Instances(
        (64, 64), gt_boxes=Boxes(torch.tensor([[8.0, 8.0, 40.0, 48.0]])), gt_classes=torch.tensor([0])
    )
    segm = torch.zeros(256, 256, dtype=torch.uint8)
    segm[64:192, 64:192] = 1
    points = DensePoseDataRelative(
        x=torch.tensor([100.0, 150.0]), y=torch.tensor([120.0, 90.0]), i=torch.tensor([1, 3]),
        u=torch.tensor([0.3, 0.6]), v=torch.tensor([0.5, 0.2]), segm=segm,
    )  # fmt: skip
    inst.gt_densepose = DensePoseList([points])
    return inst


def test_trains_and_predicts_iuv():
    torch.manual_seed(0)
    model = build_model(structure(ModelConfig, TINY))
    inputs = [{"image": torch.rand(3, 64, 64) * 255, "instances": _target()}]
    losses = model(inputs)
    expected = {"loss_densepose_UV", "loss_densepose_I", "loss_densepose_S"}
    assert expected <= set(losses) and all(torch.isfinite(v) for v in losses.values())
    assert float(losses["loss_densepose_I"].detach()) > 0  # the ground-truth box is a proposal with IoU 1
    sum(losses.values()).backward()
    assert model.roi_heads.branches.densepose.predictor.kappa_u_lowres.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        (out,) = model([{"image": torch.rand(3, 64, 64) * 255, "height": 128, "width": 128}])
    instances = out["instances"]
    assert len(instances) > 0 and isinstance(instances.pred_densepose, DensePoseChartOutput)
    assert instances.pred_densepose.fine_segm.shape[1:] == (4, 28, 28)
    labels, uv = chart_to_box_iuv(instances.pred_densepose[0], instances.pred_boxes.tensor[0])
    assert labels.max() <= 3 and uv.shape[0] == 2


def test_typo_in_the_branch_is_reported_at_its_path():
    bad = json.loads(json.dumps(TINY))
    bad["roi_heads"]["branches"]["densepose"]["num_prts"] = 3
    with pytest.raises(ConfigError, match=r"\$\.roi_heads\.branches\.densepose\.num_prts: unknown key"):
        structure(ModelConfig, bad)


RECIPES = {
    "densepose_rcnn_R_50_FPN_s1x": {},
    "densepose_rcnn_R_50_FPN_DL_s1x": {"head": "DensePoseDeepLabHead"},
    "densepose_rcnn_R_50_FPN_WC1_s1x": {"uv_confidence": "iid_iso"},
    "densepose_rcnn_R_50_FPN_WC2M_s1x": {"uv_confidence": "indep_aniso", "segm_confidence": True},
    "densepose_rcnn_R_50_FPN_s1x_legacy": {"decoder": None, "num_coarse_segm_channels": 15,
                                           "pooler": {"resolution": 14}},
}  # fmt: skip


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_detectron2_densepose_key_names_load_without_missing_or_unexpected_keys(recipe, tmp_path):
    expected = json.loads(KEYS.read_text())[recipe]
    config = structure(ROIHeadsConfig, {
        "name": "StandardROIHeads", "num_classes": 1, "box_head": {"fc_dim": 8},
        "branches": {"densepose": {"name": "DensePoseBranch", **RECIPES[recipe]}},
    })  # fmt: skip
    fpn = {f"p{k}": ShapeSpec(channels=256, stride=2**k) for k in range(2, 7)}
    model = nn.Module()
    model.roi_heads = ROI_HEADS_REGISTRY.build(config, input_shape=fpn)
    own = {k: v for k, v in model.state_dict().items() if ".branches." not in k}  # box head: same names
    checkpoint = {**own, **{k: torch.zeros(shape) for k, shape in expected.items()}}
    torch.save({"model": checkpoint}, tmp_path / "model.pth")
    report = load_weights(model, tmp_path / "model.pth")
    assert report.ok, report.table()
    branch_keys = [k for k in model.state_dict() if ".branches." in k]
    assert len(branch_keys) == len(expected)
