"""``DefaultTrainer``: the default workflow of ``dt train`` and ``dt eval``, as an object a project extends.

``train()`` and ``test(model)`` assemble a run from builder methods; a project overrides the ones
it needs in a subclass and selects it with the config's ``workflow`` field (registered in
``WORKFLOW_REGISTRY``, see ``dt_engine.config.workflow``)::

    check()                                   dataset names, class counts, evaluator types
    build_model()                             the model on this process's device
    build_optimizer(model)                    build_lr_scheduler(optimizer)
    build_train_loader(seed)                  build_test_loader(dataset_name)
    build_validation_loader()                 the test datasets mapped as in training (losses)
    build_evaluator(dataset_name, output_dir) from the dataset's evaluator_type
    build_trainer(model, loader, optimizer)   SimpleTrainer / AMPTrainer (accumulation, clipping, EMA)
    build_hooks(parts)                        build_writers()

``train()`` order: seed every RNG (``seed + rank``), ``build_model``, load ``--weights``,
optimizer and schedule, DDP wrap, train loader, trainer, checkpointer, ``build_hooks``, resume
(model, optimizer, schedule, trainer and hook states, data position, RNG states), train.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from torch import nn

import dt_models
from dt_config import did_you_mean
from dt_data import DatasetCatalog, MetadataCatalog, build_detection_test_loader, get_detection_dataset_dicts
from dt_data import build as data_build
from dt_data.detection_utils import get_fed_loss_cls_weights
from dt_eval import DatasetEvaluator, inference_on_dataset, print_csv_format

from . import build as solver_build
from . import comm
from .checkpoint import Checkpointer, atomic_write_text
from .config.datasets import DatasetSourceError, register_datasets
from .config.experiment import ExperimentConfig, dump_config
from .config.model_facts import ModelFacts, model_facts
from .config.workflow import WORKFLOW_REGISTRY
from .cpu import flush_denormals
from .ema import ModelEMA
from .errors import InputError
from .evaluation import build_evaluator, build_tta_model, evaluator_builder
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
from .resumable import CountingLoader
from .train_loop import HookBase, SimpleTrainer
from .weights import load_model_weights
from .writers import ConsoleWriter, EventWriter, JSONWriter, TensorboardWriter

__all__ = [
    "DefaultTrainer",
    "TrainingParts",
    "best_metric_key",
    "build_workflow",
    "register_config_datasets",
    "run_training",
]

logger = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class TrainingParts:
    """What ``DefaultTrainer.train`` has built when it asks ``build_hooks`` for the hooks.

    ``model`` is wrapped in ``DistributedDataParallel`` when there are several processes.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    trainer: SimpleTrainer
    checkpointer: Checkpointer


def best_metric_key(cfg: ExperimentConfig) -> str | None:
    """The recorded name of ``cfg.test.best_metric``: as given with one test dataset (``bbox/AP``);
    with several, results are recorded as ``<dataset>/<task>/<metric>`` and a name that does not
    start with a test dataset's name refers to the first test dataset."""
    metric, names = cfg.test.best_metric, cfg.data.datasets.test
    if metric is None or len(names) <= 1 or metric.split("/", 1)[0] in names:
        return metric
    return f"{names[0]}/{metric}"


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (seeds the global RNG user code relies on)
    random.seed(seed)


def _check_datasets(names: tuple[str, ...]) -> None:
    for name in names:
        if name not in DatasetCatalog:
            known = sorted(DatasetCatalog.list())
            hint = did_you_mean(name, known) or f"; registered: {', '.join(known)}"
            raise InputError(f"unknown dataset {name!r}{hint}")


def register_config_datasets(cfg: ExperimentConfig) -> None:
    """Register the config's own ``datasets:`` in this process (``InputError`` on an unusable file)."""
    try:
        register_datasets(cfg.datasets)
    except DatasetSourceError as err:
        raise InputError(str(err)) from None


def _check_test_aug(cfg: ExperimentConfig, facts: ModelFacts) -> None:
    """Test-time augmentation merges the boxes and masks of an R-CNN model that has a proposal
    generator (as detectron2's ``GeneralizedRCNNWithTTA``)."""
    if not cfg.test.aug.enabled:
        return
    if facts.meta_architecture != "GeneralizedRCNN":
        problem = f"a {facts.meta_architecture} model"
    elif facts.keypoint_on:
        problem = "keypoint heads"
    elif facts.precomputed_proposals:
        problem = "precomputed proposals"
    else:
        return
    raise InputError(
        f"test.aug.enabled: test-time augmentation supports R-CNN boxes and masks, not {problem} "
        "(set test.aug.enabled=false)"
    )


