"""Shared test inputs: the exportable families (the golden configs of ``FAMILIES`` and the narrow models
of ``narrow_models.NARROW_MODELS``; a new family adds an entry), their eager models, and two test
images of different sizes."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
from narrow_models import NARROW_MODELS, narrow_model

from dt_engine.config.experiment import load_experiment
from dt_engine.predictor import Predictor
from dt_export.experiment import synthetic_sample
from dt_models import build_model, load_weights

DATA = Path(__file__).resolve().parent / "data"
GOLDEN = DATA / "mask_rcnn_R_50_FPN"


def _golden(name: str, *overrides: str) -> tuple[Path, Path, tuple[str, ...]]:
    return DATA / name / "config.yaml", DATA / name / "model_fp16.pth", overrides


# family name -> (config, weights, overrides); every family is exported to every format it supports.
# The golden models of dt-models' tests (data/README.md), Faster R-CNN FPN as Mask R-CNN without masks;
# the random-weight Cascade R-CNN scores the synthetic images below its 0.05 threshold.
FAMILIES = {
    "mask_rcnn_R_50_FPN": _golden("mask_rcnn_R_50_FPN"),
    "faster_rcnn_R_50_FPN": _golden("mask_rcnn_R_50_FPN", "model.roi_heads.branches={}"),
    "keypoint_rcnn_R_50_FPN": _golden("keypoint_rcnn_R_50_FPN"),
    "cascade_mask_rcnn_R_50_FPN": _golden(
        "cascade_mask_rcnn_R_50_FPN", "model.roi_heads.score_thresh_test=0.005"
    ),
    "faster_rcnn_R_50_C4": _golden("faster_rcnn_R_50_C4"),
    "retinanet_R_50_FPN": _golden("retinanet_R_50_FPN"),
}


def export_args(family: str, format: str, output: Path, **changes) -> argparse.Namespace:
    """The parsed ``dt export`` options for ``family`` (what the CLI passes to ``export_experiment``)."""
    config, weights, overrides = FAMILIES[family]
    values = dict(
        format=format, config=str(config), weights=str(weights), output=str(output), sample_image=None,
        dynamic=True, dynamic_batch=False, aot_inductor=False, overrides=list(overrides), debug=False,
    )  # fmt: skip
    values.update(changes)
    return argparse.Namespace(**values)


def eager_model(family: str) -> tuple[torch.nn.Module, Predictor]:
    config, weights, overrides = FAMILIES[family]
    cfg = load_experiment(config, overrides)
    model = build_model(cfg.model, torch.device("cpu")).eval()
    report = load_weights(model, weights)
    assert not report.missing and not report.shape_mismatch
    return model, Predictor(cfg, model=model)


def sample_images(predictor: Predictor) -> list[torch.Tensor]:
    """Two preprocessed images ``Tensor[C, H, W]`` of different sizes and aspect ratios."""
    images = [synthetic_sample(300, 420), synthetic_sample(500, 380)[::-1].copy()]
    return [predictor.preprocess(image)["image"].float() for image in images]


def case_model_and_images(family: str) -> tuple[torch.nn.Module, list[torch.Tensor]]:
    """The eager model of ``family`` (a golden config or a narrow model) and its two test images."""
    if family in FAMILIES:
        model, predictor = eager_model(family)
        return model, sample_images(predictor)
    images = [synthetic_sample(300, 420), synthetic_sample(392, 330)[::-1].copy()]
    return narrow_model(family), [torch.from_numpy(i).permute(2, 0, 1).float() for i in images]


@pytest.fixture(params=sorted(FAMILIES) + sorted(NARROW_MODELS))
def family(request) -> str:
    return request.param
