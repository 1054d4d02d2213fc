"""Parity with detectron2 on the golden narrow Keypoint R-CNN R50-FPN (tolerances in its data README)."""

import pytest
import torch
from golden_helpers import assert_detections_match, assert_features_match, assert_proposals_match, load_golden

from dt_structures import Boxes, Instances


@pytest.fixture(scope="module")
def golden():
    model, io, inputs = load_golden("keypoint_rcnn_R_50_FPN")
    with torch.no_grad():
        images = model.preprocess_image(inputs)
        features = model.backbone(images.tensor)
        proposals, _ = model.proposal_generator(images, features, None)
        given = Instances(images.image_sizes[0])
        given.proposal_boxes = Boxes(io["proposal_boxes"])
        heads = model.roi_heads
        pooled = heads.box_pooler([features[f] for f in heads.box_in_features], [given.proposal_boxes])
        logits, deltas = heads.box_predictor(heads.box_head(pooled))
        final = model(inputs)[0]["instances"]
    return dict(io=io, features=features, proposals=proposals[0], logits=logits, deltas=deltas, final=final)


def test_features_and_proposals(golden):
    assert_features_match(golden["features"], golden["io"]["features"])
    proposals = golden["proposals"]
    assert_proposals_match(
        proposals.proposal_boxes.tensor, proposals.objectness_logits, golden["io"]["proposal_boxes"]
    )


def test_box_predictor_on_golden_proposals(golden):
    assert (golden["logits"] - golden["io"]["box_class_logits"]).abs().max() <= 1e-3
    assert (golden["deltas"] - golden["io"]["box_deltas"]).abs().max() <= 1e-3


def test_final_detections_and_keypoints(golden):
    io = golden["io"]
    final = assert_detections_match(golden["final"], io)
    keypoints = final.pred_keypoints
    assert keypoints.shape == io["pred_keypoints"].shape == (len(final), 17, 3)
    assert (keypoints[..., :2] - io["pred_keypoints"][..., :2]).abs().max() <= 1e-2
    assert (keypoints[..., 2] - io["pred_keypoints"][..., 2]).abs().max() <= 1e-4
