"""Layers shared by the models: convolutions, normalization, losses."""

from dt_models.layers.batch_norm import NORM_NAMES, FrozenBatchNorm2d, LayerNorm, get_norm
from dt_models.layers.cycle_batch_norm import CycleBatchNormList
from dt_models.layers.focal_loss import sigmoid_focal_loss
from dt_models.layers.losses import ciou_loss, diou_loss, giou_loss, smooth_l1_loss
from dt_models.layers.scale_gradient import scale_gradient
from dt_models.layers.sync_batch_norm import NaiveSyncBatchNorm, SyncBatchNorm, differentiable_all_reduce
from dt_models.layers.wrappers import Conv2d, ShapeSpec, cat, nonzero_tuple, shared_channels

__all__ = [
    "NORM_NAMES",
    "Conv2d",
    "CycleBatchNormList",
    "FrozenBatchNorm2d",
    "LayerNorm",
    "NaiveSyncBatchNorm",
    "SyncBatchNorm",
    "ShapeSpec",
    "cat",
    "ciou_loss",
    "differentiable_all_reduce",
    "diou_loss",
    "get_norm",
    "giou_loss",
    "nonzero_tuple",
    "scale_gradient",
    "shared_channels",
    "sigmoid_focal_loss",
    "smooth_l1_loss",
]
