"""Toy models and data streams for the dt-engine tests (no dependency on the model packages)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


class ToyRegressor(nn.Module):
    """``y = w x + b`` after a BatchNorm; in training returns ``{"loss_mse": ..., "loss_l1": ...}``."""

    def __init__(self, in_features: int = 4, bn: bool = True) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(in_features) if bn else nn.Identity()
        self.linear = nn.Linear(in_features, 1)

    def forward(self, batch: dict[str, torch.Tensor]) -> Any:
        pred = self.linear(self.norm(batch["x"]))[:, 0]  # [B]
        if not self.training:
            return pred
        err = pred.float() - batch["y"]
        return {"loss_mse": (err**2).mean(), "loss_l1": 0.1 * err.abs().mean()}


class ToyStream:
    """An endless, resumable stream of regression batches ``{"x": Tensor[B, F], "y": Tensor[B]}``.

    Its position lives in a ``torch.Generator`` whose state is part of ``state_dict``.
    """

    def __init__(self, batch_size: int = 8, in_features: int = 4, seed: int = 0) -> None:
        self.batch_size = batch_size
        self.in_features = in_features
        self.generator = torch.Generator().manual_seed(seed)
        self.true_w = torch.arange(1, in_features + 1, dtype=torch.float32)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while True:
            x = torch.randn(self.batch_size, self.in_features, generator=self.generator)
            noise = 0.1 * torch.randn(self.batch_size, generator=self.generator)
            yield {"x": x, "y": x @ self.true_w + 0.5 + noise}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])


def finite_batches(n: int, batch_size: int = 8, seed: int = 1) -> list[dict[str, torch.Tensor]]:
    stream = iter(ToyStream(batch_size=batch_size, seed=seed))
    return [next(stream) for _ in range(n)]
