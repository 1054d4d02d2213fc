"""Learning-rate schedules with detectron2's semantics, and the registry that makes them pluggable.

A schedule is a ``ParamScheduler``: a function of the training progress ``where`` in
``[0, 1]`` (iteration / max_iter) returning a multiplier of the base LR. ``LRMultiplier``
applies one to an optimizer, stepping once per iteration.

``solver.lr_scheduler`` picks the schedule from ``LR_SCHEDULER_REGISTRY`` (entry-point group
``dt_engine.lr_scheduler``): ``lr_scheduler: cosine`` names a schedule without options of its own,
``lr_scheduler: {name: WarmupPolyLR, power: 0.9}`` one with options, validated like any config
field. A schedule is a config class deriving from ``LRSchedulerConfig`` and a build function
``build(config, solver: SolverConfig) -> ParamScheduler`` returning the whole multiplier, warmup
included::

    @attrs.define(frozen=True, kw_only=True)
    class LinearDecayLRConfig(LRSchedulerConfig):
        name: ClassVar[str] = "linear_decay"
        end: float = attrs.field(default=0.0, validator=check.between(0.0, 1.0))

    @LR_SCHEDULER_REGISTRY.register(LinearDecayLRConfig)
    def build_linear_decay(config: LinearDecayLRConfig, solver: SolverConfig) -> ParamScheduler:
        return with_warmup(LinearParamScheduler(1.0, config.end), solver)

The built-in ``multistep`` and ``cosine`` read detectron2's flat solver keys (``steps``, ``gamma``,
``base_lr_end``); every schedule may use the solver's ``warmup_*`` keys and ``max_iter``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import attrs
import torch

from dt_config import ConfigProblem, Registry, Tagged, converter

if TYPE_CHECKING:
    from .config.solver import SolverConfig

__all__ = [
    "LR_SCHEDULER_REGISTRY",
    "CompositeParamScheduler",
    "ConstantParamScheduler",
    "CosineLRConfig",
    "CosineParamScheduler",
    "LRMultiplier",
    "LRSchedulerConfig",
    "LinearParamScheduler",
    "MultiStepLRConfig",
    "MultiStepParamScheduler",
    "ParamScheduler",
    "WarmupParamScheduler",
    "lr_scheduler_config",
    "with_warmup",
]


def _check_where(where: float) -> None:
    if not 0.0 <= where <= 1.0:
        raise ValueError(f"where must be in [0, 1], got {where}")


class ParamScheduler:
    """A value as a function of training progress ``where`` in ``[0, 1]``."""

    def __call__(self, where: float) -> float:
        raise NotImplementedError


class ConstantParamScheduler(ParamScheduler):
    def __init__(self, value: float) -> None:
        self.value = value

    def __call__(self, where: float) -> float:
        _check_where(where)
        return self.value


class LinearParamScheduler(ParamScheduler):
    """``start`` at 0, ``end`` at 1, linear in between."""

    def __init__(self, start: float, end: float) -> None:
        self.start, self.end = start, end

    def __call__(self, where: float) -> float:
        _check_where(where)
        return self.end * where + self.start * (1.0 - where)


class CosineParamScheduler(ParamScheduler):
    """Half a cosine from ``start`` (at 0) to ``end`` (at 1)."""

    def __init__(self, start: float, end: float) -> None:
        self.start, self.end = start, end

    def __call__(self, where: float) -> float:
        _check_where(where)
        return self.end + 0.5 * (self.start - self.end) * (1.0 + math.cos(math.pi * where))


class MultiStepParamScheduler(ParamScheduler):
    """``values[k]`` after the k-th milestone, counted in updates out of ``num_updates``.

    ``values`` has one more entry than ``milestones``, which must increase strictly.
    """

    def __init__(self, values: Sequence[float], num_updates: int, milestones: Sequence[int]) -> None:
        if len(values) != len(milestones) + 1:
            raise ValueError(f"need len(milestones) + 1 values, got {len(values)} for {len(milestones)}")
        if any(b <= a for a, b in zip(milestones, milestones[1:], strict=False)):
            raise ValueError(f"milestones must increase strictly, got {list(milestones)}")
        if num_updates <= 0:
            raise ValueError(f"num_updates must be > 0, got {num_updates}")
        if milestones and (milestones[0] <= 0 or milestones[-1] > num_updates):
            raise ValueError(f"milestones must lie in (0, num_updates={num_updates}], got {list(milestones)}")
        self.values = list(values)
        self.num_updates = num_updates
        self.milestones = list(milestones)

    def __call__(self, where: float) -> float:
        _check_where(where)
        update = int((where + 1e-6) * self.num_updates)
        return self.values[bisect.bisect_right(self.milestones, update)]


class CompositeParamScheduler(ParamScheduler):
    """Schedulers run one after another, each for its fraction ``lengths[i]`` of training.

    With ``"rescaled"`` a scheduler sees its own progress mapped to ``[0, 1]``; with
    ``"fixed"`` it sees the global ``where``.
    """

    def __init__(
        self,
        schedulers: Sequence[ParamScheduler],
        lengths: Sequence[float],
        interval_scaling: Sequence[Literal["rescaled", "fixed"]],
    ) -> None:
        if not len(schedulers) == len(lengths) == len(interval_scaling) or not schedulers:
            raise ValueError("schedulers, lengths and interval_scaling must be non-empty and of equal length")
        if not math.isclose(sum(lengths), 1.0, abs_tol=1e-6):
            raise ValueError(f"lengths must sum to 1, got {list(lengths)}")
        if any(s not in ("rescaled", "fixed") for s in interval_scaling):
            raise ValueError(f"interval_scaling must be 'rescaled'/'fixed', got {list(interval_scaling)}")
        self.schedulers = list(schedulers)
        self.lengths = list(lengths)
        self.interval_scaling = list(interval_scaling)

    def __call__(self, where: float) -> float:
        _check_where(where)
        start = 0.0
        for i, (scheduler, length) in enumerate(zip(self.schedulers, self.lengths, strict=True)):
            last = i == len(self.schedulers) - 1
            if where < start + length or last:
                if self.interval_scaling[i] == "fixed":
                    return scheduler(where)
                local = (where - start) / length if length > 0 else 0.0
                return scheduler(min(max(local, 0.0), 1.0))
            start += length
        raise AssertionError("unreachable")  # pragma: no cover


class WarmupParamScheduler(CompositeParamScheduler):
    """``scheduler`` preceded by a warmup over the first ``warmup_length`` fraction of training.

    The warmup starts at ``warmup_factor * scheduler(0)`` and, for ``"linear"``, rises to
    ``scheduler(warmup_length)``; ``"constant"`` holds the start value. After the warmup
    ``scheduler`` sees the global progress (or its own, with ``rescale_interval``).
    """

    def __init__(
        self,
        scheduler: ParamScheduler,
        warmup_factor: float,
        warmup_length: float,
        warmup_method: Literal["linear", "constant"] = "linear",
        rescale_interval: bool = False,
    ) -> None:
        if not 0.0 <= warmup_length <= 1.0:
            raise ValueError(f"warmup_length must be in [0, 1], got {warmup_length}")
        end_value = scheduler(warmup_length)
        start_value = warmup_factor * scheduler(0.0)
        if warmup_method == "constant":
            warmup: ParamScheduler = ConstantParamScheduler(start_value)
        elif warmup_method == "linear":
            warmup = LinearParamScheduler(start_value, end_value)
        else:
            raise ValueError(f"warmup_method must be 'linear' or 'constant', got {warmup_method!r}")
        super().__init__(
            [warmup, scheduler],
            lengths=[warmup_length, 1.0 - warmup_length],
            interval_scaling=["rescaled", "rescaled" if rescale_interval else "fixed"],
        )


class LRMultiplier(torch.optim.lr_scheduler.LRScheduler):
    """Sets each param group's LR to ``base_lr * multiplier(iteration / max_iter)``; step once per iteration.

    Its ``state_dict`` holds only ``base_lrs`` and ``last_epoch`` (the multiplier is code, rebuilt
    from the config), so it loads with ``torch.load(weights_only=True)``.
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, multiplier: ParamScheduler, max_iter: int, last_iter: int = -1
    ) -> None:
        if not isinstance(multiplier, ParamScheduler):
            raise TypeError(f"multiplier must be a ParamScheduler, got {type(multiplier).__name__}")
        if max_iter <= 0:
            raise ValueError(f"max_iter must be > 0, got {max_iter}")
        self._multiplier = multiplier
        self._max_iter = max_iter
        super().__init__(optimizer, last_epoch=last_iter)

    def state_dict(self) -> dict[str, Any]:
        return {"base_lrs": list(self.base_lrs), "last_epoch": self.last_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.base_lrs = list(state_dict["base_lrs"])
        self.last_epoch = int(state_dict["last_epoch"])
        self._last_lr = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, self._last_lr, strict=True):
            group["lr"] = lr

    def get_lr(self) -> list[float]:
        where = min(max(self.last_epoch / self._max_iter, 0.0), 1.0)
        multiplier = self._multiplier(where)
        return [base_lr * multiplier for base_lr in self.base_lrs]


