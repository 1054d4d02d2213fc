"""Layers shared by the models: convolutions, normalization, losses."""

from dt_models.layers.batch_norm import NORM_NAMES, FrozenBatchNorm2d, LayerNorm, get_norm
from dt_models.layers.losses import ciou_loss, diou_loss, giou_loss, smooth_l1_loss
from dt_models.layers.wrappers import Conv2d, ShapeSpec, cat, nonzero_tuple, shared_channels

__all__ = [
    "NORM_NAMES",
    "Conv2d",
    "FrozenBatchNorm2d",
    "LayerNorm",
    "ShapeSpec",
    "cat",
    "ciou_loss",
    "diou_loss",
    "get_norm",
    "giou_loss",
    "nonzero_tuple",
    "shared_channels",
    "smooth_l1_loss",
]
