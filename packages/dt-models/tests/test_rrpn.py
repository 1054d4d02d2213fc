"""Rotated boxes: the rotated box transform at angle wraps, rotated anchors, and the rotated RPN."""

import math

import pytest
import torch

from dt_config import ConfigError, structure
from dt_models.box_regression_rotated import Box2BoxTransformRotated, wrap_angle_degrees
from dt_models.layers import ShapeSpec
from dt_models.proposal_generator import RRPN, RRPNConfig, build_rrpn
from dt_models.registry import ProposalGeneratorConfig
from dt_models.rotated_anchor_generator import RotatedAnchorGenerator, RotatedAnchorGeneratorConfig
from dt_structures import ImageList, Instances, RotatedBoxes


def test_wrap_angle_degrees():
    angles = torch.tensor([-180.0, -181.0, 179.0, 180.0, 540.0, -90.0])
    assert wrap_angle_degrees(angles).tolist() == [-180.0, 179.0, 179.0, -180.0, -180.0, -90.0]


@pytest.mark.parametrize(
    "src_angle, target_angle, expected_da",
    [
        (170.0, -170.0, 20.0),
        (-170.0, 170.0, -20.0),
        (10.0, 30.0, 20.0),
        (-179.0, 179.0, -2.0),
        (0.0, 180.0, -180.0),
    ],
)
def test_rotated_deltas_take_the_short_way_round(src_angle, target_angle, expected_da):
    coder = Box2BoxTransformRotated((10.0, 10.0, 5.0, 5.0, 2.0))
    src = torch.tensor([[50.0, 40.0, 20.0, 10.0, src_angle]], dtype=torch.float64)
    target = torch.tensor([[54.0, 38.0, 30.0, 5.0, target_angle]], dtype=torch.float64)
    deltas = coder.get_deltas(src, target)
    expected = [
        10 * 4 / 20,
        10 * -2 / 10,
        5 * math.log(1.5),
        5 * math.log(0.5),
        2 * math.radians(expected_da),
    ]
    torch.testing.assert_close(deltas[0], torch.tensor(expected, dtype=torch.float64))
    decoded = coder.apply_deltas(deltas, src)
    torch.testing.assert_close(decoded[:, :4], target[:, :4])
    assert wrap_angle_degrees(decoded[:, 4] - target[:, 4]).abs().max() < 1e-9  # same angle, wrapped
    assert -180.0 <= decoded[0, 4] < 180.0


def test_rotated_decoding_of_several_boxes_per_row_and_clamp():
    coder = Box2BoxTransformRotated((1.0, 1.0, 1.0, 1.0, 1.0))
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0, 175.0]])
    deltas = torch.tensor([[0.0, 0.0, 0.0, 0.0, math.radians(10.0), 1.0, 0.0, 100.0, 0.0, 0.0]])
    out = coder.apply_deltas(deltas, boxes)
    torch.testing.assert_close(out[0, :5], torch.tensor([0.0, 0.0, 10.0, 10.0, -175.0]))
    assert out[0, 5] == 10.0 and out[0, 7] == pytest.approx(10.0 * 1000 / 16)  # dw clamped at log(1000/16)
    with pytest.raises(ValueError, match="5 values"):
        Box2BoxTransformRotated((1.0, 1.0, 1.0, 1.0))


def test_rotated_anchor_grid_and_order():
    generator = RotatedAnchorGenerator(
        sizes=[[8.0]], aspect_ratios=[[0.5, 2.0]], angles=[[-30.0, 60.0]], strides=[4]
    )
    assert generator.num_cell_anchors == [4]
    cell = generator.generate_cell_anchors([8.0], [0.5, 2.0], [-30.0, 60.0])
    w = math.sqrt(64 / 0.5)
    torch.testing.assert_close(cell[0], torch.tensor([0.0, 0.0, w, 0.5 * w, -30.0]))
    torch.testing.assert_close(cell[1], torch.tensor([0.0, 0.0, w, 0.5 * w, 60.0]))  # angles innermost
    (anchors,) = generator([torch.zeros(1, 1, 2, 3)])
    assert isinstance(anchors, RotatedBoxes) and anchors.tensor.shape == (2 * 3 * 4, 5)
    centers = anchors.tensor[::4, :2]  # offset 0.5 of the stride: cell centers, row-major
    torch.testing.assert_close(centers, torch.tensor([[2.0, 2], [6, 2], [10, 2], [2, 6], [6, 6], [10, 6]]))


def test_rotated_anchor_config_checks():
    with pytest.raises(ConfigError, match=r"\$\.anchor_generator\.angles: has 2 entries"):
        structure(ProposalGeneratorConfig, {"name": "RRPN", "anchor_generator": {"angles": [[0], [90]]}})
    with pytest.raises(ConfigError, match=r"\$\.bbox_reg_weights: "):
        structure(ProposalGeneratorConfig, {"name": "RRPN", "bbox_reg_weights": [1, 1, 1, 1]})
    with pytest.raises(ConfigError, match=r"\$\.boundary_thresh: RRPN has no anchor boundary filter"):
        structure(ProposalGeneratorConfig, {"name": "RRPN", "boundary_thresh": 0})
    assert RotatedAnchorGeneratorConfig().angles == ((-90.0, 0.0, 90.0),)


def tiny_rrpn() -> RRPN:
    config = RRPNConfig(
        in_features=("p2", "p3"),
        anchor_generator=RotatedAnchorGeneratorConfig(sizes=((12.0,), (24.0,)), angles=((-60.0, 0.0, 60.0),)),
        pre_nms_topk_test=50, post_nms_topk_test=20, batch_size_per_image=64,
    )  # fmt: skip
    shapes = {"p2": ShapeSpec(channels=4, stride=4), "p3": ShapeSpec(channels=4, stride=8)}
    return build_rrpn(config, shapes)


def test_rrpn_trains_on_rotated_boxes_and_proposes_rotated_boxes():
    torch.manual_seed(0)
    rrpn = tiny_rrpn()
    features = {"p2": torch.randn(1, 4, 16, 16), "p3": torch.randn(1, 4, 8, 8)}
    images = ImageList(torch.zeros(1, 3, 64, 64), [(64, 60)])
    gt = Instances((64, 60))
    gt.gt_boxes = RotatedBoxes(
        torch.tensor([[30.0, 20.0, 24.0, 10.0, 170.0], [15.0, 45.0, 12.0, 12.0, -45.0]])
    )
    rrpn.train()
    _, losses = rrpn(images, features, [gt])
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_loc"} and all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_rpn_loc"] > 0
    rrpn.eval()
    with torch.no_grad():
        proposals, _ = rrpn(images, features, None)
    boxes = proposals[0].proposal_boxes
    assert isinstance(boxes, RotatedBoxes) and 0 < len(boxes) <= 20
    scores = proposals[0].objectness_logits
    assert torch.all(scores[:-1] >= scores[1:])  # batched NMS returns decreasing scores
    assert torch.all(boxes.tensor[:, 4] >= -180) and torch.all(boxes.tensor[:, 4] < 180)
    assert torch.all(boxes.tensor[:, 2:4] > 0)
