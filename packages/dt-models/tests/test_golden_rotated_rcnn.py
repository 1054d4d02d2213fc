"""Parity with detectron2 on the golden narrow rotated Faster R-CNN R50-FPN (RRPN + RROIHeads;
tolerances in its data README)."""

import pytest
import torch
from golden_helpers import assert_detections_match, assert_features_match, assert_proposals_found, load_golden

from dt_models.proposal_generator import RRPN
from dt_models.roi_heads import RROIHeads
from dt_structures import RotatedBoxes


@pytest.fixture(scope="module")
def golden():
    model, io, inputs = load_golden("rotated_faster_rcnn_R_50_FPN")
    with torch.no_grad():
        images = model.preprocess_image(inputs)
        features = model.backbone(images.tensor)
        proposals, _ = model.proposal_generator(images, features, None)
        final = model(inputs)[0]["instances"]
    return dict(model=model, io=io, features=features, proposals=proposals[0], final=final)


def test_config_translates_to_the_rotated_parts(golden):
    model = golden["model"]
    assert isinstance(model.proposal_generator, RRPN) and isinstance(model.roi_heads, RROIHeads)
    assert model.proposal_generator.anchor_generator.num_cell_anchors == [9] * 5  # 3 ratios x 3 angles


def test_features_and_proposals(golden):
    assert_features_match(golden["features"], golden["io"]["features"])
    assert isinstance(golden["proposals"].proposal_boxes, RotatedBoxes)
    assert_proposals_found(golden["proposals"].proposal_boxes.tensor, golden["io"]["proposal_boxes"])


def test_final_rotated_detections(golden):
    final = golden["final"]
    assert isinstance(final.pred_boxes, RotatedBoxes) and final.pred_boxes.tensor.shape[1] == 5
    assert_detections_match(final, golden["io"])
