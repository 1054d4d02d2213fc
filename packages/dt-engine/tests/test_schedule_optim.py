import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dt_engine.build import build_lr_scheduler, build_optimizer
from dt_engine.config.solver import SolverConfig
from dt_engine.lr_scheduler import (
    CompositeParamScheduler,
    ConstantParamScheduler,
    CosineParamScheduler,
    LinearParamScheduler,
    LRMultiplier,
    MultiStepParamScheduler,
    WarmupParamScheduler,
)
from dt_engine.optim import get_default_optimizer_params


def _lrs(solver, n=None):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=solver.base_lr)
    sched = build_lr_scheduler(opt, solver)
    out = []
    for _ in range(n or solver.max_iter):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warmup_multistep_matches_detectron2_formula():
    solver = SolverConfig(base_lr=1.0, max_iter=100, steps=(60, 80), warmup_iters=10, warmup_factor=0.001)
    lrs = _lrs(solver)
    for i in range(10):  # detectron2: factor = warmup_factor * (1 - alpha) + alpha, alpha = i / warmup_iters
        alpha = i / 10
        assert lrs[i] == pytest.approx(0.001 * (1 - alpha) + alpha)
    assert lrs[10] == lrs[59] == pytest.approx(1.0)
    assert lrs[60] == lrs[79] == pytest.approx(0.1)
    assert lrs[80] == lrs[99] == pytest.approx(0.01)


def test_warmup_cosine_and_constant_warmup():
    solver = SolverConfig(
        base_lr=2.0, max_iter=100, lr_scheduler="cosine", steps=(), warmup_iters=10, warmup_method="constant"
    )
    lrs = _lrs(solver)
    assert lrs[:10] == [pytest.approx(2.0 * 0.001)] * 10
    for i in (10, 50, 99):
        assert lrs[i] == pytest.approx(2.0 * 0.5 * (1 + math.cos(math.pi * i / 100)))


def test_cosine_to_nonzero_end_and_rescaled_interval():
    sched = WarmupParamScheduler(CosineParamScheduler(1.0, 0.1), 0.5, 0.2, rescale_interval=True)
    assert sched(0.0) == pytest.approx(0.5)
    assert sched(0.2) == pytest.approx(1.0)  # the cosine restarts its own progress after warmup
    assert sched(0.6) == pytest.approx(0.55)
    assert sched(1.0) == pytest.approx(0.1)


def test_param_scheduler_validation():
    with pytest.raises(ValueError, match="where"):
        ConstantParamScheduler(1.0)(1.5)
    with pytest.raises(ValueError, match="values"):
        MultiStepParamScheduler([1.0], num_updates=10, milestones=[5])
    with pytest.raises(ValueError, match="increase"):
        MultiStepParamScheduler([1.0, 0.1, 0.01], num_updates=10, milestones=[5, 5])
    with pytest.raises(ValueError, match="sum to 1"):
        CompositeParamScheduler([ConstantParamScheduler(1)], [0.5], ["fixed"])
    with pytest.raises(ValueError, match="warmup_method"):
        WarmupParamScheduler(ConstantParamScheduler(1.0), 0.1, 0.1, warmup_method="exp")
    assert LinearParamScheduler(0.0, 2.0)(0.25) == pytest.approx(0.5)


def test_lr_multiplier_state_dict_resumes():
    params = [nn.Parameter(torch.zeros(1))]
    opt = torch.optim.SGD(params, lr=1.0)
    mult = WarmupParamScheduler(MultiStepParamScheduler([1, 0.1], 20, [10]), 0.1, 0.25)
    sched = LRMultiplier(opt, mult, max_iter=20)
    for _ in range(12):
        opt.step()
        sched.step()
    state = sched.state_dict()
    assert set(state) == {"base_lrs", "last_epoch"}
    opt2 = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched2 = LRMultiplier(opt2, mult, max_iter=20)
    sched2.load_state_dict(state)
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == pytest.approx(0.1)
    with pytest.raises(TypeError, match="ParamScheduler"):
        LRMultiplier(opt, lambda w: 1.0, max_iter=10)


