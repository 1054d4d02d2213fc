"""ViTDet's workflow: large-scale jitter (LSJ) training data, ``DefaultTrainer`` otherwise.

LSJ (Ghiasi et al. 2021, as ViTDet trains): flip, resize to fit a ``scale x image_size`` square with
``scale`` uniform in ``[min_scale, max_scale]``, then crop (or pad, with ``pad``) to
``image_size x image_size``; boxes are recomputed from the cropped masks. Test images are resized to
fit ``image_size x image_size``. Selected with ``workflow: {name: ViTDetTrainer, image_size: 1024}``
(registered through the ``dt_engine.workflow`` entry point).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import attrs

from dt_config import ConfigProblem
from dt_config import validators as check
from dt_data import DatasetMapper, build_detection_test_loader
from dt_data import build as data_build
from dt_data import transforms as T
from dt_engine import WORKFLOW_REGISTRY, DefaultTrainer, WorkflowConfig

__all__ = ["ViTDetTrainer", "ViTDetTrainerConfig", "lsj_augmentations"]


def lsj_augmentations(
    image_size: int, *, min_scale: float, max_scale: float, pad: bool = False, is_train: bool = True
) -> list[T.Augmentation]:
    """Large-scale jitter for training (``RandomFlip``, ``ResizeScale``, ``FixedSizeCrop``); for
    testing, ``ResizeShortestEdge(image_size, max_size=image_size)``."""
    if not is_train:
        return [T.ResizeShortestEdge(image_size, image_size)]
    return [
        T.RandomFlip(horizontal=True),
        T.ResizeScale(min_scale, max_scale, image_size, image_size),
        T.FixedSizeCrop((image_size, image_size), pad=pad),
    ]


@attrs.define(frozen=True, kw_only=True)
class ViTDetTrainerConfig(WorkflowConfig):
    """LSJ options: ViTDet's are ``image_size: 1024``, scales 0.1 to 2.0, no padding in the crop
    (the model pads to its ``square_pad``)."""

    name: ClassVar[str] = "ViTDetTrainer"
    image_size: int = attrs.field(default=1024, validator=check.greater_than(0))
    min_scale: float = attrs.field(default=0.1, validator=check.greater_than(0.0))
    max_scale: float = attrs.field(default=2.0, validator=check.greater_than(0.0))
    pad: bool = False

    def __attrs_post_init__(self) -> None:
        if self.min_scale > self.max_scale:
            raise ConfigProblem(
                f"must be <= max_scale ({self.max_scale}), got {self.min_scale}", key="min_scale"
            )


@WORKFLOW_REGISTRY.register(ViTDetTrainerConfig)
class ViTDetTrainer(DefaultTrainer):
    """``DefaultTrainer`` whose training, validation-loss and test mappers use LSJ (see the module
    docstring)."""

    def _mapper(self, is_train: bool) -> DatasetMapper:
        options: ViTDetTrainerConfig = self.cfg.workflow
        mask_on = self.model_facts.mask_on
        augmentations = lsj_augmentations(
            options.image_size, min_scale=options.min_scale, max_scale=options.max_scale, pad=options.pad,
            is_train=is_train,
        )  # fmt: skip
        return DatasetMapper(
            is_train,
            augmentations=augmentations,
            image_format=self.cfg.data.input.format,
            use_instance_mask=mask_on,
            instance_mask_format=self.cfg.data.input.mask_format,
            recompute_boxes=mask_on and is_train,
            skip_bad_images=is_train and self.cfg.data.loader.skip_bad_images,
        )

    def build_train_loader(self, seed: int) -> Iterable[Any]:
        solver = self.cfg.solver
        return data_build.build_train_loader(
            self.cfg.data,
            total_batch_size=solver.ims_per_batch // solver.accumulate_steps,
            mapper=self._mapper(True),
            mask_on=self.model_facts.mask_on,
            seed=seed,
        )

    def build_test_loader(self, dataset_name: str) -> Iterable[Any]:
        return data_build.build_test_loader(self.cfg.data, dataset_name, mapper=self._mapper(False))

    def build_validation_loader(self) -> Iterable[Any]:
        """The test datasets with the LSJ training mapping (annotations kept), for ``ValidationLoss``."""
        return build_detection_test_loader(
            list(self.cfg.data.datasets.test), mapper=self._mapper(True), batch_size=1
        )
