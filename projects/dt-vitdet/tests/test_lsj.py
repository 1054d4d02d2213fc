"""Large-scale jitter: the augmentations and the workflow's loaders that use them."""

import numpy as np
from shapes_subsets import register_tiny_shapes

import dt_vitdet
from dt_data.transforms import AugInput, AugmentationList
from dt_engine.config.experiment import load_experiment
from dt_engine.defaults import build_workflow
from dt_vitdet.trainer import ViTDetTrainer, lsj_augmentations


def _apply(augmentations, height, width, seed):
    aug_input = AugInput(np.zeros((height, width, 3), dtype=np.uint8))
    AugmentationList(augmentations)(aug_input, rng=np.random.default_rng(seed))
    return aug_input.image.shape[:2]


def test_train_images_are_rescaled_into_the_square_then_cropped_or_padded():
    augmentations = lsj_augmentations(64, min_scale=0.25, max_scale=2.0)
    sizes = [_apply(augmentations, 100, 50, seed) for seed in range(12)]
    for height, width in sizes:
        # a 2:1 image scaled to fit 64 * s: height round(64 s), cropped to at most 64 x 64
        assert height <= 64 and width <= 64
        if height < 64:
            assert abs(width - height / 2) <= 1
    assert any(h == 64 for h, _ in sizes) and any(h < 48 for h, _ in sizes)  # jitter: both happen
    padded = lsj_augmentations(64, min_scale=0.25, max_scale=2.0, pad=True)
    assert {_apply(padded, 100, 50, seed) for seed in range(12)} == {(64, 64)}


def test_test_images_fit_the_square():
    assert _apply(lsj_augmentations(64, min_scale=0.1, max_scale=2.0, is_train=False), 100, 50, 0) == (64, 32)


def test_vitdet_trainer_loaders_use_lsj():
    register_tiny_shapes()
    cfg = load_experiment(
        dt_vitdet.get_config_file("shapes/mask_rcnn_vitdet_narrow.yaml"),
        ["data.datasets.train=[vitdet_shapes_train4]", "data.datasets.test=[vitdet_shapes_val2]",
         "workflow.image_size=64", "workflow.pad=true"],
    )  # fmt: skip
    trainer = build_workflow(cfg)
    assert type(trainer) is ViTDetTrainer
    batch = next(iter(trainer.build_train_loader(seed=0)))
    assert [tuple(d["image"].shape) for d in batch] == [(3, 64, 64)] * 4
    assert all(d["instances"].has("gt_masks") for d in batch)
    (test_input,) = next(iter(trainer.build_test_loader("vitdet_shapes_val2")))
    assert max(test_input["image"].shape[1:]) == 64  # shapes images are 256 px
    (validation_input,) = next(iter(trainer.build_validation_loader()))
    assert tuple(validation_input["image"].shape) == (3, 64, 64) and validation_input["instances"].has(
        "gt_masks"
    )
