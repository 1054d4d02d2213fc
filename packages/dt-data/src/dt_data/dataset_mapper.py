"""``DatasetMapper``: one dataset dict -> the dict a model takes (detectron2 semantics)."""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence

import numpy as np
import torch

from dt_structures import Instances

from . import detection_utils as utils
from . import transforms as T
from .errors import ImageError
from .transforms.augmentation import as_generator

logger = logging.getLogger(__name__)

__all__ = ["DatasetMapper"]


class DatasetMapper:
    """Read the image (and semantic label map), apply the augmentations, and turn annotations into
    ``Instances``.

    Output: a new dict with ``image`` (``Tensor[C, H, W]`` uint8 in ``image_format``), ``height`` and
    ``width`` (the original size), ``sem_seg`` (``Tensor[H, W]`` int64) when the input has
    ``sem_seg_file_name``, ``proposals`` when configured, and in training ``instances``
    (``gt_boxes``, ``gt_classes``, optional ``gt_masks``/``gt_keypoints``, empty instances removed).
    Crowd annotations are dropped. Errors in an annotation name the image file and annotation id.
    A missing, undecodable or wrongly sized image raises (``FileNotFoundError``/``ImageError``), or
    with ``skip_bad_images`` is logged and counted (``skipped_images``) and the mapper returns None,
    so ``MapDataset`` draws another image.
    """

    def __init__(
        self,
        is_train: bool,
        *,
        augmentations: Sequence[T.Augmentation | T.Transform],
        image_format: str = "BGR",
        use_instance_mask: bool = False,
        use_keypoint: bool = False,
        instance_mask_format: str = "polygon",
        keypoint_hflip_indices: Sequence[int] | None = None,
        precomputed_proposal_topk: int | None = None,
        recompute_boxes: bool = False,
        skip_bad_images: bool = False,
    ) -> None:
        if recompute_boxes and not use_instance_mask:
            raise ValueError("DatasetMapper: recompute_boxes=True needs use_instance_mask=True")
        if instance_mask_format not in ("polygon", "bitmask"):
            raise ValueError(
                f"DatasetMapper: instance_mask_format must be polygon or bitmask, "
                f"got {instance_mask_format!r}"
            )
        if image_format not in utils.IMAGE_FORMATS:
            raise ValueError(
                f"DatasetMapper: image_format must be one of {utils.IMAGE_FORMATS}, got {image_format!r}"
            )
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.use_instance_mask = use_instance_mask
        self.instance_mask_format = instance_mask_format
        self.use_keypoint = use_keypoint
        self.keypoint_hflip_indices = (
            None if keypoint_hflip_indices is None else np.asarray(keypoint_hflip_indices)
        )
        self.proposal_topk = precomputed_proposal_topk
        self.recompute_boxes = recompute_boxes
        self.skip_bad_images = skip_bad_images
        self.skipped_images = 0

    def _transform_annotations(
        self, dataset_dict: dict, transforms: T.TransformList, image_shape: tuple[int, int]
    ) -> None:
        annos = []
        for anno in dataset_dict.pop("annotations"):
            if anno.get("iscrowd", 0) != 0:
                continue
            anno = dict(anno)
            if not self.use_instance_mask:
                anno.pop("segmentation", None)
            if not self.use_keypoint:
                anno.pop("keypoints", None)
            try:
                annos.append(
                    utils.transform_instance_annotations(
                        anno, transforms, image_shape, keypoint_hflip_indices=self.keypoint_hflip_indices
                    )
                )
            except (ValueError, TypeError) as e:
                raise ValueError(
                    f"{dataset_dict.get('file_name', '<no file_name>')}: "
                    f"annotation id={anno.get('id', '?')}: {e}"
                ) from e
        try:
            instances = self._annotations_to_instances(annos, image_shape)
        except ValueError as e:
            raise ValueError(f"{dataset_dict.get('file_name', '<no file_name>')}: {e}") from e
        if self.recompute_boxes and instances.has("gt_masks"):
            instances.gt_boxes = instances.gt_masks.get_bounding_boxes()
        dataset_dict["instances"] = utils.filter_empty_instances(instances)

    def _annotations_to_instances(self, annos: list[dict], image_shape: tuple[int, int]) -> Instances:
        """``gt_boxes`` as ``RotatedBoxes`` when the annotations are rotated (XYWHA_ABS), else ``Boxes``
        with masks and keypoints; a mix of the two is an error."""
        rotated = [utils.is_rotated(a) for a in annos]
        if not any(rotated):
            return utils.annotations_to_instances(annos, image_shape, mask_format=self.instance_mask_format)
        if not all(rotated):
            raise ValueError("annotations mix rotated (XYWHA_ABS) and axis-aligned boxes")
        return utils.annotations_to_instances_rotated(annos, image_shape)

    def __call__(self, dataset_dict: dict, rng: np.random.Generator | None = None) -> dict:
        """Map one dataset dict; ``rng`` drives the augmentations (fresh OS entropy when None)."""
        dataset_dict = copy.deepcopy(dataset_dict)
        if "file_name" not in dataset_dict:
            raise ValueError(f"dataset dict has no 'file_name' (keys: {sorted(dataset_dict)})")
        try:
            image = utils.read_image(dataset_dict["file_name"], format=self.image_format)
            utils.check_image_size(dataset_dict, image)
        except (FileNotFoundError, ImageError) as err:
            if not self.skip_bad_images:
                raise
            self.skipped_images += 1
            logger.warning(
                "skipped bad training image %d of this process (data.loader.skip_bad_images): %s",
                self.skipped_images,
                err,
            )
            return None  # type: ignore[return-value]  (MapDataset draws another image)
        dataset_dict.setdefault("height", image.shape[0])
        dataset_dict.setdefault("width", image.shape[1])
        sem_seg_gt = None
        if "sem_seg_file_name" in dataset_dict:
            sem_seg_gt = utils.read_image(dataset_dict.pop("sem_seg_file_name"), "L").squeeze(2)
            if sem_seg_gt.shape != image.shape[:2]:
                raise utils.SizeMismatchError(
                    f"{dataset_dict['file_name']}: semantic label map of size {sem_seg_gt.shape} does not "
                    f"match the image size {image.shape[:2]}"
                )
        aug_input = T.AugInput(image, sem_seg=sem_seg_gt)
        transforms = self.augmentations(aug_input, as_generator(rng))
        image, sem_seg_gt = aug_input.image, aug_input.sem_seg
        image_shape = image.shape[:2]
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if sem_seg_gt is not None:
            dataset_dict["sem_seg"] = torch.as_tensor(sem_seg_gt.astype(np.int64))
        if self.proposal_topk is not None:
            dataset_dict = utils.transform_proposals(
                dataset_dict, image_shape, transforms, proposal_topk=self.proposal_topk
            )
        if not self.is_train:
            dataset_dict.pop("annotations", None)
            dataset_dict.pop("sem_seg_file_name", None)
            return dataset_dict
        if "annotations" in dataset_dict:
            self._transform_annotations(dataset_dict, transforms, image_shape)
        return dataset_dict

    def __repr__(self) -> str:
        return (
            f"DatasetMapper(is_train={self.is_train}, augmentations={self.augmentations!r}, "
            f"image_format={self.image_format!r}, use_instance_mask={self.use_instance_mask}, "
            f"instance_mask_format={self.instance_mask_format!r}, use_keypoint={self.use_keypoint}, "
            f"recompute_boxes={self.recompute_boxes})"
        )
