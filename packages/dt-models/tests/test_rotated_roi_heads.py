"""Rotated Fast R-CNN: the rotated box predictor (decoding at angle wraps, its loss on a hand-computed
case, rotated inference), ``RROIHeads`` and a whole RRPN + RROIHeads model."""

import math

import pytest
import torch

from dt_config import ConfigError, structure
from dt_models import build_model
from dt_models.box_regression_rotated import Box2BoxTransformRotated
from dt_models.config import FastRCNNConvFCHeadConfig, GeneralizedRCNNConfig, ResNetConfig, ResNetFPNConfig
from dt_models.layers import ShapeSpec
from dt_models.proposal_generator import RRPNConfig
from dt_models.registry import ROIHeadsConfig
from dt_models.roi_heads import (
    RotatedFastRCNNOutputLayers,
    RotatedFastRCNNOutputLayersConfig,
    RROIHeads,
    RROIHeadsConfig,
    build_rroi_heads,
)
from dt_models.rotated_anchor_generator import RotatedAnchorGeneratorConfig
from dt_structures import Instances, RotatedBoxes


def predictor(
    num_classes: int = 1, weights=(1.0, 1.0, 1.0, 1.0, 1.0), **kwargs
) -> RotatedFastRCNNOutputLayers:
    """A predictor on 2-d box features whose layers are all zero: logits 0 and deltas 0."""
    layers = RotatedFastRCNNOutputLayers(
        input_shape=ShapeSpec(channels=2), box2box_transform=Box2BoxTransformRotated(weights),
        num_classes=num_classes, **kwargs,
    )  # fmt: skip
    for param in layers.parameters():
        torch.nn.init.zeros_(param)
    return layers


def proposals_with(boxes: list[list[float]], image_size=(40, 40), **fields) -> Instances:
    inst = Instances(image_size)
    inst.proposal_boxes = RotatedBoxes(torch.tensor(boxes))
    for name, value in fields.items():
        inst.set(name, value)
    return inst


@pytest.mark.parametrize(
    "src, target",
    [
        ([20.0, 20.0, 8.0, 4.0, 175.0], [21.0, 19.0, 10.0, 3.0, -175.0]),  # across +-180
        ([20.0, 20.0, 8.0, 4.0, -179.0], [20.0, 20.0, 8.0, 4.0, 179.0]),
        ([20.0, 20.0, 8.0, 4.0, 90.0], [22.0, 20.0, 6.0, 4.0, -90.0]),  # half a turn, a different box
    ],
)
def test_predicted_boxes_round_trip_the_encoded_deltas_at_angle_wraps(src, target):
    layers = predictor(weights=(10.0, 10.0, 5.0, 5.0, 1.0), cls_agnostic_bbox_reg=True)
    src_t, target_t = torch.tensor([src]), torch.tensor([target])
    deltas = layers.box2box_transform.get_deltas(src_t, target_t)  # [1, 5]
    assert abs(float(deltas[0, 4])) <= math.pi + 1e-6  # the short way round
    with torch.no_grad():
        layers.bbox_pred.bias.copy_(deltas[0])
    decoded = layers.predict_boxes(
        (torch.zeros(1, 2), layers.bbox_pred(torch.zeros(1, 2))), [proposals_with([src])]
    )
    expected = target_t.clone()
    expected[:, 4] = (expected[:, 4] + 180.0) % 360.0 - 180.0
    torch.testing.assert_close(decoded[0], expected, atol=1e-4, rtol=0)


def test_rotated_loss_on_a_hand_computed_case():
    """Zero layers: the class loss is log(K + 1) per proposal, the box loss the L1 norm of the target
    deltas of the one foreground proposal, divided by the two sampled proposals."""
    layers = predictor(num_classes=2)
    props = proposals_with(
        [[10.0, 10.0, 4.0, 2.0, 170.0], [30.0, 30.0, 4.0, 4.0, 0.0]],
        gt_classes=torch.tensor([1, 2]),  # foreground class 1, background (K = 2)
        gt_boxes=RotatedBoxes(torch.tensor([[11.0, 10.0, 4.0, 2.0, -170.0], [0.0, 0.0, 1.0, 1.0, 0.0]])),
    )
    scores, deltas = layers(torch.zeros(2, 2))
    assert deltas.shape == (2, 2 * 5)
    losses = layers.losses((scores, deltas), [props])
    # dx = (11 - 10) / 4, da = radians(20): -170 is 20 degrees on from 170
    expected_box = (0.25 + math.radians(20.0)) / 2
    torch.testing.assert_close(losses["loss_cls"], torch.tensor(math.log(3.0)))
    torch.testing.assert_close(losses["loss_box_reg"], torch.tensor(expected_box))


def test_rotated_inference_returns_rotated_boxes_after_rotated_nms():
    layers = predictor(num_classes=1, test_score_thresh=0.1, test_nms_thresh=0.5)
    with torch.no_grad():
        layers.cls_score.bias.copy_(torch.tensor([1.0, 0.0]))
    boxes = [[20.0, 20.0, 10.0, 4.0, 30.0], [20.0, 20.5, 10.0, 4.0, 32.0], [20.0, 20.0, 10.0, 4.0, 120.0]]
    features = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    features_scores = layers(features)
    scores = features_scores[0] + torch.tensor([[0.5, 0.0], [0.0, 0.0], [0.2, 0.0]])  # best first
    detections, kept = layers.inference((scores, features_scores[1]), [proposals_with(boxes)])
    result = detections[0]
    assert isinstance(result.pred_boxes, RotatedBoxes) and result.pred_boxes.tensor.shape == (2, 5)
    assert kept[0].tolist() == [0, 2]  # the second box overlaps the first (IoU > 0.5), the third crosses it
    assert result.pred_classes.tolist() == [0, 0]
    assert torch.all(result.scores[:-1] >= result.scores[1:])


