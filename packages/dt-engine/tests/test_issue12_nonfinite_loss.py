"""A loss that goes NaN/inf stops training with one line naming the term(s), e.g.
``loss_mask = nan at iteration 2``."""

from __future__ import annotations

import pytest
import torch
from engine_toys import ToyStream
from torch import nn

from dt_engine.train_loop import AMPTrainer, SimpleTrainer


class LossTerms(nn.Module):
    """Returns fixed loss terms (scaled by a parameter, so backward works); ``bad`` from ``bad_at`` on."""

    def __init__(
        self, good: dict[str, float], bad: dict[str, float], bad_at: int, dtype=torch.float32
    ) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones((), dtype=dtype))
        self.good, self.bad, self.bad_at = good, bad, bad_at
        self.calls = 0

    def forward(self, batch):
        terms = {**self.good, **(self.bad if self.calls >= self.bad_at else {})}
        self.calls += 1
        return {name: self.w * value for name, value in terms.items()}


def _train(model: nn.Module, trainer_class=SimpleTrainer, iterations: int = 5) -> None:
    trainer = trainer_class(model, ToyStream(), torch.optim.SGD(model.parameters(), lr=0.0))
    trainer.train(0, iterations)


def test_the_non_finite_term_and_its_iteration_are_named():
    model = LossTerms({"loss_cls": 0.5, "loss_box_reg": 0.25}, {"loss_box_reg": float("nan")}, bad_at=2)
    with pytest.raises(FloatingPointError) as info:
        _train(model)
    message = str(info.value)
    assert message.startswith("loss_box_reg = nan at iteration 2: training diverged"), message
    assert "(finite: loss_cls = 0.5)" in message and "\n" not in message


def test_every_non_finite_term_is_named_with_amp_too():
    model = LossTerms({"loss_cls": 0.5}, {"loss_mask": float("nan"), "loss_rpn": float("inf")}, bad_at=0)
    with pytest.raises(FloatingPointError, match=r"^loss_mask = nan, loss_rpn = inf at iteration 0: "):
        _train(model, AMPTrainer)


def test_finite_terms_whose_sum_overflows_name_the_total():
    model = LossTerms({"loss_a": 1e308, "loss_b": 1e308}, {}, bad_at=0, dtype=torch.float64)
    with pytest.raises(FloatingPointError, match=r"^total_loss = inf at iteration 0: .*loss_a = 1e\+308"):
        _train(model)
