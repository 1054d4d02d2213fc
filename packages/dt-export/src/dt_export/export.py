"""``export_model``: write a model as ONNX, ``.pt2`` or TorchScript with a JSON of its pre/post-processing,
after running the written file on sample images and comparing it with the eager model.

Everything is written into a staging folder next to the output folder and moved into place only
once the check passed, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn
from torch.nn import functional as F

from .check import Comparison, compare_outputs
from .families import exportable_graph
from .graph import OUTPUTS, ExportGraph
from .runtime import load_exported

__all__ = [
    "FORMATS",
    "MODEL_FILES",
    "ExportCheckError",
    "ExportResult",
    "export_model",
    "spec_file_name",
]

FORMATS = ("onnx", "exported-program", "torchscript")
MODEL_FILES = {"onnx": "model.onnx", "exported-program": "model.pt2", "torchscript": "model.ts"}
MAX_SIDE = 8192


def spec_file_name(format: str) -> str:
    """The JSON next to the model file: ``model.onnx.json``, ``model.pt2.json``, ``model.ts.json``."""
    return f"{MODEL_FILES[format]}.json"


class ExportCheckError(RuntimeError):
    """The exported model's detections differ from the eager model's."""


@attrs.define(frozen=True, kw_only=True)
class ExportResult:
    """Where the files went and the comparisons the check made (one per sample size)."""

    model_file: Path
    spec_file: Path
    format: str
    comparisons: tuple[Comparison, ...]

    def summary(self) -> str:
        """One line: the file and the check, e.g. ``model.onnx (onnx): checked with onnxruntime vs
        eager on 384x384: 100/100 detections, ...``."""
        checks = "; ".join(c.describe() for c in self.comparisons)
        return f"{self.model_file} ({self.format}): checked vs eager on {checks}"


def _side_range(model: nn.Module, graph: ExportGraph) -> tuple[int, int]:
    """The smallest and largest image side exported. The shape solver needs the coarsest feature map
    (and the padding unit) to be at least 2 cells (65 px for stride 32); a model that pads every
    image to a square (``graph.square_size``) takes images up to that side, others up to ``MAX_SIDE``."""
    strides = [shape.stride or 1 for shape in model.backbone.output_shape().values()]
    return 2 * max(*strides, graph.size_divisibility, 1) + 1, graph.square_size or MAX_SIDE


def _second_size(image: torch.Tensor, min_side: int) -> torch.Tensor:
    """``image`` resized to another height and width (aspect ratio changed), to check dynamic shapes."""
    height, width = image.shape[-2:]
    size = (max(min_side, round(height * 0.75)), max(min_side, round(width * 0.875) + 1))
    return F.interpolate(image[None].float(), size=size, mode="bilinear", align_corners=False)[0]


def _capture(
    graph: nn.Module, format: str, sample: torch.Tensor, dynamic: bool, sides: tuple[int, int], path: Path
):
    """Trace or export ``graph`` on ``sample`` (image sides in ``sides`` when ``dynamic``) and write
    the ``format`` file to ``path``."""
    if format == "torchscript":
        with warnings.catch_warnings():
            # the traced Python checks are on static sizes (channels, class counts); the check below
            # runs the trace on a second image size
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(graph, (sample,), check_trace=False)
        traced.save(str(path))
        return
    dynamic_shapes = None
    if dynamic:
        height = torch.export.Dim("height", min=sides[0], max=sides[1])
        width = torch.export.Dim("width", min=sides[0], max=sides[1])
        dynamic_shapes = {"image": {1: height, 2: width}}
    program = torch.export.export(graph, (sample,), dynamic_shapes=dynamic_shapes, strict=False)
    if format == "exported-program":
        torch.export.save(program, path)
        return
    from .onnx_ops import ONNX_OPSET, ONNX_TRANSLATIONS

    with _quiet_onnx_exporter():
        onnx_program = torch.onnx.export(
            program, dynamo=True, custom_translation_table=ONNX_TRANSLATIONS, opset_version=ONNX_OPSET,
            input_names=["image"], output_names=list(graph.output_names), optimize=True, verbose=False,
        )  # fmt: skip
    onnx_program.save(str(path))


@contextlib.contextmanager
def _quiet_onnx_exporter():
    """Keep the exporter's progress prints and its optimizer's per-initializer INFO logs off the
    console (``dt export`` prints one line); warnings still show."""
    loggers = [logging.getLogger(name) for name in ("onnx_ir", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _spec(
    model: nn.Module, graph: ExportGraph, format: str, dynamic: bool, sides: tuple[int, int],
    extra: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """The pre/post-processing the exported file expects (its JSON)."""
    from . import __version__

    return {
        "dt_export": __version__,
        "format": format,
        "file": MODEL_FILES[format],
        "family": type(model).__name__,
        "input": {
            "name": "image",
            "shape": ["C", "height", "width"],
            "dtype": "float32",
            "channel_format": model.input_format,
            "value_range": [0, 255],
            "dynamic_size": dynamic,
            "min_side": sides[0] if dynamic else None,
            "max_side": sides[1] if dynamic else None,
            "normalization": "inside the model: (image - pixel_mean) / pixel_std",
            "pixel_mean": [round(v, 6) for v in model.pixel_mean.flatten().tolist()],
            "pixel_std": [round(v, 6) for v in model.pixel_std.flatten().tolist()],
            "size_divisibility": graph.size_divisibility,
            "square_size": graph.square_size or None,
            "padding": (
                f"inside the model: zeros at the bottom/right up to {graph.square_size}x{graph.square_size}"
                " (a fixed network input size: images may be at most that large)"
                if graph.square_size
                else "inside the model: zeros at the bottom/right up to a multiple of size_divisibility"
            ),
        },
        "outputs": [{"name": name, **OUTPUTS[name]} for name in graph.output_names],
        **extra,
    }


def export_model(
    model: nn.Module,
    format: str,
    output_dir: str | os.PathLike[str],
    sample: torch.Tensor,
    *,
    dynamic: bool = False,
    spec_extra: dict[str, Any] | None = None,
) -> ExportResult:
    """Export ``model`` (eval, CPU) to ``output_dir/MODEL_FILES[format]`` and its JSON (``spec_file_name``).

    Args:
        format: ``"onnx"``, ``"exported-program"`` or ``"torchscript"``.
        sample: an image ``Tensor[C, H, W]`` (input format, resized as the model is used); the
            export is traced on it and the written file is run on it (and, when the export is
            dynamic, on a second size) and compared with the eager model.
        dynamic: accept any height and width (``min_side``..``max_side``); TorchScript traces are
            always size-generic and checked on two sizes.
        spec_extra: more keys for the JSON (``class_names``, ``resize``).

    Raises ``ValueError`` for an unknown format, an unsupported family or an output path that is a
    file, and :class:`ExportCheckError` when the exported model disagrees with the eager one.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"output {output_dir} is a file, expected a folder")
    model = model.eval()
    graph = exportable_graph(model, format).eval()
    names = list(graph.output_names)
    sides = _side_range(model, graph)
    sample = sample.to(torch.float32)
    if not sides[0] <= min(sample.shape[-2:]) <= max(sample.shape[-2:]) <= sides[1]:
        raise ValueError(
            f"sample image is {tuple(sample.shape[-2:])}, expected sides of {sides[0]} to {sides[1]} px"
        )
    dynamic = dynamic or format == "torchscript"
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=output_dir.parent, prefix=f".{output_dir.name}.dt-export-"))
    try:
        staged_model = staging / MODEL_FILES[format]
        _capture(graph, format, sample, dynamic, sides, staged_model)
        run = load_exported(staged_model, format, names)
        images = [sample, _second_size(sample, sides[0])] if dynamic else [sample]
        comparisons = tuple(
            compare_outputs(graph.eager_outputs(image), run(image), tuple(image.shape[-2:]))
            for image in images
        )
        failed = [c.describe() for c in comparisons if not c.ok]
        if failed:
            raise ExportCheckError(
                f"exported {format} model differs from the eager model: {'; '.join(failed)}"
            )
        spec = _spec(model, graph, format, dynamic, sides, dict(spec_extra or {}))
        spec["check"] = [attrs.asdict(c) | {"ok": c.ok} for c in comparisons]
        (staging / spec_file_name(format)).write_text(json.dumps(spec, indent=2) + "\n")
        output_dir.mkdir(parents=True, exist_ok=True)
        for name in (MODEL_FILES[format], spec_file_name(format)):
            os.replace(staging / name, output_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(
        model_file=output_dir / MODEL_FILES[format],
        spec_file=output_dir / spec_file_name(format),
        format=format,
        comparisons=comparisons,
    )
