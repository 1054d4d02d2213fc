"""conv3x3_winograd against float64 direct convolutions: every compiled instruction set, partial tiles
and channel panels, bias and ReLU, batches, layouts, and argument checks."""

import pytest
import torch
from torch.nn import functional as F

from dt_ops import _native
from dt_ops.winograd import conv3x3_winograd, winograd_available, winograd_weight

# the instruction sets this CPU runs: 0 generic, 1 AVX2, 2 AVX-512
ISAS = list(range(_native._C.winograd_isa(2) + 1))


def reference(x, weight, bias, relu=False):
    y = F.conv2d(x.double(), weight.double(), None if bias is None else bias.double(), padding=1)
    return F.relu(y) if relu else y


def assert_close_to(y, expected):
    """F(4x4, 3x3) rounds to ~1e-5 of the output's magnitude (a direct float32 convolution to ~1e-7)."""
    scale = expected.abs().max().item()
    assert (y.double() - expected).abs().max().item() <= 5e-5 * scale


def run(x, weight, bias, isa, monkeypatch, relu=False):
    monkeypatch.setattr("dt_ops.winograd._isa", lambda: isa)
    return conv3x3_winograd(x, winograd_weight(weight), bias, out_channels=weight.shape[0], relu=relu)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize(
    ("batch", "channels", "out_channels", "height", "width"),
    [
        (1, 16, 16, 8, 8),  # whole tiles, one panel
        (2, 20, 5, 7, 6),  # partial tiles, channels and panel below 16
        (1, 3, 37, 13, 9),  # 3 panels, the last one partial
        (3, 64, 48, 5, 17),
        (1, 8, 8, 1, 1),  # a single pixel: every neighbour is padding
    ],
)
def test_matches_direct_convolution(isa, batch, channels, out_channels, height, width, monkeypatch):
    torch.manual_seed(0)
    x = torch.randn(batch, channels, height, width)
    weight = torch.randn(out_channels, channels, 3, 3)
    bias = torch.randn(out_channels)
    y = run(x, weight, bias, isa, monkeypatch)
    assert y.shape == (batch, out_channels, height, width)
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert_close_to(y, reference(x, weight, bias))


@pytest.mark.parametrize("isa", ISAS)
def test_relu_and_no_bias(isa, monkeypatch):
    torch.manual_seed(1)
    x = torch.randn(2, 32, 11, 10).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(24, 32, 3, 3)
    y = run(x, weight, None, isa, monkeypatch, relu=True)
    assert (y >= 0).all()
    assert_close_to(y, reference(x, weight, None, relu=True))


def test_instruction_sets_agree_and_run_with_many_blocks(monkeypatch):
    # enough tiles for several blocks per thread and both threads
    torch.manual_seed(2)
    x = torch.randn(2, 64, 64, 60).contiguous(memory_format=torch.channels_last)
    weight, bias = torch.randn(80, 64, 3, 3), torch.randn(80)
    outputs = [run(x, weight, bias, isa, monkeypatch) for isa in ISAS]
    expected = reference(x, weight, bias)
    for y in outputs:
        assert_close_to(y, expected)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        serial = run(x, weight, bias, ISAS[-1], monkeypatch)
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(serial, outputs[-1], rtol=0, atol=0)


def test_packed_weight_layout():
    weight = torch.randn(20, 3, 3, 3)
    packed = winograd_weight(weight)
    assert packed.shape == (36, 2, 3, 16) and packed.dtype == torch.float32
    assert (packed[:, 1, :, 4:] == 0).all()  # the second panel holds output channels 16..19 only


def test_available_only_outside_autograd_for_float32_cpu():
    weight = torch.randn(4, 3, 3, 3, requires_grad=True)
    x = torch.randn(1, 3, 8, 8)
    assert not winograd_available(x, weight)
    with torch.no_grad():
        assert winograd_available(x, weight)
        assert not winograd_available(x.double(), weight.double())
        assert not winograd_available(torch.randn(1, 5, 8, 8), weight)


def test_rejects_mismatched_arguments():
    x = torch.randn(1, 3, 8, 8)
    packed = winograd_weight(torch.randn(20, 3, 3, 3))
    with pytest.raises(ValueError, match="does not fit an input of 4 channels"):
        conv3x3_winograd(torch.randn(1, 4, 8, 8), packed)
    with pytest.raises(ValueError, match="output channels do not fit"):
        conv3x3_winograd(x, packed, torch.randn(33))
    with pytest.raises(ValueError, match="float32 CPU tensor"):
        conv3x3_winograd(x.double(), packed)
    with pytest.raises(ValueError, match=r"expected a \[K, C, 3, 3\] filter"):
        winograd_weight(torch.randn(4, 3, 5, 5))
