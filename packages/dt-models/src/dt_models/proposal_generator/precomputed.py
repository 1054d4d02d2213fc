"""Precomputed proposals (Fast R-CNN): the ``PrecomputedProposals`` proposal generator.

It builds no module, as detectron2's does: a ``GeneralizedRCNN`` without a proposal generator reads
each input's ``proposals`` (``Instances`` with ``proposal_boxes`` and ``objectness_logits`` on the
input image, which dt-data's mapper makes from a proposal file: ``data.datasets.proposal_files_*``)::

    model: {proposal_generator: {name: PrecomputedProposals}}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
import torch

from dt_models.layers import ShapeSpec
from dt_models.registry import PROPOSAL_GENERATOR_REGISTRY, ProposalGeneratorConfig
from dt_structures import Instances

__all__ = ["PrecomputedProposalsConfig", "build_precomputed_proposals", "proposals_from_inputs"]


@attrs.define(frozen=True, kw_only=True)
class PrecomputedProposalsConfig(ProposalGeneratorConfig):
    """Proposals come with the inputs (``batched_inputs[i]["proposals"]``); no network computes them."""

    name: ClassVar[str] = "PrecomputedProposals"


@PROPOSAL_GENERATOR_REGISTRY.register(PrecomputedProposalsConfig)
def build_precomputed_proposals(
    config: PrecomputedProposalsConfig, input_shape: dict[str, ShapeSpec]
) -> None:
    """``None``: the model takes its proposals from its inputs (:func:`proposals_from_inputs`)."""
    return None


def proposals_from_inputs(batched_inputs: Sequence[dict[str, Any]], device: torch.device) -> list[Instances]:
    """Each input's ``proposals`` on ``device``; ``ValueError`` naming the first input without them."""
    for index, inputs in enumerate(batched_inputs):
        if "proposals" not in inputs:
            raise ValueError(
                f"input {index} has no 'proposals': a model with precomputed proposals needs a proposal "
                "file per dataset (data.datasets.proposal_files_train / proposal_files_test)"
            )
    return [inputs["proposals"].to(device) for inputs in batched_inputs]
