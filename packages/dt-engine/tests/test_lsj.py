"""Large-scale jitter: the augmentations, the ``LSJTrainer`` options and the loaders that use them."""

from pathlib import Path

import numpy as np
import pytest
from engine_tiny_datasets import register_tiny_datasets

from dt_config import ConfigError
from dt_data.transforms import AugInput, AugmentationList
from dt_engine.config.experiment import load_experiment
from dt_engine.defaults import build_workflow
from dt_engine.lsj import LSJTrainer, lsj_augmentations

CONFIG = str(Path(__file__).parent / "engine_tiny_rcnn.yaml")


def _apply(augmentations, height, width, seed):
    aug_input = AugInput(np.zeros((height, width, 3), dtype=np.uint8))
    AugmentationList(augmentations)(aug_input, rng=np.random.default_rng(seed))
    return aug_input.image


def test_train_images_are_rescaled_into_the_square_then_cropped_or_padded():
    augmentations = lsj_augmentations(64, min_scale=0.25, max_scale=2.0)
    sizes = [_apply(augmentations, 100, 50, seed).shape[:2] for seed in range(12)]
    for height, width in sizes:
        # a 2:1 image scaled to fit 64 * s: height round(64 s), cropped to at most 64 x 64
        assert height <= 64 and width <= 64
        if height < 64:
            assert abs(width - height / 2) <= 1
    assert any(h == 64 for h, _ in sizes) and any(h < 48 for h, _ in sizes)  # jitter: both happen
    padded = lsj_augmentations(64, min_scale=0.25, max_scale=2.0, pad=True)
    assert {_apply(padded, 100, 50, seed).shape[:2] for seed in range(12)} == {(64, 64)}


def test_flip_first_or_last_and_its_direction():
    def names(**options):
        return [type(a).__name__ for a in lsj_augmentations(64, min_scale=0.5, max_scale=1.0, **options)]

    assert names() == ["RandomFlip", "ResizeScale", "FixedSizeCrop"]  # ViTDet's order
    assert names(flip_after_crop=True) == ["ResizeScale", "FixedSizeCrop", "RandomFlip"]  # new_baselines'
    assert names(flip="none") == ["ResizeScale", "FixedSizeCrop"]
    vertical = lsj_augmentations(64, min_scale=0.5, max_scale=1.0, flip="vertical")[0]
    assert vertical.vertical and not vertical.horizontal
    # a 100 x 50 image at scale 0.5 is 32 x 16, padded to 64 x 64 with 128 on the right: flipping after
    # the crop moves that padding to the left of some images, flipping before never does
    last = lsj_augmentations(64, min_scale=0.5, max_scale=0.5, pad=True, flip_after_crop=True)
    first = lsj_augmentations(64, min_scale=0.5, max_scale=0.5, pad=True)
    left_padded = [_apply(last, 100, 50, seed)[10, 0, 0] == 128 for seed in range(16)]
    assert any(left_padded) and not all(left_padded)
    assert not any(_apply(first, 100, 50, seed)[10, 0, 0] == 128 for seed in range(16))


def test_test_images_fit_the_square():
    test_augmentations = lsj_augmentations(64, min_scale=0.1, max_scale=2.0, is_train=False)
    assert _apply(test_augmentations, 100, 50, 0).shape[:2] == (64, 32)


def test_options_are_checked_at_load():
    cfg = load_experiment(CONFIG, ["workflow=LSJTrainer"])  # found through dt-engine's entry point
    assert (cfg.workflow.image_size, cfg.workflow.pad, cfg.workflow.test_resize) == (1024, False, "square")
    with pytest.raises(ConfigError, match=r"\$\.workflow\.min_scale: must be <= max_scale \(0\.5\)"):
        load_experiment(CONFIG, ["workflow={name: LSJTrainer, min_scale: 0.8, max_scale: 0.5}"])
    with pytest.raises(ConfigError, match=r"\$\.workflow\.test_resize"):
        load_experiment(CONFIG, ["workflow={name: LSJTrainer, test_resize: fit}"])


def test_lsj_trainer_loaders_use_lsj():
    register_tiny_datasets()
    cfg = load_experiment(CONFIG, ["workflow={name: LSJTrainer, image_size: 64, pad: true}"])
    trainer = build_workflow(cfg)
    assert type(trainer) is LSJTrainer
    batch = next(iter(trainer.build_train_loader(seed=0)))
    assert [tuple(d["image"].shape) for d in batch] == [(3, 64, 64)] * 2
    assert all(d["instances"].has("gt_masks") for d in batch)
    (test_input,) = next(iter(trainer.build_test_loader("engine_shapes_val2")))
    assert max(test_input["image"].shape[1:]) == 64  # shapes images are 256 px
    (validation_input,) = next(iter(trainer.build_validation_loader()))
    assert tuple(validation_input["image"].shape) == (3, 64, 64) and validation_input["instances"].has(
        "gt_masks"
    )
    by_input = build_workflow(load_experiment(CONFIG, ["workflow={name: LSJTrainer, test_resize: input}"]))
    (test_input,) = next(iter(by_input.build_test_loader("engine_shapes_val2")))
    assert max(test_input["image"].shape[1:]) == 128  # data.input: min_size_test 128, max_size_test 160
