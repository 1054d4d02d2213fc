"""Dataset-dict collection and the train/test ``DataLoader`` builders (detectron2 semantics).

Training: dataset dicts held serialized (:class:`~dt_data.common.SerializedList`), mapped by the
mapper with a generator seeded from (seed, rank, worker id), indices from an infinite sampler sharded
across DDP ranks and split between workers, optionally grouped by aspect ratio into batches.
"""

from __future__ import annotations

import itertools
import logging
import operator
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils import data as torchdata

from dt_config import get_world_size

from .catalog import DatasetCatalog, MetadataCatalog
from .common import (
    AspectRatioGroupedDataset,
    DatasetFromList,
    MapDataset,
    ToIterableDataset,
    worker_init_fn,
)
from .detection_utils import check_metadata_consistency
from .proposals import load_proposals_into_dataset
from .samplers import InferenceSampler, TrainingSampler, shared_random_seed

__all__ = [
    "build_detection_test_loader",
    "build_detection_train_loader",
    "filter_images_with_few_keypoints",
    "filter_images_with_only_crowd_annotations",
    "get_detection_dataset_dicts",
    "trivial_batch_collator",
]

logger = logging.getLogger(__name__)


def trivial_batch_collator(batch: list) -> list:
    """Batches stay lists of dicts."""
    return batch


def filter_images_with_only_crowd_annotations(dataset_dicts: list[dict]) -> list[dict]:
    """Keep images with at least one non-crowd annotation."""
    out = [d for d in dataset_dicts if any(a.get("iscrowd", 0) == 0 for a in d.get("annotations", []))]
    logger.info(
        "Removed %d images with no usable annotations; %d left", len(dataset_dicts) - len(out), len(out)
    )
    return out


def filter_images_with_few_keypoints(dataset_dicts: list[dict], min_keypoints_per_image: int) -> list[dict]:
    """Keep images with at least ``min_keypoints_per_image`` visible (v > 0) keypoints."""

    def visible(d: dict) -> int:
        return sum(
            sum(1 for v in list(a["keypoints"])[2::3] if v > 0)
            for a in d.get("annotations", [])
            if "keypoints" in a
        )

    out = [d for d in dataset_dicts if visible(d) >= min_keypoints_per_image]
    logger.info(
        "Removed %d images with fewer than %d keypoints",
        len(dataset_dicts) - len(out),
        min_keypoints_per_image,
    )
    return out


def _log_class_histogram(dataset_dicts: list[dict], class_names: Sequence[str]) -> None:
    counts = Counter(
        a["category_id"] for d in dataset_dicts for a in d.get("annotations", []) if not a.get("iscrowd", 0)
    )
    table = ", ".join(
        f"{class_names[c] if 0 <= c < len(class_names) else c}: {n}" for c, n in sorted(counts.items())
    )
    logger.info("Instances per category: %s (total %d)", table, sum(counts.values()))


def get_detection_dataset_dicts(
    names: str | Sequence[str],
    filter_empty: bool = True,
    min_keypoints: int = 0,
    proposal_files: Sequence[str] | None = None,
    check_consistency: bool = True,
) -> list[dict]:
    """Concatenate the dicts of registered datasets ``names`` (with precomputed proposals from
    ``proposal_files``, one per dataset); optionally drop images without non-crowd annotations and with
    too few keypoints; check their ``thing_classes`` agree."""
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise ValueError("get_detection_dataset_dicts: no dataset names given")
    per_dataset = [DatasetCatalog.get(n) for n in names]
    for name, dicts in zip(names, per_dataset, strict=True):
        if not dicts:
            raise ValueError(f"dataset {name!r} is empty")
    if proposal_files:
        if len(proposal_files) != len(names):
            raise ValueError(f"got {len(proposal_files)} proposal files for {len(names)} datasets")
        per_dataset = [
            load_proposals_into_dataset(d, f) for d, f in zip(per_dataset, proposal_files, strict=True)
        ]
    dataset_dicts = list(itertools.chain.from_iterable(per_dataset))
    has_instances = "annotations" in dataset_dicts[0]
    if filter_empty and has_instances:
        dataset_dicts = filter_images_with_only_crowd_annotations(dataset_dicts)
    if min_keypoints > 0 and has_instances:
        dataset_dicts = filter_images_with_few_keypoints(dataset_dicts, min_keypoints)
    if check_consistency and has_instances:
        class_names = MetadataCatalog.get(names[0]).get("thing_classes")
        if class_names is not None:
            check_metadata_consistency("thing_classes", names)
            _log_class_histogram(dataset_dicts, class_names)
    if not dataset_dicts:
        raise ValueError(f"no valid data found in {', '.join(names)}")
    return dataset_dicts


