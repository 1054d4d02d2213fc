"""``WarmupPolyParamScheduler``: DeepLab's poly learning-rate schedule with warmup, as a dt-engine
``ParamScheduler`` (a multiplier of the base LR as a function of training progress).

At iteration ``i`` of ``max_iter`` the multiplier is ``warmup(i) * (1 - i / max_iter) ** power``,
where ``warmup(i)`` rises linearly from ``warmup_factor`` to 1 over ``warmup_iters`` (``linear``) or
holds ``warmup_factor`` (``constant``), and is 1 afterwards; once warmup is over and the poly term
falls below ``constant_ending`` (> 0), the multiplier stays at ``constant_ending``. These are the values
of detectron2's ``WarmupPolyLR``.

``solver.lr_scheduler: {name: WarmupPolyLR, power: 0.9, constant_ending: 0.0}`` selects it: the package
registers :class:`WarmupPolyLRConfig` in dt-engine's ``LR_SCHEDULER_REGISTRY`` through the entry-point
group ``dt_engine.lr_scheduler``; warmup and ``max_iter`` come from ``solver``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import attrs

from dt_config import validators as check
from dt_engine.lr_scheduler import LR_SCHEDULER_REGISTRY, LRSchedulerConfig, ParamScheduler

if TYPE_CHECKING:
    from dt_engine.config.solver import SolverConfig

__all__ = ["WarmupPolyLRConfig", "WarmupPolyParamScheduler", "build_warmup_poly", "warmup_factor_at"]


def warmup_factor_at(method: str, iteration: float, warmup_iters: int, warmup_factor: float) -> float:
    """The warmup multiplier at ``iteration`` (1 from ``warmup_iters`` on)."""
    if iteration >= warmup_iters:
        return 1.0
    if method == "constant":
        return warmup_factor
    if method == "linear":
        alpha = iteration / warmup_iters
        return warmup_factor * (1 - alpha) + alpha
    raise ValueError(f"warmup method must be 'linear' or 'constant', got {method!r}")


class WarmupPolyParamScheduler(ParamScheduler):
    """Poly decay ``(1 - where) ** power`` after a warmup; see the module docstring."""

    def __init__(
        self,
        *,
        max_iter: int,
        power: float = 0.9,
        constant_ending: float = 0.0,
        warmup_factor: float = 0.001,
        warmup_iters: int = 1000,
        warmup_method: str = "linear",
    ) -> None:
        if max_iter <= 0:
            raise ValueError(f"max_iter must be > 0, got {max_iter}")
        if power <= 0:
            raise ValueError(f"power must be > 0, got {power}")
        if warmup_method not in ("linear", "constant"):
            raise ValueError(f"warmup_method must be 'linear' or 'constant', got {warmup_method!r}")
        self.max_iter, self.power, self.constant_ending = max_iter, power, constant_ending
        self.warmup_factor, self.warmup_iters, self.warmup_method = warmup_factor, warmup_iters, warmup_method

    def __call__(self, where: float) -> float:
        if not 0.0 <= where <= 1.0:
            raise ValueError(f"where must be in [0, 1], got {where}")
        iteration = round(where * self.max_iter)  # LRMultiplier passes iteration / max_iter
        warmup = warmup_factor_at(self.warmup_method, iteration, self.warmup_iters, self.warmup_factor)
        poly = (1.0 - iteration / self.max_iter) ** self.power
        if self.constant_ending > 0 and warmup == 1.0 and poly < self.constant_ending:
            return self.constant_ending
        return warmup * poly


@attrs.define(frozen=True, kw_only=True)
class WarmupPolyLRConfig(LRSchedulerConfig):
    """Options of the poly schedule (detectron2's ``SOLVER.POLY_LR_POWER``/``POLY_LR_CONSTANT_ENDING``):
    the decay exponent ``power`` and the floor ``constant_ending`` (0: none)."""

    name: ClassVar[str] = "WarmupPolyLR"
    power: float = attrs.field(default=0.9, validator=check.greater_than(0.0))
    constant_ending: float = attrs.field(default=0.0, validator=check.between(0.0, 1.0))


@LR_SCHEDULER_REGISTRY.register(WarmupPolyLRConfig)
def build_warmup_poly(config: WarmupPolyLRConfig, solver: SolverConfig) -> WarmupPolyParamScheduler:
    """The poly schedule of ``config`` with the warmup and length of ``solver``."""
    return WarmupPolyParamScheduler(
        max_iter=solver.max_iter,
        power=config.power,
        constant_ending=config.constant_ending,
        warmup_factor=solver.warmup_factor,
        warmup_iters=solver.warmup_iters,
        warmup_method=solver.warmup_method,
    )
