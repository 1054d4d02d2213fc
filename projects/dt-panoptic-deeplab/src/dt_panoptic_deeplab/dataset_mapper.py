"""``PanopticDeepLabDatasetMapper``: read an image and its panoptic PNG, augment both alike, and attach
the Panoptic-DeepLab training targets (``PanopticDeepLabTargetGenerator``)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch

from dt_data import detection_utils as utils
from dt_data import transforms as T
from dt_eval.panoptic_evaluation import rgb2id

__all__ = ["PanopticDeepLabDatasetMapper"]


class PanopticDeepLabDatasetMapper:
    """Callable on a dataset dict with ``file_name``, ``pan_seg_file_name`` and ``segments_info``
    (contiguous ``category_id``): returns it with ``image`` (``Tensor[C, H, W]`` uint8) and the target
    generator's fields. The panoptic PNG goes through the augmentations as a label map (nearest)."""

    def __init__(
        self,
        *,
        augmentations: Sequence[T.Augmentation | T.Transform],
        image_format: str,
        target_generator: Callable[[np.ndarray, list[dict]], dict],
    ) -> None:
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.target_generator = target_generator

    def __call__(self, dataset_dict: dict, rng: np.random.Generator | None = None) -> dict:
        """Map one dataset dict; ``rng`` drives the augmentations."""
        dataset_dict = copy.deepcopy(dataset_dict)
        if "pan_seg_file_name" not in dataset_dict or "segments_info" not in dataset_dict:
            raise ValueError(
                f"{dataset_dict.get('file_name')}: Panoptic-DeepLab trains on panoptic datasets "
                "(pan_seg_file_name and segments_info); use a *_panoptic dataset"
            )
        image = utils.read_image(dataset_dict["file_name"], format=self.image_format)
        utils.check_image_size(dataset_dict, image)
        panoptic_rgb = utils.read_image(dataset_dict.pop("pan_seg_file_name"), "RGB")
        aug_input = T.AugInput(image, sem_seg=panoptic_rgb)
        self.augmentations(aug_input, rng)  # rng None: fresh OS entropy
        image, panoptic_rgb = aug_input.image, aug_input.sem_seg
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        dataset_dict.update(self.target_generator(rgb2id(panoptic_rgb), dataset_dict["segments_info"]))
        return dataset_dict
