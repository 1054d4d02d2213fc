"""``export_model``: write a model as ONNX, ``.pt2`` (an ExportedProgram, or its AOTInductor
compilation) or TorchScript with a JSON of its pre/post-processing, after running the written file on
sample images and comparing it with the eager model.

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
from .runtime import Runner, load_exported

__all__ = [
    "AOT_INDUCTOR_FILE",
    "FORMATS",
    "MODEL_FILES",
    "ExportCheckError",
    "ExportResult",
    "export_model",
    "model_file_name",
    "spec_file_name",
]

FORMATS = ("onnx", "exported-program", "torchscript")
MODEL_FILES = {"onnx": "model.onnx", "exported-program": "model.pt2", "torchscript": "model.ts"}
AOT_INDUCTOR_FILE = "model.aoti.pt2"
MAX_SIDE = 8192


def model_file_name(format: str, aot_inductor: bool = False) -> str:
    """``MODEL_FILES[format]``, or ``AOT_INDUCTOR_FILE`` for an AOTInductor package."""
    return AOT_INDUCTOR_FILE if aot_inductor else MODEL_FILES[format]


def spec_file_name(format: str, aot_inductor: bool = False) -> str:
    """The JSON next to the model file: ``model.onnx.json``, ``model.pt2.json``, ``model.ts.json``
    (``model.aoti.pt2.json``)."""
    return f"{model_file_name(format, aot_inductor)}.json"


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


def _batch(image: torch.Tensor) -> torch.Tensor:
    """``image`` and its mirror image, a batch ``Tensor[2, C, H, W]`` of two different images."""
    return torch.stack([image, image.flip(-1)])


def _capture(
    graph: ExportGraph, format: str, sample: torch.Tensor, dynamic: bool, sides: tuple[int, int], path: Path,
    aot_inductor: bool = False,
):  # fmt: skip
    """Trace or export ``graph`` on ``sample`` (image sides in ``sides`` when ``dynamic``, any batch
    size for a ``batched`` graph) and write the ``format`` file to ``path`` (``aot_inductor``: the
    exported program compiled into an AOTInductor package)."""
    if format == "torchscript":
        with warnings.catch_warnings():
            # the traced Python checks are on static sizes (channels, class counts); the check below
            # runs the trace on a second image size
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(graph, (sample,), check_trace=False)
        traced.save(str(path))
        return
    dims: dict[int, Any] = {}
    if dynamic:
        dims[sample.dim() - 2] = torch.export.Dim("height", min=sides[0], max=sides[1])
        dims[sample.dim() - 1] = torch.export.Dim("width", min=sides[0], max=sides[1])
    if graph.batched:
        dims[0] = torch.export.Dim("batch", min=1)
    dynamic_shapes = (dims,) if dims else None
    program = torch.export.export(graph, (sample,), dynamic_shapes=dynamic_shapes, strict=False)
    if aot_inductor:
        # the compiled code assumes the sample's strides and does not check them when run, so the
        # sample is contiguous and the runtime makes every input contiguous
        from torch._inductor import aoti_compile_and_package

        aoti_compile_and_package(program, package_path=str(path))
        return
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


def _compare(graph: ExportGraph, run: Runner, image: torch.Tensor) -> list[Comparison]:
    """The exported model (``run``) vs the eager one on ``image`` ``Tensor[C, H, W]``; for a
    ``batched`` graph on the batch of ``image`` and its mirror image, each vs the eager model alone."""
    size = tuple(image.shape[-2:])
    if not graph.batched:
        return [compare_outputs(graph.eager_outputs(image), run(image), size)]
    batch = _batch(image)
    outputs = run(batch)
    return [
        attrs.evolve(
            compare_outputs(graph.eager_outputs(one), {n: o[i] for n, o in outputs.items()}, size), index=i
        )
        for i, one in enumerate(batch)
    ]


def _spec(
    model: nn.Module, graph: ExportGraph, format: str, dynamic: bool, sides: tuple[int, int],
    aot_inductor: bool, extra: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """The pre/post-processing the exported file expects (its JSON)."""
    from . import __version__

    batch = ["B"] if graph.batched else []
    return {
        "dt_export": __version__,
        "format": format,
        "file": model_file_name(format, aot_inductor),
        "aot_inductor": (
            "an AOTInductor package: torch._inductor.aoti_load_package (after import dt_ops); it does "
            "not check input strides, so pass contiguous tensors"
            if aot_inductor
            else None
        ),
        "family": type(model).__name__,
        "input": {
            "name": "image",
            "shape": [*batch, "C", "height", "width"],
            "batched": graph.batched,
            "batch": (
                "any number B >= 1 of images of one size, stacked; output i along B is image i's"
                if graph.batched
                else None
            ),
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
        "outputs": [
            {"name": name, **OUTPUTS[name], "shape": [*batch, *OUTPUTS[name]["shape"]]}
            for name in graph.output_names
        ],
        **extra,
    }


def export_model(
    model: nn.Module,
    format: str,
    output_dir: str | os.PathLike[str],
    sample: torch.Tensor,
    *,
    dynamic: bool = False,
    dynamic_batch: bool = False,
    aot_inductor: bool = False,
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
        dynamic_batch: export the family's batch graph (``Family.batch_graph``): the file takes a
            batch ``Tensor[B, C, H, W]`` of same-size images, any ``B``, and each output gains a
            leading ``B``; it is checked on ``sample`` and its mirror image as a batch of 2, each
            against the eager model on that image alone.
        aot_inductor: with ``"exported-program"``, compile the program with AOTInductor
            (``torch._inductor.aoti_compile_and_package``, a C++ compiler needed) into
            ``AOT_INDUCTOR_FILE``, for the families where that is verified (``Family.aot_inductor``).
        spec_extra: more keys for the JSON (``class_names``, ``resize``).

    Raises ``ValueError`` for an unknown format, an unsupported family (or batch) or an output path
    that is a file, and :class:`ExportCheckError` when the exported model disagrees with the eager one.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"output {output_dir} is a file, expected a folder")
    model = model.eval()
    graph = exportable_graph(model, format, dynamic_batch=dynamic_batch, aot_inductor=aot_inductor).eval()
    names = list(graph.output_names)
    sides = _side_range(model, graph)
    sample = sample.to(torch.float32).contiguous()
    if not sides[0] <= min(sample.shape[-2:]) <= max(sample.shape[-2:]) <= sides[1]:
        raise ValueError(
            f"sample image is {tuple(sample.shape[-2:])}, expected sides of {sides[0]} to {sides[1]} px"
        )
    dynamic = dynamic or format == "torchscript"
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=output_dir.parent, prefix=f".{output_dir.name}.dt-export-"))
    try:
        file_name, spec_name = model_file_name(format, aot_inductor), spec_file_name(format, aot_inductor)
        staged_model = staging / file_name
        captured = _batch(sample) if graph.batched else sample
        _capture(graph, format, captured, dynamic, sides, staged_model, aot_inductor)
        run = load_exported(staged_model, format, names, aot_inductor=aot_inductor)
        images = [sample, _second_size(sample, sides[0])] if dynamic else [sample]
        comparisons = tuple(comparison for image in images for comparison in _compare(graph, run, image))
        failed = [c.describe() for c in comparisons if not c.ok]
        if failed:
            raise ExportCheckError(
                f"exported {format} model differs from the eager model: {'; '.join(failed)}"
            )
        spec = _spec(model, graph, format, dynamic, sides, aot_inductor, dict(spec_extra or {}))
        spec["check"] = [attrs.asdict(c) | {"ok": c.ok} for c in comparisons]
        (staging / spec_name).write_text(json.dumps(spec, indent=2) + "\n")
        output_dir.mkdir(parents=True, exist_ok=True)
        for name in (file_name, spec_name):
            os.replace(staging / name, output_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(
        model_file=output_dir / file_name,
        spec_file=output_dir / spec_name,
        format=format,
        comparisons=comparisons,
    )
