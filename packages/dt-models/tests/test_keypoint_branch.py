"""Keypoint R-CNN: the keypoint branch's loss, training-proposal filter, decoding, config and names."""

import math

import pytest
import torch
import yaml
from dtm_helpers import square_instances, tiny_rcnn_config, with_changes

from dt_config import ConfigError, structure, unstructure
from dt_models import build_model, detectron2_model_config
from dt_models.checkpoint import detectron2_name
from dt_models.config import KeypointBranchConfig, KRCNNConvDeconvUpsampleHeadConfig, ModelConfig
from dt_models.layers import ShapeSpec
from dt_models.meta_arch.postprocessing import detector_postprocess
from dt_models.roi_heads import (
    KeypointBranch,
    KRCNNConvDeconvUpsampleHead,
    keypoint_rcnn_loss,
    select_proposals_with_visible_keypoints,
)
from dt_structures import Boxes, Instances, Keypoints


def _proposals(boxes, keypoints):
    inst = Instances((64, 64))
    inst.proposal_boxes = Boxes(torch.as_tensor(boxes, dtype=torch.float32))
    inst.gt_keypoints = Keypoints(torch.as_tensor(keypoints, dtype=torch.float32))
    return inst


def test_loss_is_cross_entropy_over_cells_normalised_by_valid_keypoints():
    # one 8x8 box at the origin, 4x4 heatmap: a cell is 2 px; keypoints at cells (x=1, y=0) and (3, 3)
    inst = _proposals([[0, 0, 8, 8]], [[[3.0, 1.0, 2], [7.0, 7.0, 1], [1.0, 1.0, 0]]])
    logits = torch.zeros(1, 3, 4, 4)
    logits[0, 0, 0, 1] = 2.0
    loss = keypoint_rcnn_loss(logits, [inst], normalizer=None)
    ce_first = -math.log(math.exp(2.0) / (math.exp(2.0) + 15))
    ce_second = math.log(16)
    assert loss.item() == pytest.approx((ce_first + ce_second) / 2, rel=1e-6)
    assert keypoint_rcnn_loss(logits, [inst], normalizer=4.0).item() == pytest.approx(
        (ce_first + ce_second) / 4, rel=1e-6
    )


def test_loss_without_valid_keypoints_is_zero_and_connected():
    logits = torch.randn(1, 2, 4, 4, requires_grad=True)
    outside = _proposals([[0, 0, 8, 8]], [[[20.0, 20.0, 2], [1.0, 1.0, 0]]])
    loss = keypoint_rcnn_loss(logits, [outside], normalizer=None)
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and torch.all(logits.grad == 0)


def test_head_normaliser_per_image_and_loss_weight():
    head = KRCNNConvDeconvUpsampleHead(
        ShapeSpec(channels=4, height=4, width=4), num_keypoints=2, conv_dims=(8,), loss_weight=3.0,
        loss_normalizer=5.0,
    )  # fmt: skip
    x = torch.randn(1, 4, 4, 4)
    inst = _proposals([[0, 0, 16, 16]], [[[3.0, 5.0, 2], [9.0, 9.0, 2]]])
    logits = head.layers(x)
    assert logits.shape == (1, 2, 16, 16)  # 2x transposed conv, then 2x bilinear
    expected = keypoint_rcnn_loss(logits, [inst], normalizer=5.0 * 2) * 3.0
    loss = head(x, [inst, _proposals(torch.zeros(0, 4), torch.zeros(0, 2, 3))])["loss_keypoint"]
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_training_proposals_need_a_visible_keypoint_inside_the_box():
    props = _proposals(
        [[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 4, 4]],
        [
            [[5.0, 5.0, 2], [40.0, 40.0, 2]],  # visible inside: kept
            [[5.0, 5.0, 0], [6.0, 6.0, 0]],  # nothing labeled: dropped
            [[5.0, 5.0, 2], [30.0, 30.0, 1]],  # hidden but labeled, on the box edge: kept
            [[5.0, 5.0, 2], [6.0, 6.0, 2]],  # visible but outside: dropped
        ],
    )
    empty = props[torch.zeros(0, dtype=torch.int64)]
    selected = select_proposals_with_visible_keypoints([props, empty])
    assert selected[0].proposal_boxes.tensor.tolist() == [[0, 0, 10, 10], [20, 20, 30, 30]]
    assert selected[1] is empty


def _keypoint_config(**head):
    base = tiny_rcnn_config(mask=False, num_classes=1)
    branch = KeypointBranchConfig(
        head=KRCNNConvDeconvUpsampleHeadConfig(num_keypoints=3, conv_dims=(8, 8), **head)
    )
    return with_changes(base, roi_heads=with_changes(base.roi_heads, branches={"keypoint": branch}))


def _keypoint_batch():
    g = torch.Generator().manual_seed(0)
    batch = []
    for h, w in ((96, 128), (80, 64)):
        inst = square_instances((h, w), [[4, 6, 40, 50], [20, 10, 60, 30]], [0, 0], masks=False)
        inst.gt_keypoints = Keypoints(
            torch.tensor([[[10, 10, 2], [30, 40, 1], [0, 0, 0]], [[25, 15, 2], [50, 25, 2], [40, 20, 2]]])
        )
        batch.append({"image": (torch.rand(3, h, w, generator=g) * 255).to(torch.uint8), "instances": inst})
    return batch