@attrs.define(frozen=True, kw_only=True)
class LRSchedulerConfig(Tagged):
    """Base of LR schedule configs (``solver.lr_scheduler``): ``name`` picks the registered schedule."""

    def check(self, solver: SolverConfig) -> None:
        """Rules against the rest of ``solver``, checked when the solver config is made; raises
        ``ConfigProblem`` keyed by the solver field at fault (``steps``)."""


LR_SCHEDULER_REGISTRY = Registry(
    "lr_scheduler", LRSchedulerConfig, group="dt_engine.lr_scheduler", default="multistep"
)
"""LR schedules: ``build(config, solver: SolverConfig) -> ParamScheduler`` (the whole multiplier of
``solver.base_lr`` over training progress, warmup included)."""

_structure_tagged = converter.get_structure_hook(LRSchedulerConfig)
_unstructure_tagged = converter.get_unstructure_hook(LRSchedulerConfig)


def _structure_lr_scheduler(data: Any, cls: type) -> LRSchedulerConfig:
    """``lr_scheduler: cosine`` is short for ``lr_scheduler: {name: cosine}``."""
    if isinstance(data, str):
        try:
            config_class = LR_SCHEDULER_REGISTRY.config_class(data)
        except ValueError as e:
            raise ConfigProblem(str(e)) from None
        return converter.structure({}, config_class)
    return _structure_tagged(data, cls)


