"""dt value types: boxes, rotated boxes, instances, image lists, masks and keypoints.

Drop-in counterparts of ``detectron2.structures``: detectron2's names keep detectron2's meaning
(``Boxes.clip`` clips in place), invalid arguments raise ``ValueError``/``TypeError``.
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
from .keypoints import Keypoints, heatmaps_to_keypoints, keypoints_to_heatmap
from .mask_paste import paste_masks_in_image
from .masks import (
    BitMasks,
    PolygonMasks,
    ROIMasks,
    polygon_area,
    polygons_to_bitmask,
    rasterize_polygons_within_box,
)
from .rotated_boxes import RotatedBoxes, pairwise_iou_rotated

__version__ = version("dt-structures")

__all__ = [
    "BitMasks",
    "BoxMode",
    "Boxes",
    "ImageList",
    "Instances",
    "Keypoints",
    "PolygonMasks",
    "ROIMasks",
    "RotatedBoxes",
    "__version__",
    "heatmaps_to_keypoints",
    "keypoints_to_heatmap",
    "matched_pairwise_iou",
    "pairwise_intersection",
    "pairwise_ioa",
    "pairwise_iou",
    "pairwise_iou_rotated",
    "pairwise_point_box_distance",
    "paste_masks_in_image",
    "polygon_area",
    "polygons_to_bitmask",
    "rasterize_polygons_within_box",
]
