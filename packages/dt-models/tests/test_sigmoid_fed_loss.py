"""LVIS box classification: sigmoid cross-entropy and the federated loss of FastRCNNOutputLayers."""

import math

import pytest
import torch

from dt_config import ConfigError, structure
from dt_models import build_model, detectron2_model_config
from dt_models.box_regression import Box2BoxTransform
from dt_models.config import FastRCNNOutputLayersConfig
from dt_models.layers import ShapeSpec
from dt_models.roi_heads import FastRCNNOutputLayers
from dt_models.roi_heads.fast_rcnn import fed_loss_classes, sigmoid_cross_entropy_loss
from dt_structures import Boxes, Instances


def test_sigmoid_cross_entropy_sums_classes_and_averages_proposals():
    logits = torch.zeros(2, 3)  # K = 2 classes + background
    gt = torch.tensor([0, 2])  # class 0, background
    assert sigmoid_cross_entropy_loss(logits, gt).item() == pytest.approx(2 * math.log(2))
    only_first = sigmoid_cross_entropy_loss(logits, gt, torch.tensor([True, False]))
    assert only_first.item() == pytest.approx(math.log(2))
    logits[0, 0] = 3.0  # the right class gets more confident: its term falls
    expected = (math.log1p(math.exp(-3.0)) + 3 * math.log(2)) / 2
    assert sigmoid_cross_entropy_loss(logits, gt).item() == pytest.approx(expected, rel=1e-6)


def test_fed_loss_keeps_present_classes_and_samples_by_weight():
    gt = torch.tensor([0, 4, 0])  # K = 4; 4 is the background
    assert sorted(fed_loss_classes(gt, 2, 4, torch.ones(4)).tolist()) == [0, 4]
    sampled = fed_loss_classes(gt, 3, 4, torch.tensor([5.0, 0.0, 1.0, 0.0]))
    assert sampled.tolist()[:2] == [0, 4] and sampled.tolist()[2] == 2  # the only class with weight


def _predictor(**kwargs):
    torch.manual_seed(0)
    return FastRCNNOutputLayers(
        input_shape=ShapeSpec(channels=8), box2box_transform=Box2BoxTransform((10.0, 10.0, 5.0, 5.0)),
        num_classes=4, **kwargs,
    )  # fmt: skip


def _proposals():
    p = Instances((50, 50))
    p.proposal_boxes = Boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 30.0, 30.0]]))
    p.gt_boxes = Boxes(torch.tensor([[1.0, 1.0, 11.0, 11.0], [0.0, 0.0, 1.0, 1.0]]))
    p.gt_classes = torch.tensor([1, 4])
    return [p]


def test_federated_predictor_loss_probs_and_weights_buffer():
    predictor = _predictor(use_sigmoid_ce=True, use_fed_loss=True, fed_loss_num_classes=2)
    assert "fed_loss_cls_weights" in predictor.state_dict()  # detectron2 checkpoints carry it
    predictor.set_fed_loss_cls_weights(torch.tensor([0.0, 0.0, 0.0, 3.0]))
    predictions = predictor(torch.randn(2, 8))
    scores, _ = predictions
    losses = predictor.losses(predictions, _proposals())
    # kept classes: 1 (present) and the background; 2 classes reached, so nothing is sampled
    expected = sigmoid_cross_entropy_loss(
        scores, torch.tensor([1, 4]), torch.tensor([False, True, False, False])
    )
    torch.testing.assert_close(losses["loss_cls"], expected)
    predictor.fed_loss_num_classes = 3  # now class 3, the only one with weight, is sampled too
    expected = sigmoid_cross_entropy_loss(
        scores, torch.tensor([1, 4]), torch.tensor([False, True, False, True])
    )
    torch.testing.assert_close(predictor.losses(predictions, _proposals())["loss_cls"], expected)
    torch.testing.assert_close(predictor.predict_probs(predictions, _proposals())[0], scores.sigmoid())
    with pytest.raises(ValueError, match=r"expected Tensor\[4\]"):
        predictor.set_fed_loss_cls_weights(torch.ones(3))


def test_softmax_predictor_has_no_fed_loss_buffer_and_sigmoid_needs_no_buffer():
    assert "fed_loss_cls_weights" not in _predictor().state_dict()
    assert "fed_loss_cls_weights" not in _predictor(use_sigmoid_ce=True).state_dict()
    with pytest.raises(ValueError, match="needs use_sigmoid_ce"):
        _predictor(use_fed_loss=True)


def test_config_requires_sigmoid_for_fed_loss():
    with pytest.raises(ConfigError, match=r"\$\.use_fed_loss: the federated loss needs use_sigmoid_ce"):
        structure(FastRCNNOutputLayersConfig, {"use_fed_loss": True})


def test_detectron2_lvis_fed_loss_yaml_builds(tmp_path):
    path = tmp_path / "lvis.yaml"
    path.write_text(
        "MODEL:\n  ROI_HEADS:\n    NAME: StandardROIHeads\n    NUM_CLASSES: 6\n  RESNETS:\n"
        "    WIDTH_PER_GROUP: 4\n    RES2_OUT_CHANNELS: 16\n    STEM_OUT_CHANNELS: 8\n"
        "  ROI_BOX_HEAD:\n    NAME: FastRCNNConvFCHead\n    NUM_FC: 2\n    FC_DIM: 16\n"
        "    USE_SIGMOID_CE: True\n    USE_FED_LOSS: True\n    FED_LOSS_NUM_CLASSES: 3\n"
        "    FED_LOSS_FREQ_WEIGHT_POWER: 0.25\n"
    )
    predictor_cfg = detectron2_model_config(path).roi_heads.box_predictor
    assert predictor_cfg.use_fed_loss and predictor_cfg.fed_loss_num_classes == 3
    assert predictor_cfg.fed_loss_freq_weight_power == 0.25
    predictor = build_model(detectron2_model_config(path)).roi_heads.box_predictor
    assert predictor.use_sigmoid_ce and predictor.fed_loss_cls_weights.shape == (6,)
