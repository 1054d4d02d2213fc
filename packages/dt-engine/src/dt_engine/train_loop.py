"""The training loop: ``TrainerBase`` with hooks, ``SimpleTrainer`` and ``AMPTrainer``."""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Literal

import attrs
import torch
from torch import nn

from .comm import reduce_mean
from .ema import ModelEMA
from .events import EventStorage

__all__ = ["AMPTrainer", "GradClip", "HookBase", "SimpleTrainer", "TrainerBase", "TrainerState"]


@attrs.frozen
class TrainerState:
    """The part of a running trainer that hooks read.

    ``iter`` is the iteration being run (inside ``before_step``/``after_step``) or, in
    ``after_train``, one past the last one that ran.
    """

    iter: int
    start_iter: int
    max_iter: int
    storage: EventStorage
    model: nn.Module | None
    optimizer: torch.optim.Optimizer | None


class HookBase:
    """Code that runs at fixed points of ``TrainerBase.train``. The exact order of calls::

        hook.before_train()                      # for every hook, in registration order
        for trainer.iter in range(start_iter, max_iter):
            hook.before_step()                   # every hook
            trainer.run_step()
            hook.after_step()                    # every hook
        hook.after_train()                       # every hook; also when a step raised

    A hook holds only a weak reference to its trainer (no reference cycle). It reads the
    trainer's state through ``self.state`` (a typed ``TrainerState``) and may keep its own
    resumable state through ``state_dict``/``load_state_dict``.
    """

    _trainer_ref: weakref.ref[TrainerBase] | None = None

    @property
    def trainer(self) -> TrainerBase:
        trainer = self._trainer_ref() if self._trainer_ref is not None else None
        if trainer is None:
            raise RuntimeError(f"{type(self).__name__} is not registered with a live trainer")
        return trainer

    @property
    def state(self) -> TrainerState:
        return self.trainer.state

    def before_train(self) -> None:
        """Called once before the first iteration."""

    def after_train(self) -> None:
        """Called once after the last iteration, or after a step raised."""

    def before_step(self) -> None:
        """Called before each iteration."""

    def after_step(self) -> None:
        """Called after each iteration."""


class TrainerBase:
    """Runs ``run_step`` from ``start_iter`` to ``max_iter`` surrounded by hooks (see ``HookBase``)."""

    def __init__(self) -> None:
        self._hooks: list[HookBase] = []
        self.iter = 0
        self.start_iter = 0
        self.max_iter = 0
        self.storage = EventStorage(0)

    @property
    def hooks(self) -> tuple[HookBase, ...]:
        return tuple(self._hooks)

    @property
    def model(self) -> nn.Module | None:
        return None

    @property
    def optimizer(self) -> torch.optim.Optimizer | None:
        return None

    @property
    def state(self) -> TrainerState:
        return TrainerState(
            iter=self.iter,
            start_iter=self.start_iter,
            max_iter=self.max_iter,
            storage=self.storage,
            model=self.model,
            optimizer=self.optimizer,
        )

    def register_hooks(self, hooks: Iterable[HookBase | None]) -> None:
        """Append hooks (``None`` entries are skipped); they run in the order registered."""
        for hook in hooks:
            if hook is None:
                continue
            if not isinstance(hook, HookBase):
                raise TypeError(f"hooks must be HookBase instances, got {type(hook).__name__}")
            hook._trainer_ref = weakref.ref(self)
            self._hooks.append(hook)

    def train(self, start_iter: int, max_iter: int) -> None:
        """Run iterations ``start_iter .. max_iter - 1``."""
        if start_iter < 0 or max_iter < start_iter:
            raise ValueError(f"need 0 <= start_iter <= max_iter, got {start_iter} and {max_iter}")
        self.iter = self.start_iter = start_iter
        self.max_iter = max_iter
        self.storage = EventStorage(start_iter)
        with self.storage:
            try:
                for hook in self._hooks:
                    hook.before_train()
                while self.iter < max_iter:
                    self.storage.iter = self.iter
                    for hook in self._hooks:
                        hook.before_step()
                    self.run_step()
                    for hook in self._hooks:
                        hook.after_step()
                    self.iter += 1
            finally:
                for hook in self._hooks:
                    hook.after_train()

    def run_step(self) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """The iteration last completed and the state of every hook that has one."""
        hooks = {}
        for hook in self._hooks:
            if hasattr(hook, "state_dict"):
                name = type(hook).__qualname__
                if name in hooks:
                    raise ValueError(f"two hooks of type {name} have state; cannot checkpoint both")
                hooks[name] = hook.state_dict()
        return {"iteration": self.iter, "hooks": hooks}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.iter = int(state["iteration"])
        for hook in self._hooks:
            name = type(hook).__qualname__
            if name in state.get("hooks", {}) and hasattr(hook, "load_state_dict"):
                hook.load_state_dict(state["hooks"][name])


