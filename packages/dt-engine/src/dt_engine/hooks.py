"""The standard hooks. Typical order: IterationTimer, LRScheduler, PreciseBN, PeriodicCheckpointer,
ValidationLoss, EvalHook, BestCheckpointer, PeriodicWriter (writers last so they see every metric)."""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

from dt_config import did_you_mean

from .checkpoint import Checkpointer, capture_rng_state, restore_rng_state
from .comm import reduce_mean, synchronize
from .ema import unwrap_model
from .train_loop import HookBase
from .writers import EventWriter

__all__ = [
    "BestCheckpointer",
    "EvalHook",
    "IterationTimer",
    "LRScheduler",
    "PeriodicCheckpointer",
    "PeriodicWriter",
    "PreciseBN",
    "ValidationLoss",
    "flatten_results",
    "update_bn_stats",
]

logger = logging.getLogger(__name__)


def _due(iteration: int, period: int, max_iter: int) -> bool:
    """Whether a periodic action runs after ``iteration`` (0-based): every ``period`` and at the end."""
    return iteration + 1 == max_iter or (period > 0 and (iteration + 1) % period == 0)


class IterationTimer(HookBase):
    """Records the duration of each step (``time``, hooks excluded) and logs the total at the end."""

    def __init__(self, warmup_iter: int = 3) -> None:
        self.warmup_iter = warmup_iter
        self._step_start = 0.0
        self._train_start = 0.0
        self._timed = 0
        self._timed_seconds = 0.0

    def before_train(self) -> None:
        self._train_start = time.perf_counter()

    def before_step(self) -> None:
        self._step_start = time.perf_counter()

    def after_step(self) -> None:
        seconds = time.perf_counter() - self._step_start
        state = self.state
        if state.iter - state.start_iter >= self.warmup_iter:
            self._timed += 1
            self._timed_seconds += seconds
        state.storage.put_scalar("time", seconds)

    def after_train(self) -> None:
        total = time.perf_counter() - self._train_start
        if self._timed:
            logger.info(
                "total training time %.1fs (%.4f s/it over %d timed iterations)",
                total,
                self._timed_seconds / self._timed,
                self._timed,
            )


class LRScheduler(HookBase):
    """Records the learning rate (``lr``) and steps ``scheduler`` after every iteration."""

    def __init__(self, scheduler: torch.optim.lr_scheduler.LRScheduler) -> None:
        self.scheduler = scheduler
        self._group: int | None = None

    def _representative_group(self) -> int:
        groups = self.scheduler.optimizer.param_groups
        largest = max(len(g["params"]) for g in groups)
        if largest == 1:  # every group has one parameter: report the most common LR
            common = Counter(g["lr"] for g in groups).most_common(1)[0][0]
            return next(i for i, g in enumerate(groups) if g["lr"] == common)
        return next(i for i, g in enumerate(groups) if len(g["params"]) == largest)

    def after_step(self) -> None:
        if self._group is None:
            self._group = self._representative_group()
        lr = self.scheduler.optimizer.param_groups[self._group]["lr"]
        self.state.storage.put_scalar("lr", lr, smoothing_hint=False)
        self.scheduler.step()


class PeriodicCheckpointer(HookBase):
    """Saves ``model_<iteration>.pth`` every ``period`` iterations (keeping the newest
    ``max_to_keep``) and ``model_final.pth`` after the last one. Collective under DDP."""

    def __init__(self, checkpointer: Checkpointer, period: int, max_to_keep: int | None = None) -> None:
        if period <= 0:
            raise ValueError(f"period must be > 0, got {period}")
        self.checkpointer = checkpointer
        self.period = period
        self.max_to_keep = max_to_keep

    def after_step(self) -> None:
        state = self.state
        if (state.iter + 1) % self.period == 0:
            self.checkpointer.save(f"model_{state.iter:07d}", iteration=state.iter)
            if self.max_to_keep is not None:
                self.checkpointer.prune(self.max_to_keep)
        if state.iter + 1 == state.max_iter:
            self.checkpointer.save("model_final", iteration=state.iter)


