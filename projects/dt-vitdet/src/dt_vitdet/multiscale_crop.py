"""The MViTv2 3x recipes' workflow: multi-scale training with a random resized crop half of the time.

Before ``data.input``'s own resize and flip (``ResizeShortestEdge(min_size_train, max_size_train)``,
``RandomFlip``), with probability ``crop_prob`` the image is resized to a short edge drawn from
``crop_min_sizes`` and a window of ``crop_size`` pixels (each side drawn in ``[crop_size[0],
crop_size[1]]``) is cut from it, as detectron2's ``projects/MViTv2`` loader does (the DETR-style
augmentation). Testing is ``DefaultTrainer``'s (``min_size_test``/``max_size_test``). Selected with
``workflow: {name: MultiScaleCropTrainer}`` (registered through the ``dt_engine.workflow`` entry point).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import attrs

from dt_config import ConfigProblem
from dt_config import validators as check
from dt_data import DatasetMapper
from dt_data import build as data_build
from dt_data import transforms as T
from dt_data.config import InputConfig
from dt_data.detection_utils import build_augmentation
from dt_engine import WORKFLOW_REGISTRY, DefaultTrainer, WorkflowConfig

__all__ = ["MultiScaleCropTrainer", "MultiScaleCropTrainerConfig", "multiscale_crop_augmentations"]


@attrs.define(frozen=True, kw_only=True)
class MultiScaleCropTrainerConfig(WorkflowConfig):
    """Options of the random resized crop; the defaults are detectron2's MViTv2 recipes'."""

    name: ClassVar[str] = "MultiScaleCropTrainer"
    crop_prob: float = attrs.field(default=0.5, validator=check.between(0.0, 1.0))
    crop_min_sizes: tuple[int, ...] = attrs.field(default=(400, 500, 600), validator=check.non_empty)
    crop_size: tuple[int, int] = (384, 600)

    def __attrs_post_init__(self) -> None:
        if not 0 < self.crop_size[0] <= self.crop_size[1]:
            raise ConfigProblem(f"needs 0 < min <= max, got {list(self.crop_size)}", key="crop_size")
        if min(self.crop_min_sizes) <= 0:
            raise ConfigProblem(f"must be positive, got {list(self.crop_min_sizes)}", key="crop_min_sizes")


def multiscale_crop_augmentations(
    options: MultiScaleCropTrainerConfig, input_config: InputConfig
) -> list[T.Augmentation]:
    """``[RandomApply(resize + absolute_range crop, crop_prob), *build_augmentation(input, train)]``."""
    crop = T.AugmentationList(
        [
            T.ResizeShortestEdge(options.crop_min_sizes, sample_style="choice"),
            T.RandomCrop("absolute_range", options.crop_size),
        ]
    )
    return [T.RandomApply(crop, prob=options.crop_prob), *build_augmentation(input_config, is_train=True)]


@WORKFLOW_REGISTRY.register(MultiScaleCropTrainerConfig)
class MultiScaleCropTrainer(DefaultTrainer):
    """``DefaultTrainer`` whose training mapper adds the random resized crop (see the module docstring)."""

    def build_train_loader(self, seed: int) -> Iterable[Any]:
        solver, data = self.cfg.solver, self.cfg.data
        mapper = DatasetMapper(
            True,
            augmentations=multiscale_crop_augmentations(self.cfg.workflow, data.input),
            image_format=data.input.format,
            use_instance_mask=self.model_facts.mask_on,
            instance_mask_format=data.input.mask_format,
            skip_bad_images=data.loader.skip_bad_images,
        )
        return data_build.build_train_loader(
            data,
            total_batch_size=solver.ims_per_batch // solver.accumulate_steps,
            mapper=mapper,
            mask_on=self.model_facts.mask_on,
            seed=seed,
        )
