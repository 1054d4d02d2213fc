"""Evaluators chosen from each test dataset's ``evaluator_type`` (``MetadataCatalog.get(name)``).

==================== =========================================================================
evaluator_type       evaluators (dt_eval), combined with ``DatasetEvaluators`` when several
==================== =========================================================================
coco                 ``COCOEvaluator`` (bbox / segm / keypoints, from the predictions)
coco_rotated         ``RotatedCOCOEvaluator`` (bbox AP of ``[cx, cy, w, h, angle]`` boxes, rotated IoU)
lvis                 ``LVISEvaluator``
sem_seg              ``SemSegEvaluator``
coco_panoptic_seg    ``SemSegEvaluator`` + ``COCOEvaluator`` + ``COCOPanopticEvaluator``
pascal_voc           ``PascalVOCDetectionEvaluator``
cityscapes_instance  ``CityscapesInstanceEvaluator``
cityscapes_sem_seg   ``CityscapesSemSegEvaluator``
==================== =========================================================================

A project adds a type without editing dt: a function ``(dataset_name, cfg, output_dir) ->
list of evaluators`` registered with ``@EVALUATOR_REGISTRY.register("my_type")``, in a module named
by an entry point of the group ``dt_engine.evaluator`` (imported the first time an unknown type
is asked for).

With ``test.aug.enabled``, an R-CNN model is also evaluated with test-time augmentation
(``build_tta_model``: dt-models' ``GeneralizedRCNNWithTTA`` resizing with dt-data's
``ResizeShortestEdge``); its results are named ``<task>_TTA``, as detectron2's ``test_with_TTA``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import torch
from torch import nn

from dt_config import did_you_mean
from dt_data import DatasetCatalog, MetadataCatalog
from dt_data import transforms as T
from dt_eval import (
    CityscapesInstanceEvaluator,
    CityscapesSemSegEvaluator,
    COCOEvaluator,
    COCOPanopticEvaluator,
    DatasetEvaluator,
    DatasetEvaluators,
    LVISEvaluator,
    PascalVOCDetectionEvaluator,
    RotatedCOCOEvaluator,
    SemSegEvaluator,
)
from dt_models.test_time_augmentation import GeneralizedRCNNWithTTA

from .errors import InputError

if TYPE_CHECKING:
    from .config.experiment import ExperimentConfig

__all__ = [
    "EVALUATOR_REGISTRY",
    "EvaluatorBuilder",
    "EvaluatorRegistry",
    "build_evaluator",
    "build_tta_model",
    "evaluator_builder",
    "resize_shortest_edge",
]

logger = logging.getLogger(__name__)

EvaluatorBuilder = Callable[[str, "ExperimentConfig", str], Sequence[DatasetEvaluator]]
"""``(dataset_name, cfg, output_dir) -> evaluators`` for one test dataset."""

B = TypeVar("B", bound=EvaluatorBuilder)


class EvaluatorRegistry:
    """``evaluator_type`` -> ``EvaluatorBuilder``; other packages plug in through entry points of ``group``.

    (Not a ``dt_config.Registry``: an evaluator type is named by dataset metadata, not by a config
    section, so it has no config class.)
    """

    def __init__(self, group: str) -> None:
        self.group = group
        self._builders: dict[str, EvaluatorBuilder] = {}
        self._entry_points_loaded = False

    def register(self, evaluator_type: str) -> Callable[[B], B]:
        """Decorator registering a builder for ``evaluator_type``; returns the builder unchanged."""

        def decorator(builder: B) -> B:
            if not callable(builder):
                raise TypeError(f"expected a callable to register, got {builder!r}")
            if evaluator_type in self._builders:
                raise ValueError(f"evaluator_type {evaluator_type!r} is already registered")
            self._builders[evaluator_type] = builder
            return builder

        return decorator

    def _load_entry_points(self) -> None:
        if not self._entry_points_loaded:
            self._entry_points_loaded = True
            for ep in entry_points(group=self.group):
                ep.load()

    def __contains__(self, evaluator_type: object) -> bool:
        if evaluator_type not in self._builders:
            self._load_entry_points()
        return evaluator_type in self._builders

    def get(self, evaluator_type: str) -> EvaluatorBuilder:
        """The builder of ``evaluator_type``; ``KeyError`` if there is none."""
        if evaluator_type not in self:
            raise KeyError(evaluator_type)
        return self._builders[evaluator_type]

    def names(self) -> list[str]:
        """Every registered evaluator type, entry points included."""
        self._load_entry_points()
        return sorted(self._builders)


EVALUATOR_REGISTRY = EvaluatorRegistry(group="dt_engine.evaluator")


def evaluator_builder(dataset_name: str) -> EvaluatorBuilder:
    """The builder for ``dataset_name``'s ``evaluator_type``; ``InputError`` naming the known types."""
    evaluator_type = MetadataCatalog.get(dataset_name).get("evaluator_type")
    known = EVALUATOR_REGISTRY.names()
    if evaluator_type is None:
        raise InputError(
            f"dataset {dataset_name!r} has no evaluator_type in its metadata (set "
            f"MetadataCatalog.get({dataset_name!r}).evaluator_type); known types: {', '.join(known)}"
        )
    if evaluator_type not in EVALUATOR_REGISTRY:
        hint = did_you_mean(str(evaluator_type), known)
        raise InputError(
            f"dataset {dataset_name!r} has evaluator_type {evaluator_type!r}{hint}, which has no evaluator; "
            f"known types: {', '.join(known)}"
        )
    return EVALUATOR_REGISTRY.get(evaluator_type)


