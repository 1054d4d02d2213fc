"""Typed configuration of the data pipeline (``DataConfig``), validated on construction.

Field names follow detectron2's ``DATASETS``/``INPUT``/``DATALOADER`` keys in lower case. dt-engine
composes ``DataConfig`` into its experiment config and owns YAML loading; ``dt_data.build`` maps it
to augmentations, mappers and loaders.
"""

from __future__ import annotations

import attrs
from attrs import validators as v

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
        raise ValueError(f"{attribute.name}: expected dataset names (non-empty strings), got {value!r}")


def _positive_ints(instance: object, attribute: attrs.Attribute, value: tuple) -> None:
    if not value or not all(isinstance(x, int) and x >= 0 for x in value):
        raise ValueError(f"{attribute.name}: expected a non-empty tuple of non-negative ints, got {value!r}")


@attrs.define(frozen=True, kw_only=True)
class DatasetsConfig:
    """Registered dataset names to train and test on."""

    train: tuple[str, ...] = attrs.field(default=("shapes_train",), converter=_as_tuple, validator=_names)
    test: tuple[str, ...] = attrs.field(default=("shapes_val",), converter=_as_tuple, validator=_names)


@attrs.define(frozen=True, kw_only=True)
class CropConfig:
    """``RandomCrop(type, size)`` applied first during training."""

    type: str = attrs.field(default="relative_range", validator=v.in_(CROP_TYPES))
    size: tuple[float, float] = attrs.field(default=(0.9, 0.9), converter=_as_tuple)

    @size.validator
    def _check_size(self, attribute: attrs.Attribute, value: tuple) -> None:
        if len(value) != 2 or not all(isinstance(x, (int, float)) and x > 0 for x in value):
            raise ValueError(f"size: expected 2 positive numbers, got {value!r}")
        if self.type.startswith("relative") and not all(x <= 1 for x in value):
            raise ValueError(f"size: relative crop sizes must be in (0, 1], got {value!r}")
        if self.type == "absolute_range" and value[0] > value[1]:
            raise ValueError(f"size: absolute_range needs size[0] <= size[1], got {value!r}")


@attrs.define(frozen=True, kw_only=True)
class InputConfig:
    """Image reading and the resize/flip/crop augmentations (detectron2's ``INPUT``)."""

    min_size_train: tuple[int, ...] = attrs.field(
        default=(800,), converter=_as_tuple, validator=_positive_ints
    )
    min_size_train_sampling: str = attrs.field(default="choice", validator=v.in_(("choice", "range")))
    max_size_train: int = attrs.field(default=1333, validator=[v.instance_of(int), v.gt(0)])
    min_size_test: int = attrs.field(default=800, validator=[v.instance_of(int), v.ge(0)])
    max_size_test: int = attrs.field(default=1333, validator=[v.instance_of(int), v.gt(0)])
    format: str = attrs.field(default="BGR", validator=v.in_(("BGR", "RGB", "L", "YUV-BT.601")))
    mask_format: str = attrs.field(default="polygon", validator=v.in_(("polygon", "bitmask")))
    random_flip: str = attrs.field(default="horizontal", validator=v.in_(("horizontal", "vertical", "none")))
    crop: CropConfig | None = attrs.field(default=None, validator=v.optional(v.instance_of(CropConfig)))

    def __attrs_post_init__(self) -> None:
        if self.min_size_train_sampling == "range" and len(self.min_size_train) != 2:
            raise ValueError(
                f"min_size_train: sampling 'range' needs exactly (min, max), got {self.min_size_train!r}"
            )


@attrs.define(frozen=True, kw_only=True)
class LoaderConfig:
    """Sampling and loading (detectron2's ``DATALOADER``)."""

    num_workers: int = attrs.field(default=4, validator=[v.instance_of(int), v.ge(0)])
    aspect_ratio_grouping: bool = attrs.field(default=True, validator=v.instance_of(bool))
    sampler: str = attrs.field(default="TrainingSampler", validator=v.in_(SAMPLERS))
    repeat_threshold: float = attrs.field(default=0.0, validator=[v.instance_of((int, float)), v.ge(0)])
    repeat_sqrt: bool = attrs.field(default=True, validator=v.instance_of(bool))
    random_subset_ratio: float = attrs.field(
        default=1.0, validator=[v.instance_of((int, float)), v.gt(0), v.le(1)]
    )
    filter_empty_annotations: bool = attrs.field(default=True, validator=v.instance_of(bool))

    def __attrs_post_init__(self) -> None:
        if self.sampler == "RepeatFactorTrainingSampler" and self.repeat_threshold <= 0:
            raise ValueError("repeat_threshold: RepeatFactorTrainingSampler needs repeat_threshold > 0")


@attrs.define(frozen=True, kw_only=True)
class DataConfig:
    """Everything dt-data builds: datasets, input pipeline, loader."""

    datasets: DatasetsConfig = attrs.field(factory=DatasetsConfig)
    input: InputConfig = attrs.field(factory=InputConfig)
    loader: LoaderConfig = attrs.field(factory=LoaderConfig)
