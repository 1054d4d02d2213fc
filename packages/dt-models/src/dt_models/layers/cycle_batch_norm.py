"""``CycleBatchNormList``: one BatchNorm per feature level for a head shared by all levels, with one
affine transform (detectron2's layer of the same name, used by RetinaNet heads with ``norm: BN``)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CycleBatchNormList"]


class CycleBatchNormList(nn.ModuleList):
    """``length`` BatchNorms without affine parameters, used in turn: the i-th call normalizes with
    the statistics of BN ``i mod length``; then one shared ``weight``/``bias`` (``Tensor[C]``) scale
    and shift. A head applied to levels P3..P7 in order thus keeps one set of statistics per level
    (their activations differ too much to share one) while its parameters stay shared.

    Calls must follow the level order, once per level per forward (as detectron2's RetinaNet head
    does). State dict names are detectron2's: ``weight``, ``bias``, ``<i>.running_mean``, ...

    Args:
        length: number of levels.
        bn_class: the BatchNorm class (``nn.BatchNorm2d``, a SyncBatchNorm), built as
            ``bn_class(num_features, affine=False, **kwargs)``.
        num_features: channels ``C``.
    """

    def __init__(self, length: int, num_features: int, bn_class: type[nn.Module] = nn.BatchNorm2d, **kwargs):
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        super().__init__([bn_class(num_features, affine=False, **kwargs) for _ in range(length)])
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self._pos = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[N, C, H, W]`` normalized by the next BN in the cycle, then scaled and shifted."""
        out = self[self._pos](x)
        self._pos = (self._pos + 1) % len(self)
        return out * self.weight.reshape(1, -1, 1, 1) + self.bias.reshape(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"length={len(self)}, num_features={self.weight.numel()}"
