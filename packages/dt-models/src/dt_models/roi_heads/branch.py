"""``ROIBranch``: an extra head of the ROI heads (masks, keypoints, DensePose, a project's own), and
``ROIBranches``, the config mapping that names them.

A branch is a registered part (``ROI_BRANCH_REGISTRY``, entry-point group ``dt_models.roi_branch``)
with its own config class deriving from ``ROIBranchConfig``. In a config, the ROI heads hold them by
name; errors inside a branch are reported at ``$.roi_heads.branches.<name>.<key>``::

    roi_heads:
      branches:
        mask: {name: MaskBranch, pooler: {resolution: 14}, head: {num_conv: 4}}
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Sequence
from typing import Any

import attrs
import torch
from torch import nn

from dt_config import ConfigProblem
from dt_models.poolers import ROIPooler
from dt_models.registry import ROIBranchConfig
from dt_structures import Boxes, Instances

__all__ = ["ROIBranch", "ROIBranches", "check_branches"]

ROIBranches = dict[str, ROIBranchConfig]
"""The type of a config field holding named branches: branch name (an identifier) -> branch config."""

_MODULE_DICT_ATTRIBUTES = frozenset(dir(nn.ModuleDict()))  # names an nn.ModuleDict cannot take as keys


def check_branches(_: Any, attribute: attrs.Attribute, value: Any) -> None:
    """attrs validator of a ``ROIBranches`` field: identifier names, ``ROIBranchConfig`` values."""
    for name, branch in value.items():
        if not (isinstance(name, str) and name.isidentifier()) or name in _MODULE_DICT_ATTRIBUTES:
            raise ConfigProblem(
                f"branch names must be identifiers that are not nn.ModuleDict attributes, got {name!r}",
                key=attribute.name,
            )
        if not isinstance(branch, ROIBranchConfig):
            raise ConfigProblem(
                f"expected a ROIBranchConfig, got {type(branch).__name__}", key=f"{attribute.name}.{name}"
            )


class ROIBranch(nn.Module, metaclass=ABCMeta):
    """An extra head of ``StandardROIHeads``, run after the box branch, sharing its proposal sampling.

    The ROI heads pool the branch's ``in_features`` with its ``pooler`` (:meth:`pool`) and call it:

    * training: ``forward(pooled, instances)`` returns a dict of named scalar losses. ``instances``
      are, per image, the sampled foreground proposals (``proposal_boxes``, ``gt_classes`` and every
      ``gt_*`` field of the matched ground truth) that :meth:`select_training_instances` keeps;
      ``pooled`` is ``Tensor[R, C, S, S]``, pooled at their ``proposal_boxes`` in image order.
    * inference: ``forward(pooled, instances)`` sets the branch's per-instance fields (``pred_masks``,
      ...) on the detections ``instances`` (``pred_boxes``, ``pred_classes``, ``scores``), pooled at
      ``pred_boxes``, and returns them.

    Args:
        in_features: the backbone feature maps the pooler reads, finest first.
        pooler: pools ``Tensor[R, C, S, S]`` regions from those maps.
    """

    def __init__(self, *, in_features: Sequence[str], pooler: ROIPooler) -> None:
        super().__init__()
        if not in_features:
            raise ValueError("a ROI branch needs at least one feature map in in_features")
        self.in_features = list(in_features)
        self.pooler = pooler

    def select_training_instances(self, foreground: list[Instances]) -> list[Instances]:
        """Per image, the foreground proposals the branch trains on: all of them (a keypoint branch
        would keep those with visible keypoints)."""
        return foreground

    def pool(self, features: dict[str, torch.Tensor], boxes: Sequence[Boxes]) -> torch.Tensor:
        """``Tensor[R, C, S, S]`` features of ``boxes`` (per image, input pixels) from ``in_features``."""
        return self.pooler([features[f] for f in self.in_features], boxes)

    @abstractmethod
    def forward(
        self, pooled: torch.Tensor, instances: list[Instances]
    ) -> dict[str, torch.Tensor] | list[Instances]:
        """Training: losses of ``pooled`` ``Tensor[R, C, S, S]``; inference: ``instances`` with the
        branch's fields set (see the class docstring)."""
