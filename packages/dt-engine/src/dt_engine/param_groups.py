"""Optimizer parameter groups from a ``SolverConfig``: layer-wise learning-rate decay for ViT backbones
and per-parameter weight-decay rules (norms, biases, position embeddings, relative-position tables).

Layer-wise decay follows detectron2's ``get_vit_lr_decay_rate``: a model of ``num_layers`` ViT blocks
has layers ``0`` (patch and position embeddings) to ``num_layers + 1`` (everything outside the ViT
blocks: the feature pyramid, the heads); a parameter of layer ``k`` learns at
``base_lr * rate ** (num_layers + 1 - k)``, so the last block runs at ``base_lr * rate`` and the
embeddings at ``base_lr * rate ** (num_layers + 1)``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from torch import nn

from .config.solver import SolverConfig
from .optim import get_default_optimizer_params

__all__ = ["get_vit_lr_decay_rate", "optimizer_param_groups", "vit_layer_id"]


def vit_layer_id(name: str, num_layers: int) -> int:
    """The layer of parameter ``name`` (its full name in the model, e.g.
    ``backbone.net.blocks.3.attn.qkv.weight``): 0 for ``backbone...pos_embed``/``patch_embed``,
    ``i + 1`` for ``backbone...blocks.<i>.`` (not its convolutional ``residual`` block), otherwise
    ``num_layers + 1``."""
    if name.startswith("backbone"):
        if ".pos_embed" in name or ".patch_embed" in name:
            return 0
        if ".blocks." in name and ".residual." not in name:
            return int(name[name.find(".blocks.") :].split(".")[2]) + 1
    return num_layers + 1


def get_vit_lr_decay_rate(name: str, lr_decay_rate: float = 1.0, num_layers: int = 12) -> float:
    """The learning-rate multiplier of parameter ``name``: ``lr_decay_rate ** (num_layers + 1 - layer)``."""
    return lr_decay_rate ** (num_layers + 1 - vit_layer_id(name, num_layers))


def optimizer_param_groups(model: nn.Module, solver: SolverConfig) -> list[dict[str, Any]]:
    """``model``'s trainable parameters grouped by ``solver``'s LR and weight-decay rules.

    ``solver.weight_decay_norm`` applies to normalization layers, ``weight_decay_bias`` and
    ``bias_lr_factor`` to biases, ``weight_decay_overrides`` to parameters by their own name
    (``pos_embed``, ``rel_pos_h``, ``rel_pos_w``); with ``solver.layer_decay.rate < 1`` each
    learning rate is multiplied by :func:`get_vit_lr_decay_rate` (the overrides set weight decay only,
    so they keep it).
    """
    decay = solver.layer_decay
    lr_factor: Callable[[str], float] | None = None
    if decay.rate != 1.0:
        lr_factor = partial(get_vit_lr_decay_rate, lr_decay_rate=decay.rate, num_layers=decay.num_layers)
    return get_default_optimizer_params(
        model,
        base_lr=solver.base_lr,
        weight_decay=solver.weight_decay,
        weight_decay_norm=solver.weight_decay_norm,
        bias_lr_factor=solver.bias_lr_factor,
        weight_decay_bias=solver.weight_decay_bias,
        overrides={name: {"weight_decay": wd} for name, wd in solver.weight_decay_overrides.items()},
        lr_factor_func=lr_factor,
    )
