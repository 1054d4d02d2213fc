"""dt-export: dt models (R-CNN, dense detectors, semantic and panoptic segmentation, and families of
projects) to ONNX, ``torch.export`` (``.pt2``) and TorchScript, each checked against the eager model,
with a JSON of the pre- and post-processing the exported file expects."""

from importlib.metadata import version

from dt_export.export import FORMATS, ExportResult, export_model
from dt_export.families import exportable_graph

__version__ = version("dt-export")

__all__ = ["FORMATS", "ExportResult", "__version__", "export_model", "exportable_graph"]
