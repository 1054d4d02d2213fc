"""Which model families export, and to which formats: the graph module that flattens each one.

A family is a ``Family``: its meta-architecture class (and, where one class holds several families,
the ``accepts`` test that tells them apart), the function that wraps a built model into a
capturable :class:`~dt_export.graph.ExportGraph`, the formats it is tested in and, for a
batch-agnostic family, the graph of a batch (``batch_graph``: ``dt export --dynamic-batch``), and
whether its ``.pt2`` is verified to compile with AOTInductor (``aot_inductor``). dt-export's own
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
from .semantic import BatchedSemanticGraph, SemanticGraph

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
    model of ``model_class`` belongs to it (the first family that accepts a model exports it);
    ``batch_graph`` wraps a model into a graph of a batch ``Tensor[B, C, H, W]`` of same-size images
    (``None``: the family exports one image at a time); ``aot_inductor``: its exported program is
    verified to compile with AOTInductor and to match the eager model on two sizes."""

    model_class: type[nn.Module]
    graph: Callable[[nn.Module], ExportGraph]
    formats: tuple[str, ...]
    description: str
    accepts: Callable[[nn.Module], bool] = _any_model
    batch_graph: Callable[[nn.Module], ExportGraph] | None = None
    aot_inductor: bool = False


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
    Family(RetinaNet, DenseGraph, ALL_FORMATS, "RetinaNet", aot_inductor=True),
    Family(FCOS, DenseGraph, ALL_FORMATS, "FCOS", aot_inductor=True),
    Family(
        SemanticSegmentor,
        SemanticGraph,
        ALL_FORMATS,
        "SemanticSegmentor (Semantic FPN)",
        batch_graph=BatchedSemanticGraph,
        aot_inductor=True,
    ),
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


def _name(family: Family) -> str:
    return family.description.split(" (")[0]


def exportable_graph(
    model: nn.Module, format: str, *, dynamic_batch: bool = False, aot_inductor: bool = False
) -> ExportGraph:
    """The capturable graph module of ``model`` for ``format`` (of a batch ``Tensor[B, C, H, W]`` when
    ``dynamic_batch``; ``aot_inductor``: to be compiled by AOTInductor); ``ValueError`` (one line
    naming what is supported) for a family, a family/format combination, a batch or an AOTInductor
    compilation that does not export."""
    family = next((f for f in families() if type(model) is f.model_class and f.accepts(model)), None)
    if family is None:
        raise ValueError(f"dt export does not support {type(model).__name__}; supported: {_supported()}")
    if format not in family.formats:
        raise ValueError(f"dt export does not support {_name(family)} to {format}; supported: {_supported()}")
    if dynamic_batch and family.batch_graph is None:
        batched = ", ".join(f.description for f in families() if f.batch_graph is not None)
        raise ValueError(
            f"dt export --dynamic-batch does not support {_name(family)} (its graph takes one image); "
            f"supported: {batched}"
        )
    if aot_inductor and format != "exported-program":
        raise ValueError(f"dt export --aot-inductor compiles an exported program, not {format}: "
                         "use --format exported-program")  # fmt: skip
    if aot_inductor and not family.aot_inductor:
        verified = ", ".join(f.description for f in families() if f.aot_inductor)
        raise ValueError(
            f"dt export --aot-inductor is not verified for {_name(family)}; supported: {verified}"
        )
    try:
        return (family.batch_graph if dynamic_batch else family.graph)(model)
    except ValueError as err:
        raise ValueError(f"{err}; supported: {_supported()}") from None