def build_evaluator(dataset_name: str, cfg: ExperimentConfig, output_dir: str) -> DatasetEvaluator:
    """The evaluator(s) of ``dataset_name``'s ``evaluator_type``, writing their files to ``output_dir``."""
    evaluators = list(evaluator_builder(dataset_name)(dataset_name, cfg, output_dir))
    if not evaluators:
        raise ValueError(f"the evaluator builder of dataset {dataset_name!r} returned no evaluator")
    logger.info("evaluators of %s: %s", dataset_name, ", ".join(type(e).__name__ for e in evaluators))
    return evaluators[0] if len(evaluators) == 1 else DatasetEvaluators(evaluators)


def _coco(dataset_name: str, cfg: ExperimentConfig, output_dir: str, dicts: list[dict]) -> COCOEvaluator:
    """COCO evaluator; keypoints use the dataset's ``keypoint_oks_sigmas`` (else COCO's 17)."""
    metadata = MetadataCatalog.get(dataset_name)
    return COCOEvaluator(
        dataset_name,
        output_dir=output_dir,
        max_dets_per_image=cfg.test.detections_per_image,
        kpt_oks_sigmas=metadata.get("keypoint_oks_sigmas", ()),
        metadata=metadata,
        dataset_dicts=dicts,
    )


def _sem_seg(dataset_name: str, output_dir: str, dicts: list[dict]) -> SemSegEvaluator:
    return SemSegEvaluator(
        dataset_name, output_dir=output_dir, metadata=MetadataCatalog.get(dataset_name), dataset_dicts=dicts
    )


@EVALUATOR_REGISTRY.register("coco")
def coco_evaluators(dataset_name: str, cfg: ExperimentConfig, output_dir: str) -> list[DatasetEvaluator]:
    # loading the dicts also generates a generated dataset's files (the shapes json)
    return [_coco(dataset_name, cfg, output_dir, DatasetCatalog.get(dataset_name))]


@EVALUATOR_REGISTRY.register("coco_rotated")
def rotated_coco_evaluators(
    dataset_name: str, cfg: ExperimentConfig, output_dir: str
) -> list[DatasetEvaluator]:
    """COCO box AP of rotated predictions against the dataset's XYWHA_ABS boxes (rotated IoU)."""
    return [
        RotatedCOCOEvaluator(
            dataset_name,
            output_dir=output_dir,
            max_dets_per_image=cfg.test.detections_per_image,
            metadata=MetadataCatalog.get(dataset_name),
            dataset_dicts=DatasetCatalog.get(dataset_name),
        )  # fmt: skip
    ]