def _as_dataset(dataset: Any, serialize: bool) -> Any:
    if isinstance(dataset, str) or (
        isinstance(dataset, (list, tuple)) and dataset and all(isinstance(d, str) for d in dataset)
    ):
        dataset = get_detection_dataset_dicts(dataset)
    if isinstance(dataset, (list, tuple)):
        return DatasetFromList(list(dataset), copy=False, serialize=serialize)
    if not isinstance(dataset, torchdata.Dataset):
        raise TypeError(
            f"dataset must be dataset names, a list of dicts or a torch Dataset, got {type(dataset).__name__}"
        )
    return dataset


def build_detection_train_loader(
    dataset: str | Sequence[str] | list[dict] | torchdata.Dataset,
    *,
    mapper: Callable[..., Any] | None,
    total_batch_size: int,
    sampler: torchdata.Sampler | None = None,
    aspect_ratio_grouping: bool = True,
    num_workers: int = 0,
    collate_fn: Callable[[list], Any] | None = None,
    seed: int | None = None,
    serialize: bool = True,
    prefetch_factor: int | None = 2,
    persistent_workers: bool = False,
) -> Any:
    """An infinite iterable of batches (``list[dict]`` of ``total_batch_size / world_size`` mapped
    dicts per rank). ``sampler`` defaults to :class:`TrainingSampler` seeded with ``seed`` (a shared
    random seed when None); a mapper taking ``rng`` gets a generator seeded from (seed, rank, worker)."""
    world_size = get_world_size()
    if total_batch_size <= 0 or total_batch_size % world_size != 0:
        raise ValueError(
            f"total_batch_size ({total_batch_size}) must be a positive multiple "
            f"of the world size ({world_size})"
        )
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    batch_size = total_batch_size // world_size
    seed = shared_random_seed() if seed is None else int(seed)
    dataset = _as_dataset(dataset, serialize)
    if mapper is not None:
        dataset = MapDataset(dataset, mapper, seed=seed)
    if isinstance(dataset, torchdata.IterableDataset):
        if sampler is not None:
            raise ValueError("sampler must be None when dataset is an IterableDataset")
    else:
        if sampler is None:
            sampler = TrainingSampler(len(dataset), seed=seed)
        dataset = ToIterableDataset(dataset, sampler)
    loader_kwargs: dict[str, Any] = {
        "num_workers": num_workers,
        "worker_init_fn": worker_init_fn(seed),
        "generator": torch.Generator().manual_seed(seed),
    }
    if num_workers > 0:
        loader_kwargs.update(prefetch_factor=prefetch_factor, persistent_workers=persistent_workers)
    if aspect_ratio_grouping:
        loader = torchdata.DataLoader(dataset, collate_fn=operator.itemgetter(0), **loader_kwargs)
        grouped = AspectRatioGroupedDataset(loader, batch_size)
        return grouped if collate_fn is None else MapDataset(grouped, collate_fn)
    return torchdata.DataLoader(
        dataset,
        batch_size=batch_size,
        drop_last=True,
        collate_fn=trivial_batch_collator if collate_fn is None else collate_fn,
        **loader_kwargs,
    )


def build_detection_test_loader(
    dataset: str | Sequence[str] | list[dict] | torchdata.Dataset,
    *,
    mapper: Callable[..., Any] | None,
    sampler: torchdata.Sampler | None = None,
    batch_size: int = 1,
    num_workers: int = 0,
    collate_fn: Callable[[list], Any] | None = None,
    seed: int = 0,
    serialize: bool = True,
) -> torchdata.DataLoader:
    """A finite loader visiting each image once across ranks (:class:`InferenceSampler`), in order,
    ``batch_size`` images per batch. Dataset names are loaded without filtering empty images."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if isinstance(dataset, str) or (
        isinstance(dataset, (list, tuple)) and dataset and isinstance(dataset[0], str)
    ):
        dataset = get_detection_dataset_dicts(dataset, filter_empty=False)
    dataset = _as_dataset(dataset, serialize)
    if mapper is not None:
        dataset = MapDataset(dataset, mapper, seed=seed)
    if isinstance(dataset, torchdata.IterableDataset):
        if sampler is not None:
            raise ValueError("sampler must be None when dataset is an IterableDataset")
        batch_sampler = None
    else:
        sampler = InferenceSampler(len(dataset)) if sampler is None else sampler
        batch_sampler = torchdata.BatchSampler(sampler, batch_size, drop_last=False)
    return torchdata.DataLoader(
        dataset,
        batch_size=1 if batch_sampler is not None else batch_size,
        batch_sampler=batch_sampler,
        num_workers=num_workers,
        collate_fn=trivial_batch_collator if collate_fn is None else collate_fn,
        worker_init_fn=worker_init_fn(seed),
    )
