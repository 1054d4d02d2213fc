"""Parity with detectron2 on the golden narrow FCOS R50-FPN (tolerances in its data README)."""

import pytest
import torch
from golden_helpers import DATA, assert_detections_match, assert_features_match, load_golden

from dt_models import build_model
from dt_models.checkpoint import detectron2_name, load_checkpoint_file
from dt_models.meta_arch import FCOS, FCOSConfig


@pytest.fixture(scope="module")
def golden():
    model, io, inputs = load_golden("fcos_R_50_FPN", dt_config=True)  # its checkpoint loads exactly
    with torch.no_grad():
        features = model.backbone(model.preprocess_image(inputs).tensor)
        final = model(inputs)[0]["instances"]
    return dict(model=model, io=io, features=features, final=final)


def test_dt_config_builds_detectron2s_fcos(golden):
    model = golden["model"]
    assert isinstance(model, FCOS) and model.head_in_features == ["p3", "p4", "p5", "p6", "p7"]
    assert (model.test_score_thresh, model.test_nms_thresh) == (0.2, 0.6)


def test_features(golden):
    assert_features_match(golden["features"], golden["io"]["features"])


def test_final_detections(golden):
    io, final = golden["io"], golden["final"]
    assert_detections_match(final, io)
    assert final.image_size == (io["height"], io["width"])


def test_full_size_fcos_has_exactly_detectron2s_checkpoint_keys():
    """The reference is narrow but as deep as detectron2's fcos_R_50_FPN_1x (ResNet-50, towers of 4
    convolutions): its 319 names are those of detectron2's full-size FCOS checkpoint, and dt's default
    FCOS, built on the meta device, has exactly them."""
    weights, _ = load_checkpoint_file(DATA / "fcos_R_50_FPN" / "model_final.pkl")
    with torch.device("meta"):
        model = build_model(FCOSConfig(), device="meta")
    assert {detectron2_name(key) for key in model.state_dict()} == set(weights)
    assert len(weights) == 319
