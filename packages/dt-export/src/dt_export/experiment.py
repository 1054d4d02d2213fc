"""``export_experiment``: what ``dt export`` does with an experiment config, its weights and a sample."""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dt_data import DatasetCatalog, MetadataCatalog
from dt_data.detection_utils import read_image
from dt_data.errors import ImageError
from dt_engine.config.experiment import ExperimentConfig, load_experiment
from dt_engine.defaults import register_config_datasets
from dt_engine.errors import InputError
from dt_engine.predictor import Predictor
from dt_models import build_model, load_weights

from .export import ExportResult, export_model
from .families import exportable_graph

__all__ = ["export_experiment", "synthetic_sample"]


def synthetic_sample(height: int, width: int) -> np.ndarray:
    """A deterministic BGR uint8 ``[H, W, 3]`` image to trace on: gradients and a few boxes, with pixel
    noise so that no two regions are exactly alike (equal regions give equally scored detections)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256], axis=-1)
    for _ in range(6):
        x0, y0 = rng.integers(0, width // 2), rng.integers(0, height // 2)
        image[y0 : y0 + height // 4, x0 : x0 + width // 4] = rng.integers(0, 256, size=3)
    return np.clip(image + rng.integers(0, 32, size=image.shape), 0, 255).astype(np.uint8)


def _class_names(cfg: ExperimentConfig) -> list[str] | None:
    """``thing_classes`` of the first test (else training) dataset, when it is registered here."""
    try:
        register_config_datasets(cfg)
    except InputError:
        return None
    for name in (*cfg.data.datasets.test, *cfg.data.datasets.train):
        if name in DatasetCatalog:
            classes = MetadataCatalog.get(name).get("thing_classes")
            return list(classes) if classes is not None else None
    return None


def _load_checked_weights(model: torch.nn.Module, weights: Path) -> None:
    try:
        report = load_weights(model, weights)
    except Exception as err:  # unreadable or foreign files of any kind are one line
        raise InputError(f"cannot read weights {weights}: {type(err).__name__}: {err}") from None
    if report.missing or report.shape_mismatch:
        raise InputError(
            f"weights {weights} do not match the config's model: {len(report.missing)} tensors missing, "
            f"{len(report.shape_mismatch)} of another shape (e.g. "
            f"{(report.missing or [m[0] for m in report.shape_mismatch])[0]})"
        )


def export_experiment(args: argparse.Namespace) -> ExportResult:
    """Check every input (config, weights, output folder, sample image, family), then export."""
    if args.format == "onnx":
        missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
        if missing:
            raise InputError(f"--format onnx needs {', '.join(missing)}: pip install 'dt-export[onnx]'")
    cfg = load_experiment(args.config, args.overrides)
    weights, output = Path(args.weights), Path(args.output)
    if not weights.is_file():
        raise InputError(f"weights not found: {weights}")
    if output.exists() and not output.is_dir():
        raise InputError(f"--output {output} is a file, expected a folder")
    if args.sample_image is not None:
        try:
            image = read_image(args.sample_image, format="BGR")
        except (FileNotFoundError, ImageError) as err:
            raise InputError(str(err)) from None
    else:
        side = cfg.data.input.min_size_test
        image = synthetic_sample(side, side * 4 // 3)
    model = build_model(cfg.model, torch.device("cpu")).eval()
    try:
        exportable_graph(model, args.format, dynamic_batch=args.dynamic_batch, aot_inductor=args.aot_inductor)
    except ValueError as err:
        raise InputError(str(err)) from None
    if args.aot_inductor and shutil.which(os.environ.get("CXX", "g++")) is None:
        raise InputError(
            f"--aot-inductor needs a C++ compiler: {os.environ.get('CXX', 'g++')} (or $CXX) not found"
        )
    _load_checked_weights(model, weights)
    predictor = Predictor(cfg, model=model)
    sample = predictor.preprocess(image)["image"].to(torch.float32)  # [C, H', W'], resized, input format
    extra: dict[str, Any] = {
        "class_names": _class_names(cfg),
        "resize": {
            "op": "ResizeShortestEdge (as dt's Predictor and test loader)",
            "shortest_edge": cfg.data.input.min_size_test,
            "max_size": cfg.data.input.max_size_test,
        },
    }
    return export_model(
        model, args.format, output, sample, dynamic=args.dynamic, dynamic_batch=args.dynamic_batch,
        aot_inductor=args.aot_inductor, spec_extra=extra,
    )  # fmt: skip
