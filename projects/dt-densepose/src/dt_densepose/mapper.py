"""``DensePoseDatasetMapper``: dt's ``DatasetMapper`` that also turns DensePose annotations into
``gt_densepose`` on the training ``Instances`` (a ``DensePoseList``: one ``DensePoseDataRelative`` or
``None`` per instance)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dt_data import detection_utils as utils
from dt_data import transforms as T
from dt_data.dataset_mapper import DatasetMapper
from dt_structures import BoxMode

from .structures import DensePoseDataRelative, DensePoseList, has_densepose
from .symmetry import ChartSymmetry

__all__ = ["DensePoseDatasetMapper"]


class DensePoseDatasetMapper(DatasetMapper):
    """As ``DatasetMapper``; in training each kept instance also gets its DensePose annotation.

    Args:
        symmetry: the chart flip symmetries, or a function returning them (called once, on the first
            flipped image, so a set trained without flips needs no symmetry file).
        num_parts, num_mask_parts: fine and coarse part counts the annotations are checked against.
        Other arguments as for ``DatasetMapper``.
    """

    def __init__(
        self,
        is_train: bool,
        *,
        symmetry: ChartSymmetry | Callable[[], ChartSymmetry] | None,
        num_parts: int = 24,
        num_mask_parts: int = 14,
        **kwargs,
    ) -> None:
        super().__init__(is_train, **kwargs)
        self._symmetry = symmetry
        self.num_parts = num_parts
        self.num_mask_parts = num_mask_parts

    @property
    def symmetry(self) -> ChartSymmetry | None:
        if callable(self._symmetry):
            self._symmetry = self._symmetry()
        return self._symmetry

    def _transform_annotations(
        self, dataset_dict: dict, transforms: T.TransformList, image_shape: tuple[int, int]
    ) -> None:
        file_name = dataset_dict.get("file_name", "<no file_name>")
        source_hw = (int(dataset_dict["height"]), int(dataset_dict["width"]))
        annos, densepose = [], []
        for anno in dataset_dict.pop("annotations"):
            if anno.get("iscrowd", 0) != 0:
                continue
            loc = f"{file_name}: annotation id={anno.get('id', '?')}"
            anno = dict(anno)
            if not self.use_instance_mask:
                anno.pop("segmentation", None)
            if not self.use_keypoint:
                anno.pop("keypoints", None)
            try:
                moved = utils.transform_instance_annotations(
                    anno, transforms, image_shape, keypoint_hflip_indices=self.keypoint_hflip_indices
                )
            except (ValueError, TypeError) as e:
                raise ValueError(f"{loc}: {e}") from e
            data = None
            if has_densepose(anno):
                data = DensePoseDataRelative.from_annotation(
                    anno, num_parts=self.num_parts, num_mask_parts=self.num_mask_parts, loc=loc
                )
                box = BoxMode.convert(
                    np.asarray(anno["bbox"], np.float64), anno["bbox_mode"], BoxMode.XYXY_ABS
                )
                symmetry = self.symmetry if _has_flip(transforms) else None
                data = data.transformed(box, moved["bbox"], transforms, source_hw, symmetry)
            annos.append(moved)
            densepose.append(data)
        try:
            instances = utils.annotations_to_instances(
                annos, image_shape, mask_format=self.instance_mask_format
            )
        except ValueError as e:
            raise ValueError(f"{file_name}: {e}") from e
        instances.gt_densepose = DensePoseList(densepose)
        if self.recompute_boxes and instances.has("gt_masks"):
            instances.gt_boxes = instances.gt_masks.get_bounding_boxes()
        dataset_dict["instances"] = utils.filter_empty_instances(instances)


def _has_flip(transforms: T.TransformList) -> bool:
    return any(isinstance(t, T.HFlipTransform) for t in transforms.transforms)
