"""``DeepLabTrainer``: the workflow of DeepLab's recipes (``workflow: {name: DeepLabTrainer, ...}``).

It differs from ``DefaultTrainer`` in its training data, as detectron2's DeepLab ``train_net.py`` does:
images are resized (``data.input.min_size_train`` ...), cropped by ``RandomCrop_CategoryAreaConstraint``
(``data.input.crop``, retried until no category covers more than ``single_category_max_area`` of the
crop, ``ignored_category`` not counted) and flipped. The poly LR schedule is not the workflow's: it is
``solver.lr_scheduler: {name: WarmupPolyLR, ...}`` (:mod:`dt_deeplab.lr_scheduler`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import attrs

from dt_config import validators as check
from dt_data import build as data_build
from dt_data import transforms as T
from dt_data.dataset_mapper import DatasetMapper
from dt_engine import WORKFLOW_REGISTRY, DefaultTrainer, WorkflowConfig
from dt_engine.errors import InputError

__all__ = ["DeepLabTrainer", "DeepLabTrainerConfig", "semantic_train_augmentations"]


@attrs.define(frozen=True, kw_only=True)
class DeepLabTrainerConfig(WorkflowConfig):
    """Options of :class:`DeepLabTrainer` (see the module docstring)."""

    name: ClassVar[str] = "DeepLabTrainer"
    single_category_max_area: float = attrs.field(
        default=1.0, validator=[check.greater_than(0.0), check.at_most(1.0)]
    )
    ignored_category: int | None = 255


def semantic_train_augmentations(cfg: Any) -> list[T.Augmentation]:
    """Resize shortest edge, category-area-constrained crop (if ``data.input.crop``), flip."""
    inp, workflow = cfg.data.input, cfg.workflow
    augs: list[T.Augmentation] = [
        T.ResizeShortestEdge(inp.min_size_train, inp.max_size_train, inp.min_size_train_sampling)
    ]
    if inp.crop is not None:
        augs.append(
            T.RandomCrop_CategoryAreaConstraint(
                inp.crop.type, inp.crop.size, workflow.single_category_max_area, workflow.ignored_category
            )
        )
    if inp.random_flip != "none":
        augs.append(
            T.RandomFlip(horizontal=inp.random_flip == "horizontal", vertical=inp.random_flip == "vertical")
        )
    return augs


@WORKFLOW_REGISTRY.register(DeepLabTrainerConfig)
class DeepLabTrainer(DefaultTrainer):
    """``DefaultTrainer`` with DeepLab's training augmentations."""

    def check(self) -> None:
        super().check()
        if not isinstance(self.cfg.workflow, DeepLabTrainerConfig):
            raise InputError(f"{type(self).__name__} needs workflow options of {DeepLabTrainerConfig.name}")

    def build_train_mapper(self) -> Any:
        """The training mapper: images and ``sem_seg`` through :func:`semantic_train_augmentations`."""
        return DatasetMapper(
            True,
            augmentations=semantic_train_augmentations(self.cfg),
            image_format=self.cfg.data.input.format,
        )

    def build_train_loader(self, seed: int) -> Iterable[Any]:
        solver = self.cfg.solver
        return data_build.build_train_loader(
            self.cfg.data,
            total_batch_size=solver.ims_per_batch // solver.accumulate_steps,
            mapper=self.build_train_mapper(),
            seed=seed,
        )