def test_keypoint_rcnn_trains_and_predicts_keypoints_at_the_output_size():
    torch.manual_seed(0)
    cfg = _keypoint_config()
    assert cfg.gt_fields() == {"gt_boxes", "gt_classes", "gt_keypoints"}
    model = build_model(cfg)
    assert isinstance(model.roi_heads.branches["keypoint"], KeypointBranch)
    losses = model(_keypoint_batch())
    assert {"loss_keypoint", "loss_cls", "loss_box_reg"} <= set(losses)
    sum(losses.values()).backward()
    assert model.roi_heads.branches["keypoint"].head.score_lowres.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        out = model([{"image": _keypoint_batch()[0]["image"], "height": 192, "width": 256}])[0]["instances"]
    assert len(out) > 0
    assert out.pred_keypoints.shape == (len(out), 3, 3)
    assert out.pred_keypoint_heatmaps.shape == (len(out), 3, 56, 56)
    # keypoints are decoded inside their box, at the output size (twice the input); boxes under one
    # input pixel wide are decoded as one pixel wide (as detectron2), so they are left out here
    wide = (out.pred_boxes.tensor[:, 2:] - out.pred_boxes.tensor[:, :2] >= 2).all(dim=1)
    assert wide.sum() >= len(out) // 2
    boxes = out.pred_boxes.tensor[wide]
    xs, ys = out.pred_keypoints[wide, :, 0], out.pred_keypoints[wide, :, 1]
    assert torch.all(xs >= boxes[:, None, 0] - 1e-3) and torch.all(xs <= boxes[:, None, 2] + 1e-3)
    assert torch.all(ys >= boxes[:, None, 1] - 1e-3) and torch.all(ys <= boxes[:, None, 3] + 1e-3)


def test_postprocess_scales_keypoints_and_leaves_scores():
    inst = Instances((10, 20))
    inst.pred_boxes = Boxes(torch.tensor([[1.0, 1.0, 5.0, 5.0]]))
    inst.pred_keypoints = torch.tensor([[[2.0, 3.0, 0.7]]])
    out = detector_postprocess(inst, 20, 60)
    assert out.pred_keypoints.tolist() == [[[6.0, 6.0, pytest.approx(0.7)]]]
    assert inst.pred_keypoints.tolist() == [[[2.0, 3.0, pytest.approx(0.7)]]]  # input not modified


def test_keypoint_config_round_trips_and_reports_paths():
    cfg = _keypoint_config(loss_normalizer=12.0)
    assert structure(ModelConfig, yaml.safe_load(yaml.safe_dump(unstructure(cfg)))) == cfg
    data = unstructure(cfg)
    data["roi_heads"]["branches"]["keypoint"]["head"]["conv_dims"] = [8, 0]
    with pytest.raises(ConfigError, match=r"\$\.roi_heads\.branches\.keypoint\.head\.conv_dims: every"):
        structure(ModelConfig, data)
    data["roi_heads"]["branches"]["keypoint"]["head"] = {"num_keypoint": 3}
    with pytest.raises(ConfigError, match=r"keypoint\.head\.num_keypoint.*did you mean 'num_keypoints'"):
        structure(ModelConfig, data)


def test_detectron2_names_of_keypoint_weights():
    model = build_model(_keypoint_config())
    names = {detectron2_name(k) for k in model.state_dict() if ".keypoint." in k}
    assert names == {
        "roi_heads.keypoint_head.conv_fcn1.weight", "roi_heads.keypoint_head.conv_fcn1.bias",
        "roi_heads.keypoint_head.conv_fcn2.weight", "roi_heads.keypoint_head.conv_fcn2.bias",
        "roi_heads.keypoint_head.score_lowres.weight", "roi_heads.keypoint_head.score_lowres.bias",
    }  # fmt: skip


def test_detectron2_keypoint_yaml_translation(tmp_path):
    path = tmp_path / "kp.yaml"
    path.write_text(
        "MODEL:\n  KEYPOINT_ON: True\n  ROI_HEADS:\n    NAME: StandardROIHeads\n    NUM_CLASSES: 1\n"
        "    BATCH_SIZE_PER_IMAGE: 256\n  ROI_BOX_HEAD:\n    NAME: FastRCNNConvFCHead\n    NUM_FC: 2\n"
        "  ROI_KEYPOINT_HEAD:\n    NORMALIZE_LOSS_BY_VISIBLE_KEYPOINTS: False\n    LOSS_WEIGHT: 4.0\n"
        "    MIN_KEYPOINTS_PER_IMAGE: 3\n"
    )
    branch = detectron2_model_config(path).roi_heads.branches["keypoint"]
    assert branch.head == KRCNNConvDeconvUpsampleHeadConfig(
        num_keypoints=17, conv_dims=(512,) * 8, loss_weight=4.0, loss_normalizer=17 * 256 * 0.25
    )
    assert branch.min_keypoints_per_image == 3 and branch.pooler.resolution == 14


def test_loss_and_training_filter_equal_detectron2_on_random_inputs():
    """detectron2 0.6's ``keypoint_rcnn_loss`` and ``select_proposals_with_visible_keypoints`` gave these
    numbers on exactly these inputs (computed by hand, torch 2.14.1, CPU)."""
    g = torch.Generator().manual_seed(0)
    corners = torch.rand(12, 2, generator=g) * 40
    boxes = torch.cat([corners, corners + 5 + torch.rand(12, 2, generator=g) * 30], 1)
    keypoints = torch.cat(
        [torch.rand(12, 5, 2, generator=g) * 80, torch.randint(0, 3, (12, 5, 1), generator=g).float()], 2
    )
    keypoints[..., :2] *= keypoints[..., 2:] > 0
    logits = torch.randn(12, 5, 56, 56, generator=g)
    inst = _proposals(boxes, keypoints)
    assert keypoint_rcnn_loss(logits, [inst], None).item() == pytest.approx(7.426171779632568, rel=1e-6)
    assert keypoint_rcnn_loss(logits, [inst], 7.0).item() == pytest.approx(3.182645082473755, rel=1e-6)
    assert len(select_proposals_with_visible_keypoints([inst])[0]) == 3
