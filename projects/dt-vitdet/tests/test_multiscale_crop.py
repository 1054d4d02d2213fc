"""The MViTv2 3x recipes' workflow: its augmentations, and a narrow version of the MViTv2-T Mask R-CNN
recipe trained two iterations with it on shapes."""

import json

import numpy as np
import pytest
from shapes_subsets import register_tiny_shapes

import dt_vitdet
from dt_config import ConfigError
from dt_data import transforms as T
from dt_data.config import InputConfig
from dt_engine.cli import main
from dt_engine.config.experiment import load_experiment
from dt_vitdet.multiscale_crop import MultiScaleCropTrainerConfig, multiscale_crop_augmentations

RECIPE = "MViTv2/mask_rcnn_mvitv2_t_3x.yaml"


def test_crop_half_the_time_then_the_input_resize_and_flip():
    options = MultiScaleCropTrainerConfig()
    augs = multiscale_crop_augmentations(options, InputConfig(min_size_train=(480, 800), max_size_train=1333))
    crop, resize, flip = augs
    assert isinstance(crop, T.RandomApply) and crop.prob == 0.5
    assert isinstance(resize, T.ResizeShortestEdge) and isinstance(flip, T.RandomFlip)
    sizes = []
    for seed in range(20):  # every image ends at a short side of 480 or 800 (max 1333)
        aug_input = T.AugInput(np.zeros((140, 200, 3), dtype=np.uint8))
        T.AugmentationList(augs)(aug_input, np.random.default_rng(seed))
        sizes.append(min(aug_input.image.shape[:2]))
    assert set(sizes) == {480, 800}
    cropped = T.AugInput(np.zeros((140, 200, 3), dtype=np.uint8))
    T.AugmentationList([T.RandomApply(crop.aug, prob=1.0)])(cropped, np.random.default_rng(0))
    height, width = cropped.image.shape[:2]
    assert 384 <= height <= 600 and 384 <= width <= 600  # resized to 400/500/600, then cut


def test_options_are_checked_at_their_path():
    path = dt_vitdet.get_config_file(RECIPE)
    with pytest.raises(ConfigError, match=r"\$\.workflow\.crop_size: needs 0 < min <= max, got \[600, 384\]"):
        load_experiment(path, ["workflow.crop_size=[600, 384]"])
    with pytest.raises(ConfigError, match=r"\$\.workflow\.crop_prob"):
        load_experiment(path, ["workflow.crop_prob=1.5"])


@pytest.mark.slow  # an end-to-end dt train run (about a minute on two loaded cores)
def test_narrow_mvitv2_t_recipe_trains_two_iterations(tmp_path):
    register_tiny_shapes()
    out = tmp_path / "run"
    narrow = [
        "model.backbone.mvit.embed_dim=8",
        "model.backbone.mvit.img_size=64",
        "model.backbone.out_channels=16",
        "model.roi_heads.num_classes=5",
        "model.roi_heads.box_head.fc_dim=32",
        "model.roi_heads.batch_size_per_image=32",
        "model.roi_heads.branches.mask.head.conv_dim=8",
        "model.proposal_generator.post_nms_topk_train=50",
        "model.proposal_generator.post_nms_topk_test=20",
        "data.datasets.train=[vitdet_shapes_train4]",
        "data.datasets.test=[vitdet_shapes_val2]",
        "data.input.min_size_train=[64, 96]",
        "data.input.max_size_train=128",
        "data.input.min_size_test=64",
        "data.input.max_size_test=128",
        "data.loader.num_workers=0",
        "workflow.crop_min_sizes=[80, 96]",
        "workflow.crop_size=[48, 64]",
        "solver.max_iter=2",
        "solver.steps=[1]",
        "solver.warmup_iters=1",
        "solver.ims_per_batch=2",
        "solver.amp.enabled=false",
        "test.eval_period=0",
        f"output_dir={out}",
    ]
    assert main(["train", "--config", dt_vitdet.get_config_file(RECIPE), *narrow]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("loss_mask" in r for r in records) and any("segm/AP" in r for r in records)
    assert load_experiment(out / "config.yaml").workflow.name == "MultiScaleCropTrainer"
