"""Proposal generators: the region proposal network, its rotated variant and precomputed proposals, with
their configs (importing this package registers them)."""

from dt_models.proposal_generator.precomputed import (
    PrecomputedProposalsConfig,
    build_precomputed_proposals,
    proposals_from_inputs,
)
from dt_models.proposal_generator.proposal_utils import add_ground_truth_to_proposals, find_top_rpn_proposals
from dt_models.proposal_generator.rpn import RPN, RPNConfig, StandardRPNHead, build_rpn
from dt_models.proposal_generator.rrpn import RRPN, RRPNConfig, build_rrpn, find_top_rrpn_proposals

__all__ = [
    "PrecomputedProposalsConfig",
    "RPN",
    "RPNConfig",
    "RRPN",
    "RRPNConfig",
    "StandardRPNHead",
    "add_ground_truth_to_proposals",
    "build_precomputed_proposals",
    "build_rpn",
    "build_rrpn",
    "find_top_rpn_proposals",
    "find_top_rrpn_proposals",
    "proposals_from_inputs",
]
