"""dt data: datasets, augmentation, mapping, sampling and loading, visualization.

Importing ``dt_data`` registers the built-in ``shapes`` datasets (generated on first load).
"""

from importlib.metadata import version

from . import datasets, transforms
from .catalog import DatasetCatalog, Metadata, MetadataCatalog
from .common import DatasetFromList, MapDataset, SerializedList
from .config import DataConfig
from .dataset_mapper import DatasetMapper
from .datasets import (
    load_coco_json,
    load_sem_seg,
    register_cityscapes,
    register_coco_instances,
    register_coco_panoptic,
    register_coco_panoptic_separated,
    register_lvis_instances,
    register_pascal_voc,
)
from .datasets._validate import AnnotationError
from .errors import DataError, ImageError
from .loaders import (
    build_detection_test_loader,
    build_detection_train_loader,
    get_detection_dataset_dicts,
)
from .samplers import (
    InferenceSampler,
    RandomSubsetTrainingSampler,
    RepeatFactorTrainingSampler,
    TrainingSampler,
)
from .visualizer import ColorMode, Visualizer

__version__ = version("dt-data")

__all__ = [
    "AnnotationError",
    "DataConfig",
    "DataError",
    "DatasetCatalog",
    "DatasetFromList",
    "DatasetMapper",
    "ImageError",
    "InferenceSampler",
    "MapDataset",
    "Metadata",
    "MetadataCatalog",
    "RandomSubsetTrainingSampler",
    "RepeatFactorTrainingSampler",
    "SerializedList",
    "TrainingSampler",
    "__version__",
    "ColorMode",
    "Visualizer",
    "build_detection_test_loader",
    "build_detection_train_loader",
    "datasets",
    "get_detection_dataset_dicts",
    "load_coco_json",
    "load_sem_seg",
    "register_cityscapes",
    "register_coco_instances",
    "register_coco_panoptic",
    "register_coco_panoptic_separated",
    "register_lvis_instances",
    "register_pascal_voc",
    "transforms",
]
