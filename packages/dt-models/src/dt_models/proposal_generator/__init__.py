"""Proposal generators: the region proposal network."""

from dt_models.proposal_generator.proposal_utils import add_ground_truth_to_proposals, find_top_rpn_proposals
from dt_models.proposal_generator.rpn import RPN, StandardRPNHead

__all__ = ["RPN", "StandardRPNHead", "add_ground_truth_to_proposals", "find_top_rpn_proposals"]