def _check_proposal_files(cfg: ExperimentConfig, facts: ModelFacts) -> None:
    """Every proposal file exists, and a model takes precomputed proposals exactly when its datasets
    have proposal files."""
    datasets = cfg.data.datasets
    precomputed = facts.precomputed_proposals
    for split in ("train", "test"):
        key, files = f"data.datasets.proposal_files_{split}", getattr(datasets, f"proposal_files_{split}")
        if precomputed and getattr(datasets, split) and not files:
            raise InputError(
                f"{key}: expected a proposal file per dataset of data.datasets.{split}: the model's "
                "proposal_generator is PrecomputedProposals"
            )
        if files and not precomputed:
            raise InputError(
                f"{key}: proposal files are read by a model with proposal_generator "
                "{name: PrecomputedProposals} only (remove them, or set model.proposal_generator)"
            )
        for index, path in enumerate(files):
            if not os.path.isfile(path):
                zoo_file = path.startswith("detectron2://")
                hint = " (a detectron2 model-zoo file: download it, give its local path)" if zoo_file else ""
                raise InputError(f"{key}[{index}]: proposal file not found: {path}{hint}")


def _check_num_classes(cfg: ExperimentConfig, facts: ModelFacts) -> None:
    """Every head predicts as many classes as the training data has (fewer would crash inside the loss,
    more would train silently wrong heads), and at least as many as each test dataset: instance heads
    against ``thing_classes``, semantic heads against ``stuff_classes`` and the ``ignore_label``."""
    train = cfg.data.datasets.train
    for count in facts.class_counts:
        what = "classes" if count.kind == "thing" else "stuff classes (semantic labels)"
        for name in train + cfg.data.datasets.test:
            metadata = MetadataCatalog.get(name)
            classes = metadata.get(f"{count.kind}_classes")
            found = None if classes is None else len(classes)
            expected = count.num_classes
            if found is not None and (found != expected if name in train else found > expected):
                raise InputError(
                    f"dataset {name!r} has {found} {what}, {count.key} is {expected} "
                    f"(set {count.key}={found})"
                )
            ignore = metadata.get("ignore_label") if count.ignore_key is not None else None
            if ignore is not None and ignore != count.ignore_value:
                raise InputError(
                    f"dataset {name!r} marks unlabelled pixels with ignore_label {ignore}, "
                    f"{count.ignore_key} is {count.ignore_value} (set {count.ignore_key}={ignore})"
                )


def _check_separated_stuff_labels(cfg: ExperimentConfig, facts: ModelFacts) -> None:
    """A model whose semantic head takes every thing as class 0 (Panoptic FPN) trains and evaluates
    only on datasets labelled so: their ``stuff_dataset_id_to_contiguous_id`` maps dataset id 0 (the
    things) to 0 and no thing category to a label of its own, as detectron2's separated panoptic sets."""
    if not facts.things_as_one_stuff_class:
        return
    for name in cfg.data.datasets.train + cfg.data.datasets.test:
        metadata = MetadataCatalog.get(name)
        stuff = metadata.get("stuff_dataset_id_to_contiguous_id")
        things = metadata.get("thing_dataset_id_to_contiguous_id") or {}
        if stuff is not None and (stuff.get(0) != 0 or set(stuff) & set(things)):
            raise InputError(
                f"dataset {name!r} does not label all things as semantic class 0: "
                f"{facts.meta_architecture}'s semantic head needs the separated panoptic form (things 0, "
                f"stuff classes from 1), e.g. shapes_train_panoptic_separated"
            )


def set_fed_loss_weights(model: nn.Module, train_datasets: Iterable[str], facts: ModelFacts) -> None:
    """Give every federated-loss box predictor of ``model`` its class sampling weights: the image
    count of each class in the training datasets' metadata (``class_image_count``, LVIS) to the
    config's power, as detectron2 computes them when it builds the predictor."""
    power = facts.fed_loss_freq_weight_power
    if power is None:
        return
    try:
        weights = get_fed_loss_cls_weights(list(train_datasets), power)
    except ValueError as e:
        raise InputError(f"the federated loss needs per-class image counts of the training data: {e}") from e
    for module in model.modules():
        if getattr(module, "use_fed_loss", False) and hasattr(module, "set_fed_loss_cls_weights"):
            module.set_fed_loss_cls_weights(weights.to(module.fed_loss_cls_weights.device))