def flatten_results(results: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """``{"bbox": {"AP": 40.1}}`` -> ``{"bbox/AP": 40.1}``; every leaf must be a number."""
    flat: dict[str, float] = {}
    for key, value in results.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten_results(value, name))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[name] = float(value)
        else:
            raise TypeError(
                f"evaluation result {name!r} must be a number or a mapping, got {type(value).__name__}"
            )
    return flat


class EvalHook(HookBase):
    """Calls ``eval_function()`` every ``eval_period`` iterations (0: never during training) and after
    the last one. Its result (nested mapping of numbers, e.g. ``{"bbox": {"AP": 40.1}}``) is put in
    the storage as ``bbox/AP`` and kept in ``results`` as ``(iteration, result)``."""

    def __init__(self, eval_period: int, eval_function: Callable[[], Mapping[str, Any] | None]) -> None:
        if eval_period < 0:
            raise ValueError(f"eval_period must be >= 0, got {eval_period}")
        self.eval_period = eval_period
        self.eval_function = eval_function
        self.results: list[tuple[int, Mapping[str, Any]]] = []

    def _do_eval(self, iteration: int) -> None:
        results = self.eval_function()
        if results:
            flat = flatten_results(results)
            self.state.storage.put_scalars(smoothing_hint=False, **flat)
            self.results.append((iteration, results))
        synchronize()

    def after_step(self) -> None:
        state = self.state
        next_iter = state.iter + 1
        if self.eval_period > 0 and next_iter % self.eval_period == 0 and next_iter != state.max_iter:
            self._do_eval(state.iter)

    def after_train(self) -> None:
        state = self.state
        if state.iter >= state.max_iter:  # training completed (not interrupted by an exception)
            self._do_eval(state.max_iter - 1)


class BestCheckpointer(HookBase):
    """Saves ``<file_prefix>.pth`` whenever ``val_metric`` (e.g. ``bbox/AP``) improves.

    Register it after the ``EvalHook`` with the same ``eval_period``, on the main process only
    (where evaluation results are). Its best value is part of the trainer's state, so a resumed
    run keeps comparing against it.
    """

    def __init__(
        self,
        eval_period: int,
        checkpointer: Checkpointer,
        val_metric: str,
        mode: Literal["max", "min"] = "max",
        file_prefix: str = "model_best",
    ) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.eval_period = eval_period
        self.checkpointer = checkpointer
        self.val_metric = val_metric
        self.mode = mode
        self.file_prefix = file_prefix
        self.best_metric: float | None = None
        self.best_iter: int | None = None

    def _better(self, value: float) -> bool:
        if self.best_metric is None:
            return True
        return value > self.best_metric if self.mode == "max" else value < self.best_metric

    def _check(self, iteration: int) -> None:
        recorded = self.state.storage.latest()
        latest = recorded.get(self.val_metric)
        if latest is None:
            logger.warning(
                "BestCheckpointer: metric %r was not recorded%s; not saving (see test.best_metric)",
                self.val_metric,
                did_you_mean(self.val_metric, recorded),
            )
            return
        value, _ = latest
        if math.isfinite(value) and self._better(value):
            self.best_metric, self.best_iter = value, iteration
            # not a resume point: resuming continues from the periodic checkpoints
            self.checkpointer.save(self.file_prefix, iteration=iteration, collective=False, mark_last=False)

    def after_step(self) -> None:
        state = self.state
        next_iter = state.iter + 1
        if self.eval_period > 0 and next_iter % self.eval_period == 0 and next_iter != state.max_iter:
            self._check(state.iter)

    def after_train(self) -> None:
        state = self.state
        if state.iter >= state.max_iter:
            self._check(state.max_iter - 1)

    def state_dict(self) -> dict[str, Any]:
        return {"best_metric": self.best_metric, "best_iter": self.best_iter}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best_metric = state["best_metric"]
        self.best_iter = state["best_iter"]