def _unstructure_lr_scheduler(config: LRSchedulerConfig) -> Any:
    """A schedule without options of its own is written as its bare name, as configs spell it."""
    return type(config).name if not attrs.fields(type(config)) else _unstructure_tagged(config)


converter.register_structure_hook_func(lambda t: t is LRSchedulerConfig, _structure_lr_scheduler)
converter.register_unstructure_hook_func(lambda t: t is LRSchedulerConfig, _unstructure_lr_scheduler)


def lr_scheduler_config(value: str | LRSchedulerConfig) -> LRSchedulerConfig:
    """``value`` itself, or for a registered name its config with default options (``"cosine"``)."""
    if isinstance(value, LRSchedulerConfig):
        return value
    if isinstance(value, str):
        return LR_SCHEDULER_REGISTRY.config_class(value)()
    raise TypeError(f"expected an LRSchedulerConfig or a schedule name, got {type(value).__name__}")


def with_warmup(schedule: ParamScheduler, solver: SolverConfig) -> WarmupParamScheduler:
    """``schedule`` behind the solver's warmup (``warmup_iters``, ``warmup_factor``, ``warmup_method``,
    ``rescale_interval``), as detectron2's ``build_lr_scheduler`` wraps its schedules."""
    return WarmupParamScheduler(
        schedule,
        warmup_factor=solver.warmup_factor,
        warmup_length=min(solver.warmup_iters / solver.max_iter, 1.0),
        warmup_method=solver.warmup_method,
        rescale_interval=solver.rescale_interval,
    )


@attrs.define(frozen=True, kw_only=True)
class MultiStepLRConfig(LRSchedulerConfig):
    """detectron2's ``WarmupMultiStepLR``: the LR is multiplied by ``solver.gamma`` at each of
    ``solver.steps``, which must lie in ``(0, solver.max_iter]``."""

    name: ClassVar[str] = "multistep"

    def check(self, solver: SolverConfig) -> None:
        if any(s <= 0 or s > solver.max_iter for s in solver.steps):
            raise ConfigProblem(
                f"must lie in (0, max_iter={solver.max_iter}], got {list(solver.steps)}", key="steps"
            )


@LR_SCHEDULER_REGISTRY.register(MultiStepLRConfig)
def build_multistep(config: MultiStepLRConfig, solver: SolverConfig) -> ParamScheduler:
    steps = list(solver.steps)
    values = [solver.gamma**k for k in range(len(steps) + 1)]
    return with_warmup(MultiStepParamScheduler(values, num_updates=solver.max_iter, milestones=steps), solver)


@attrs.define(frozen=True, kw_only=True)
class CosineLRConfig(LRSchedulerConfig):
    """detectron2's ``WarmupCosineLR``: half a cosine from ``solver.base_lr`` to ``solver.base_lr_end``."""

    name: ClassVar[str] = "cosine"


@LR_SCHEDULER_REGISTRY.register(CosineLRConfig)
def build_cosine(config: CosineLRConfig, solver: SolverConfig) -> ParamScheduler:
    return with_warmup(CosineParamScheduler(1.0, solver.base_lr_end / solver.base_lr), solver)