class DefaultTrainer:
    """The standard training and evaluation workflow (detectron2's ``DefaultTrainer`` role).

    Construction is cheap (nothing is built); ``train()`` runs on every process of a launched
    job, ``test(model)`` evaluates on every ``data.datasets.test``. Override builders in a subclass;
    ``self.cfg`` is the experiment config (``self.cfg.workflow`` the subclass's own options).
    """

    def __init__(self, cfg: ExperimentConfig) -> None:
        if not isinstance(cfg, ExperimentConfig):
            raise TypeError(f"{type(self).__name__} needs an ExperimentConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.model_facts = model_facts(cfg.model)
        self.deadline: float | None = None
        """A ``time.perf_counter()`` value training should end by: the console shows the time left."""

    # ------------------------------------------------------------------------------------- checks
    def check(self) -> None:
        """What ``dt train``/``eval``/``demo`` check before anything is written or launched: every
        dataset is registered (the config's own ``datasets:`` first, with their metadata), the
        training data has as many classes as the model (test data no more), test-time augmentation
        and proposal files suit the model, and every test dataset has an evaluator
        (``check_evaluator``). Raises ``InputError``."""
        register_config_datasets(self.cfg)
        datasets = self.cfg.data.datasets
        _check_datasets(datasets.train + datasets.test)
        _check_num_classes(self.cfg, self.model_facts)
        _check_separated_stuff_labels(self.cfg, self.model_facts)
        _check_test_aug(self.cfg, self.model_facts)
        _check_proposal_files(self.cfg, self.model_facts)
        for name in datasets.test:
            self.check_evaluator(name)

    def check_evaluator(self, dataset_name: str) -> None:
        """Raise ``InputError`` if ``build_evaluator(dataset_name)`` cannot work: by default the
        dataset's ``evaluator_type`` must be registered. Override it with ``build_evaluator``."""
        evaluator_builder(dataset_name)

    # ----------------------------------------------------------------------------------- builders
    def build_model(self) -> nn.Module:
        """``cfg.model`` on this process's device (``cuda:<local rank>`` or the CPU), not DDP-wrapped."""
        return dt_models.build_model(self.cfg.model, comm.default_device())

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return solver_build.build_optimizer(model, self.cfg.solver)

    def build_lr_scheduler(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        return solver_build.build_lr_scheduler(optimizer, self.cfg.solver)

    def build_train_loader(self, seed: int) -> Iterable[Any]:
        """Endless batches of ``ims_per_batch / (processes x accumulate_steps)`` images per process,
        deterministic for ``seed`` (so ``CountingLoader`` can replay them on resume)."""
        solver = self.cfg.solver
        return data_build.build_train_loader(
            self.cfg.data,
            total_batch_size=solver.ims_per_batch // solver.accumulate_steps,
            seed=seed,
            mask_on=self.model_facts.mask_on,
            keypoint_on=self.model_facts.keypoint_on,
            min_keypoints=self.model_facts.min_keypoints_per_image,
        )

    def build_test_loader(self, dataset_name: str) -> Iterable[Any]:
        """Batches of one image of ``dataset_name``, mapped by the test mapper."""
        return data_build.build_test_loader(self.cfg.data, dataset_name)

    def build_validation_loader(self) -> Iterable[Any]:
        """The test datasets with training-time mapping (annotations kept), for ``ValidationLoss``."""
        facts, datasets = self.model_facts, self.cfg.data.datasets
        mapper = data_build.build_mapper(
            self.cfg.data,
            True,
            mask_on=facts.mask_on,
            keypoint_on=facts.keypoint_on,
            precomputed_proposal_topk=datasets.proposal_topk(is_train=False),
        )
        dicts = get_detection_dataset_dicts(
            list(datasets.test), filter_empty=False, proposal_files=datasets.proposal_files_test or None
        )
        return build_detection_test_loader(dicts, mapper=mapper, batch_size=1)

    def build_evaluator(self, dataset_name: str, output_dir: str | None = None) -> DatasetEvaluator:
        """The evaluator(s) of the dataset's ``evaluator_type`` (``dt_engine.evaluation``); files go to
        ``output_dir`` (default ``<output_dir>/inference/<dataset_name>``)."""
        if output_dir is None:
            output_dir = os.path.join(self.cfg.output_dir, "inference", dataset_name)
        return build_evaluator(dataset_name, self.cfg, output_dir)

    def build_trainer(
        self, model: nn.Module, data_loader: Iterable[Any], optimizer: torch.optim.Optimizer
    ) -> SimpleTrainer:
        """``AMPTrainer`` if ``solver.amp.enabled`` else ``SimpleTrainer``; accumulation, clipping, EMA."""
        return solver_build.build_trainer(model, data_loader, optimizer, self.cfg.solver)

    def build_writers(self) -> list[EventWriter]:
        """Console progress, ``<output_dir>/metrics.jsonl`` and TensorBoard (main process only)."""
        out = Path(self.cfg.output_dir)
        return [
            ConsoleWriter(self.cfg.solver.max_iter, deadline=self.deadline),
            JSONWriter(out / "metrics.jsonl"),
            TensorboardWriter(out),
        ]

    def build_hooks(self, parts: TrainingParts) -> list[HookBase | None]:
        """IterationTimer, LRScheduler, PreciseBN, PeriodicCheckpointer, ValidationLoss, EvalHook
        (EMA weights when enabled), then on the main process BestCheckpointer (``test.best_metric``,
        when ``eval_period > 0``) and PeriodicWriter; ``None`` entries are skipped."""
        cfg = self.cfg
        hooks: list[HookBase | None] = [IterationTimer(), LRScheduler(parts.scheduler)]
        if cfg.test.precise_bn.enabled:
            loader = self.build_train_loader(cfg.seed + 1)
            hooks.append(PreciseBN(cfg.test.eval_period, parts.model, loader, cfg.test.precise_bn.num_iter))
        solver = cfg.solver
        hooks.append(
            PeriodicCheckpointer(parts.checkpointer, solver.checkpoint_period, solver.checkpoints_to_keep)
        )
        if cfg.test.val_loss_period > 0:
            hooks.append(ValidationLoss(cfg.test.val_loss_period, self.build_validation_loader()))
        hooks.append(EvalHook(cfg.test.eval_period, lambda: self._test_during_training(parts)))
        if comm.is_main_process():
            metric = best_metric_key(cfg)
            if cfg.test.eval_period > 0 and metric is not None:
                hooks.append(
                    BestCheckpointer(cfg.test.eval_period, parts.checkpointer, metric, cfg.test.best_mode)
                )
            hooks.append(PeriodicWriter(self.build_writers(), period=20))
        return hooks

    # ------------------------------------------------------------------------------------ running
    def train(self, *, resume: bool = False, weights: str | None = None, exact_resume: bool = True) -> None:
        """Train on this process (one of ``comm.get_world_size()``); writes to ``cfg.output_dir``.

        ``weights``: initial weights (ignored when ``resume`` finds a checkpoint). A resumed run
        restores the data position too (``exact_resume``: the loader re-reads and skips the
        batches already used) or re-seeds the loader with ``seed + start_iter`` (faster,
        deterministic, but another data order than an uninterrupted run). Denormal floats are
        flushed to zero meanwhile (``dt_engine.cpu.flush_denormals``).
        """
        with flush_denormals():
            self._train(resume=resume, weights=weights, exact_resume=exact_resume)

    def _train(self, *, resume: bool, weights: str | None, exact_resume: bool) -> None:
        cfg = self.cfg
        register_config_datasets(cfg)  # every process of a launched run (spawned ones start empty)
        out = Path(cfg.output_dir)
        _seed_everything(cfg.seed + comm.get_rank())
        model = self.build_model()
        set_fed_loss_weights(model, self.cfg.data.datasets.train, self.model_facts)
        if weights is not None:
            load_model_weights(model, weights)  # before the EMA copies them; a resume overwrites both
        optimizer = self.build_optimizer(model)
        scheduler = self.build_lr_scheduler(optimizer)
        if comm.get_world_size() > 1:
            ids = [comm.get_local_rank()] if torch.cuda.is_available() else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)
        data = CountingLoader(self.build_train_loader(cfg.seed))
        trainer = self.build_trainer(model, data, optimizer)
        config_text = dump_config(cfg)
        stateful = {"optimizer": optimizer, "scheduler": scheduler, "trainer": trainer, "ema": trainer.ema}
        checkpointer = Checkpointer(model, out, config=config_text, **stateful)
        if comm.is_main_process():
            atomic_write_text(out / "config.yaml", config_text)
        parts = TrainingParts(
            model=model, optimizer=optimizer, scheduler=scheduler, trainer=trainer, checkpointer=checkpointer
        )
        trainer.register_hooks(self.build_hooks(parts))  # before resuming: hooks have state too
        start_iter = checkpointer.resume_or_load(None, resume=resume)
        if start_iter > 0 and not exact_resume:
            trainer.data_loader = CountingLoader(self.build_train_loader(cfg.seed + start_iter))
            trainer.data_loader.load_state_dict(data.state_dict(), skip=False)
        elif data.consumed:
            logger.info(
                "skipping %d batches to restore the data position (--fast-resume re-seeds instead)",
                data.consumed,
            )
        max_iter = cfg.solver.max_iter
        if start_iter >= max_iter:
            logger.info("already trained to max_iter=%d; evaluating only", max_iter)
        trainer.train(min(start_iter, max_iter), max_iter)

    def _test_during_training(self, parts: TrainingParts) -> Mapping[str, Any]:
        ema: ModelEMA | None = parts.trainer.ema
        # test-time augmentation after the last iteration only, as detectron2's train_net
        with_tta = self.cfg.test.aug.enabled and parts.trainer.iter >= parts.trainer.max_iter
        if ema is None:
            return self.test(parts.model, with_tta=with_tta)
        with ema.apply_to(parts.model):
            return self.test(parts.model, with_tta=with_tta)

    def test(self, model: nn.Module, *, with_tta: bool | None = None) -> dict[str, Any]:
        """Evaluate ``model`` on every ``data.datasets.test`` with ``build_test_loader`` and
        ``build_evaluator``: ``{task: {metric: value}}`` for one dataset, ``{dataset: {task: ...}}``
        for several, ``{}`` for none (results on the main process; other processes get ``{}``).

        With test-time augmentation (``with_tta``, default ``test.aug.enabled``) each dataset's
        results also hold those of ``build_tta_model`` as ``<task>_TTA`` (``bbox_TTA``, ...), its
        evaluator files in ``<output_dir>/inference_TTA/<dataset>``."""
        register_config_datasets(self.cfg)
        if with_tta is None:
            with_tta = self.cfg.test.aug.enabled
        tta_model = build_tta_model(self.cfg, model) if with_tta else None
        results = {}
        for name in self.cfg.data.datasets.test:
            evaluator = self.build_evaluator(name)
            loader = self.build_test_loader(name)
            results[name] = inference_on_dataset(model, loader, evaluator, progress=comm.is_main_process())
            if tta_model is not None:
                evaluator = self.build_evaluator(
                    name, os.path.join(self.cfg.output_dir, "inference_TTA", name)
                )
                augmented = inference_on_dataset(
                    tta_model, loader, evaluator, progress=comm.is_main_process()
                )
                results[name].update({f"{task}_TTA": value for task, value in augmented.items()})
            if comm.is_main_process() and results[name]:
                logger.info("evaluation results of %s:", name)
                print_csv_format(results[name])
        return next(iter(results.values())) if len(results) == 1 else results


def build_workflow(cfg: ExperimentConfig) -> DefaultTrainer:
    """The workflow ``cfg.workflow`` names (``WORKFLOW_REGISTRY``), for ``cfg``."""
    workflow = WORKFLOW_REGISTRY.get(type(cfg.workflow).name).build(cfg)
    if not isinstance(workflow, DefaultTrainer):
        raise TypeError(
            f"workflow {type(cfg.workflow).name!r} built a {type(workflow).__name__}, not a DefaultTrainer"
        )
    return workflow


def run_training(cfg: ExperimentConfig, resume: bool, weights: str | None, exact_resume: bool = True) -> None:
    """``build_workflow(cfg).train(...)``: what ``dt train`` launches on every process."""
    build_workflow(cfg).train(resume=resume, weights=weights, exact_resume=exact_resume)
