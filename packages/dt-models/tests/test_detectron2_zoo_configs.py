"""Every model YAML of detectron2's model zoo translates, builds, and names its weights as detectron2
does (the data and how it was made: data/detectron2_configs/README.md)."""

import gzip
import json
from pathlib import Path

import pytest
import torch

from dt_models import build_model, detectron2_model_config
from dt_models.checkpoint import detectron2_name

ROOT = Path(__file__).resolve().parent / "data" / "detectron2_configs"
MODEL_CONFIGS = sorted(
    str(p.relative_to(ROOT)) for p in ROOT.rglob("*.yaml") if not p.name.startswith("Base-")
)


def _detectron2_keys() -> dict[str, set[str]]:
    with gzip.open(ROOT / "detectron2_state_dict_keys.json.gz", "rt") as f:
        data = json.load(f)
    return {config: set(data["key_lists"][index]) for config, index in data["configs"].items()}


def test_the_whole_zoo_is_here():
    assert len(MODEL_CONFIGS) == 59
    assert set(_detectron2_keys()) == set(MODEL_CONFIGS)


@pytest.mark.parametrize("config", MODEL_CONFIGS)
def test_translates(config):
    cfg = detectron2_model_config(ROOT / config)
    assert cfg.pixel_mean and cfg.backbone is not None


@pytest.mark.slow  # about 0.5 s per config
@pytest.mark.parametrize("config", MODEL_CONFIGS)
def test_builds_with_detectron2_state_dict_keys(config):
    model = build_model(detectron2_model_config(ROOT / config), device="meta")
    keys = list(model.state_dict())
    names = [detectron2_name(k) for k in keys]
    assert len(set(names)) == len(keys)
    expected = _detectron2_keys()[config]
    missing, unexpected = sorted(expected - set(names)), sorted(set(names) - expected)
    assert not missing and not unexpected, f"missing {missing[:5]}, unexpected {unexpected[:5]}"


def test_meta_device_build_allocates_nothing():
    model = build_model(
        detectron2_model_config(ROOT / "COCO-Detection/faster_rcnn_R_50_C4_1x.yaml"), device="meta"
    )
    assert all(t.device == torch.device("meta") for t in model.state_dict().values())
