"""Typed configuration of the optimizer, schedule and training loop (``solver``) and of testing (``test``).

Field names follow detectron2's ``SOLVER.*``/``TEST.*`` keys in lower case, so a user can map
one to the other by eye.
"""

from __future__ import annotations

from typing import Literal

import attrs

from dt_config import ConfigProblem
from dt_config import validators as check

from ..lr_scheduler import LRSchedulerConfig, MultiStepLRConfig, lr_scheduler_config

__all__ = [
    "AMPConfig",
    "ClipGradientsConfig",
    "EMAConfig",
    "LayerDecayConfig",
    "PreciseBNConfig",
    "SolverConfig",
    "TestAugConfig",
    "TestConfig",
]


@attrs.define(frozen=True, kw_only=True)
class ClipGradientsConfig:
    """Gradient clipping: by total norm of order ``norm_type`` or element-wise by value."""

    enabled: bool = False
    clip_type: Literal["value", "norm"] = "value"
    clip_value: float = attrs.field(default=1.0, validator=check.greater_than(0.0))
    norm_type: float = attrs.field(default=2.0, validator=check.greater_than(0.0))


@attrs.define(frozen=True, kw_only=True)
class AMPConfig:
    """Automatic mixed precision. ``"auto"``: float16 on CUDA (with a grad scaler), bfloat16 on CPU."""

    enabled: bool = False
    precision: Literal["auto", "float16", "bfloat16"] = "auto"


@attrs.define(frozen=True, kw_only=True)
class EMAConfig:
    """Exponential moving average of the weights; evaluation uses the averaged weights when enabled."""

    enabled: bool = False
    decay: float = attrs.field(default=0.9998, validator=[check.at_least(0.0), check.below(1.0)])


@attrs.define(frozen=True, kw_only=True)
class LayerDecayConfig:
    """Layer-wise LR decay of a ViT backbone of ``num_layers`` blocks (detectron2's
    ``get_vit_lr_decay_rate``): block ``i`` learns at ``base_lr * rate ** (num_layers - i)``, the patch
    and position embeddings at ``base_lr * rate ** (num_layers + 1)``, the rest at ``base_lr``.
    ``rate: 1.0`` turns it off."""

    rate: float = attrs.field(default=1.0, validator=[check.greater_than(0.0), check.at_most(1.0)])
    num_layers: int = attrs.field(default=12, validator=check.greater_than(0))


@attrs.define(frozen=True, kw_only=True)
class SolverConfig:
    """Optimizer, learning-rate schedule and the training loop.

    The LR at iteration ``i`` is ``base_lr * schedule(i / max_iter)``. ``lr_scheduler`` picks the
    schedule from ``dt_engine.lr_scheduler.LR_SCHEDULER_REGISTRY`` by name (``cosine``, or
    ``{name: WarmupPolyLR, power: 0.9}`` for one with options of its own); ``multistep`` multiplies
    by ``gamma`` at each of ``steps``, ``cosine`` decays to ``base_lr_end``; the first
    ``warmup_iters`` ramp up from ``warmup_factor`` (``linear``) or hold it (``constant``).
    ``ims_per_batch`` is the total batch over all processes and accumulation steps.
    ``weight_decay_norm`` (``null``: ``weight_decay``) applies to normalization layers,
    ``weight_decay_overrides`` to parameters by their own name (``{pos_embed: 0.0}``).
    """

    optimizer: Literal["SGD", "AdamW"] = "SGD"
    base_lr: float = attrs.field(default=0.02, validator=check.greater_than(0.0))
    momentum: float = attrs.field(default=0.9, validator=[check.at_least(0.0), check.below(1.0)])
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = attrs.field(default=0.0001, validator=check.at_least(0.0))
    weight_decay_norm: float | None = attrs.field(default=0.0, validator=check.optional(check.at_least(0.0)))
    weight_decay_overrides: dict[str, float] = attrs.Factory(dict)
    layer_decay: LayerDecayConfig = attrs.Factory(LayerDecayConfig)
    bias_lr_factor: float = attrs.field(default=1.0, validator=check.greater_than(0.0))
    weight_decay_bias: float | None = None
    lr_scheduler: LRSchedulerConfig = attrs.field(factory=MultiStepLRConfig, converter=lr_scheduler_config)
    steps: tuple[int, ...] = (60000, 80000)
    gamma: float = attrs.field(default=0.1, validator=check.greater_than(0.0))
    base_lr_end: float = attrs.field(default=0.0, validator=check.at_least(0.0))
    warmup_method: Literal["linear", "constant"] = "linear"
    warmup_factor: float = attrs.field(default=0.001, validator=check.between(0.0, 1.0))
    warmup_iters: int = attrs.field(default=1000, validator=check.at_least(0))
    rescale_interval: bool = False
    max_iter: int = attrs.field(default=90000, validator=check.greater_than(0))
    ims_per_batch: int = attrs.field(default=16, validator=check.greater_than(0))
    accumulate_steps: int = attrs.field(default=1, validator=check.greater_than(0))
    clip_gradients: ClipGradientsConfig = attrs.Factory(ClipGradientsConfig)
    amp: AMPConfig = attrs.Factory(AMPConfig)
    ema: EMAConfig = attrs.Factory(EMAConfig)
    checkpoint_period: int = attrs.field(default=5000, validator=check.greater_than(0))
    checkpoints_to_keep: int = attrs.field(default=3, validator=check.greater_than(0))

    def __attrs_post_init__(self) -> None:
        if any(b <= a for a, b in zip(self.steps, self.steps[1:], strict=False)):
            raise ConfigProblem(f"must increase strictly, got {list(self.steps)}", key="steps")
        self.lr_scheduler.check(self)
        if self.ims_per_batch % self.accumulate_steps:
            raise ConfigProblem(
                f"{self.ims_per_batch} must be divisible by accumulate_steps ({self.accumulate_steps})",
                key="ims_per_batch",
            )
        if "bias" in self.weight_decay_overrides or any(v < 0 for v in self.weight_decay_overrides.values()):
            raise ConfigProblem(
                "expected non-negative weight decays by parameter name; for 'bias' use weight_decay_bias",
                key="weight_decay_overrides",
            )
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigProblem(f"must lie in [0, 1), got {list(self.betas)}", key="betas")


