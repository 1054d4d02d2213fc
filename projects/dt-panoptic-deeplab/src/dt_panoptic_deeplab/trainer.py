"""``PanopticDeepLabTrainer``: ``DeepLabTrainer`` whose training mapper builds the Panoptic-DeepLab
targets (``workflow: {name: PanopticDeepLabTrainer, gaussian_sigma: 8, ...}``). The recipes schedule the
LR with dt-deeplab's ``solver.lr_scheduler: {name: WarmupPolyLR, ...}``.

Augmentations are detectron2's for this project: resize shortest edge, ``RandomCrop`` (``data.input.crop``),
flip. Thing classes and the ignore label come from the first training dataset's metadata.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from dt_config import validators as check
from dt_data import MetadataCatalog
from dt_data import transforms as T
from dt_deeplab.trainer import DeepLabTrainer, DeepLabTrainerConfig
from dt_engine import WORKFLOW_REGISTRY
from dt_engine.errors import InputError

from .dataset_mapper import PanopticDeepLabDatasetMapper
from .target_generator import PanopticDeepLabTargetGenerator

__all__ = ["PanopticDeepLabTrainer", "PanopticDeepLabTrainerConfig", "panoptic_train_augmentations"]


@attrs.define(frozen=True, kw_only=True)
class PanopticDeepLabTrainerConfig(DeepLabTrainerConfig):
    """``DeepLabTrainer``'s options plus the target generator's (see ``PanopticDeepLabTargetGenerator``)."""

    name: ClassVar[str] = "PanopticDeepLabTrainer"
    gaussian_sigma: float = attrs.field(default=10.0, validator=check.greater_than(0.0))
    ignore_stuff_in_offset: bool = True
    small_instance_area: int = attrs.field(default=4096, validator=check.at_least(0))
    small_instance_weight: float = attrs.field(default=3.0, validator=check.at_least(0.0))
    ignore_crowd_in_semantic: bool = False


def panoptic_train_augmentations(cfg: Any) -> list[T.Augmentation]:
    """Resize shortest edge, random crop (if ``data.input.crop``), flip."""
    inp = cfg.data.input
    augs: list[T.Augmentation] = [
        T.ResizeShortestEdge(inp.min_size_train, inp.max_size_train, inp.min_size_train_sampling)
    ]
    if inp.crop is not None:
        augs.append(T.RandomCrop(inp.crop.type, inp.crop.size))
    if inp.random_flip != "none":
        augs.append(
            T.RandomFlip(horizontal=inp.random_flip == "horizontal", vertical=inp.random_flip == "vertical")
        )
    return augs


@WORKFLOW_REGISTRY.register(PanopticDeepLabTrainerConfig)
class PanopticDeepLabTrainer(DeepLabTrainer):
    """``DeepLabTrainer`` with :class:`PanopticDeepLabDatasetMapper` for training."""

    def check(self) -> None:
        super().check()
        meta = MetadataCatalog.get(self.cfg.data.datasets.train[0])
        things = sorted(meta.get("thing_dataset_id_to_contiguous_id", {}).values())
        model_things = sorted(getattr(self.cfg.model, "thing_ids", things))
        if things != model_things:
            raise InputError(
                f"model.thing_ids {model_things} differ from the thing classes {things} of dataset "
                f"{self.cfg.data.datasets.train[0]!r}"
            )

    def build_train_mapper(self) -> PanopticDeepLabDatasetMapper:
        workflow = self.cfg.workflow
        meta = MetadataCatalog.get(self.cfg.data.datasets.train[0])
        generator = PanopticDeepLabTargetGenerator(
            ignore_label=meta.get("ignore_label", 255),
            thing_ids=meta.thing_dataset_id_to_contiguous_id.values(),
            sigma=workflow.gaussian_sigma,
            ignore_stuff_in_offset=workflow.ignore_stuff_in_offset,
            small_instance_area=workflow.small_instance_area,
            small_instance_weight=workflow.small_instance_weight,
            ignore_crowd_in_semantic=workflow.ignore_crowd_in_semantic,
        )
        return PanopticDeepLabDatasetMapper(
            augmentations=panoptic_train_augmentations(self.cfg),
            image_format=self.cfg.data.input.format,
            target_generator=generator,
        )
