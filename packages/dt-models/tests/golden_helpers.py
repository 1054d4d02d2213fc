"""Shared steps of the golden parity tests: build a reference model and compare its stages with the
tensors detectron2 saved (tolerances from each data folder's README)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dt_models import build_model, detectron2_model_config, load_weights

DATA = Path(__file__).resolve().parent / "data"


def load_golden(name: str) -> tuple[torch.nn.Module, dict, list[dict]]:
    """``(model in eval mode with the reference weights, io.pt contents, inputs)`` of ``data/<name>``."""
    folder = DATA / name
    if not folder.is_dir():
        pytest.fail(f"golden files not found at {folder} (they belong to the repository: restore them)")
    model = build_model(detectron2_model_config(folder / "config.yaml")).eval()
    report = load_weights(model, folder / "model_final.pkl")
    assert report.ok, report.table()
    io = torch.load(folder / "io.pt", weights_only=True)
    return model, io, [{"image": io["image"], "height": io["height"], "width": io["width"]}]


def assert_features_match(features: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    """Every reference feature map within 1e-3 (they have unit std)."""
    for name, value in expected.items():
        assert (features[name] - value).abs().max() <= 1e-3, name


def assert_proposals_match(boxes: torch.Tensor, expected: torch.Tensor) -> None:
    """Same number of proposals; the top 900 in the same order within 1e-2 px."""
    assert len(boxes) == len(expected)
    assert (boxes[:900] - expected[:900]).abs().max() <= 1e-2


def assert_detections_match(final, io: dict) -> None:
    """Same detections in the same order: boxes within 1e-2 px, scores 1e-4, classes equal."""
    assert len(final) == len(io["pred_boxes"]) > 0
    assert (final.pred_boxes.tensor - io["pred_boxes"]).abs().max() <= 1e-2
    assert (final.scores - io["scores"]).abs().max() <= 1e-4
    assert torch.equal(final.pred_classes, io["pred_classes"])
