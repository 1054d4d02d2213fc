"""The ``datasets:`` section of an experiment config: the user's own datasets, by name, with their loader.

Each entry maps a dataset name to a loader ``type`` and its paths; relative paths are relative to the
config file (``load_experiment`` makes them absolute, so the config saved with a run still works)::

    datasets:
      my_train: {type: coco, json_file: ann/train.json, image_root: img/train}
      my_val: {type: coco, json_file: ann/val.json, image_root: img/val}
      my_sem: {type: sem_seg, image_root: img, gt_root: labels, stuff_classes: [sky, road]}
    data:
      datasets: {train: [my_train], test: [my_val]}

``register_datasets`` registers them in ``DatasetCatalog``/``MetadataCatalog`` together with their
metadata (class names, id maps, evaluator type) read from the annotation files, so the checks that
run before training see them; it is called in every process of a run (DDP included) and registers a
name again only when its entry changed. The ``type`` key picks the config class (a tagged union
keyed by ``type``, as ``name`` keys the model parts'); a new loader type derives from
``DatasetSourceConfig`` and is added with ``dataset_type``.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import attrs

from dt_config import ConfigProblem, converter, did_you_mean
from dt_config import validators as check
from dt_config.errors import describe
from dt_data import DatasetCatalog, MetadataCatalog
from dt_data import datasets as loaders
from dt_data.datasets.cityscapes import STUFF_CLASSES as CITYSCAPES_STUFF
from dt_data.datasets.cityscapes import THING_CLASSES as CITYSCAPES_THINGS
from dt_data.datasets.pascal_voc import CLASS_NAMES as VOC_CLASS_NAMES

__all__ = [
    "DATASET_TYPES",
    "CityscapesDatasetConfig",
    "CocoDatasetConfig",
    "CocoPanopticDatasetConfig",
    "DatasetSourceConfig",
    "LVISDatasetConfig",
    "PascalVOCDatasetConfig",
    "SemSegDatasetConfig",
    "dataset_type",
    "register_datasets",
    "resolve_paths",
]

S = TypeVar("S", bound="DatasetSourceConfig")
DATASET_TYPES: dict[str, type[DatasetSourceConfig]] = {}
"""``type`` value -> config class of a dataset entry."""


class DatasetSourceError(ValueError):
    """An annotation file a dataset entry names cannot give its metadata (missing, not JSON, ...)."""


def path_field(**kwargs: Any) -> Any:
    """A string field holding a path (made absolute against the config file's folder)."""
    return attrs.field(validator=check.non_empty, metadata={"path": True}, **kwargs)


def _read_json(path: str) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise DatasetSourceError(f"annotation file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetSourceError(f"{path}: cannot be read ({err})") from None
    except json.JSONDecodeError as err:
        raise DatasetSourceError(
            f"{path}: not valid JSON ({err}); expected a COCO-format JSON file"
        ) from None


def _categories(path: str) -> list[dict[str, Any]]:
    """The ``categories`` of a COCO-style JSON, sorted by id; raises ``DatasetSourceError``."""
    data = _read_json(path)
    cats = data.get("categories") if isinstance(data, dict) else None
    if not isinstance(cats, list) or not cats:
        raise DatasetSourceError(f"{path}: no 'categories' list (expected a COCO-format JSON file)")
    for cat in cats:
        if not (
            isinstance(cat, dict) and isinstance(cat.get("id"), int) and isinstance(cat.get("name"), str)
        ):
            raise DatasetSourceError(
                f"{path}: category {cat!r:.80} is malformed (expected an int id and a name)"
            )
    return sorted(cats, key=lambda c: c["id"])


@attrs.define(frozen=True, kw_only=True)
class DatasetSourceConfig(ABC):
    """One dataset entry: ``loader(name)`` returns the function ``DatasetCatalog`` calls for its dataset
    dicts, ``metadata()`` what ``MetadataCatalog`` records (read from the files; raises
    ``DatasetSourceError``)."""

    type: ClassVar[str]

    @abstractmethod
    def loader(self, name: str) -> Callable[[], list[dict]]: ...

    @abstractmethod
    def metadata(self) -> dict[str, Any]: ...


def dataset_type(cls: type[S]) -> type[S]:
    """Class decorator: entries with ``type: <cls.type>`` structure into ``cls``."""
    if cls.type in DATASET_TYPES:
        raise ValueError(f"dataset type {cls.type!r} is already registered")
    DATASET_TYPES[cls.type] = cls
    return cls


@dataset_type
@attrs.define(frozen=True, kw_only=True)
class CocoDatasetConfig(DatasetSourceConfig):
    """COCO instances JSON (boxes, masks, keypoints); evaluator ``coco``. ``keypoint_flip_map``: pairs of
    keypoint names swapped by a horizontal flip (needed to train keypoints with flips)."""

    type: ClassVar[str] = "coco"
    json_file: str = path_field()
    image_root: str = path_field()
    keypoint_flip_map: tuple[tuple[str, str], ...] = ()

    def loader(self, name: str) -> Callable[[], list[dict]]:
        return lambda: loaders.load_coco_json(self.json_file, self.image_root, name)

    def metadata(self) -> dict[str, Any]:
        cats = _categories(self.json_file)
        meta: dict[str, Any] = {
            "thing_classes": [c["name"] for c in cats],
            "thing_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(cats)},
            "json_file": self.json_file,
            "image_root": self.image_root,
            "evaluator_type": "coco",
        }
        keypoints = next((c["keypoints"] for c in cats if c.get("keypoints")), None)
        if keypoints:
            meta["keypoint_names"] = list(keypoints)
            meta["keypoint_flip_map"] = [list(pair) for pair in self.keypoint_flip_map]
        return meta


@dataset_type
@attrs.define(frozen=True, kw_only=True)
class LVISDatasetConfig(DatasetSourceConfig):
    """LVIS-format JSON; evaluator ``lvis``."""

    type: ClassVar[str] = "lvis"
    json_file: str = path_field()
    image_root: str = path_field()

    def loader(self, name: str) -> Callable[[], list[dict]]:
        return lambda: loaders.load_lvis_json(self.json_file, self.image_root, name)

    def metadata(self) -> dict[str, Any]:
        cats = _categories(self.json_file)
        return {
            "thing_classes": [c["name"] for c in cats],
            "thing_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(cats)},
            "json_file": self.json_file,
            "image_root": self.image_root,
            "evaluator_type": "lvis",
        }


@dataset_type
@attrs.define(frozen=True, kw_only=True)
class CocoPanopticDatasetConfig(DatasetSourceConfig):
    """COCO panoptic JSON + PNGs; evaluator ``coco_panoptic_seg``. Contiguous ids run over all
    categories of ``panoptic_json`` (things and stuff, by id), as detectron2's standard panoptic sets."""

    type: ClassVar[str] = "coco_panoptic"
    image_root: str = path_field()
    panoptic_root: str = path_field()
    panoptic_json: str = path_field()

    def metadata(self) -> dict[str, Any]:
        cats = _categories(self.panoptic_json)
        return {
            "thing_classes": [c["name"] for c in cats if c.get("isthing")],
            "stuff_classes": [c["name"] for c in cats],
            "thing_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(cats) if c.get("isthing")},
            "stuff_dataset_id_to_contiguous_id": {
                c["id"]: i for i, c in enumerate(cats) if not c.get("isthing")
            },
            "image_root": self.image_root,
            "panoptic_root": self.panoptic_root,
            "panoptic_json": self.panoptic_json,
            "evaluator_type": "coco_panoptic_seg",
            "ignore_label": 255,
            "label_divisor": 1000,
        }

    def loader(self, name: str) -> Callable[[], list[dict]]:
        def load() -> list[dict]:
            meta = MetadataCatalog.get(name).as_dict()
            return loaders.load_coco_panoptic_json(
                self.panoptic_json, self.image_root, self.panoptic_root, meta
            )

        return load


@dataset_type
@attrs.define(frozen=True, kw_only=True)
class SemSegDatasetConfig(DatasetSourceConfig):
    """Images and label maps paired by file name (relative path without extension); evaluator ``sem_seg``.
    Label map values index ``stuff_classes``; ``ignore_label`` marks unlabelled pixels."""

    type: ClassVar[str] = "sem_seg"
    image_root: str = path_field()
    gt_root: str = path_field()
    stuff_classes: tuple[str, ...] = attrs.field(validator=check.non_empty)
    image_ext: str = "jpg"
    gt_ext: str = "png"
    ignore_label: int = attrs.field(default=255, validator=check.between(0, 255))

    def loader(self, name: str) -> Callable[[], list[dict]]:
        return lambda: loaders.load_sem_seg(self.gt_root, self.image_root, self.gt_ext, self.image_ext)

    def metadata(self) -> dict[str, Any]:
        return {
            "stuff_classes": list(self.stuff_classes),
            "image_root": self.image_root,
            "sem_seg_root": self.gt_root,
            "ignore_label": self.ignore_label,
            "evaluator_type": "sem_seg",
        }


@dataset_type
@attrs.define(frozen=True, kw_only=True)
class PascalVOCDatasetConfig(DatasetSourceConfig):
    """A Pascal VOC split (``<dirname>/ImageSets/Main/<split>.txt``, XML annotations); evaluator
    ``pascal_voc``. ``class_names`` defaults to VOC's 20 classes."""

    type: ClassVar[str] = "pascal_voc"
    dirname: str = path_field()
    split: str = attrs.field(validator=check.non_empty)
    year: int = attrs.field(default=2007, validator=check.one_of((2007, 2012)))
    class_names: tuple[str, ...] = attrs.field(default=VOC_CLASS_NAMES, validator=check.non_empty)

    def loader(self, name: str) -> Callable[[], list[dict]]:
        return lambda: loaders.load_voc_instances(self.dirname, self.split, self.class_names)

    def metadata(self) -> dict[str, Any]:
        return {
            "thing_classes": list(self.class_names),
            "dirname": self.dirname,
            "year": self.year,
            "split": self.split,
            "evaluator_type": "pascal_voc",
        }


@dataset_type
@attrs.define(frozen=True, kw_only=True)
class CityscapesDatasetConfig(DatasetSourceConfig):
    """Cityscapes ``leftImg8bit``/``gtFine`` folders of one split; ``task`` picks the instance
    (evaluator ``cityscapes_instance``) or semantic (``cityscapes_sem_seg``) dataset."""

    type: ClassVar[str] = "cityscapes"
    image_dir: str = path_field()
    gt_dir: str = path_field()
    task: str = attrs.field(default="instance_seg", validator=check.one_of(("instance_seg", "sem_seg")))

    def loader(self, name: str) -> Callable[[], list[dict]]:
        if self.task == "sem_seg":
            return lambda: loaders.load_cityscapes_semantic(self.image_dir, self.gt_dir)
        return lambda: loaders.load_cityscapes_instances(self.image_dir, self.gt_dir)

    def metadata(self) -> dict[str, Any]:
        meta = {
            "thing_classes": list(CITYSCAPES_THINGS),
            "stuff_classes": list(CITYSCAPES_STUFF),
            "image_dir": self.image_dir,
            "gt_dir": self.gt_dir,
        }
        if self.task == "sem_seg":
            return {**meta, "evaluator_type": "cityscapes_sem_seg", "ignore_label": 255}
        return {**meta, "evaluator_type": "cityscapes_instance"}


def _structure_entry(data: Any, _: type) -> DatasetSourceConfig:
    if isinstance(data, DatasetSourceConfig):
        return data
    known = ", ".join(sorted(DATASET_TYPES))
    if not isinstance(data, Mapping):
        raise ConfigProblem(f"expected a mapping with a 'type' key ({known}), got {describe(data)}")
    kind = data.get("type")
    if kind is None:
        raise ConfigProblem(f"missing required key (one of {known})", key="type")
    if kind not in DATASET_TYPES:
        hint = did_you_mean(kind, list(DATASET_TYPES)) if isinstance(kind, str) else ""
        raise ConfigProblem(f"unknown dataset type {kind!r}{hint}; known: {known}", key="type")
    return converter.structure({k: v for k, v in data.items() if k != "type"}, DATASET_TYPES[kind])


def _unstructure_entry(entry: DatasetSourceConfig) -> dict[str, Any]:
    return {"type": type(entry).type, **converter.unstructure(entry, unstructure_as=type(entry))}


converter.register_structure_hook_func(lambda t: t is DatasetSourceConfig, _structure_entry)
converter.register_unstructure_hook_func(lambda t: t is DatasetSourceConfig, _unstructure_entry)


def resolve_paths(entries: Mapping[str, DatasetSourceConfig], base: Path) -> dict[str, DatasetSourceConfig]:
    """``entries`` with every relative (or ``~``) path made absolute against ``base``."""
    resolved = {}
    for name, entry in entries.items():
        changes = {}
        for field in attrs.fields(type(entry)):
            if field.metadata.get("path"):
                path = Path(getattr(entry, field.name)).expanduser()
                changes[field.name] = str(path if path.is_absolute() else (base / path).absolute())
        resolved[name] = attrs.evolve(entry, **changes)
    return resolved


_registered: dict[str, DatasetSourceConfig] = {}


def register_datasets(entries: Mapping[str, DatasetSourceConfig]) -> None:
    """Register every entry under its name, with its metadata; idempotent (an unchanged entry is left
    as it is, a changed one replaces the earlier registration of this function).

    Raises ``ValueError`` naming ``$.datasets.<name>`` when a metadata file is unusable or the name
    belongs to a dataset registered elsewhere.
    """
    for name, entry in entries.items():
        if _registered.get(name) == entry:
            continue
        if name in DatasetCatalog and name not in _registered:
            raise DatasetSourceError(
                f"$.datasets.{name}: a dataset named {name!r} is already registered elsewhere; rename it"
            )
        try:
            metadata = entry.metadata()
        except DatasetSourceError as err:
            raise DatasetSourceError(f"$.datasets.{name}: {err}") from None
        if name in _registered:
            DatasetCatalog.remove(name)
        if name in MetadataCatalog:  # a stale entry (metadata is write-once)
            MetadataCatalog.remove(name)
        DatasetCatalog.register(name, entry.loader(name))
        MetadataCatalog.get(name).set(**metadata)
        _registered[name] = entry