@attrs.define(frozen=True, kw_only=True)
class PreciseBNConfig:
    """Recompute BatchNorm statistics over ``num_iter`` training batches before each evaluation."""

    enabled: bool = False
    num_iter: int = attrs.field(default=200, validator=check.greater_than(0))


def _check_sizes(_: object, attribute: attrs.Attribute, value: tuple[int, ...]) -> None:
    if not value or any(size <= 0 for size in value):
        raise ConfigProblem(
            f"expected a non-empty list of positive sizes, got {list(value)}", key=attribute.name
        )


@attrs.define(frozen=True, kw_only=True)
class TestAugConfig:
    """Test-time augmentation of R-CNN models (detectron2's ``TEST.AUG``): every short-edge size of
    ``min_sizes`` (long edge at most ``max_size``), each also flipped horizontally with ``flip``.
    When ``enabled``, ``dt eval`` reports the augmented results too (``<task>_TTA``)."""

    enabled: bool = False
    min_sizes: tuple[int, ...] = attrs.field(
        default=(400, 500, 600, 700, 800, 900, 1000, 1100, 1200), validator=_check_sizes
    )
    max_size: int = attrs.field(default=4000, validator=check.greater_than(0))
    flip: bool = True


def _check_metric_name(_: object, attribute: attrs.Attribute, value: str | None) -> None:
    if value is None:
        return
    parts = value.split("/")
    if len(parts) < 2 or not all(p and p == p.strip() for p in parts):
        raise ConfigProblem(
            f"expected an evaluation result '<task>/<metric>' such as 'bbox/AP' or 'sem_seg/mIoU' "
            f"(with several test datasets optionally '<dataset>/<task>/<metric>'), got {value!r}",
            key=attribute.name,
        )


@attrs.define(frozen=True, kw_only=True)
class TestConfig:
    """Evaluation during and after training.

    ``eval_period``: evaluate every that many iterations (0: only after training);
    ``val_loss_period``: compute the losses on the held-out loader every that many
    iterations (0: never); ``detections_per_image``: detections the evaluators keep per image
    (must equal the model's own limit). ``best_metric``: when ``eval_period > 0``, save
    ``model_best.pth`` whenever this evaluation result improves (``best_mode``: ``max`` or ``min``;
    ``null``: no best checkpoint). Results are named ``<task>/<metric>`` (``bbox/AP``,
    ``segm/AP``, ``sem_seg/mIoU``, ``panoptic_seg/PQ``); with several test datasets
    ``<dataset>/<task>/<metric>``, and a ``best_metric`` without a test dataset's name in front
    refers to the first test dataset. ``aug``: test-time augmentation (:class:`TestAugConfig`).
    """

    eval_period: int = attrs.field(default=0, validator=check.at_least(0))
    detections_per_image: int = attrs.field(default=100, validator=check.greater_than(0))
    val_loss_period: int = attrs.field(default=0, validator=check.at_least(0))
    precise_bn: PreciseBNConfig = attrs.Factory(PreciseBNConfig)
    best_metric: str | None = attrs.field(default="bbox/AP", validator=_check_metric_name)
    best_mode: Literal["max", "min"] = "max"
    aug: TestAugConfig = attrs.Factory(TestAugConfig)
