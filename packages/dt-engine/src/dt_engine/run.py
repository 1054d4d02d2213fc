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
import cv2
import torch

from dt_data import DataError, DatasetCatalog, Metadata, MetadataCatalog
from dt_data.detection_utils import read_image
from dt_models import build_model

from .checkpoint import CheckpointError, torch_load_checked
from .comm import default_device
from .config.experiment import ExperimentConfig, load_experiment
from .defaults import DefaultTrainer, build_workflow, register_config_datasets, run_training
from .errors import InputError, check_writable_dir
from .launch import ChildFailedError, launch
from .predict_backends import load_predict_backend
from .predict_video import check_video, predict_video
from .prediction_outputs import PREDICTION_OUTPUTS, PredictionContext, PredictionRecorder
from .predictor import Predictor
from .preflight import ImageProblem, check_dataset
from .run_folder import claim_run_folder
from .weights import load_model_weights, resolve_weights

__all__ = [
    "eval_command",
    "load_checked",
    "load_weights_checked",
    "one_line",
    "output_names",
    "predict_command",
    "predict_files",
    "preflight",
    "train_command",
]

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


def one_line(err: BaseException) -> str:
    """The message of a data error, also when a DataLoader worker re-raised it with its traceback."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    last = lines[-1] if lines else type(err).__name__
    for prefix in (f"{type(err).__module__}.{type(err).__name__}: ", f"{type(err).__name__}: "):
        last = last.removeprefix(prefix)
    return last


def _weights_file(weights: str | None, what: str, *, read: bool) -> str | None:
    """The local file of ``--weights`` (``resolve_weights``), which must exist; with ``read`` also be
    readable by ``torch.load`` (``.pkl`` files are read when loaded)."""
    if weights is None:
        return None
    path = os.fspath(resolve_weights(weights))
    _check_file(path, what)
    if read and not path.endswith(".pkl"):
        try:
            torch_load_checked(path)
        except CheckpointError as err:
            raise InputError(str(err)) from None
    return path


def preflight(names: Sequence[str], *, train: Sequence[str] = (), skip_bad_images: bool = False) -> None:
    """``check_dataset`` on each distinct dataset (annotations, non-empty, image files and sizes).

    Bad images of the ``train`` datasets are counted in a warning with ``skip_bad_images``
    (``data.loader.skip_bad_images``); without it the error says how to skip them.
    """
    for name in dict.fromkeys(names):
        try:
            report = check_dataset(name, skip_images=skip_bad_images and name in train)
        except ImageProblem as err:
            if name not in train:
                raise
            raise InputError(f"{err} (data.loader.skip_bad_images=true skips bad training images)") from None
        if report.problems:
            logger.warning(
                "dataset %r: %d bad images will be skipped (data.loader.skip_bad_images); the first: %s",
                name,
                len(report.problems),
                report.problems[0],
            )


def train_command(args: argparse.Namespace) -> int:
    cfg, _ = load_checked(args.config, args.overrides)
    initial = args.weights or cfg.model.weights  # --weights overrides the config's model.weights
    weights = _weights_file(initial, "weights file", read=True)  # the processes load it later
    if args.dist_timeout <= 0:
        raise InputError(f"--dist-timeout must be > 0 minutes, got {args.dist_timeout}")
    if args.num_gpus < 1 or args.num_machines < 1 or not 0 <= args.machine_rank < args.num_machines:
        raise InputError("need --num-gpus >= 1, --num-machines >= 1 and 0 <= --machine-rank < --num-machines")
    if cfg.solver.ims_per_batch % (cfg.solver.accumulate_steps * args.num_gpus * args.num_machines):
        raise InputError(
            f"solver.ims_per_batch ({cfg.solver.ims_per_batch}) must be divisible by "
            "solver.accumulate_steps x number of processes"
        )
    datasets = cfg.data.datasets
    preflight(
        datasets.train + datasets.test, train=datasets.train, skip_bad_images=cfg.data.loader.skip_bad_images
    )
    out = Path(cfg.output_dir)
    claim_run_folder(out, resume=args.resume, overwrite=getattr(args, "overwrite", False))
    check_writable_dir(out)
    if cfg.seed < 0:  # one seed for every process, recorded in the saved config
        cfg = attrs.evolve(cfg, seed=int.from_bytes(os.urandom(4), "little") >> 1)
    try:
        launch(
            run_training,
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(cfg, args.resume, weights, not args.fast_resume),
            timeout=datetime.timedelta(minutes=args.dist_timeout),
        )
    except (ChildFailedError, FloatingPointError) as err:  # a failed process; a loss that went NaN/inf
        print(f"dt train: error: {one_line(err)}", file=sys.stderr)
        return 1
    except DataError as err:  # an image found bad while loading (data.loader.skip_bad_images skips them)
        raise InputError(f"{one_line(err)} (data.loader.skip_bad_images=true skips such images)") from None
    return 0


def load_weights_checked(
    model: torch.nn.Module, weights: str, *, use_ema: bool = False, allow_partial: bool = False
) -> None:
    """``load_model_weights``, refusing weights that leave model tensors unset or of another shape
    (the load table on stderr, then ``InputError``) unless ``allow_partial``."""
    report = load_model_weights(model, weights, use_ema=use_ema)
    if report is None or not (report.missing or report.shape_mismatch):
        return
    if allow_partial:
        logger.warning("--allow-partial-weights: %s", report.table())
        return
    print(report.table(), file=sys.stderr)
    raise InputError(
        f"{weights} leaves {len(report.missing)} model tensors unset and {len(report.shape_mismatch)} of "
        "another shape (table above); expected weights of this model (--allow-partial-weights runs anyway)"
    )


def eval_command(args: argparse.Namespace) -> int:
    cfg, workflow = load_checked(args.config, args.overrides)
    weights = _weights_file(args.weights, "checkpoint", read=False)
    check_writable_dir(cfg.output_dir)
    preflight(cfg.data.datasets.test)
    model = workflow.build_model()
    load_weights_checked(
        model, weights, use_ema=args.ema, allow_partial=getattr(args, "allow_partial_weights", False)
    )
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout holds the results only (lvis prints its table)
            results = workflow.test(model)
    except DataError as err:  # an image found bad while loading
        raise InputError(one_line(err)) from None
    print(json.dumps(results, indent=2, sort_keys=True))
    return 0


def _expand_inputs(patterns: list[str]) -> list[Path]:
    """Image files of folders (recursively), globs and single files, in the order given."""
    files: dict[Path, None] = {}  # ordered, without repeats
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif any(c in pattern for c in "*?["):
            found = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
        elif path.is_file():
            found = [path]
        else:
            raise InputError(f"image not found: {pattern}")
        if not found:
            raise InputError(f"no images in {pattern}")
        files.update(dict.fromkeys(found))
    return list(files)


def output_names(images: Sequence[Path]) -> list[Path]:
    """Where each image's drawing goes, relative to the output folder: its path below the inputs'
    common folder (so subfolders are mirrored), with ``.png``; the full name + ``.png`` when two
    inputs differ only by suffix."""
    absolute = [p.absolute() for p in images]
    root = Path(os.path.commonpath([p.parent for p in absolute])) if absolute else Path()
    names = [p.relative_to(root).with_suffix(".png") for p in absolute]
    counts: dict[Path, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return [
        name if counts[name] == 1 else name.with_name(p.name + ".png")
        for name, p in zip(names, absolute, strict=True)
    ]


def _prediction_metadata(cfg: ExperimentConfig) -> Metadata | None:
    """The metadata of the first test (else training) dataset: class names, colours, dataset ids.
    The config's own datasets are registered for it; if their files are unavailable here, the
    results keep the model's contiguous class ids (with a warning)."""
    try:
        register_config_datasets(cfg)
    except InputError as err:
        logger.warning("no class names or dataset ids for the results: %s", err)
        return None
    names = cfg.data.datasets.test + cfg.data.datasets.train
    dataset = next((n for n in names if n in DatasetCatalog), None)
    return MetadataCatalog.get(dataset) if dataset is not None else None


