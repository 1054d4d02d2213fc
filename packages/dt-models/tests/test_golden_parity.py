"""Parity with detectron2 on the golden narrow Mask R-CNN R50-FPN (tolerances from the golden README)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from golden_helpers import assert_proposals_match

from dt_models import build_model, detectron2_model_config, load_weights
from dt_structures import Boxes, Instances

MODEL_DIR = Path(__file__).resolve().parent / "data" / "mask_rcnn_R_50_FPN"


@pytest.fixture(scope="module")
def golden():
    if not MODEL_DIR.is_dir():
        pytest.fail(f"golden files not found at {MODEL_DIR} (they belong to the repository: restore them)")
    model = build_model(detectron2_model_config(MODEL_DIR / "config.yaml")).eval()
    report = load_weights(model, MODEL_DIR / "model_final.pkl")
    assert report.ok, report.table()
    io = torch.load(MODEL_DIR / "io.pt", weights_only=True)
    inputs = [{"image": io["image"], "height": io["height"], "width": io["width"]}]
    with torch.no_grad():
        images = model.preprocess_image(inputs)
        features = model.backbone(images.tensor)
        features_nhwc = model.extract_features(images)  # the inference path (channels-last on CPU)
        proposals, _ = model.proposal_generator(images, features, None)
        given = Instances(images.image_sizes[0])
        given.proposal_boxes = Boxes(io["proposal_boxes"])
        heads = model.roi_heads
        pooled = heads.box_pooler([features[f] for f in heads.box_in_features], [given.proposal_boxes])
        logits, deltas = heads.box_predictor(heads.box_head(pooled))
        raw = model.inference(inputs, do_postprocess=False)[0]
        final = model(inputs)[0]["instances"]
    return dict(
        io=io, features=features, features_nhwc=features_nhwc, proposals=proposals[0], logits=logits,
        deltas=deltas, raw=raw, final=final,
    )  # fmt: skip


def test_features(golden):
    for name, expected in golden["io"]["features"].items():
        assert (golden["features"][name] - expected).abs().max() <= 1e-3, name
        assert (golden["features_nhwc"][name] - expected).abs().max() <= 1e-3, name


def test_proposals_top_900(golden):
    proposals = golden["proposals"]
    assert_proposals_match(
        proposals.proposal_boxes.tensor, proposals.objectness_logits, golden["io"]["proposal_boxes"]
    )


def test_box_predictor_on_golden_proposals(golden):
    assert (golden["logits"] - golden["io"]["box_class_logits"]).abs().max() <= 1e-3
    assert (golden["deltas"] - golden["io"]["box_deltas"]).abs().max() <= 1e-3


def test_final_detections(golden):
    io, final = golden["io"], golden["final"]
    assert len(final) == len(io["pred_boxes"]) == 100
    assert (final.pred_boxes.tensor - io["pred_boxes"]).abs().max() <= 1e-2
    assert (final.scores - io["scores"]).abs().max() <= 1e-4
    assert torch.equal(final.pred_classes, io["pred_classes"])
    assert (golden["raw"].pred_masks - io["mask_probs_28"]).abs().max() <= 1e-3


def test_pasted_masks(golden):
    io = golden["io"]
    shape = tuple(io["pred_masks_shape"])
    expected = np.unpackbits(io["pred_masks_packed"].numpy(), axis=1)[:, : int(np.prod(shape[1:]))]
    expected = torch.from_numpy(expected.reshape(shape).astype(bool))
    masks = golden["final"].pred_masks
    assert masks.shape == expected.shape
    assert (masks == expected).float().mean() >= 0.999
