"""Conv2d's Winograd inference path: same outputs as the direct convolution (frozen BN folded, ReLU
fused), taken only where it applies, and its transformed filter follows changes of the parameters."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import dt_models.layers.wrappers as wrappers
from dt_models.layers import Conv2d, FrozenBatchNorm2d


def frozen_bn(channels: int) -> FrozenBatchNorm2d:
    norm = FrozenBatchNorm2d(channels)
    norm.weight.uniform_(0.5, 1.5)
    norm.bias.normal_()
    norm.running_mean.normal_()
    norm.running_var.uniform_(0.5, 2.0)
    return norm


def direct(conv: Conv2d, x: torch.Tensor, monkeypatch) -> torch.Tensor:
    with monkeypatch.context() as patch:
        patch.setattr(wrappers, "WINOGRAD", False)
        return conv(x)


@pytest.fixture
def calls(monkeypatch):
    """Counts the Winograd kernel's calls."""
    count = []
    kernel = wrappers.conv3x3_winograd

    def counting(*args, **kwargs):
        count.append(1)
        return kernel(*args, **kwargs)

    monkeypatch.setattr(wrappers, "conv3x3_winograd", counting)
    return count


@pytest.mark.parametrize(
    ("norm", "activation", "bias"),
    [(None, None, True), ("frozen", F.relu, False), ("frozen", nn.ReLU(), False), (None, torch.tanh, True)],
)
def test_matches_the_direct_convolution(norm, activation, bias, calls, monkeypatch):
    torch.manual_seed(0)
    conv = Conv2d(
        64, 40, 3, padding=1, bias=bias, norm=frozen_bn(40) if norm else None, activation=activation
    )
    x = torch.randn(2, 64, 31, 22).contiguous(memory_format=torch.channels_last)  # 2 x 8 x 6 tiles of 64
    with torch.no_grad():
        expected = direct(conv, x, monkeypatch)
        y = conv(x)
    assert calls == [1]
    assert y.shape == expected.shape
    assert (y - expected).abs().max() <= 5e-5 * expected.abs().max()


@pytest.mark.parametrize(
    "kwargs",
    [dict(stride=2, padding=1), dict(padding=2, dilation=2), dict(padding=1, groups=2), dict(padding=0)],
)
def test_other_3x3_convolutions_stay_direct(kwargs, calls):
    conv = Conv2d(64, 64, 3, **kwargs)
    with torch.no_grad():
        conv(torch.randn(1, 64, 40, 40).contiguous(memory_format=torch.channels_last))
    assert calls == []


@pytest.mark.parametrize(("channels", "side"), [(32, 64), (64, 12), (512, 8)])
def test_small_convolutions_stay_direct(channels, side, calls):
    with torch.no_grad():
        x = torch.randn(1, channels, side, side).contiguous(memory_format=torch.channels_last)
        Conv2d(channels, channels, 3, padding=1)(x)
    assert calls == []


def test_nchw_input_stays_direct(calls):
    with torch.no_grad():
        Conv2d(64, 64, 3, padding=1)(torch.randn(1, 64, 40, 40))
    assert calls == []


def test_autograd_runs_the_direct_convolution(calls):
    conv = Conv2d(64, 64, 3, padding=1, activation=F.relu)
    conv(torch.randn(1, 64, 32, 32).contiguous(memory_format=torch.channels_last)).sum().backward()
    assert calls == [] and conv.weight.grad is not None


def test_the_filter_transform_follows_the_parameters(calls, monkeypatch):
    torch.manual_seed(1)
    conv = Conv2d(64, 64, 3, padding=1, bias=False, norm=frozen_bn(64))
    x = torch.randn(1, 64, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        conv(x)
        conv.weight.mul_(2.0)
        conv.norm.running_mean.add_(1.0)
        y = conv(x)
        expected = direct(conv, x, monkeypatch)
        loaded = Conv2d(64, 64, 3, padding=1, bias=False, norm=FrozenBatchNorm2d(64))
        loaded.load_state_dict(conv.state_dict())
        reloaded = loaded(x)
    assert (y - expected).abs().max() <= 5e-5 * expected.abs().max()
    assert (reloaded - expected).abs().max() <= 5e-5 * expected.abs().max()
    assert len(calls) == 3
