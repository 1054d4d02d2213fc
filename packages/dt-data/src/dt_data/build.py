"""Map a :class:`~dt_data.config.DataConfig` to augmentations, mappers, samplers and loaders.

Model-dependent switches (masks, keypoints) come from the model config, so the caller (dt-engine)
passes them explicitly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils import data as torchdata

from .catalog import DatasetCatalog
from .config import DataConfig, LoaderConfig
from .dataset_mapper import DatasetMapper
from .detection_utils import build_augmentation, create_keypoint_hflip_indices
from .loaders import build_detection_test_loader, build_detection_train_loader, get_detection_dataset_dicts
from .samplers import RandomSubsetTrainingSampler, RepeatFactorTrainingSampler, TrainingSampler

__all__ = ["build_mapper", "build_test_loader", "build_train_loader", "build_train_sampler"]


def build_mapper(
    config: DataConfig,
    is_train: bool,
    *,
    mask_on: bool = False,
    keypoint_on: bool = False,
    precomputed_proposal_topk: int | None = None,
) -> DatasetMapper:
    """The :class:`DatasetMapper` detectron2 would build: augmentations from ``config.input``,
    ``recompute_boxes`` when masks are on and a crop is configured, keypoint flip indices from the
    training datasets' metadata, and precomputed proposals (``precomputed_proposal_topk`` per image;
    ``None``: the config's ``precomputed_proposal_topk_*`` when its datasets have proposal files)."""
    if precomputed_proposal_topk is None:
        precomputed_proposal_topk = config.datasets.proposal_topk(is_train)
    return DatasetMapper(
        is_train,
        augmentations=build_augmentation(config.input, is_train),
        image_format=config.input.format,
        use_instance_mask=mask_on,
        instance_mask_format=config.input.mask_format,
        use_keypoint=keypoint_on,
        keypoint_hflip_indices=create_keypoint_hflip_indices(config.datasets.train) if keypoint_on else None,
        precomputed_proposal_topk=precomputed_proposal_topk,
        recompute_boxes=mask_on and is_train and config.input.crop is not None,
        skip_bad_images=is_train and config.loader.skip_bad_images,
    )


def build_train_sampler(
    config: LoaderConfig, dataset_dicts: list[dict], seed: int | None = None
) -> torchdata.Sampler:
    """The sampler named by ``config.sampler``."""
    if config.sampler == "TrainingSampler":
        return TrainingSampler(len(dataset_dicts), seed=seed)
    if config.sampler == "RepeatFactorTrainingSampler":
        factors = RepeatFactorTrainingSampler.repeat_factors_from_category_frequency(
            dataset_dicts, config.repeat_threshold, sqrt=config.repeat_sqrt
        )
        return RepeatFactorTrainingSampler(factors, seed=seed)
    return RandomSubsetTrainingSampler(
        len(dataset_dicts), config.random_subset_ratio, seed_shuffle=seed, seed_subset=seed
    )


def build_train_loader(
    config: DataConfig,
    *,
    total_batch_size: int,
    mapper: Callable[..., Any] | None = None,
    mask_on: bool = False,
    keypoint_on: bool = False,
    min_keypoints: int = 0,
    seed: int | None = None,
) -> Any:
    """Training batches from ``config.datasets.train`` (see :func:`build_detection_train_loader`),
    with the proposals of ``proposal_files_train``."""
    dicts = get_detection_dataset_dicts(
        config.datasets.train,
        filter_empty=config.loader.filter_empty_annotations,
        min_keypoints=min_keypoints if keypoint_on else 0,
        proposal_files=config.datasets.proposal_files_train or None,
    )
    if mapper is None:
        mapper = build_mapper(config, True, mask_on=mask_on, keypoint_on=keypoint_on)
    return build_detection_train_loader(
        dicts,
        mapper=mapper,
        sampler=build_train_sampler(config.loader, dicts, seed),
        total_batch_size=total_batch_size,
        aspect_ratio_grouping=config.loader.aspect_ratio_grouping,
        num_workers=config.loader.num_workers,
        seed=seed,
    )


def build_test_loader(
    config: DataConfig,
    dataset_name: str,
    *,
    mapper: Callable[..., Any] | None = None,
    batch_size: int = 1,
) -> torchdata.DataLoader:
    """Inference loader over one registered test dataset (with the proposals of its file in
    ``proposal_files_test``)."""
    if dataset_name not in DatasetCatalog:
        DatasetCatalog.get(dataset_name)  # raises KeyError with close names
    proposal_file = config.datasets.proposal_file(dataset_name, is_train=False)
    return build_detection_test_loader(
        get_detection_dataset_dicts(
            dataset_name,
            filter_empty=False,
            proposal_files=None if proposal_file is None else [proposal_file],
        ),
        mapper=build_mapper(config, False) if mapper is None else mapper,
        batch_size=batch_size,
        num_workers=config.loader.num_workers,
    )
