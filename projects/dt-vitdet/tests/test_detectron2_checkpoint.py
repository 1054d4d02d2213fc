"""detectron2 Swin and MViTv2-T/S checkpoints load into dt's models built from the shipped recipes:
the same state-dict names (after detectron2's ROI-branch naming) and shapes, nothing missing or extra."""

import json
from pathlib import Path

import pytest
import torch

import dt_vitdet
from dt_engine.config.experiment import load_experiment
from dt_models import build_model
from dt_models.checkpoint import detectron2_name, load_weights

KEYS = Path(__file__).parent / "data" / "detectron2_keys"
RECIPES = {  # key list (detectron2 config it was made from, see the README there): dt recipe
    "cascade_mask_rcnn_swin_b": "COCO/cascade_mask_rcnn_swin_b_in21k_50ep.yaml",
    "mask_rcnn_mvitv2_t": "MViTv2/mask_rcnn_mvitv2_t_3x.yaml",
    "cascade_mask_rcnn_mvitv2_t": "MViTv2/cascade_mask_rcnn_mvitv2_t_3x.yaml",
    "cascade_mask_rcnn_mvitv2_s": "MViTv2/cascade_mask_rcnn_mvitv2_s_3x.yaml",
}


def _detectron2_keys(name: str) -> dict[str, list[int]]:
    return json.loads((KEYS / f"{name}.json").read_text())


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_state_dict_names_and_shapes_are_detectron2s(name):
    cfg = load_experiment(dt_vitdet.get_config_file(RECIPES[name]))
    with torch.device("meta"):  # full size, without storage
        model = build_model(cfg.model, device="meta")
    ours = {detectron2_name(k): list(v.shape) for k, v in model.state_dict().items()}
    theirs = _detectron2_keys(name)
    assert sorted(set(theirs) - set(ours)) == []  # nothing detectron2 has is missing
    assert sorted(set(ours) - set(theirs)) == []  # nothing extra
    assert ours == theirs


def test_checkpoint_in_detectron2_names_loads_completely(tmp_path):
    narrow = ["model.backbone.mvit.embed_dim=8", "model.backbone.out_channels=16"]
    cfg = load_experiment(dt_vitdet.get_config_file(RECIPES["mask_rcnn_mvitv2_t"]), narrow)
    model = build_model(cfg.model)
    state = model.state_dict()
    assert {detectron2_name(k) for k in state} == set(_detectron2_keys("mask_rcnn_mvitv2_t"))
    weights = {detectron2_name(k): torch.full_like(v, 0.5) for k, v in state.items()}
    torch.save({"model": weights}, tmp_path / "model_final.pth")
    report = load_weights(model, tmp_path / "model_final.pth")
    assert (report.missing, report.unexpected, report.shape_mismatch) == ((), (), ())
    assert all(bool((v == 0.5).all()) for v in model.state_dict().values())
