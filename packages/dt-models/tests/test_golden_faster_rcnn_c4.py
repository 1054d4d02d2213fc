"""Parity with detectron2 on the golden narrow Faster R-CNN R50-C4 (tolerances in its data README)."""

import pytest
import torch
from golden_helpers import assert_detections_match, assert_features_match, assert_proposals_match, load_golden

from dt_models.roi_heads import Res5ROIHeads
from dt_structures import Boxes


@pytest.fixture(scope="module")
def golden():
    model, io, inputs = load_golden("faster_rcnn_R_50_C4")
    assert isinstance(model.roi_heads, Res5ROIHeads)
    with torch.no_grad():
        images = model.preprocess_image(inputs)
        features = model.backbone(images.tensor)
        proposals, _ = model.proposal_generator(images, features, None)
        heads = model.roi_heads
        box_features = heads._shared_roi_transform(features, [Boxes(io["proposal_boxes"])])
        logits, deltas = heads.box_predictor(box_features.mean(dim=(2, 3)))
        final = model(inputs)[0]["instances"]
    return dict(io=io, features=features, proposals=proposals[0], logits=logits, deltas=deltas, final=final)


def test_res4_features_and_c4_proposals(golden):
    assert set(golden["features"]) == {"res4"}
    assert_features_match(golden["features"], golden["io"]["features"])
    proposals = golden["proposals"]
    assert_proposals_match(
        proposals.proposal_boxes.tensor, proposals.objectness_logits, golden["io"]["proposal_boxes"]
    )


def test_res5_box_predictor_on_golden_proposals(golden):
    assert (golden["logits"] - golden["io"]["box_class_logits"]).abs().max() <= 1e-3
    assert (golden["deltas"] - golden["io"]["box_deltas"]).abs().max() <= 1e-3


def test_final_detections(golden):
    assert_detections_match(golden["final"], golden["io"])