@attrs.frozen(kw_only=True)
class GradClip:
    """Gradient clipping: by total norm (``"norm"``, order ``norm_type``) or element-wise (``"value"``)."""

    mode: Literal["norm", "value"] = "norm"
    max_value: float = attrs.field(validator=attrs.validators.gt(0.0))
    norm_type: float = 2.0

    def __attrs_post_init__(self) -> None:
        if self.mode not in ("norm", "value"):
            raise ValueError(f"mode must be 'norm' or 'value', got {self.mode!r}")

    def apply(self, parameters: Sequence[nn.Parameter]) -> float | None:
        """Clip gradients in place; returns the total norm before clipping for ``"norm"``."""
        params = [p for p in parameters if p.grad is not None]
        if not params:
            return None
        if self.mode == "norm":
            return float(torch.nn.utils.clip_grad_norm_(params, self.max_value, self.norm_type))
        torch.nn.utils.clip_grad_value_(params, self.max_value)
        return None


def _nonfinite_message(losses: Mapping[str, float], iteration: int) -> str:
    """One line naming the loss terms that are NaN/inf, e.g. ``loss_mask = nan at iteration 123``, then
    the finite ones (a sum of finite terms can overflow too: then ``total_loss`` is named)."""
    bad = {name: value for name, value in losses.items() if not math.isfinite(value)}
    if not bad:
        bad = {"total_loss": sum(losses.values())}
    named = ", ".join(f"{name} = {value}" for name, value in bad.items())
    finite = ", ".join(f"{name} = {value:.4g}" for name, value in losses.items() if name not in bad)
    return f"{named} at iteration {iteration}: training diverged" + (f" (finite: {finite})" if finite else "")


