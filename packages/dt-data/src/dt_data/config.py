"""Typed configuration of the data pipeline (``DataConfig``), validated on construction.

Field names follow detectron2's ``DATASETS``/``INPUT``/``DATALOADER`` keys in lower case. dt-engine
composes ``DataConfig`` into its experiment config and owns YAML loading; ``dt_data.build`` maps it
to augmentations, mappers and loaders.
"""

from __future__ import annotations

import attrs

from dt_config import ConfigProblem
from dt_config import validators as check

__all__ = ["CropConfig", "DataConfig", "DatasetsConfig", "InputConfig", "LoaderConfig"]

CROP_TYPES = ("relative_range", "relative", "absolute", "absolute_range")
SAMPLERS = ("TrainingSampler", "RepeatFactorTrainingSampler", "RandomSubsetTrainingSampler")


def _as_tuple(value: object) -> tuple:
    """A single name/number becomes a 1-tuple; other iterables become tuples."""
    if isinstance(value, (str, int, float)):
        return (value,)
    return tuple(value)  # type: ignore[arg-type]


def _names(instance: object, attribute: attrs.Attribute, value: tuple) -> None:
    if not all(isinstance(n, str) and n for n in value):
        raise ConfigProblem(f"expected dataset names (non-empty strings), got {value!r}", key=attribute.name)


def _positive_ints(instance: object, attribute: attrs.Attribute, value: tuple) -> None:
    if not value or not all(isinstance(x, int) and x >= 0 for x in value):
        raise ConfigProblem(
            f"expected a non-empty list of non-negative ints, got {list(value)!r}", key=attribute.name
        )


@attrs.define(frozen=True, kw_only=True)
class DatasetsConfig:
    """Registered dataset names to train and test on.

    ``proposal_files_train`` / ``proposal_files_test``: precomputed proposals (detectron2's proposal
    file format), one file per dataset of ``train`` / ``test`` in the same order, or none; the mapper
    keeps the ``precomputed_proposal_topk_*`` best of each image (for a model with
    ``proposal_generator: {name: PrecomputedProposals}``).
    """

    train: tuple[str, ...] = attrs.field(default=("shapes_train",), converter=_as_tuple, validator=_names)
    test: tuple[str, ...] = attrs.field(default=("shapes_val",), converter=_as_tuple, validator=_names)
    proposal_files_train: tuple[str, ...] = attrs.field(default=(), converter=_as_tuple, validator=_names)
    proposal_files_test: tuple[str, ...] = attrs.field(default=(), converter=_as_tuple, validator=_names)
    precomputed_proposal_topk_train: int = attrs.field(default=2000, validator=check.greater_than(0))
    precomputed_proposal_topk_test: int = attrs.field(default=1000, validator=check.greater_than(0))

    def __attrs_post_init__(self) -> None:
        for split in ("train", "test"):
            files, names = getattr(self, f"proposal_files_{split}"), getattr(self, split)
            if files and len(files) != len(names):
                raise ConfigProblem(
                    f"expected one proposal file per dataset of {split} ({len(names)}), got {len(files)}",
                    key=f"proposal_files_{split}",
                )

    def proposal_file(self, dataset_name: str, is_train: bool) -> str | None:
        """The proposal file of ``dataset_name`` in ``train`` (``is_train``) or ``test``, if any."""
        names, files = (
            (self.train, self.proposal_files_train) if is_train else (self.test, self.proposal_files_test)
        )
        return files[names.index(dataset_name)] if files and dataset_name in names else None

    def proposal_topk(self, is_train: bool) -> int | None:
        """Proposals the mapper keeps per image when ``train`` (``test``) has proposal files, else None."""
        if is_train:
            return self.precomputed_proposal_topk_train if self.proposal_files_train else None
        return self.precomputed_proposal_topk_test if self.proposal_files_test else None


