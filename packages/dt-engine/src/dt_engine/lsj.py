"""Large-scale jitter (LSJ; Ghiasi et al. 2021, "Simple Copy-Paste is a Strong Data Augmentation Method
for Instance Segmentation"): the training data of detectron2's ``new_baselines`` Mask R-CNNs and of
ViTDet, as the ``LSJTrainer`` workflow (``DefaultTrainer`` with LSJ mappers).

A training image is flipped (as ``data.input.random_flip`` says), resized to fit a
``scale * image_size`` square with ``scale`` uniform in ``[min_scale, max_scale]``, then cropped at a
random place to at most ``image_size x image_size``; with ``pad`` it is padded (right and bottom, with
128) to exactly that size. Boxes are recomputed from the cropped masks. ``flip_after_crop`` flips last,
as detectron2's ``new_baselines`` do (with ``pad`` the padding then lands left or right). Test images
fit the square (``test_resize: square``, ViTDet's) or follow ``data.input``'s test sizes (``input``,
the ``new_baselines``')::

    workflow: {name: LSJTrainer, image_size: 1024, min_scale: 0.1, max_scale: 2.0, pad: true}

Registered through dt-engine's own ``dt_engine.workflow`` entry point, so loading a config that names
it imports this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Literal

import attrs

from dt_config import ConfigProblem
from dt_config import validators as check
from dt_data import DatasetMapper, build_detection_test_loader
from dt_data import build as data_build
from dt_data import transforms as T
from dt_data.detection_utils import create_keypoint_hflip_indices

from .config.workflow import WORKFLOW_REGISTRY, WorkflowConfig
from .defaults import DefaultTrainer

__all__ = ["LSJTrainer", "LSJTrainerConfig", "lsj_augmentations"]


def lsj_augmentations(
    image_size: int,
    *,
    min_scale: float,
    max_scale: float,
    pad: bool = False,
    flip: str = "horizontal",
    flip_after_crop: bool = False,
    is_train: bool = True,
) -> list[T.Augmentation]:
    """Training: ``RandomFlip`` (``flip``: ``horizontal``, ``vertical`` or ``none``), ``ResizeScale``,
    ``FixedSizeCrop`` (the flip last with ``flip_after_crop``). Testing:
    ``ResizeShortestEdge(image_size, max_size=image_size)``, which fits the square."""
    if not is_train:
        return [T.ResizeShortestEdge(image_size, image_size)]
    flips = (
        [] if flip == "none" else [T.RandomFlip(horizontal=flip == "horizontal", vertical=flip == "vertical")]
    )
    jitter = [
        T.ResizeScale(min_scale, max_scale, image_size, image_size),
        T.FixedSizeCrop((image_size, image_size), pad=pad),
    ]
    return jitter + flips if flip_after_crop else flips + jitter


@attrs.define(frozen=True, kw_only=True)
class LSJTrainerConfig(WorkflowConfig):
    """LSJ options (see the module docstring). ViTDet's: ``image_size: 1024``, scales 0.1 to 2.0, no
    padding (its model pads to ``square_pad``), ``test_resize: square``. detectron2's ``new_baselines``:
    the same sizes with ``pad: true``, ``flip_after_crop: true``, ``test_resize: input``."""

    name: ClassVar[str] = "LSJTrainer"
    image_size: int = attrs.field(default=1024, validator=check.greater_than(0))
    min_scale: float = attrs.field(default=0.1, validator=check.greater_than(0.0))
    max_scale: float = attrs.field(default=2.0, validator=check.greater_than(0.0))
    pad: bool = False
    flip_after_crop: bool = False
    test_resize: Literal["square", "input"] = "square"

    def __attrs_post_init__(self) -> None:
        if self.min_scale > self.max_scale:
            raise ConfigProblem(
                f"must be <= max_scale ({self.max_scale}), got {self.min_scale}", key="min_scale"
            )


@WORKFLOW_REGISTRY.register(LSJTrainerConfig)
class LSJTrainer(DefaultTrainer):
    """``DefaultTrainer`` whose training and validation-loss mappers use LSJ, and whose test mapper
    fits the square (``test_resize: square``) or is the default one (``input``)."""

    def _mapper(self, is_train: bool) -> DatasetMapper:
        options: LSJTrainerConfig = self.cfg.workflow
        data, facts = self.cfg.data, self.model_facts
        augmentations = lsj_augmentations(
            options.image_size, min_scale=options.min_scale, max_scale=options.max_scale, pad=options.pad,
            flip=data.input.random_flip, flip_after_crop=options.flip_after_crop, is_train=is_train,
        )  # fmt: skip
        return DatasetMapper(
            is_train,
            augmentations=augmentations,
            image_format=data.input.format,
            use_instance_mask=facts.mask_on,
            instance_mask_format=data.input.mask_format,
            use_keypoint=facts.keypoint_on,
            keypoint_hflip_indices=(
                create_keypoint_hflip_indices(data.datasets.train) if facts.keypoint_on else None
            ),
            recompute_boxes=facts.mask_on and is_train,
            skip_bad_images=is_train and data.loader.skip_bad_images,
        )

    def build_train_loader(self, seed: int) -> Iterable[Any]:
        solver, facts = self.cfg.solver, self.model_facts
        return data_build.build_train_loader(
            self.cfg.data,
            total_batch_size=solver.ims_per_batch // solver.accumulate_steps,
            mapper=self._mapper(True),
            mask_on=facts.mask_on,
            keypoint_on=facts.keypoint_on,
            min_keypoints=facts.min_keypoints_per_image,
            seed=seed,
        )

    def build_test_loader(self, dataset_name: str) -> Iterable[Any]:
        if self.cfg.workflow.test_resize == "input":
            return super().build_test_loader(dataset_name)
        return data_build.build_test_loader(self.cfg.data, dataset_name, mapper=self._mapper(False))

    def build_validation_loader(self) -> Iterable[Any]:
        """The test datasets with the LSJ training mapping (annotations kept), for ``ValidationLoss``."""
        return build_detection_test_loader(
            list(self.cfg.data.datasets.test), mapper=self._mapper(True), batch_size=1
        )
