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
from dt_structures import Instances

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


def order_up_to_ties(
    boxes: torch.Tensor, keys: torch.Tensor, expected: torch.Tensor, what: str
) -> torch.Tensor:
    """Indices that put ``boxes`` ``Tensor[N, 4]`` in the order of the reference's ``expected``: each
    position keeps its own box when it is within 1e-2 px of the reference's, else takes the one that
    is, which must tie with it in ``keys`` (scores or logits within 1e-5). Which of two tied boxes a
    CPU's kernels rank first is noise: an AVX2-only EPYC swaps two proposals at logits 9.2189159 and
    9.2189150, Winograd convolutions two at 8.5592470 and 8.5592442."""
    distance = (boxes[:, None, :] - expected[None, :, :]).abs().amax(dim=2)  # [ours, reference]
    order = torch.arange(len(expected))
    for i in (distance.diagonal() > 1e-2).nonzero().flatten().tolist():
        j = int(distance[:, i].argmin())
        assert distance[j, i] <= 1e-2, f"reference {what} {i} is not among ours"
        assert abs(float(keys[i] - keys[j])) <= 1e-5, f"reference {what} {i} is our {j}: not a tie"
        order[i] = j
    return order


def assert_proposals_match(boxes: torch.Tensor, logits: torch.Tensor, expected: torch.Tensor) -> None:
    """Same number of proposals; the top 900 in the reference's order (up to ties) within 1e-2 px."""
    assert len(boxes) == len(expected)
    order_up_to_ties(boxes[:900], logits[:900], expected[:900], "proposal")


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


def assert_detections_match(final: Instances, io: dict) -> Instances:
    """Same detections in the same order (up to score ties): boxes within 1e-2 px, scores 1e-4,
    classes equal. Returns ``final`` in the reference's order, for comparing more fields."""
    assert len(final) == len(io["pred_boxes"]) > 0
    final = final[order_up_to_ties(final.pred_boxes.tensor, final.scores, io["pred_boxes"], "detection")]
    assert (final.pred_boxes.tensor - io["pred_boxes"]).abs().max() <= 1e-2
    assert (final.scores - io["scores"]).abs().max() <= 1e-4
    assert torch.equal(final.pred_classes, io["pred_classes"])
    return final