def predict_files(
    predictor: Predictor,
    images: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    metadata: Metadata | None = None,
    confidence: float = 0.5,
) -> tuple[list[dict[str, Any]], list[tuple[Path, str]]]:
    """Run ``predictor`` on image files, skipping those that cannot be read or run.

    ``<output>/<relative path>.png`` draws each output field through its ``PredictionOutput``
    (instances scoring at least ``confidence``, semantic and panoptic maps, a project's fields; paths
    from ``output_names``). The handlers' results files are written atomically at the end:
    ``<output>/coco_instances_results.json`` holds every instance in COCO results format with the
    dataset's category ids and ``category_name`` when ``metadata`` has them, ``image_id`` = position
    in ``images`` and ``file_name``. Returns the instance results and the skipped ``(file, reason)``
    pairs.
    """
    out = Path(output)
    images = [Path(p) for p in images]
    recorder = PredictionRecorder(PredictionContext(metadata, confidence))
    skipped: list[tuple[Path, str]] = []
    for image_id, (path, name) in enumerate(zip(images, output_names(images), strict=True)):
        try:
            image = read_image(str(path), format="BGR")  # [H, W, 3] uint8
        except (FileNotFoundError, DataError) as err:
            skipped.append((path, str(err)))
            continue
        try:
            outputs = predictor(image)
        except (RuntimeError, ValueError) as err:  # e.g. an image too small or elongated to resize
            height, width = image.shape[:2]
            skipped.append((path, f"cannot run the model on this {width}x{height} image ({one_line(err)})"))
            continue
        drawing = recorder.add(image, outputs, image_id, file_name=str(path))  # RGB
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(out / name), drawing[:, :, ::-1]):
            raise InputError(f"could not write image {out / name}")
    recorder.write(out)
    return recorder.results("instances"), skipped