def tiny_rroi_heads() -> RROIHeads:
    config = RROIHeadsConfig(
        num_classes=2, in_features=("p2", "p3"), batch_size_per_image=16, score_thresh_test=0.0,
        box_head=FastRCNNConvFCHeadConfig(fc_dim=8),
    )  # fmt: skip
    shapes = {"p2": ShapeSpec(channels=4, stride=4), "p3": ShapeSpec(channels=4, stride=8)}
    return build_rroi_heads(config, shapes)


def test_rroi_heads_match_by_rotated_iou_and_predict_rotated_boxes():
    torch.manual_seed(0)
    heads = tiny_rroi_heads()
    features = {"p2": torch.randn(1, 4, 16, 16), "p3": torch.randn(1, 4, 8, 8)}
    gt = Instances((64, 64))
    gt.gt_boxes = RotatedBoxes(torch.tensor([[32.0, 32.0, 30.0, 6.0, 45.0]]))
    gt.gt_classes = torch.tensor([1])
    # the same box turned by 90 degrees: axis-aligned IoU of the enclosing boxes would call it a match
    proposals = proposals_with(
        [[32.0, 32.0, 30.0, 6.0, -45.0], [32.0, 32.0, 30.0, 6.0, 47.0]], image_size=(64, 64),
        objectness_logits=torch.zeros(2),
    )  # fmt: skip
    heads.train()
    sampled, losses = heads(None, features, [proposals], [gt])
    by_angle = {
        round(float(a)): int(c)
        for a, c in zip(sampled[0].proposal_boxes.tensor[:, 4], sampled[0].gt_classes, strict=True)
    }
    assert by_angle == {-45: 2, 47: 1, 45: 1}  # the crossing proposal is background, the ground truth added
    assert set(losses) == {"loss_cls", "loss_box_reg"} and losses["loss_box_reg"] > 0
    heads.eval()
    with torch.no_grad():
        detections, _ = heads(None, features, [proposals])
    assert (
        isinstance(detections[0].pred_boxes, RotatedBoxes) and detections[0].pred_boxes.tensor.shape[1] == 5
    )


def test_rroi_heads_config_checks():
    config = structure(ROIHeadsConfig, {"name": "RROIHeads", "num_classes": 3})
    assert isinstance(config, RROIHeadsConfig)
    assert config.box_pooler.type == "ROIAlignRotated"
    assert isinstance(config.box_predictor, RotatedFastRCNNOutputLayersConfig)
    assert config.box_predictor.bbox_reg_weights == (10.0, 10.0, 5.0, 5.0, 1.0)
    with pytest.raises(ConfigError, match=r"\$\.box_pooler\.type"):
        structure(ROIHeadsConfig, {"name": "RROIHeads", "box_pooler": {"type": "ROIAlignV2"}})
    with pytest.raises(ConfigError, match=r"\$\.box_predictor\.bbox_reg_weights"):
        structure(ROIHeadsConfig, {"name": "RROIHeads", "box_predictor": {"bbox_reg_weights": [1, 1, 1, 1]}})
    with pytest.raises(ConfigError, match=r"\$\.branches: RROIHeads predicts boxes only"):
        structure(ROIHeadsConfig, {"name": "RROIHeads", "branches": {"mask": {"name": "MaskBranch"}}})


def test_rotated_faster_rcnn_builds_trains_and_predicts_rotated_boxes():
    """detectron2's rotated Faster R-CNN: RRPN proposals (rotated anchors) into RROIHeads."""
    torch.manual_seed(0)
    config = GeneralizedRCNNConfig(
        backbone=ResNetFPNConfig(
            resnet=ResNetConfig(depth=18, stem_out_channels=8, res2_out_channels=64), out_channels=16
        ),
        proposal_generator=RRPNConfig(
            anchor_generator=RotatedAnchorGeneratorConfig(
                sizes=((16.0,), (32.0,), (64.0,), (128.0,), (256.0,)), angles=((-60.0, 0.0, 60.0),)
            ),
            pre_nms_topk_train=200, post_nms_topk_train=100, pre_nms_topk_test=100, post_nms_topk_test=50,
            batch_size_per_image=64,
        ),
        roi_heads=RROIHeadsConfig(
            num_classes=2, batch_size_per_image=32, score_thresh_test=0.0,
            box_head=FastRCNNConvFCHeadConfig(fc_dim=16),
        ),
    )  # fmt: skip
    model = build_model(config)
    gt = Instances((64, 64))
    gt.gt_boxes = RotatedBoxes(torch.tensor([[32.0, 30.0, 30.0, 10.0, 30.0]]))
    gt.gt_classes = torch.tensor([0])
    inputs = [{"image": torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8), "instances": gt}]
    model.train()
    losses = model(inputs)
    assert {"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg"} <= set(losses)
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        (output,) = model([{"image": inputs[0]["image"], "height": 128, "width": 128}])
    boxes = output["instances"].pred_boxes
    assert isinstance(boxes, RotatedBoxes) and boxes.tensor.shape[1] == 5 and len(boxes) > 0
    assert output["instances"].image_size == (128, 128)