class SimpleTrainer(TrainerBase):
    """One optimizer step per iteration on batches from ``data_loader``.

    ``model(batch)`` must return a mapping of named scalar losses; their sum is minimized.
    ``run_step`` does, in order (each a method a subclass can override):

    1. ``accumulate_steps`` times: fetch a batch, ``forward`` (losses), ``backward(total / k)``;
       with DDP the gradient all-reduce runs only on the last micro-batch;
    2. ``optimizer_step``: gradient clipping, then ``optimizer.step()``;
    3. EMA update (if ``ema`` is given) and metrics (``total_loss``, each loss, ``data_time``,
       ``grad_norm`` when clipping by norm) averaged over processes into the event storage.
    """

    def __init__(
        self,
        model: nn.Module,
        data_loader: Iterable[Any],
        optimizer: torch.optim.Optimizer,
        *,
        accumulate_steps: int = 1,
        clip_grad: GradClip | None = None,
        ema: ModelEMA | None = None,
    ) -> None:
        super().__init__()
        if accumulate_steps < 1:
            raise ValueError(f"accumulate_steps must be >= 1, got {accumulate_steps}")
        self._model = model
        self.data_loader = data_loader
        self._optimizer = optimizer
        self.accumulate_steps = accumulate_steps
        self.clip_grad = clip_grad
        self.ema = ema
        self._data_iter: Iterator[Any] | None = None

    @property
    def model(self) -> nn.Module:
        return self._model

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self._optimizer

    def _next_batch(self) -> Any:
        if self._data_iter is None:
            self._data_iter = iter(self.data_loader)
        return next(self._data_iter)

    def forward(self, batch: Any) -> Mapping[str, torch.Tensor]:
        losses = self._model(batch)
        if not isinstance(losses, Mapping) or not losses:
            raise TypeError(f"in training the model must return a non-empty loss dict, got {type(losses)}")
        return losses

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def optimizer_step(self) -> float | None:
        """Clip (if configured) and step; returns the gradient norm when clipping by norm."""
        norm = self._clip()
        self._optimizer.step()
        return norm

    def _clip(self) -> float | None:
        if self.clip_grad is None:
            return None
        return self.clip_grad.apply([p for g in self._optimizer.param_groups for p in g["params"]])

    def _no_sync(self, last: bool) -> AbstractContextManager[Any]:
        if not last and isinstance(self._model, nn.parallel.DistributedDataParallel):
            return self._model.no_sync()
        return nullcontext()

    def run_step(self) -> None:
        if not self._model.training:
            raise RuntimeError("SimpleTrainer.run_step: the model is in eval mode; call model.train()")
        self._optimizer.zero_grad(set_to_none=True)
        data_time = 0.0
        sums: dict[str, float] = {}
        for micro in range(self.accumulate_steps):
            start = time.perf_counter()
            batch = self._next_batch()
            data_time += time.perf_counter() - start
            with self._no_sync(last=micro == self.accumulate_steps - 1):
                loss_dict = self.forward(batch)
                total = sum(loss_dict.values())
                self.backward(total / self.accumulate_steps)
            for name, value in loss_dict.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach())
        grad_norm = self.optimizer_step()
        if self.ema is not None:
            self.ema.update(self._model)
        metrics = {name: value / self.accumulate_steps for name, value in sums.items()}
        self._write_metrics(metrics, data_time, grad_norm)

    def _write_metrics(self, losses: dict[str, float], data_time: float, grad_norm: float | None) -> None:
        extra = {"data_time": data_time}
        if grad_norm is not None:
            extra["grad_norm"] = grad_norm
        reduced = reduce_mean({**losses, **extra})
        total = sum(reduced[name] for name in losses)
        if not math.isfinite(total):
            raise FloatingPointError(_nonfinite_message({name: reduced[name] for name in losses}, self.iter))
        self.storage.put_scalar("total_loss", total)
        for name, value in reduced.items():
            self.storage.put_scalar(name, value)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if hasattr(self.data_loader, "state_dict"):
            state["data_loader"] = self.data_loader.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        if "data_loader" in state and hasattr(self.data_loader, "load_state_dict"):
            self.data_loader.load_state_dict(state["data_loader"])
            self._data_iter = None


class AMPTrainer(SimpleTrainer):
    """``SimpleTrainer`` with automatic mixed precision.

    On CUDA the forward runs in ``float16`` (default) with a ``GradScaler``; on CPU in
    ``bfloat16`` (no scaler needed: bfloat16 has float32's exponent range).
    """

    def __init__(
        self,
        model: nn.Module,
        data_loader: Iterable[Any],
        optimizer: torch.optim.Optimizer,
        *,
        precision: torch.dtype | None = None,
        grad_scaler: torch.amp.GradScaler | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, data_loader, optimizer, **kwargs)
        param = next(model.parameters(), None)
        self.device_type = param.device.type if param is not None else "cpu"
        if precision is None:
            precision = torch.float16 if self.device_type == "cuda" else torch.bfloat16
        if precision not in (torch.float16, torch.bfloat16):
            raise ValueError(f"precision must be torch.float16 or torch.bfloat16, got {precision}")
        if self.device_type == "cpu" and precision == torch.float16:
            raise ValueError("float16 autocast is CUDA-only; use precision=torch.bfloat16 on CPU")
        self.precision = precision
        if grad_scaler is None and precision == torch.float16:
            grad_scaler = torch.amp.GradScaler(self.device_type)
        self.grad_scaler = grad_scaler

    def forward(self, batch: Any) -> Mapping[str, torch.Tensor]:
        with torch.autocast(device_type=self.device_type, dtype=self.precision):
            return super().forward(batch)

    def backward(self, loss: torch.Tensor) -> None:
        if self.grad_scaler is None:
            loss.backward()
        else:
            self.grad_scaler.scale(loss).backward()

    def optimizer_step(self) -> float | None:
        if self.grad_scaler is None:
            return super().optimizer_step()
        self.grad_scaler.unscale_(self._optimizer)
        norm = self._clip()
        self.grad_scaler.step(self._optimizer)
        self.grad_scaler.update()
        return norm

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.grad_scaler is not None:
            state["grad_scaler"] = self.grad_scaler.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        if self.grad_scaler is not None and "grad_scaler" in state:
            self.grad_scaler.load_state_dict(state["grad_scaler"])