@attrs.define(frozen=True, kw_only=True)
class CropConfig:
    """``RandomCrop(type, size)`` applied first during training."""

    type: str = attrs.field(default="relative_range", validator=check.one_of(CROP_TYPES))
    size: tuple[float, float] = attrs.field(default=(0.9, 0.9), converter=_as_tuple)

    @size.validator
    def _check_size(self, attribute: attrs.Attribute, value: tuple) -> None:
        if len(value) != 2 or not all(isinstance(x, (int, float)) and x > 0 for x in value):
            raise ConfigProblem(f"expected 2 positive numbers, got {list(value)!r}", key="size")
        if self.type.startswith("relative") and not all(x <= 1 for x in value):
            raise ConfigProblem(f"relative crop sizes must be in (0, 1], got {list(value)!r}", key="size")
        if self.type == "absolute_range" and value[0] > value[1]:
            raise ConfigProblem(f"absolute_range needs size[0] <= size[1], got {list(value)!r}", key="size")


@attrs.define(frozen=True, kw_only=True)
class InputConfig:
    """Image reading and the resize/flip/crop augmentations (detectron2's ``INPUT``)."""

    min_size_train: tuple[int, ...] = attrs.field(
        default=(800,), converter=_as_tuple, validator=_positive_ints
    )
    min_size_train_sampling: str = attrs.field(default="choice", validator=check.one_of(("choice", "range")))
    max_size_train: int = attrs.field(default=1333, validator=check.greater_than(0))
    min_size_test: int = attrs.field(default=800, validator=check.at_least(0))
    max_size_test: int = attrs.field(default=1333, validator=check.greater_than(0))
    format: str = attrs.field(default="BGR", validator=check.one_of(("BGR", "RGB", "L", "YUV-BT.601")))
    mask_format: str = attrs.field(default="polygon", validator=check.one_of(("polygon", "bitmask")))
    random_flip: str = attrs.field(
        default="horizontal", validator=check.one_of(("horizontal", "vertical", "none"))
    )
    crop: CropConfig | None = attrs.field(
        default=None, validator=check.optional(check.instance_of(CropConfig))
    )

    def __attrs_post_init__(self) -> None:
        if self.min_size_train_sampling == "range" and len(self.min_size_train) != 2:
            raise ConfigProblem(
                f"sampling 'range' needs exactly [min, max], got {list(self.min_size_train)!r}",
                key="min_size_train",
            )


@attrs.define(frozen=True, kw_only=True)
class LoaderConfig:
    """Sampling and loading (detectron2's ``DATALOADER``)."""

    num_workers: int = attrs.field(default=4, validator=check.at_least(0))
    aspect_ratio_grouping: bool = attrs.field(default=True, validator=check.instance_of(bool))
    sampler: str = attrs.field(default="TrainingSampler", validator=check.one_of(SAMPLERS))
    repeat_threshold: float = attrs.field(default=0.0, validator=check.at_least(0))
    repeat_sqrt: bool = attrs.field(default=True, validator=check.instance_of(bool))
    random_subset_ratio: float = attrs.field(default=1.0, validator=[check.greater_than(0), check.at_most(1)])
    filter_empty_annotations: bool = attrs.field(default=True, validator=check.instance_of(bool))
    skip_bad_images: bool = attrs.field(default=False, validator=check.instance_of(bool))
    """Training images that are missing, undecodable or of the wrong size are skipped with a counted
    warning instead of stopping the run."""

    def __attrs_post_init__(self) -> None:
        if self.sampler == "RepeatFactorTrainingSampler" and self.repeat_threshold <= 0:
            raise ConfigProblem(
                "RepeatFactorTrainingSampler needs repeat_threshold > 0", key="repeat_threshold"
            )


@attrs.define(frozen=True, kw_only=True)
class DataConfig:
    """Everything dt-data builds: datasets, input pipeline, loader."""

    datasets: DatasetsConfig = attrs.field(factory=DatasetsConfig)
    input: InputConfig = attrs.field(factory=InputConfig)
    loader: LoaderConfig = attrs.field(factory=LoaderConfig)
