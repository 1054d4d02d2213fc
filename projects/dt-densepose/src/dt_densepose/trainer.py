"""``DensePoseTrainer``: ``DefaultTrainer`` whose training mapper keeps DensePose annotations.

``workflow: {name: DensePoseTrainer, symmetry: human}`` flips with DensePose-COCO's symmetries (the
UV tables read from the dt cache on the first flipped image); ``symmetry: mirror`` with the shapes
set's (U -> 1 - U). ``num_parts``/``num_mask_parts`` are what annotations are checked against.
Importing this module registers the ``densepose_shapes_train``/``_val`` datasets.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import attrs

from dt_config import validators as check
from dt_data import MetadataCatalog
from dt_data import build as data_build
from dt_data.detection_utils import build_augmentation
from dt_engine import WORKFLOW_REGISTRY, DefaultTrainer, WorkflowConfig
from dt_engine.errors import InputError

from .cache import MissingDataFileError, cache_file
from .geodesics import SMPL_GEODESIC_FILES
from .mapper import DensePoseDatasetMapper
from .shapes import register_densepose_shapes
from .symmetry import UV_SYMMETRY_FILE, ChartSymmetry, human_chart_symmetry, mirror_chart_symmetry

__all__ = ["DensePoseTrainer", "DensePoseTrainerConfig"]

register_densepose_shapes()


@attrs.define(frozen=True, kw_only=True)
class DensePoseTrainerConfig(WorkflowConfig):
    """Options of :class:`DensePoseTrainer` (see the module docstring)."""

    name: ClassVar[str] = "DensePoseTrainer"
    symmetry: str = attrs.field(default="human", validator=check.one_of(("human", "mirror")))
    num_parts: int = attrs.field(default=24, validator=check.at_least(1))
    num_mask_parts: int = attrs.field(default=14, validator=check.at_least(1))


@WORKFLOW_REGISTRY.register(DensePoseTrainerConfig)
class DensePoseTrainer(DefaultTrainer):
    """``DefaultTrainer`` with :class:`DensePoseDatasetMapper` for training (and validation losses)."""

    def check(self) -> None:
        """``DefaultTrainer``'s checks, and that the data files the run will read are in the cache:
        the UV symmetry table when training flips human data, the SMPL geodesics when evaluating it."""
        super().check()
        if not isinstance(self.cfg.workflow, DensePoseTrainerConfig):
            raise InputError(f"{type(self).__name__} needs workflow options of {DensePoseTrainerConfig.name}")
        needed = []
        if self.cfg.workflow.symmetry == "human" and self.cfg.data.input.random_flip != "none":
            needed.append(UV_SYMMETRY_FILE)
        for name in self.cfg.data.datasets.test:
            if MetadataCatalog.get(name).get("densepose_geodesics") == "smpl":
                needed += list(SMPL_GEODESIC_FILES)
        for file in dict.fromkeys(needed):
            try:
                cache_file(file)
            except MissingDataFileError as err:
                raise InputError(str(err)) from None

    def _symmetry(self) -> ChartSymmetry:
        workflow = self.cfg.workflow
        if workflow.symmetry == "human":
            return human_chart_symmetry()
        return mirror_chart_symmetry(workflow.num_parts, workflow.num_mask_parts)

    def build_train_mapper(self) -> DensePoseDatasetMapper:
        workflow, data = self.cfg.workflow, self.cfg.data
        return DensePoseDatasetMapper(
            True, augmentations=build_augmentation(data.input, True), image_format=data.input.format,
            symmetry=self._symmetry, num_parts=workflow.num_parts, num_mask_parts=workflow.num_mask_parts,
            skip_bad_images=data.loader.skip_bad_images,
        )  # fmt: skip

    def build_train_loader(self, seed: int) -> Iterable[Any]:
        solver = self.cfg.solver
        return data_build.build_train_loader(
            self.cfg.data,
            total_batch_size=solver.ims_per_batch // solver.accumulate_steps,
            mapper=self.build_train_mapper(),
            seed=seed,
        )

    def build_validation_loader(self) -> Iterable[Any]:
        from dt_data import build_detection_test_loader

        return build_detection_test_loader(
            list(self.cfg.data.datasets.test), mapper=self.build_train_mapper(), batch_size=1
        )
