"""Shared steps of the golden parity tests: build a reference model and compare its stages with the
tensors detectron2 saved (tolerances from each data folder's README)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from dt_config import structure
from dt_models import build_model, detectron2_model_config, load_weights
from dt_models.registry import ModelConfig

DATA = Path(__file__).resolve().parent / "data"


def experiment_model_config(path: Path) -> ModelConfig:
    """The ``model`` section of a dt experiment YAML (for the references of detectron2 LazyConfigs)."""
    return structure(ModelConfig, yaml.safe_load(path.read_text())["model"], what=str(path))


def load_golden(name: str, *, dt_config: bool = False) -> tuple[torch.nn.Module, dict, list[dict]]:
    """``(model in eval mode with the reference weights, io.pt contents, inputs)`` of ``data/<name>``.

    ``config.yaml`` is detectron2's ``cfg.dump()``, or with ``dt_config`` a dt experiment config; the
    stored ``image`` (float, or uint8 pixels) is given to the model as float.
    """
    folder = DATA / name
    if not folder.is_dir():
        pytest.fail(f"golden files not found at {folder} (they belong to the repository: restore them)")
    path = folder / "config.yaml"
    config = experiment_model_config(path) if dt_config else detectron2_model_config(path)
    model = build_model(config).eval()
    report = load_weights(model, folder / "model_final.pkl")
    assert report.ok, report.table()
    io = torch.load(folder / "io.pt", weights_only=True)
    return model, io, [{"image": io["image"].float(), "height": io["height"], "width": io["width"]}]


def assert_features_match(features: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    """Every reference feature map within 1e-3 (they have unit std); a reference may hold only the
    first channels of a map."""
    for name, value in expected.items():
        assert (features[name][:, : value.shape[1]] - value).abs().max() <= 1e-3, name


def assert_proposals_match(boxes: torch.Tensor, expected: torch.Tensor) -> None:
    """Same number of proposals; the top 900 in the same order within 1e-2 px."""
    assert len(boxes) == len(expected)
    assert (boxes[:900] - expected[:900]).abs().max() <= 1e-2


def assert_proposals_found(boxes: torch.Tensor, expected: torch.Tensor) -> None:
    """Same number of proposals; each of the reference's top 900 within 1e-2 px (every coordinate, and
    degrees for rotated boxes) of one of ``boxes``, in any order: for random weights whose objectness
    logits lie closer together (1e-6) than float32 rounding keeps them."""
    assert len(boxes) == len(expected)
    distances = (expected[:900, None, :] - boxes[None, :, :]).abs().amax(dim=2)  # [900, R]
    assert distances.min(dim=1).values.max() <= 1e-2


def assert_pixels_agree(labels: torch.Tensor, expected: torch.Tensor, fraction: float = 0.999) -> None:
    """Equal label maps ``Tensor[H, W]`` on at least ``fraction`` of the pixels."""
    assert labels.shape == expected.shape
    assert (labels.long() == expected.long()).double().mean() >= fraction


def assert_detections_match(final, io: dict) -> None:
    """Same detections in the same order: boxes within 1e-2 px, scores 1e-4, classes equal."""
    assert len(final) == len(io["pred_boxes"]) > 0
    assert (final.pred_boxes.tensor - io["pred_boxes"]).abs().max() <= 1e-2
    assert (final.scores - io["scores"]).abs().max() <= 1e-4
    assert torch.equal(final.pred_classes, io["pred_classes"])
