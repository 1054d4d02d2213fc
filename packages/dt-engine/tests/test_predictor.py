"""``Predictor``: one BGR uint8 image in, the model's outputs at the image's resolution out, with exactly
the test mapper's preprocessing."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from dt_data.build import build_mapper
from dt_engine import Predictor
from dt_engine.config.experiment import load_experiment
from dt_models import build_model

CONFIG = str(Path(__file__).parent / "engine_tiny_rcnn.yaml")
RGB = ["data.input.format=RGB", "model.input_format=RGB", "model.pixel_mean=[123.675, 116.28, 103.53]"]


class Spy(nn.Module):
    """Records its inputs and returns them as its output."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.seen = []

    def forward(self, batched_inputs):
        self.seen.append((self.training, torch.is_grad_enabled()))
        return [dict(x) for x in batched_inputs]


@pytest.fixture(scope="module")
def bgr():
    return np.random.default_rng(0).integers(0, 256, (100, 130, 3), dtype=np.uint8)  # [H, W, C]


def test_instances_at_the_original_resolution(bgr, tmp_path):
    cfg = load_experiment(CONFIG)
    torch.manual_seed(0)
    weights = tmp_path / "random.pth"
    torch.save({"model": build_model(cfg.model).state_dict()}, weights)
    outputs = Predictor(cfg, weights=weights)(bgr)
    instances = outputs["instances"]
    assert instances.image_size == (100, 130) and len(instances) > 0
    boxes = instances.pred_boxes.tensor
    assert float(boxes[:, 2].max()) <= 130 and float(boxes[:, 3].max()) <= 100
    assert tuple(instances.pred_masks.shape[1:]) == (100, 130)


@pytest.mark.parametrize("overrides", [[], RGB], ids=["BGR", "RGB"])
def test_preprocessing_is_the_test_mappers(bgr, tmp_path, overrides):
    cfg = load_experiment(CONFIG, overrides)
    spy = Spy().train()
    out = Predictor(cfg, model=spy)(bgr)
    path = tmp_path / "image.png"
    Image.fromarray(bgr[:, :, ::-1]).save(path)  # PNG is lossless: the file holds the same pixels
    mapped = build_mapper(cfg.data, False)({"file_name": str(path)})
    assert torch.equal(out["image"], mapped["image"])  # format conversion and test resize
    assert (out["height"], out["width"]) == (mapped["height"], mapped["width"]) == (100, 130)
    assert tuple(out["image"].shape) == (3, 123, 160)  # shortest edge to 128, capped by max_size_test=160
    assert spy.seen == [(False, False)] and spy.training  # eval mode without gradients, then restored


def test_rgb_model_gets_the_channels_swapped(bgr):
    as_bgr = Predictor(load_experiment(CONFIG), model=Spy())(bgr)["image"]
    as_rgb = Predictor(load_experiment(CONFIG, RGB), model=Spy())(bgr)["image"]
    assert torch.equal(as_rgb, as_bgr.flip(0))
    assert not torch.equal(as_rgb, as_bgr)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((10, 10, 3), dtype=np.float32),
        np.zeros((10, 10), dtype=np.uint8),
        np.zeros((10, 10, 4), dtype=np.uint8),
        [[0, 0, 0]],
    ],
    ids=["float", "gray", "rgba", "list"],
)
def test_rejects_other_images(image):
    predictor = Predictor(load_experiment(CONFIG), model=Spy())
    with pytest.raises(ValueError, match=r"expects one BGR uint8 image of shape \[H, W, 3\]"):
        predictor(image)


def test_needs_weights_or_a_model(tmp_path):
    with pytest.raises(ValueError, match="exactly one of weights="):
        Predictor(load_experiment(CONFIG))
    with pytest.raises(ValueError, match="exactly one of weights="):
        Predictor(load_experiment(CONFIG), weights=tmp_path / "w.pth", model=Spy())