def predict_command(args: argparse.Namespace) -> int:
    cfg = load_experiment(args.config, args.overrides)
    weights = _weights_file(args.weights, "checkpoint", read=False)
    video = getattr(args, "video", None)
    if video is not None:
        check_video(video)
    else:
        images = _expand_inputs(args.input)
    PREDICTION_OUTPUTS.names()  # a plugin that fails to load is reported before anything is written
    backend = getattr(args, "backend", "torch")
    # --backend other than torch: dt export's file (--weights) and its JSON, run by its runtime
    exported = None if backend == "torch" else load_predict_backend(backend, weights)
    if exported is not None and exported.input_format != cfg.data.input.format:
        raise InputError(
            f"{weights} takes {exported.input_format} images, the config's data.input.format is "
            f"{cfg.data.input.format}"
        )
    out = check_writable_dir(args.output)
    if exported is not None:
        model = exported
    else:
        model = build_model(cfg.model, default_device())
        load_weights_checked(
            model, weights, use_ema=args.ema, allow_partial=getattr(args, "allow_partial_weights", False)
        )
    predictor = Predictor(cfg, model=model)
    metadata = _prediction_metadata(cfg)
    if video is not None:
        written, frames, _ = predict_video(
            predictor, video, out, metadata=metadata, confidence=args.confidence
        )
        print(f"{frames} frames of {video} -> {written}")
        return 0
    _, skipped = predict_files(predictor, images, out, metadata=metadata, confidence=args.confidence)
    for path, reason in skipped:
        print(f"dt predict: skipped {path}: {reason}", file=sys.stderr)
    print(f"{len(images) - len(skipped)} images -> {out}" + (f"; {len(skipped)} skipped" if skipped else ""))
    return 1 if skipped else 0
