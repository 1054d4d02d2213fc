"""Which model families export, and to which formats: the graph module that flattens each one.

A family is a ``Family``: its meta-architecture class (and, where one class holds several families,
the ``accepts`` test that tells them apart), the function that wraps a built model into a
capturable :class:`~dt_export.graph.ExportGraph` and the formats it is tested in. dt-export's own
families are ``FAMILIES``; a package adds its own without touching dt-export by naming a ``Family``
in the entry-point group ``dt_export.family`` (the same contract as ``dt_engine.prediction_output``)::

    [project.entry-points."dt_export.family"]
    DeepLabSegmentor = "dt_deeplab.export:FAMILY"
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
from torch import nn

from dt_config import load_entry_points
from dt_models.meta_arch import FCOS, GeneralizedRCNN, PanopticFPN, RetinaNet, SemanticSegmentor

from .dense import DenseGraph
from .graph import ExportGraph
from .panoptic_fpn import PanopticFPNGraph
from .rcnn import RCNNGraph
from .rotated_rcnn import RotatedRCNNGraph, is_rotated_rcnn
from .semantic import SemanticGraph

__all__ = [
    "ALL_FORMATS",
    "FAMILIES",
    "FAMILY_GROUP",
    "TORCH_FORMATS",
    "Family",
    "exportable_graph",
    "families",
]

ALL_FORMATS = ("onnx", "exported-program", "torchscript")
TORCH_FORMATS = ("exported-program", "torchscript")
FAMILY_GROUP = "dt_export.family"


def _any_model(model: nn.Module) -> bool:
    return True


@attrs.define(frozen=True)
class Family:
    """An exportable family: ``description`` names the parts it covers; ``accepts`` tells whether a
    model of ``model_class`` belongs to it (the first family that accepts a model exports it)."""

    model_class: type[nn.Module]
    graph: Callable[[nn.Module], ExportGraph]
    formats: tuple[str, ...]
    description: str
    accepts: Callable[[nn.Module], bool] = _any_model


FAMILIES = (
    Family(
        GeneralizedRCNN,
        RCNNGraph,
        ALL_FORMATS,
        "GeneralizedRCNN (Faster/Mask/Keypoint R-CNN, Cascade, C4: RPN; Standard, Cascade or Res5 "
        "ROI heads; mask and keypoint branches)",
        accepts=lambda model: not is_rotated_rcnn(model),
    ),
    Family(
        GeneralizedRCNN,
        RotatedRCNNGraph,
        TORCH_FORMATS,
        "rotated GeneralizedRCNN (RRPN, RROIHeads; rotated NMS and ROIAlignRotated are dt-ops kernels "
        "without a standard ONNX operator)",
        accepts=is_rotated_rcnn,
    ),
    Family(RetinaNet, DenseGraph, ALL_FORMATS, "RetinaNet"),
    Family(FCOS, DenseGraph, ALL_FORMATS, "FCOS"),
    Family(SemanticSegmentor, SemanticGraph, ALL_FORMATS, "SemanticSegmentor (Semantic FPN)"),
    Family(PanopticFPN, PanopticFPNGraph, ALL_FORMATS, "PanopticFPN"),
)

_loaded: list[Family] | None = None


def families() -> list[Family]:
    """``FAMILIES`` and those of the ``dt_export.family`` entry points (loaded once); ``ValueError``
    (one line naming the entry point) for one that fails to load or is no ``Family``."""
    global _loaded
    if _loaded is None:
        found = list(FAMILIES)
        for where, family in load_entry_points(FAMILY_GROUP):
            if not isinstance(family, Family):
                raise ValueError(f"{where} is {type(family).__name__}, expected a dt_export.families.Family")
            found.append(family)
        _loaded = found
    return _loaded


def _supported() -> str:
    return "; ".join(f"{f.description} to {', '.join(f.formats)}" for f in families())


def exportable_graph(model: nn.Module, format: str) -> ExportGraph:
    """The capturable graph module of ``model`` for ``format``; ``ValueError`` (one line naming what is
    supported) for a family or a family/format combination that does not export."""
    family = next((f for f in families() if type(model) is f.model_class and f.accepts(model)), None)
    if family is None:
        raise ValueError(f"dt export does not support {type(model).__name__}; supported: {_supported()}")
    if format not in family.formats:
        name = family.description.split(" (")[0]
        raise ValueError(f"dt export does not support {name} to {format}; supported: {_supported()}")
    try:
        return family.graph(model)
    except ValueError as err:
        raise ValueError(f"{err}; supported: {_supported()}") from None