class _PreserveState:
    """Restores a model's buffers, its training flag and the RNG states on exit, so an auxiliary
    pass (validation losses) does not change the training run."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> None:
        self._buffers = {k: v.detach().clone() for k, v in self.model.named_buffers()}
        self._training = self.model.training
        self._rng = capture_rng_state()

    def __exit__(self, *exc: object) -> None:
        with torch.no_grad():
            for name, buffer in self.model.named_buffers():
                buffer.copy_(self._buffers[name])
        self.model.train(self._training)
        restore_rng_state(self._rng)


class ValidationLoss(HookBase):
    """The training losses on a held-out loader, every ``period`` iterations and after the last.

    The model runs in training mode (that is where it computes losses) without gradients;
    its buffers (BatchNorm statistics) and every RNG state are restored afterwards, so the
    training run is unchanged. Records ``val_total_loss`` and ``val_<loss name>``, averaged over
    the loader (and processes).
    """

    def __init__(self, period: int, data_loader: Iterable[Any], max_batches: int | None = None) -> None:
        if period <= 0:
            raise ValueError(f"period must be > 0, got {period}")
        self.period = period
        self.data_loader = data_loader
        self.max_batches = max_batches

    def compute(self, model: nn.Module) -> dict[str, float]:
        sums: dict[str, float] = {}
        count = 0
        inner = unwrap_model(model)
        with _PreserveState(inner), torch.no_grad():
            inner.train()
            for batch in self.data_loader:
                if self.max_batches is not None and count >= self.max_batches:
                    break
                for name, value in inner(batch).items():
                    sums[name] = sums.get(name, 0.0) + float(value)
                count += 1
        if count == 0:
            raise ValueError("ValidationLoss: the validation loader yielded no batch")
        losses = reduce_mean({k: v / count for k, v in sums.items()})
        return {"val_total_loss": sum(losses.values()), **{f"val_{k}": v for k, v in losses.items()}}

    def after_step(self) -> None:
        state = self.state
        if _due(state.iter, self.period, state.max_iter) and state.model is not None:
            state.storage.put_scalars(smoothing_hint=False, **self.compute(state.model))


@torch.no_grad()
def update_bn_stats(model: nn.Module, batches: Iterable[Any], num_iter: int) -> None:
    """Recompute every BatchNorm's running mean/var as the average over ``num_iter`` batches.

    The model runs in training mode; each BatchNorm sees the batch statistics with momentum 1
    and their exact average is kept (as fvcore's ``update_bn_stats``).
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    if not bns:
        return
    momenta = [bn.momentum for bn in bns]
    means = [torch.zeros_like(bn.running_mean) for bn in bns]
    variances = [torch.zeros_like(bn.running_var) for bn in bns]
    for bn in bns:
        bn.momentum = 1.0
    seen = 0
    for batch in batches:
        if seen >= num_iter:
            break
        model(batch)
        for i, bn in enumerate(bns):
            means[i] += (bn.running_mean - means[i]) / (seen + 1)
            variances[i] += (bn.running_var - variances[i]) / (seen + 1)
        seen += 1
    if seen < num_iter:
        raise ValueError(f"update_bn_stats: needed {num_iter} batches, the loader gave {seen}")
    for bn, mean, var, momentum in zip(bns, means, variances, momenta, strict=True):
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.momentum = momentum


class PreciseBN(HookBase):
    """Recomputes BatchNorm statistics (``update_bn_stats``) every ``period`` and after the last
    iteration; register it before the ``EvalHook`` so evaluation sees the precise statistics."""

    def __init__(self, period: int, model: nn.Module, data_loader: Iterable[Any], num_iter: int) -> None:
        self.period = period
        self.model = model
        self.data_loader = data_loader
        self.num_iter = num_iter
        self._disabled = not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())

    def after_step(self) -> None:
        state = self.state
        if not self._disabled and _due(state.iter, self.period, state.max_iter):
            with _KeepRng():
                update_bn_stats(unwrap_model(self.model), iter(self.data_loader), self.num_iter)


class _KeepRng:
    def __enter__(self) -> None:
        self._rng = capture_rng_state()

    def __exit__(self, *exc: object) -> None:
        restore_rng_state(self._rng)


class PeriodicWriter(HookBase):
    """Calls each writer's ``write`` every ``period`` iterations and after the last; closes them at the end
    of training."""

    def __init__(self, writers: Sequence[EventWriter], period: int = 20) -> None:
        if period <= 0:
            raise ValueError(f"period must be > 0, got {period}")
        self.writers = list(writers)
        self.period = period

    def after_step(self) -> None:
        state = self.state
        if _due(state.iter, self.period, state.max_iter):
            for writer in self.writers:
                writer.write()

    def after_train(self) -> None:
        for writer in self.writers:
            writer.write()
            writer.close()
