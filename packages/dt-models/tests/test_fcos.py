"""FCOS: centerness, the linear box coding, point assignment, losses and inference."""

import math

import pytest
import torch

from dt_config import ConfigError, structure
from dt_models import build_model
from dt_models.config import ModelConfig, ResNetConfig, ResNetFPNConfig
from dt_models.meta_arch import FCOS, FCOSConfig
from dt_models.meta_arch.fcos import centerness_targets
from dt_models.meta_arch.linear_box_coder import Box2BoxTransformLinear
from dt_models.meta_arch.retinanet_head import RetinaNetHeadConfig
from dt_structures import Boxes, Instances


def tiny_fcos_config(**changes) -> FCOSConfig:
    resnet = ResNetConfig(
        width_per_group=4, stem_out_channels=8, res2_out_channels=16, out_features=("res3", "res4", "res5")
    )
    backbone = ResNetFPNConfig(
        resnet=resnet, in_features=("res3", "res4", "res5"), out_channels=16, top_block="p6p7",
        top_block_in_feature="p5",
    )  # fmt: skip
    head = RetinaNetHeadConfig(num_convs=1, norm="")
    return FCOSConfig(**{"backbone": backbone, "num_classes": 3, "head": head, **changes})


def gt(image_size, boxes, classes) -> Instances:
    inst = Instances(image_size)
    inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.gt_classes = torch.tensor(classes, dtype=torch.int64)
    return inst


def test_centerness_hand_computed():
    distances = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0], [4.0, 1.0, 1.0, 1.0]])
    expected = torch.tensor([1.0, math.sqrt(1 / 3 * 2 / 4), math.sqrt(1 / 4)])
    torch.testing.assert_close(centerness_targets(distances), expected)


def test_linear_box_coder_round_trip_and_normalization():
    coder = Box2BoxTransformLinear(normalize_by_size=True)
    cells = torch.tensor([[12.0, 12, 20, 20], [8, 8, 24, 24]])  # centers (16, 16), strides 8 and 16
    targets = torch.tensor([[0.0, 4, 40, 30], [10, 10, 30, 20]])
    deltas = coder.get_deltas(cells, targets)
    torch.testing.assert_close(deltas, torch.tensor([[2.0, 1.5, 3.0, 1.75], [0.375, 0.375, 0.875, 0.25]]))
    torch.testing.assert_close(coder.apply_deltas(deltas, cells), targets)
    # negative distances count as zero: the box collapses onto the point
    collapsed = coder.apply_deltas(-torch.ones(1, 4), cells[:1])
    torch.testing.assert_close(collapsed, torch.tensor([[16.0, 16, 16, 16]]))
    raw = Box2BoxTransformLinear(normalize_by_size=False).get_deltas(cells[:1], targets[:1])
    torch.testing.assert_close(raw, torch.tensor([[16.0, 12, 24, 14]]))


def test_points_go_to_the_smallest_box_in_their_level_size_range():
    model = build_model(tiny_fcos_config())
    # level 0 (stride 8): points (16, 16) and (48, 16); level 1 (stride 16, the last): point (16, 16)
    anchors = [
        Boxes(torch.tensor([[12.0, 12, 20, 20], [44, 12, 52, 20]])),
        Boxes(torch.tensor([[8.0, 8, 24, 24]])),
    ]
    boxes = [
        [0, 0, 40, 40],
        [10, 10, 30, 20],
        [-60, -60, 92, 92],
    ]  # largest distances 24, 14, 76 from (16, 16)
    labels, matched = model.label_anchors(anchors, [gt((100, 100), boxes, [0, 1, 2])])
    # (16, 16) on level 0: boxes 0 and 1 qualify, 1 is smaller; box 2 is too large for level 0 (76 > 8*8)
    # (48, 16): outside box 1, and farther than 1.5 strides from the centers of boxes 0 and 2
    # (16, 16) on level 1: only box 2 is large enough (76 > 4*16)
    assert labels[0].tolist() == [1, 3, 2]
    assert matched[0][0].tolist() == boxes[1] and matched[0][2].tolist() == boxes[2]
    radius = build_model(tiny_fcos_config(center_sampling_radius=0.1))
    labels, _ = radius.label_anchors(anchors, [gt((100, 100), boxes, [0, 1, 2])])
    assert labels[0].tolist() == [3, 3, 2]  # (16, 16) is 4 px from the centers of boxes 0 and 1
    empty, _ = model.label_anchors(anchors, [gt((100, 100), [], [])])
    assert empty[0].tolist() == [3, 3, 3]


def test_training_losses():
    torch.manual_seed(0)
    model = build_model(tiny_fcos_config()).train()
    inputs = [{"image": torch.rand(3, 64, 96) * 255, "instances": gt((64, 96), [[8, 8, 40, 40]], [2])}]
    losses = model(inputs)
    assert set(losses) == {"loss_fcos_cls", "loss_fcos_loc", "loss_fcos_ctr"}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    assert model.head.ctrness.weight.grad is not None
    assert 0.9 * 300 < model.loss_normalizer < 300


def test_inference_scores_combine_class_and_centerness():
    model = build_model(tiny_fcos_config(test_score_thresh=0.0, detections_per_image=5)).eval()
    with torch.no_grad():
        model.head.cls_score.bias.fill_(math.log(0.36 / 0.64))  # sigmoid 0.36
        model.head.ctrness.bias.fill_(math.log(0.25 / 0.75))  # sigmoid 0.25
        for conv in (model.head.cls_score, model.head.ctrness):
            conv.weight.zero_()
        model.head.bbox_pred.weight.zero_()
        model.head.bbox_pred.bias.fill_(1.0)  # boxes one stride around each point
        out = model([{"image": torch.rand(3, 64, 64) * 255}])[0]["instances"]
    assert len(out) == 5
    torch.testing.assert_close(out.scores, torch.full((5,), math.sqrt(0.36 * 0.25)))


def test_config_defaults_and_errors():
    cfg = FCOSConfig()
    assert cfg.backbone.top_block_in_feature == "p5" and cfg.head.norm == "GN" and cfg.head.num_convs == 4
    assert (cfg.test_score_thresh, cfg.test_nms_thresh, cfg.bbox_reg_loss_type) == (0.2, 0.6, "giou")
    assert isinstance(structure(ModelConfig, {"name": "FCOS", "num_classes": 2}), FCOSConfig)
    with pytest.raises(ConfigError, match=r"\$\.center_sampling_radius: "):
        structure(ModelConfig, {"name": "FCOS", "center_sampling_radius": -1.0})
    assert isinstance(build_model(tiny_fcos_config()), FCOS)
