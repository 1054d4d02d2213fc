"""Parity with detectron2 on the golden narrow Semantic FPN R50 (tolerances in its data README)."""

import pytest
import torch
from golden_helpers import assert_features_match, assert_pixels_agree, load_golden

from dt_models.meta_arch import SemanticSegmentor

LOGIT_STRIDE = 8  # io.pt's sem_seg_logits_strided: the logits at every 8th pixel of each axis


@pytest.fixture(scope="module")
def golden():
    model, io, inputs = load_golden("semantic_R_50_FPN")
    with torch.no_grad():
        features = model.backbone(model.preprocess_image(inputs).tensor)
        sem_seg = model(inputs)[0]["sem_seg"]
    return dict(model=model, io=io, features=features, sem_seg=sem_seg)


def test_features(golden):
    assert isinstance(golden["model"], SemanticSegmentor)
    assert_features_match(golden["features"], golden["io"]["features"])


def test_semantic_logits_and_argmax(golden):
    io, sem_seg = golden["io"], golden["sem_seg"]
    assert sem_seg.shape == (8, io["height"], io["width"])
    strided = sem_seg[:, ::LOGIT_STRIDE, ::LOGIT_STRIDE]
    assert (strided - io["sem_seg_logits_strided"]).abs().max() <= 1e-3
    assert_pixels_agree(sem_seg.argmax(dim=0), io["sem_seg_argmax"])
