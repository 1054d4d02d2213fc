"""``get_config`` and ``get``: a zoo model's experiment config, and the built model with its weights.

These import dt-engine and dt-models (and so torch) when called, never when ``dt_zoo`` is imported.
"""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING

from .api import get_weights
from .errors import ZooError
from .manifest import Manifest
from .zoo_configs import config_path

if TYPE_CHECKING:
    import torch
    from torch import nn

    from dt_engine.config.experiment import ExperimentConfig

__all__ = ["get", "get_config"]


def get_config(name: str, *, manifest: Manifest | None = None) -> ExperimentConfig:
    """The ``ExperimentConfig`` of zoo model ``name`` (dt's packaged config of it, checked).

    Raises:
        ZooError: unknown name (with the closest names), or an entry without a dt config yet.
    """
    from dt_engine.config.experiment import load_experiment

    return load_experiment(config_path(name, manifest=manifest))


def get(
    name: str,
    *,
    trained: bool = True,
    device: str | torch.device = "cpu",
    offline: bool | None = None,
    progress: bool = True,
    manifest: Manifest | None = None,
) -> nn.Module:
    """The model of ``name`` in eval mode on ``device``; with ``trained``, its zoo weights loaded.

    The weights are the verified cached file of ``get_weights`` (downloaded on first use), read
    without running code (``torch.load(weights_only=True)``, or the safe pickle reader for ``.pkl``);
    every model tensor must receive a value of its shape. ``trained=False`` keeps the initialisation.

    Raises:
        ZooError: unknown name, no dt config yet, download failed, or weights that do not fit the model.
    """
    from dt_engine.errors import InputError
    from dt_engine.weights import load_model_weights
    from dt_models import build_model

    model = build_model(get_config(name, manifest=manifest).model, device=device)
    if trained:
        weights = get_weights(name, offline=offline, progress=progress, manifest=manifest)
        try:
            report = load_model_weights(model, weights)
        except (InputError, ValueError, pickle.UnpicklingError) as err:  # unreadable, has code, no match
            raise ZooError(f"zoo model {name!r}: {err}") from None
        if report is not None and (report.missing or report.shape_mismatch):
            raise ZooError(
                f"zoo model {name!r}: {weights} leaves {len(report.missing)} model tensors unset and "
                f"{len(report.shape_mismatch)} of another shape (first: "
                f"{(report.missing or [m[0] for m in report.shape_mismatch])[0]})"
            )
    return model.eval()
