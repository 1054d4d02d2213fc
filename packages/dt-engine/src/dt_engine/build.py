"""From a typed ``SolverConfig`` to the objects the trainer uses."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .config.solver import SolverConfig
from .ema import ModelEMA
from .lr_scheduler import LR_SCHEDULER_REGISTRY, LRMultiplier
from .optim import build_torch_optimizer
from .param_groups import optimizer_param_groups
from .train_loop import AMPTrainer, GradClip, SimpleTrainer

__all__ = ["build_grad_clip", "build_lr_scheduler", "build_optimizer", "build_trainer"]


def build_optimizer(model: nn.Module, solver: SolverConfig) -> torch.optim.Optimizer:
    """SGD or AdamW over ``model``'s trainable parameters, grouped by detectron2's rules
    (:func:`dt_engine.param_groups.optimizer_param_groups`)."""
    return build_torch_optimizer(
        solver.optimizer,
        optimizer_param_groups(model, solver),
        base_lr=solver.base_lr,
        momentum=solver.momentum,
        nesterov=solver.nesterov,
        betas=solver.betas,
    )


def build_lr_scheduler(optimizer: torch.optim.Optimizer, solver: SolverConfig) -> LRMultiplier:
    """The schedule ``solver.lr_scheduler`` names (``LR_SCHEDULER_REGISTRY``), stepped once per iteration."""
    schedule = LR_SCHEDULER_REGISTRY.build(solver.lr_scheduler, solver=solver)
    return LRMultiplier(optimizer, multiplier=schedule, max_iter=solver.max_iter)


def build_grad_clip(solver: SolverConfig) -> GradClip | None:
    clip = solver.clip_gradients
    if not clip.enabled:
        return None
    return GradClip(mode=clip.clip_type, max_value=clip.clip_value, norm_type=clip.norm_type)


def build_trainer(
    model: nn.Module, data_loader: Any, optimizer: torch.optim.Optimizer, solver: SolverConfig
) -> SimpleTrainer:
    """``AMPTrainer`` if ``solver.amp.enabled`` else ``SimpleTrainer``; with clipping, accumulation, EMA."""
    kwargs: dict[str, Any] = {
        "accumulate_steps": solver.accumulate_steps,
        "clip_grad": build_grad_clip(solver),
        "ema": ModelEMA(model, solver.ema.decay) if solver.ema.enabled else None,
    }
    if not solver.amp.enabled:
        return SimpleTrainer(model, data_loader, optimizer, **kwargs)
    precision = {"auto": None, "float16": torch.float16, "bfloat16": torch.bfloat16}[solver.amp.precision]
    return AMPTrainer(model, data_loader, optimizer, precision=precision, **kwargs)
