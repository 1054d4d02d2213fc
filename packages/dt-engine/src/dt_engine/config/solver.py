"""Typed configuration of the optimizer, schedule and training loop (``solver``) and of testing (``test``).

Field names follow detectron2's ``SOLVER.*``/``TEST.*`` keys in lower case, so a user can map
one to the other by eye.
"""

from __future__ import annotations

from typing import Literal

import attrs
from attrs import validators as v

__all__ = ["AMPConfig", "ClipGradientsConfig", "EMAConfig", "PreciseBNConfig", "SolverConfig", "TestConfig"]


@attrs.define(frozen=True, kw_only=True)
class ClipGradientsConfig:
    """Gradient clipping: by total norm of order ``norm_type`` or element-wise by value."""

    enabled: bool = False
    clip_type: Literal["value", "norm"] = "value"
    clip_value: float = attrs.field(default=1.0, validator=v.gt(0.0))
    norm_type: float = attrs.field(default=2.0, validator=v.gt(0.0))


@attrs.define(frozen=True, kw_only=True)
class AMPConfig:
    """Automatic mixed precision. ``"auto"``: float16 on CUDA (with a grad scaler), bfloat16 on CPU."""

    enabled: bool = False
    precision: Literal["auto", "float16", "bfloat16"] = "auto"


@attrs.define(frozen=True, kw_only=True)
class EMAConfig:
    """Exponential moving average of the weights; evaluation uses the averaged weights when enabled."""

    enabled: bool = False
    decay: float = attrs.field(default=0.9998, validator=[v.ge(0.0), v.lt(1.0)])


@attrs.define(frozen=True, kw_only=True)
class SolverConfig:
    """Optimizer, learning-rate schedule and the training loop.

    The LR at iteration ``i`` is ``base_lr * schedule(i / max_iter)``; ``multistep`` multiplies
    by ``gamma`` at each of ``steps``, ``cosine`` decays to ``base_lr_end``; the first
    ``warmup_iters`` ramp up from ``warmup_factor`` (``linear``) or hold it (``constant``).
    ``ims_per_batch`` is the total batch over all processes and accumulation steps.
    """

    optimizer: Literal["SGD", "AdamW"] = "SGD"
    base_lr: float = attrs.field(default=0.02, validator=v.gt(0.0))
    momentum: float = attrs.field(default=0.9, validator=[v.ge(0.0), v.lt(1.0)])
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = attrs.field(default=0.0001, validator=v.ge(0.0))
    weight_decay_norm: float = attrs.field(default=0.0, validator=v.ge(0.0))
    bias_lr_factor: float = attrs.field(default=1.0, validator=v.gt(0.0))
    weight_decay_bias: float | None = None
    lr_scheduler: Literal["multistep", "cosine"] = "multistep"
    steps: tuple[int, ...] = (60000, 80000)
    gamma: float = attrs.field(default=0.1, validator=v.gt(0.0))
    base_lr_end: float = attrs.field(default=0.0, validator=v.ge(0.0))
    warmup_method: Literal["linear", "constant"] = "linear"
    warmup_factor: float = attrs.field(default=0.001, validator=[v.ge(0.0), v.le(1.0)])
    warmup_iters: int = attrs.field(default=1000, validator=v.ge(0))
    rescale_interval: bool = False
    max_iter: int = attrs.field(default=90000, validator=v.gt(0))
    ims_per_batch: int = attrs.field(default=16, validator=v.gt(0))
    accumulate_steps: int = attrs.field(default=1, validator=v.gt(0))
    clip_gradients: ClipGradientsConfig = attrs.Factory(ClipGradientsConfig)
    amp: AMPConfig = attrs.Factory(AMPConfig)
    ema: EMAConfig = attrs.Factory(EMAConfig)
    checkpoint_period: int = attrs.field(default=5000, validator=v.gt(0))
    checkpoints_to_keep: int = attrs.field(default=3, validator=v.gt(0))

    def __attrs_post_init__(self) -> None:
        if any(b <= a for a, b in zip(self.steps, self.steps[1:], strict=False)):
            raise ValueError(f"steps must increase strictly, got {list(self.steps)}")
        if self.lr_scheduler == "multistep" and any(s <= 0 or s > self.max_iter for s in self.steps):
            raise ValueError(f"steps must lie in (0, max_iter={self.max_iter}], got {list(self.steps)}")
        if self.ims_per_batch % self.accumulate_steps:
            raise ValueError(
                f"ims_per_batch ({self.ims_per_batch}) must be divisible by "
                f"accumulate_steps ({self.accumulate_steps})"
            )
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must lie in [0, 1), got {list(self.betas)}")


@attrs.define(frozen=True, kw_only=True)
class PreciseBNConfig:
    """Recompute BatchNorm statistics over ``num_iter`` training batches before each evaluation."""

    enabled: bool = False
    num_iter: int = attrs.field(default=200, validator=v.gt(0))


@attrs.define(frozen=True, kw_only=True)
class TestConfig:
    """Evaluation during and after training.

    ``eval_period``: evaluate every that many iterations (0: only after training);
    ``val_loss_period``: compute the losses on the held-out loader every that many
    iterations (0: never).
    """

    eval_period: int = attrs.field(default=0, validator=v.ge(0))
    detections_per_image: int = attrs.field(default=100, validator=v.gt(0))
    val_loss_period: int = attrs.field(default=0, validator=v.ge(0))
    precise_bn: PreciseBNConfig = attrs.Factory(PreciseBNConfig)
