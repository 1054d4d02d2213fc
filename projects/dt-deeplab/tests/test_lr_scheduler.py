"""WarmupPolyParamScheduler: detectron2's WarmupPolyLR values, through dt-engine's LRMultiplier."""

import pytest
import torch

from dt_deeplab.lr_scheduler import WarmupPolyParamScheduler
from dt_engine.lr_scheduler import LRMultiplier


def _lrs(schedule, max_iter, base_lr=0.01):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
    scheduler = LRMultiplier(optimizer, multiplier=schedule, max_iter=max_iter)
    lrs = []
    for _ in range(max_iter):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_poly_values_with_linear_warmup():
    lrs = _lrs(WarmupPolyParamScheduler(max_iter=100, power=0.9, warmup_factor=0.1, warmup_iters=10), 100)
    assert lrs[0] == pytest.approx(0.01 * 0.1)  # warmup start, (1 - 0)^0.9 = 1
    alpha = 5 / 10
    assert lrs[5] == pytest.approx(0.01 * (0.1 * (1 - alpha) + alpha) * (1 - 5 / 100) ** 0.9)
    assert lrs[10] == pytest.approx(0.01 * 0.9**0.9)
    assert lrs[50] == pytest.approx(0.01 * 0.5**0.9)
    assert lrs[99] == pytest.approx(0.01 * 0.01**0.9)
    assert all(b < a for a, b in zip(lrs[10:], lrs[11:], strict=False))


def test_constant_warmup_and_constant_ending():
    schedule = WarmupPolyParamScheduler(
        max_iter=100,
        power=1.0,
        warmup_factor=0.5,
        warmup_iters=4,
        warmup_method="constant",
        constant_ending=0.2,
    )
    lrs = _lrs(schedule, 100, base_lr=1.0)
    assert lrs[:4] == pytest.approx([0.5 * (1 - i / 100) for i in range(4)])
    assert lrs[50] == pytest.approx(0.5)
    assert lrs[80] == pytest.approx(0.2)  # (1 - 0.8) = 0.2 is not below 0.2
    assert lrs[81:] == pytest.approx([0.2] * 19)  # the poly term fell below the ending


def test_bad_arguments():
    with pytest.raises(ValueError, match="warmup_method"):
        WarmupPolyParamScheduler(max_iter=10, warmup_method="cosine")
    with pytest.raises(ValueError, match="max_iter"):
        WarmupPolyParamScheduler(max_iter=0)
