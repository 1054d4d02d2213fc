"""Parity with detectron2 on the golden narrow Cascade Mask R-CNN R50-FPN (tolerances in its data README)."""

import json

import numpy as np
import pytest
import torch
from golden_helpers import (
    DATA,
    assert_detections_match,
    assert_features_match,
    assert_proposals_match,
    load_golden,
)

from dt_models.roi_heads import CascadeROIHeads
from dt_structures import Boxes, Instances, pairwise_iou


@pytest.fixture(scope="module")
def golden():
    model, io, inputs = load_golden("cascade_mask_rcnn_R_50_FPN")
    assert isinstance(model.roi_heads, CascadeROIHeads) and model.roi_heads.num_cascade_stages == 3
    with torch.no_grad():
        images = model.preprocess_image(inputs)
        features = model.backbone(images.tensor)
        proposals, _ = model.proposal_generator(images, features, None)
        raw = model.inference(inputs, do_postprocess=False)[0]
        final = model(inputs)[0]["instances"]
    return dict(io=io, features=features, proposals=proposals[0], raw=raw, final=final)


def test_features_and_proposals(golden):
    assert_features_match(golden["features"], golden["io"]["features"])
    proposals = golden["proposals"]
    assert_proposals_match(
        proposals.proposal_boxes.tensor, proposals.objectness_logits, golden["io"]["proposal_boxes"]
    )


def test_final_detections_and_mask_probabilities(golden):
    assert_detections_match(golden["final"], golden["io"])
    assert (golden["raw"].pred_masks - golden["io"]["mask_probs_28"]).abs().max() <= 1e-3


def test_pasted_masks(golden):
    io = golden["io"]
    shape = tuple(io["pred_masks_shape"])
    expected = np.unpackbits(io["pred_masks_packed"].numpy(), axis=1)[:, : int(np.prod(shape[1:]))]
    expected = torch.from_numpy(expected.reshape(shape).astype(bool))
    masks = golden["final"].pred_masks
    assert masks.shape == expected.shape
    assert (masks == expected).float().mean() >= 0.999


def _stage0_proposals(io):
    """Fixed stage-0 training proposals: 120 golden proposals and 4 ground-truth boxes (the first 4
    detections, moved to the input scale and shifted), labelled by IoU >= 0.5 (background: 10)."""
    size = tuple(io["image"].shape[1:])
    target = Instances(size)
    target.gt_boxes = Boxes(io["pred_boxes"][:4] * 0.75 + 3)
    target.gt_classes = io["pred_classes"][:4].clone()
    props = Instances(size)
    props.proposal_boxes = Boxes(torch.cat([io["proposal_boxes"][:120], target.gt_boxes.tensor]))
    best, idx = pairwise_iou(target.gt_boxes, props.proposal_boxes).max(dim=0)
    props.gt_classes = target.gt_classes[idx].clone()
    props.gt_classes[best < 0.5] = 10
    props.gt_boxes = target.gt_boxes[idx]
    return props, target


def test_training_box_losses_of_every_stage():
    model, io, _ = load_golden("cascade_mask_rcnn_R_50_FPN")
    props, target = _stage0_proposals(io)
    losses = model.train().roi_heads._forward_box(dict(io["features"]), [props], [target])
    expected = json.loads((DATA / "cascade_mask_rcnn_R_50_FPN" / "train_losses.json").read_text())[
        "box_losses"
    ]
    assert set(losses) == set(expected)
    for name, value in expected.items():
        assert abs(losses[name].item() - value) <= 1e-5, name
