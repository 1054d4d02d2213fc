"""dt data: datasets, augmentation, mapping, sampling and loading, visualization.

Importing ``dt_data`` registers the built-in ``shapes`` datasets (generated on first load).
"""

from importlib.metadata import version

from . import datasets, transforms
from .catalog import DatasetCatalog, Metadata, MetadataCatalog
from .common import DatasetFromList, MapDataset, SerializedList
from .config import DataConfig
from .dataset_mapper import DatasetMapper
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
    "DataConfig",
    "DatasetCatalog",
    "DatasetFromList",
    "DatasetMapper",
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
    "transforms",
]
