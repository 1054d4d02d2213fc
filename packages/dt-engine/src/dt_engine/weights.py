"""Loading weights into a model for evaluation, prediction or fine-tuning.

Weights are a file, or ``<source>:<name>`` for a weights source a package registers in the entry-point
group ``dt_engine.weights_source`` (dt-zoo's ``zoo:COCO-Detection/faster_rcnn_R_50_FPN_3x`` is the
verified file in its download cache).
"""

from __future__ import annotations

import logging
import os
import re
from importlib.metadata import entry_points
from pathlib import Path

import torch
from torch import nn

from dt_models import load_weights
from dt_models.checkpoint import LoadReport

from .checkpoint import Checkpointer, torch_load_checked, unreadable_checkpoint
from .ema import unwrap_model
from .errors import InputError

__all__ = ["WEIGHTS_SOURCE_GROUP", "load_model_weights", "resolve_weights"]

logger = logging.getLogger(__name__)

WEIGHTS_SOURCE_GROUP = "dt_engine.weights_source"
"""Entry points named by their prefix (``zoo``), each naming ``source(name: str) -> str | Path``: the
local file of ``name``; a source raises ``ValueError`` (one line) for a name it cannot serve."""
_SOURCE_REF = re.compile(r"([A-Za-z][\w.+-]*):(?!//)(.+)")


def resolve_weights(weights: str | os.PathLike[str]) -> str | os.PathLike[str]:
    """The local file of ``weights``: itself unless it is ``<source>:<name>`` and no such file exists.

    Raises ``InputError`` (one line) for an unknown source or a name the source cannot serve.
    """
    match = _SOURCE_REF.fullmatch(os.fspath(weights))
    if match is None or Path(weights).exists():
        return weights
    prefix, name = match.groups()
    sources = {point.name: point for point in entry_points(group=WEIGHTS_SOURCE_GROUP)}
    if prefix not in sources:
        installed = ", ".join(f"{n}:" for n in sorted(sources)) or "none"
        raise InputError(
            f"weights {weights}: no such file, and no weights source {prefix!r} (installed: {installed})"
        )
    try:
        return os.fspath(sources[prefix].load()(name))
    except ValueError as err:
        raise InputError(f"weights {weights}: {err}") from None


def _load_by_name(model: nn.Module, tensors: dict[str, torch.Tensor]) -> LoadReport:
    """Load the tensors whose name and shape match ``model``'s (a safetensors file of dt weights)."""
    state = model.state_dict()
    fits = {k: v for k, v in tensors.items() if k in state and v.shape == state[k].shape}
    model.load_state_dict(fits, strict=False)
    return LoadReport(
        loaded=tuple(sorted(fits)),
        missing=tuple(sorted(k for k in state if k not in tensors)),
        unexpected=tuple(sorted(k for k in tensors if k not in state)),
        shape_mismatch=tuple(
            (k, k, tuple(state[k].shape), tuple(v.shape))
            for k, v in tensors.items()
            if k in state and k not in fits
        ),
    )


def load_model_weights(
    model: nn.Module, weights: str | os.PathLike[str], *, use_ema: bool = False
) -> LoadReport | None:
    """Load ``weights`` into ``model`` (unwrapped from DDP).

    ``weights`` is anything ``dt_models.load_weights`` reads (a dt checkpoint, a detectron2
    ``.pkl``/``.pth``) or a ``.safetensors`` file of dt weights (matched by name); with ``use_ema``,
    the averaged weights a dt checkpoint of a run with ``solver.ema.enabled`` holds. Raises
    ``InputError`` when the file cannot be read, nothing matches or there is no EMA. Returns what was
    loaded (``None`` for EMA weights, loaded strictly). ``weights`` may name a weights source
    (``resolve_weights``).
    """
    weights = resolve_weights(weights)
    if use_ema:
        try:
            ema = Checkpointer.read(weights).get("ema")
        except (ValueError, RuntimeError) as err:
            raise InputError(f"cannot read {weights} as a dt checkpoint: {err}") from None
        if not ema:
            raise InputError(f"checkpoint {weights} has no EMA weights (train with solver.ema.enabled=true)")
        try:
            unwrap_model(model).load_state_dict(ema["weights"])
        except RuntimeError as err:
            raise InputError(
                f"EMA weights of {weights} do not fit the model ({str(err).splitlines()[0]})"
            ) from None
        return None
    data = None
    if not os.fspath(weights).endswith(".pkl"):
        try:
            data = torch_load_checked(weights)  # one line for truncated and non-checkpoint files
        except ValueError as err:
            raise InputError(str(err)) from None
    if os.fspath(weights).endswith(".safetensors"):
        report = _load_by_name(unwrap_model(model), data["model"])
    else:
        try:
            report = load_weights(unwrap_model(model), weights)
        except Exception as err:  # a broken .pkl fails in many ways; each is one line
            raise InputError(str(unreadable_checkpoint(weights, err))) from None
    if not report.loaded:
        raise InputError(f"checkpoint {weights} has no tensor matching the model")
    logger.info("loaded %s: %s", weights, report.table())
    return report
