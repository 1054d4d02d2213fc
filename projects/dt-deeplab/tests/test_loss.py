"""DeepLabCE against a computation by hand."""

import math

import pytest
import torch

from dt_deeplab.loss import DeepLabCE


def _logits():
    # 1 image, 2 classes, 1 x 4 pixels; per-pixel softmax is easy to write out
    return torch.tensor([[[[0.0, 2.0, 1.0, 0.0]], [[0.0, 0.0, 1.0, 3.0]]]])


def _ce(own: float, other: float) -> float:
    return -own + math.log(math.exp(own) + math.exp(other))


def test_all_pixels_mean_counts_ignored_pixels_as_zero():
    labels = torch.tensor([[[0, 1, 255, 0]]])
    expected = (_ce(0, 0) + _ce(0, 2) + 0.0 + _ce(0, 3)) / 4
    loss = DeepLabCE(ignore_label=255, top_k_percent_pixels=1.0)(_logits(), labels)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_top_k_keeps_the_hardest_pixels():
    labels = torch.tensor([[[0, 1, 255, 0]]])
    # losses: ln2 = 0.693, 2.127, 0 (ignored), 3.049; the top half (2 of 4) is 3.049 and 2.127
    expected = (_ce(0, 3) + _ce(0, 2)) / 2
    loss = DeepLabCE(ignore_label=255, top_k_percent_pixels=0.5)(_logits(), labels)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_pixel_weights_scale_before_mining():
    labels = torch.tensor([[[0, 1, 1, 0]]])
    weights = torch.tensor([[[10.0, 1.0, 1.0, 1.0]]])
    # weighted: 6.931, 2.127, 0.693, 3.049 -> top 1 of 4 (25%) is the first pixel
    loss = DeepLabCE(ignore_label=255, top_k_percent_pixels=0.25)(_logits(), labels, weights)
    assert loss.item() == pytest.approx(10 * _ce(0, 0), rel=1e-6)


def test_gradient_flows_to_the_mined_pixels_only():
    logits = _logits().requires_grad_()
    DeepLabCE(ignore_label=255, top_k_percent_pixels=0.25)(logits, torch.tensor([[[0, 1, 1, 0]]])).backward()
    touched = (logits.grad.abs().sum(1) > 0)[0, 0].tolist()
    assert touched == [False, False, False, True]


def test_top_k_must_be_a_fraction():
    with pytest.raises(ValueError, match=r"top_k_percent_pixels must be in \(0, 1\]"):
        DeepLabCE(top_k_percent_pixels=0.0)
