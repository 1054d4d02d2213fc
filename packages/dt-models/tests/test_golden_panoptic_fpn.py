"""Parity with detectron2 on the golden narrow Panoptic FPN R50 (tolerances in its data README)."""

import pytest
import torch
from golden_helpers import (
    assert_detections_match,
    assert_features_match,
    assert_pixels_agree,
    assert_proposals_found,
    load_golden,
)

from dt_models.meta_arch import PanopticFPN


@pytest.fixture(scope="module")
def golden():
    model, io, inputs = load_golden("panoptic_fpn_R_50_FPN")
    with torch.no_grad():
        images = model.preprocess_image(inputs)
        features = model.backbone(images.tensor)
        proposals, _ = model.proposal_generator(images, features, None)
        output = model(inputs)[0]
    return dict(model=model, io=io, features=features, proposals=proposals[0], output=output)


def test_features_and_proposals(golden):
    assert isinstance(golden["model"], PanopticFPN)
    assert_features_match(golden["features"], golden["io"]["features"])
    assert_proposals_found(golden["proposals"].proposal_boxes.tensor, golden["io"]["proposal_boxes"])


def test_final_detections(golden):
    assert_detections_match(golden["output"]["instances"], golden["io"])


def test_semantic_argmax(golden):
    assert_pixels_agree(golden["output"]["sem_seg"].argmax(dim=0), golden["io"]["sem_seg_argmax"])


def test_panoptic_segments_in_detectron2s_order(golden):
    io = golden["io"]
    ids, segments = golden["output"]["panoptic_seg"]
    assert ids.dtype == torch.int32
    assert_pixels_agree(ids, io["panoptic_seg"])
    expected = io["segments_info"]
    things = [s for s in expected if s["isthing"]]
    assert len(things) > 1 and len(expected) > len(things) + 1
    threshold = golden["model"].combine_instances_score_thresh
    assert len(things) < int((io["scores"] >= threshold).sum())  # some overlapping instance is skipped
    assert len(segments) == len(expected)
    pixels = ids.numel()
    for segment, reference in zip(segments, expected, strict=True):
        assert segment.keys() == reference.keys()
        exact = {k: v for k, v in reference.items() if k not in ("score", "area")}
        assert {k: segment[k] for k in exact} == exact
        if reference["isthing"]:
            assert abs(segment["score"] - reference["score"]) <= 1e-4
        else:
            assert abs(segment["area"] - reference["area"]) <= 1e-3 * pixels
