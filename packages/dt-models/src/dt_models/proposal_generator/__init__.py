"""Proposal generators: the region proposal network and its config (importing this package registers it)."""

from dt_models.proposal_generator.proposal_utils import add_ground_truth_to_proposals, find_top_rpn_proposals
from dt_models.proposal_generator.rpn import RPN, RPNConfig, StandardRPNHead, build_rpn
from dt_models.proposal_generator.rrpn import RRPN, RRPNConfig, build_rrpn, find_top_rrpn_proposals

__all__ = [
    "RPN",
    "RPNConfig",
    "RRPN",
    "RRPNConfig",
    "StandardRPNHead",
    "add_ground_truth_to_proposals",
    "build_rpn",
    "build_rrpn",
    "find_top_rpn_proposals",
    "find_top_rrpn_proposals",
]