@EVALUATOR_REGISTRY.register("lvis")
def lvis_evaluators(dataset_name: str, cfg: ExperimentConfig, output_dir: str) -> list[DatasetEvaluator]:
    return [
        LVISEvaluator(
            dataset_name,
            output_dir=output_dir,
            max_dets_per_image=cfg.test.detections_per_image,
            metadata=MetadataCatalog.get(dataset_name),
        )
    ]


@EVALUATOR_REGISTRY.register("sem_seg")
def sem_seg_evaluators(dataset_name: str, cfg: ExperimentConfig, output_dir: str) -> list[DatasetEvaluator]:
    return [_sem_seg(dataset_name, output_dir, DatasetCatalog.get(dataset_name))]


@EVALUATOR_REGISTRY.register("coco_panoptic_seg")
def panoptic_evaluators(dataset_name: str, cfg: ExperimentConfig, output_dir: str) -> list[DatasetEvaluator]:
    """Semantic, instance and panoptic metrics, as detectron2's ``train_net.py`` combines them."""
    dicts = DatasetCatalog.get(dataset_name)
    return [
        _sem_seg(dataset_name, output_dir, dicts),
        _coco(dataset_name, cfg, output_dir, dicts),
        COCOPanopticEvaluator(dataset_name, output_dir, metadata=MetadataCatalog.get(dataset_name)),
    ]


@EVALUATOR_REGISTRY.register("pascal_voc")
def voc_evaluators(dataset_name: str, cfg: ExperimentConfig, output_dir: str) -> list[DatasetEvaluator]:
    return [PascalVOCDetectionEvaluator(dataset_name, metadata=MetadataCatalog.get(dataset_name))]


@EVALUATOR_REGISTRY.register("cityscapes_instance")
def cityscapes_instance_evaluators(
    dataset_name: str, cfg: ExperimentConfig, output_dir: str
) -> list[DatasetEvaluator]:
    return [CityscapesInstanceEvaluator(dataset_name, metadata=MetadataCatalog.get(dataset_name))]


@EVALUATOR_REGISTRY.register("cityscapes_sem_seg")
def cityscapes_sem_seg_evaluators(
    dataset_name: str, cfg: ExperimentConfig, output_dir: str
) -> list[DatasetEvaluator]:
    return [CityscapesSemSegEvaluator(dataset_name, metadata=MetadataCatalog.get(dataset_name))]


def resize_shortest_edge(image: torch.Tensor, min_size: int, max_size: int) -> torch.Tensor:
    """``image`` ``Tensor[C, H, W]`` resized by dt-data's ``ResizeShortestEdge(min_size, max_size)``
    (short edge ``min_size``, long edge at most ``max_size``; uint8 through PIL, as detectron2)."""
    height, width = image.shape[-2:]
    new_height, new_width = T.ResizeShortestEdge.get_output_shape(height, width, min_size, max_size)
    resized = T.ResizeTransform(height, width, new_height, new_width).apply_image(
        image.permute(1, 2, 0).cpu().numpy()
    )  # [H', W', C]
    return torch.from_numpy(np.ascontiguousarray(resized.transpose(2, 0, 1))).to(image.device)


def build_tta_model(cfg: ExperimentConfig, model: nn.Module) -> GeneralizedRCNNWithTTA:
    """``model`` (a ``GeneralizedRCNN``, possibly DDP-wrapped) with the views of ``cfg.test.aug``."""
    aug = cfg.test.aug
    return GeneralizedRCNNWithTTA(
        model,
        resize=resize_shortest_edge,
        min_sizes=aug.min_sizes,
        max_size=aug.max_size,
        flip=aug.flip,
        detections_per_image=cfg.test.detections_per_image,
    )
