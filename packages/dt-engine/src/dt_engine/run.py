"""The commands ``dt train``, ``dt eval`` and ``dt predict``: input checks, then the config's workflow
(``DefaultTrainer`` or a project's subclass) or a ``Predictor``.

Every user input is checked before anything is written (config, datasets, evaluators,
checkpoint, images, output folder) and reported as an ``InputError``/``ConfigError``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import glob
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from dt_data import DatasetCatalog, Metadata, MetadataCatalog, Visualizer
from dt_data.detection_utils import read_image
from dt_eval.coco_format import instances_to_coco_json

from .checkpoint import atomic_write_text
from .config.experiment import ExperimentConfig, load_experiment
from .defaults import DefaultTrainer, build_workflow, run_training
from .errors import InputError, check_writable_dir
from .launch import ChildFailedError, launch
from .predictor import Predictor
from .weights import load_model_weights

__all__ = ["eval_command", "load_checked", "predict_command", "predict_files", "train_command"]

logger = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def _check_file(path: str | None, what: str) -> None:
    if path is not None and not Path(path).is_file():
        raise InputError(f"{what} not found: {path}")


def load_checked(path: str | None, overrides: Sequence[str]) -> tuple[ExperimentConfig, DefaultTrainer]:
    """The config and its workflow, after the workflow's input checks (``DefaultTrainer.check``)."""
    cfg = load_experiment(path, overrides)
    workflow = build_workflow(cfg)
    workflow.check()
    return cfg, workflow


def train_command(args: argparse.Namespace) -> int:
    cfg, _ = load_checked(args.config, args.overrides)
    _check_file(args.weights, "weights file")
    if args.dist_timeout <= 0:
        raise InputError(f"--dist-timeout must be > 0 minutes, got {args.dist_timeout}")
    if args.num_gpus < 1 or args.num_machines < 1 or not 0 <= args.machine_rank < args.num_machines:
        raise InputError("need --num-gpus >= 1, --num-machines >= 1 and 0 <= --machine-rank < --num-machines")
    if cfg.solver.ims_per_batch % (cfg.solver.accumulate_steps * args.num_gpus * args.num_machines):
        raise InputError(
            f"solver.ims_per_batch ({cfg.solver.ims_per_batch}) must be divisible by "
            "solver.accumulate_steps x number of processes"
        )
    check_writable_dir(cfg.output_dir)
    if cfg.seed < 0:  # one seed for every process, recorded in the saved config
        cfg = attrs.evolve(cfg, seed=int.from_bytes(os.urandom(4), "little") >> 1)
    try:
        launch(
            run_training,
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(cfg, args.resume, args.weights, not args.fast_resume),
            timeout=datetime.timedelta(minutes=args.dist_timeout),
        )
    except ChildFailedError as err:
        logger.error("%s", err)
        return 1
    return 0


def eval_command(args: argparse.Namespace) -> int:
    cfg, workflow = load_checked(args.config, args.overrides)
    _check_file(args.weights, "checkpoint")
    check_writable_dir(cfg.output_dir)
    model = workflow.build_model()
    load_model_weights(model, args.weights, use_ema=args.ema)
    with contextlib.redirect_stdout(sys.stderr):  # stdout holds the results only (lvis prints its table)
        results = workflow.test(model)
    print(json.dumps(results, indent=2, sort_keys=True))
    return 0


def _expand_inputs(patterns: list[str]) -> list[Path]:
    files: list[Path] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif any(c in pattern for c in "*?["):
            found = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
        elif path.is_file():
            found = [path]
        else:
            raise InputError(f"image not found: {pattern}")
        if not found:
            raise InputError(f"no images in {pattern}")
        files += found
    return files


def _test_metadata(cfg: ExperimentConfig) -> Metadata | None:
    """The first test dataset's metadata (class names, colours, dataset ids), if it is registered."""
    dataset = cfg.data.datasets.test[0] if cfg.data.datasets.test else None
    return MetadataCatalog.get(dataset) if dataset in DatasetCatalog else None


def predict_files(
    predictor: Predictor,
    images: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    metadata: Metadata | None = None,
    confidence: float = 0.5,
) -> list[dict[str, Any]]:
    """Run ``predictor`` on image files: ``<output>/<stem>.png`` draws the instances scoring at least
    ``confidence``; ``<output>/coco_instances_results.json`` holds every instance (COCO results,
    dataset category ids when ``metadata`` maps them, ``image_id`` = position in ``images``)."""
    out = Path(output)
    id_map = (metadata.get("thing_dataset_id_to_contiguous_id") if metadata else None) or {}
    to_dataset_id = {contiguous: dataset_id for dataset_id, contiguous in id_map.items()}
    results = []
    for image_id, path in enumerate(map(Path, images)):
        try:
            image = read_image(str(path), format="BGR")  # [H, W, 3] uint8
        except ValueError as err:
            raise InputError(str(err)) from None
        instances = predictor(image)["instances"].to("cpu")
        keep = instances[instances.scores >= confidence]
        Visualizer(image[:, :, ::-1], metadata).draw_instance_predictions(keep).save(out / f"{path.stem}.png")
        for record in instances_to_coco_json(instances, image_id):
            record["category_id"] = to_dataset_id.get(record["category_id"], record["category_id"])
            results.append({**record, "file_name": str(path)})
    atomic_write_text(out / "coco_instances_results.json", json.dumps(results))
    return results


def predict_command(args: argparse.Namespace) -> int:
    cfg = load_experiment(args.config, args.overrides)
    _check_file(args.weights, "checkpoint")
    images = _expand_inputs(args.input)
    out = check_writable_dir(args.output)
    predictor = Predictor(cfg, weights=args.weights, use_ema=args.ema)
    predict_files(predictor, images, out, metadata=_test_metadata(cfg), confidence=args.confidence)
    print(f"{len(images)} images -> {out}")
    return 0
