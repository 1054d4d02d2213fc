"""``dt export`` of ``DeepLabSegmentor``: dt-export's semantic segmentation graph, registered through
the ``dt_export.family`` entry point (loaded only by dt-export, so dt-deeplab does not depend on it)."""

from __future__ import annotations

from dt_export.families import ALL_FORMATS, Family
from dt_export.semantic import BatchedSemanticGraph, SemanticGraph

from .semantic_seg import DeepLabSegmentor

__all__ = ["FAMILY"]

FAMILY = Family(
    DeepLabSegmentor, SemanticGraph, ALL_FORMATS, "DeepLabSegmentor (DeepLabV3, DeepLabV3+)",
    batch_graph=BatchedSemanticGraph,
)  # fmt: skip
"""Batch-agnostic like Semantic FPN: ``dt export --dynamic-batch`` exports ``BatchedSemanticGraph``."""
