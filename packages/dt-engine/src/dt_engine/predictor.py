"""``Predictor``: one image in, the model's outputs for it out (detectron2's ``DefaultPredictor`` role).

It applies exactly what evaluation applies: the image converted to the data config's input format
(``data.input.format``, which the config checks equals the model's), then the test-time
augmentation dt-data's test mapper uses (``build_augmentation(cfg.data.input, is_train=False)``:
the shortest edge resized to ``min_size_test``, capped by ``max_size_test``)::

    predictor = Predictor(load_experiment("output/config.yaml"), weights="output/model_final.pth")
    outputs = predictor(cv2.imread("photo.jpg"))        # BGR uint8 [H, W, 3]
    outputs["instances"]                                 # boxes/masks at the photo's resolution
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from dt_data import transforms as T
from dt_data.detection_utils import build_augmentation, convert_PIL_to_numpy
from dt_models import build_model

from .comm import default_device
from .config.experiment import ExperimentConfig
from .weights import load_model_weights

__all__ = ["Predictor"]


class Predictor:
    """Runs a model on single images with the config's test-time preprocessing.

    Args:
        cfg: the experiment config (``data.input`` decides format and resizing; ``model`` builds
            the model when ``model`` is not given).
        weights: weights file to load into a model built from ``cfg.model`` on this process's
            device (``use_ema``: the averaged weights of a dt checkpoint).
        model: an already built model (its weights are used as they are) instead of ``weights``.
    """

    def __init__(
        self,
        cfg: ExperimentConfig,
        weights: str | os.PathLike[str] | None = None,
        *,
        model: nn.Module | None = None,
        use_ema: bool = False,
    ) -> None:
        if (weights is None) == (model is None):
            raise ValueError("Predictor needs exactly one of weights= (a file) and model= (a built model)")
        if model is None:
            model = build_model(cfg.model, default_device())
            load_model_weights(model, weights, use_ema=use_ema)  # type: ignore[arg-type]
        self.cfg = cfg
        self.model = model
        self.input_format = cfg.data.input.format
        self.augmentations = T.AugmentationList(build_augmentation(cfg.data.input, is_train=False))

    def preprocess(self, image: np.ndarray) -> dict[str, Any]:
        """The model input for one BGR uint8 image ``[H, W, 3]``: ``image`` (``Tensor[C, H', W']`` in
        the input format, resized), ``height``/``width`` (the original size, the output resolution)."""
        if (
            not isinstance(image, np.ndarray)
            or image.ndim != 3
            or image.shape[2] != 3
            or image.dtype != np.uint8
        ):
            got = (
                f"{image.dtype} array of shape {list(image.shape)}"
                if isinstance(image, np.ndarray)
                else type(image).__name__
            )
            raise ValueError(f"Predictor expects one BGR uint8 image of shape [H, W, 3], got a {got}")
        height, width = image.shape[:2]
        if self.input_format != "BGR":
            rgb = Image.fromarray(np.ascontiguousarray(image[:, :, ::-1]))
            image = convert_PIL_to_numpy(rgb, self.input_format)  # [H, W, C] in the input format
        aug_input = T.AugInput(image)
        self.augmentations(aug_input, np.random.default_rng(0))  # the test transform is deterministic
        tensor = torch.as_tensor(np.ascontiguousarray(aug_input.image.transpose(2, 0, 1)))  # [C, H', W']
        return {"image": tensor, "height": height, "width": width}

    def __call__(self, image: np.ndarray) -> dict[str, Any]:
        """The model's output dict for ``image`` (BGR uint8 ``[H, W, 3]``, as ``cv2.imread`` gives):
        ``instances``, ``sem_seg``, ``panoptic_seg``, ... at the image's original resolution.
        The model runs in eval mode without gradients; its training flag is restored afterwards."""
        inputs = self.preprocess(image)
        training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                return self.model([inputs])[0]
        finally:
            self.model.train(training)
