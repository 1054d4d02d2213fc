"""What ``dt train``, ``dt eval`` and ``dt predict`` run, on top of dt-models, dt-data and dt-eval.

Every user input is checked before anything is written (config, datasets, checkpoint, images,
output folder) and reported as an ``InputError``/``ConfigError``.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import logging
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from torch import nn

from dt_config import did_you_mean
from dt_data import DatasetCatalog, MetadataCatalog, Visualizer, build_detection_test_loader
from dt_data.build import build_mapper, build_test_loader, build_train_loader
from dt_data.detection_utils import read_image
from dt_data.transforms import ResizeShortestEdge
from dt_eval import COCOEvaluator, inference_on_dataset
from dt_eval.coco_format import instances_to_coco_json
from dt_models import build_model, load_weights

from . import comm
from .build import build_lr_scheduler, build_optimizer, build_trainer
from .checkpoint import Checkpointer, atomic_write_text
from .config.experiment import ExperimentConfig, dump_config, load_experiment
from .ema import unwrap_model
from .errors import InputError, check_writable_dir
from .hooks import (
    BestCheckpointer,
    EvalHook,
    IterationTimer,
    LRScheduler,
    PeriodicCheckpointer,
    PeriodicWriter,
    PreciseBN,
    ValidationLoss,
)
from .launch import ChildFailedError, launch
from .resumable import CountingLoader
from .writers import ConsoleWriter, JSONWriter, TensorboardWriter

__all__ = ["eval_command", "evaluate", "predict_command", "train", "train_command"]

logger = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def _check_datasets(names: tuple[str, ...]) -> None:
    for name in names:
        if name not in DatasetCatalog:
            known = sorted(DatasetCatalog.list())
            hint = did_you_mean(name, known) or f"; registered: {', '.join(known)}"
            raise InputError(f"unknown dataset {name!r}{hint}")


def _check_file(path: str | None, what: str) -> None:
    if path is not None and not Path(path).is_file():
        raise InputError(f"{what} not found: {path}")


def _heads(cfg: ExperimentConfig) -> dict[str, bool]:
    roi_heads = getattr(cfg.model, "roi_heads", None)
    return {
        "mask_on": getattr(roi_heads, "mask_head", None) is not None,
        "keypoint_on": getattr(roi_heads, "keypoint_head", None) is not None,
    }


def _device() -> torch.device:
    return torch.device("cuda", comm.get_local_rank()) if torch.cuda.is_available() else torch.device("cpu")


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (seeds the global RNG user code relies on)
    random.seed(seed)


def _load_ema_weights(model: nn.Module, weights: str) -> None:
    """The averaged weights a dt checkpoint of a run with ``solver.ema.enabled`` holds."""
    try:
        ema = Checkpointer.read(weights).get("ema")
    except (ValueError, RuntimeError) as err:
        raise InputError(f"cannot read {weights} as a dt checkpoint: {err}") from None
    if not ema:
        raise InputError(f"checkpoint {weights} has no EMA weights (train with solver.ema.enabled=true)")
    unwrap_model(model).load_state_dict(ema["weights"])


def _load_model_weights(model: nn.Module, weights: str, use_ema: bool = False) -> None:
    if use_ema:
        _load_ema_weights(model, weights)
        return
    report = load_weights(unwrap_model(model), weights)
    if not report.loaded:
        raise InputError(f"checkpoint {weights} has no tensor matching the model")
    logger.info("loaded %s: %s", weights, report.table())


def evaluate(cfg: ExperimentConfig, model: nn.Module, output_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """COCO evaluation on every ``data.datasets.test``; ``{dataset: results}`` (results alone for one)."""
    results = {}
    for name in cfg.data.datasets.test:
        dicts = DatasetCatalog.get(name)  # also materializes generated datasets (and their json)
        metadata = MetadataCatalog.get(name)
        evaluator = COCOEvaluator(
            name,
            output_dir=str(Path(output_dir) / "inference" / name),
            max_dets_per_image=cfg.test.detections_per_image,
            metadata=metadata,
            dataset_dicts=dicts,
        )
        loader = build_test_loader(cfg.data, name)
        results[name] = inference_on_dataset(model, loader, evaluator, progress=comm.is_main_process())
    return results[cfg.data.datasets.test[0]] if len(results) == 1 else results


def _validation_loader(cfg: ExperimentConfig) -> Any:
    """The test datasets with training-time mapping (annotations kept), for ``ValidationLoss``."""
    mapper = build_mapper(cfg.data, True, **_heads(cfg))
    return build_detection_test_loader(list(cfg.data.datasets.test), mapper=mapper, batch_size=1)


def train(cfg: ExperimentConfig, resume: bool, weights: str | None, exact_resume: bool = True) -> None:
    """Train on this process (one of ``comm.get_world_size()``); writes everything to ``cfg.output_dir``.

    A resumed run restores the data position too (``exact_resume``: the loader re-reads and
    skips the batches already used) or re-seeds the loader with ``seed + start_iter`` (faster,
    deterministic, but another data order than an uninterrupted run).
    """
    out = Path(cfg.output_dir)
    _seed_everything(cfg.seed + comm.get_rank())
    model = build_model(cfg.model, _device())
    optimizer = build_optimizer(model, cfg.solver)
    scheduler = build_lr_scheduler(optimizer, cfg.solver)
    if comm.get_world_size() > 1:
        ids = [comm.get_local_rank()] if torch.cuda.is_available() else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)
    per_step = cfg.solver.ims_per_batch // cfg.solver.accumulate_steps
    data = CountingLoader(
        build_train_loader(cfg.data, total_batch_size=per_step, seed=cfg.seed, **_heads(cfg))
    )
    trainer = build_trainer(model, data, optimizer, cfg.solver)
    config_text = dump_config(cfg)
    stateful = {"optimizer": optimizer, "scheduler": scheduler, "trainer": trainer, "ema": trainer.ema}
    checkpointer = Checkpointer(model, out, config=config_text, **stateful)
    start_iter = checkpointer.resume_or_load(None, resume=resume)
    if start_iter == 0 and weights is not None:
        _load_model_weights(model, weights)
    if start_iter > 0 and not exact_resume:
        reseeded = build_train_loader(
            cfg.data, total_batch_size=per_step, seed=cfg.seed + start_iter, **_heads(cfg)
        )
        trainer.data_loader = CountingLoader(reseeded)
        trainer.data_loader.load_state_dict(data.state_dict(), skip=False)
    elif data.consumed:
        logger.info(
            "skipping %d batches to restore the data position (--fast-resume re-seeds instead)", data.consumed
        )

    def run_eval() -> Mapping[str, Any]:
        if trainer.ema is None:
            return evaluate(cfg, model, out)
        with trainer.ema.apply_to(model):
            return evaluate(cfg, model, out)

    hooks = [IterationTimer(), LRScheduler(scheduler)]
    if cfg.test.precise_bn.enabled:
        bn_loader = build_train_loader(cfg.data, total_batch_size=per_step, seed=cfg.seed + 1, **_heads(cfg))
        hooks.append(PreciseBN(cfg.test.eval_period, model, bn_loader, cfg.test.precise_bn.num_iter))
    hooks.append(
        PeriodicCheckpointer(checkpointer, cfg.solver.checkpoint_period, cfg.solver.checkpoints_to_keep)
    )
    if cfg.test.val_loss_period > 0:
        hooks.append(ValidationLoss(cfg.test.val_loss_period, _validation_loader(cfg)))
    hooks.append(EvalHook(cfg.test.eval_period, run_eval))
    if comm.is_main_process():
        if cfg.test.eval_period > 0 and len(cfg.data.datasets.test) == 1:
            hooks.append(BestCheckpointer(cfg.test.eval_period, checkpointer, "bbox/AP"))
        atomic_write_text(out / "config.yaml", config_text)
        writers = [
            ConsoleWriter(cfg.solver.max_iter),
            JSONWriter(out / "metrics.jsonl"),
            TensorboardWriter(out),
        ]
        hooks.append(PeriodicWriter(writers, period=20))
    trainer.register_hooks(hooks)
    if start_iter >= cfg.solver.max_iter:
        logger.info("already trained to max_iter=%d; evaluating only", cfg.solver.max_iter)
    trainer.train(min(start_iter, cfg.solver.max_iter), cfg.solver.max_iter)


def _check_num_classes(cfg: ExperimentConfig) -> None:
    """A dataset with more classes than the model predicts would crash inside the loss: say so now."""
    num_classes = getattr(getattr(cfg.model, "roi_heads", None), "num_classes", None)
    if num_classes is None:
        return
    for name in cfg.data.datasets.train + cfg.data.datasets.test:
        classes = MetadataCatalog.get(name).get("thing_classes")
        if classes is not None and len(classes) > num_classes:
            raise InputError(
                f"dataset {name!r} has {len(classes)} classes, model.roi_heads.num_classes is {num_classes}"
            )


def _load(args: argparse.Namespace) -> ExperimentConfig:
    cfg = load_experiment(args.config, args.overrides)
    _check_datasets(cfg.data.datasets.train + cfg.data.datasets.test)
    _check_num_classes(cfg)
    return cfg


def train_command(args: argparse.Namespace) -> int:
    cfg = _load(args)
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
            train,
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
    cfg = _load(args)
    _check_file(args.weights, "checkpoint")
    check_writable_dir(cfg.output_dir)
    model = build_model(cfg.model, _device())
    _load_model_weights(model, args.weights, use_ema=args.ema)
    results = evaluate(cfg, model, cfg.output_dir)
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


def predict_command(args: argparse.Namespace) -> int:
    cfg = load_experiment(args.config, args.overrides)
    _check_file(args.weights, "checkpoint")
    images = _expand_inputs(args.input)
    out = check_writable_dir(args.output)
    model = build_model(cfg.model, _device()).eval()
    _load_model_weights(model, args.weights, use_ema=args.ema)
    dataset = cfg.data.datasets.test[0] if cfg.data.datasets.test else None
    metadata = MetadataCatalog.get(dataset) if dataset in DatasetCatalog else None
    id_map = (metadata.get("thing_dataset_id_to_contiguous_id") if metadata else None) or {}
    to_dataset_id = {contiguous: dataset_id for dataset_id, contiguous in id_map.items()}
    fmt = cfg.data.input.format
    resize = ResizeShortestEdge(cfg.data.input.min_size_test, cfg.data.input.max_size_test, "choice")
    results = []
    for image_id, path in enumerate(images):
        try:
            image = read_image(str(path), format=fmt)  # [H, W, C] in the model's format
        except ValueError as err:
            raise InputError(str(err)) from None
        height, width = image.shape[:2]
        resized = resize.get_transform(image, rng=np.random.default_rng(0)).apply_image(image)
        tensor = torch.as_tensor(np.ascontiguousarray(resized.transpose(2, 0, 1)))  # [C, H', W']
        with torch.no_grad():
            instances = model([{"image": tensor, "height": height, "width": width}])[0]["instances"].to("cpu")
        rgb = image[:, :, ::-1] if fmt == "BGR" else image
        keep = instances[instances.scores >= args.confidence]
        Visualizer(rgb, metadata).draw_instance_predictions(keep).save(out / f"{path.stem}.png")
        for record in instances_to_coco_json(instances, image_id):
            record["category_id"] = to_dataset_id.get(record["category_id"], record["category_id"])
            results.append({**record, "file_name": str(path)})
    atomic_write_text(out / "coco_instances_results.json", json.dumps(results))
    print(f"{len(images)} images -> {out}")
    return 0