@settings(max_examples=30, deadline=None)
@given(
    warmup=st.integers(0, 50),
    max_iter=st.integers(60, 500),
    factor=st.floats(0.0, 1.0),
)
def test_cosine_schedule_is_nonincreasing_after_warmup_and_bounded(warmup, max_iter, factor):
    solver = SolverConfig(
        base_lr=1.0,
        max_iter=max_iter,
        lr_scheduler="cosine",
        steps=(),
        warmup_iters=warmup,
        warmup_factor=factor,
    )
    lrs = _lrs(solver)
    assert all(0.0 <= lr <= 1.0 + 1e-9 for lr in lrs)
    after = lrs[warmup:]
    assert all(b <= a + 1e-12 for a, b in zip(after, after[1:], strict=False))
    if warmup:  # the warmup goes linearly from factor * lr(0) to the schedule's value where it ends
        end = 0.5 * (1 + math.cos(math.pi * warmup / max_iter))
        assert lrs[0] == pytest.approx(factor)
        low, high = min(factor, end), max(factor, end)
        assert all(low - 1e-9 <= lr <= high + 1e-9 for lr in lrs[:warmup])


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.gn = nn.GroupNorm(2, 4)
        self.head = nn.Linear(4, 2)
        self.tied = nn.Linear(4, 2, bias=False)
        self.tied.weight = self.head.weight  # a shared parameter
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def _group_of(groups, param):
    return next(g for g in groups if any(p is param for p in g["params"]))


def test_default_optimizer_params_norm_bias_rules():
    net = Net()
    groups = get_default_optimizer_params(
        net, base_lr=0.1, weight_decay=1e-4, weight_decay_norm=0.0, bias_lr_factor=2.0, weight_decay_bias=0.0
    )
    all_params = [p for g in groups for p in g["params"]]
    assert len(all_params) == len({id(p) for p in all_params}) == 8  # shared once, frozen excluded
    assert _group_of(groups, net.conv.weight) == {
        **_group_of(groups, net.conv.weight),
        "lr": 0.1,
        "weight_decay": 1e-4,
    }
    for p in (net.bn.weight, net.gn.weight):
        assert (_group_of(groups, p)["lr"], _group_of(groups, p)["weight_decay"]) == (0.1, 0.0)
    for p in (net.conv.bias, net.head.bias, net.bn.bias, net.gn.bias):
        assert (_group_of(groups, p)["lr"], _group_of(groups, p)["weight_decay"]) == (0.2, 0.0)
    assert len(groups) == 3  # identical hyper-parameters are merged


def test_default_optimizer_params_defaults_and_overrides():
    net = Net()
    groups = get_default_optimizer_params(
        net, base_lr=0.1, weight_decay=1e-4, overrides={"weight": {"lr": 0.5}}
    )
    assert _group_of(groups, net.conv.weight)["lr"] == 0.5
    assert _group_of(groups, net.bn.weight)["weight_decay"] == 1e-4  # no weight_decay_norm given
    assert _group_of(groups, net.conv.bias) == {
        **_group_of(groups, net.conv.bias),
        "lr": 0.1,
        "weight_decay": 1e-4,
    }
    with pytest.raises(ValueError, match="base_lr"):
        get_default_optimizer_params(net, base_lr=0.0, weight_decay=0.0)
    with pytest.raises(ValueError, match="bias"):
        get_default_optimizer_params(
            net, base_lr=0.1, weight_decay=0.0, bias_lr_factor=2.0, overrides={"bias": {}}
        )


def test_build_optimizer_sgd_and_adamw():
    net = Net()
    sgd = build_optimizer(net, SolverConfig(base_lr=0.1, momentum=0.8, nesterov=True))
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["momentum"] == 0.8 and sgd.defaults["nesterov"]
    adamw = build_optimizer(net, SolverConfig(optimizer="AdamW", base_lr=1e-3, betas=(0.8, 0.9)))
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["betas"] == (0.8, 0.9)
    assert adamw.defaults["fused"] and not sgd.defaults["fused"]  # fused AdamW on the CPU
    on_meta = build_optimizer(Net().to("meta"), SolverConfig(optimizer="AdamW"))
    assert not on_meta.defaults["fused"]  # a device without torch's fused kernels takes the loop
    with pytest.raises(ValueError, match="no trainable"):
        build_optimizer(nn.Linear(2, 2).requires_grad_(False), SolverConfig())
