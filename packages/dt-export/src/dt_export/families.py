"""Which model families export, and to which formats: the graph module that flattens each one.

A family joins by adding an entry to ``FAMILIES``: its meta-architecture class, the function that
wraps a built model into a capturable ``nn.Module`` (one image ``Tensor[C, H, W]`` in, a tuple of
tensors named by its ``output_names`` out) and the formats it is tested in.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
from torch import nn

from dt_models.meta_arch import GeneralizedRCNN

from .rcnn import RCNNGraph

__all__ = ["FAMILIES", "Family", "exportable_graph"]

ALL_FORMATS = ("onnx", "exported-program", "torchscript")


@attrs.define(frozen=True)
class Family:
    """An exportable family: ``description`` names the parts it covers."""

    model_class: type[nn.Module]
    graph: Callable[[nn.Module], nn.Module]
    formats: tuple[str, ...]
    description: str


FAMILIES = (
    Family(
        GeneralizedRCNN,
        RCNNGraph,
        ALL_FORMATS,
        "GeneralizedRCNN (Faster/Mask R-CNN: RPN, StandardROIHeads, optional mask branch)",
    ),
)


def _supported() -> str:
    return "; ".join(f"{f.description} to {', '.join(f.formats)}" for f in FAMILIES)


def exportable_graph(model: nn.Module, format: str) -> nn.Module:
    """The capturable graph module of ``model`` for ``format``; ``ValueError`` (one line naming what is
    supported) for a family or a family/format combination that does not export."""
    family = next((f for f in FAMILIES if type(model) is f.model_class), None)
    if family is None:
        raise ValueError(f"dt export does not support {type(model).__name__}; supported: {_supported()}")
    if format not in family.formats:
        raise ValueError(
            f"dt export does not support {type(model).__name__} to {format}; supported: {_supported()}"
        )
    try:
        return family.graph(model)
    except ValueError as err:
        raise ValueError(f"{err}; supported: {_supported()}") from None
