"""dt value types: boxes, rotated boxes, instances, image lists, masks and keypoints.

Drop-in counterparts of ``detectron2.structures`` with validation and no surprise mutation.
"""

from importlib.metadata import version

from .boxes import (
    Boxes,
    BoxMode,
    matched_pairwise_iou,
    pairwise_intersection,
    pairwise_ioa,
    pairwise_iou,
    pairwise_point_box_distance,
)
from .image_list import ImageList
from .instances import Instances
from .rotated_boxes import RotatedBoxes, pairwise_iou_rotated

__version__ = version("dt-structures")

__all__ = [
    "BoxMode",
    "Boxes",
    "ImageList",
    "Instances",
    "RotatedBoxes",
    "__version__",
    "matched_pairwise_iou",
    "pairwise_intersection",
    "pairwise_ioa",
    "pairwise_iou",
    "pairwise_iou_rotated",
    "pairwise_point_box_distance",
]
