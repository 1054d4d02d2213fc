"""Loading weights into a model for evaluation, prediction or fine-tuning."""

from __future__ import annotations

import logging
import os

from torch import nn

from dt_models import load_weights

from .checkpoint import Checkpointer
from .ema import unwrap_model
from .errors import InputError

__all__ = ["load_model_weights"]

logger = logging.getLogger(__name__)


def load_model_weights(model: nn.Module, weights: str | os.PathLike[str], *, use_ema: bool = False) -> None:
    """Load ``weights`` into ``model`` (unwrapped from DDP).

    ``weights`` is anything ``dt_models.load_weights`` reads (a dt checkpoint, a detectron2
    ``.pkl``/``.pth``); with ``use_ema``, the averaged weights a dt checkpoint of a run with
    ``solver.ema.enabled`` holds. Raises ``InputError`` when nothing matches or there is no EMA.
    """
    if use_ema:
        try:
            ema = Checkpointer.read(weights).get("ema")
        except (ValueError, RuntimeError) as err:
            raise InputError(f"cannot read {weights} as a dt checkpoint: {err}") from None
        if not ema:
            raise InputError(f"checkpoint {weights} has no EMA weights (train with solver.ema.enabled=true)")
        unwrap_model(model).load_state_dict(ema["weights"])
        return
    report = load_weights(unwrap_model(model), weights)
    if not report.loaded:
        raise InputError(f"checkpoint {weights} has no tensor matching the model")
    logger.info("loaded %s: %s", weights, report.table())
