"""Exponential moving average of a model's weights."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["ModelEMA", "unwrap_model"]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside ``DistributedDataParallel``/``DataParallel`` wrappers."""
    while isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
        model = model.module
    return model


class ModelEMA:
    """Keeps ``ema = decay * ema + (1 - decay) * weight`` for every floating-point parameter and buffer.

    Integer buffers (``num_batches_tracked``) are copied. The averaged weights live on the
    model's device; ``apply_to(model)`` swaps them in temporarily (for evaluation).
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.num_updates = 0
        self._state = {k: v.detach().clone() for k, v in unwrap_model(model).state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the model's current weights into the average."""
        current = unwrap_model(model).state_dict()
        if current.keys() != self._state.keys():
            raise ValueError("the model's state_dict keys differ from those the EMA was created with")
        for name, value in current.items():
            avg = self._state[name]
            if avg.is_floating_point():
                avg.lerp_(value.detach().to(avg.dtype), 1.0 - self.decay)
            else:
                avg.copy_(value)
        self.num_updates += 1

    def averaged_state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged weights, as a ``state_dict`` of the model (copies)."""
        return {k: v.clone() for k, v in self._state.items()}

    @contextmanager
    def apply_to(self, model: nn.Module) -> Iterator[nn.Module]:
        """Within the block ``model`` holds the averaged weights; its own are restored after."""
        inner = unwrap_model(model)
        saved = {k: v.detach().clone() for k, v in inner.state_dict().items()}
        inner.load_state_dict(self._state)
        try:
            yield model
        finally:
            inner.load_state_dict(saved)

    def state_dict(self) -> dict[str, object]:
        return {"decay": self.decay, "num_updates": self.num_updates, "weights": self.averaged_state_dict()}

    def load_state_dict(self, state: dict[str, object]) -> None:
        weights = state["weights"]
        if not isinstance(weights, dict) or weights.keys() != self._state.keys():
            raise ValueError("the EMA state's weights do not match the model's state_dict keys")
        for name, value in weights.items():
            self._state[name].copy_(value)
        self.decay = float(state["decay"])  # type: ignore[arg-type]
        self.num_updates = int(state["num_updates"])  # type: ignore[call-overload]
