import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from dt_models.layers import (
    Conv2d,
    FrozenBatchNorm2d,
    LayerNorm,
    ShapeSpec,
    cat,
    ciou_loss,
    diou_loss,
    get_norm,
    giou_loss,
    smooth_l1_loss,
)


def test_conv2d_applies_norm_then_activation():
    conv = Conv2d(3, 4, 3, padding=1, bias=False, norm=nn.BatchNorm2d(4), activation=F.relu).eval()
    x = torch.randn(2, 3, 8, 8)
    expected = F.relu(conv.norm(F.conv2d(x, conv.weight, None, padding=1)))
    torch.testing.assert_close(conv(x), expected)
    assert (conv(x) >= 0).all()


def test_frozen_batchnorm_matches_eval_batchnorm_and_has_no_parameters():
    bn = nn.BatchNorm2d(5).eval()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)
    frozen = FrozenBatchNorm2d.convert_frozen_batchnorm(nn.Sequential(bn))[0]
    assert isinstance(frozen, FrozenBatchNorm2d)
    assert list(frozen.parameters()) == []
    x = torch.randn(2, 5, 4, 4)
    torch.testing.assert_close(frozen(x), bn(x))
    # the gradient path (x requires grad) computes the same thing
    torch.testing.assert_close(frozen(x.clone().requires_grad_()), bn(x), rtol=1e-5, atol=1e-5)


def test_frozen_batchnorm_ignores_num_batches_tracked():
    frozen = FrozenBatchNorm2d(3)
    state = {**frozen.state_dict(), "num_batches_tracked": torch.tensor(4)}
    frozen.load_state_dict(state)


@pytest.mark.parametrize(
    "name, cls",
    [("BN", nn.BatchNorm2d), ("FrozenBN", FrozenBatchNorm2d), ("GN", nn.GroupNorm), ("LN", LayerNorm)],
)
def test_get_norm(name, cls):
    assert isinstance(get_norm(name, 64), cls)


def test_get_norm_none_and_errors():
    assert get_norm("", 8) is None and get_norm(None, 8) is None
    with pytest.raises(ValueError, match="norm must be one of"):
        get_norm("BatchNorm", 8)
    assert isinstance(get_norm(lambda c: nn.Identity(), 8), nn.Identity)


def test_layer_norm_normalizes_channels():
    y = LayerNorm(6)(torch.randn(2, 6, 3, 3) * 5 + 2)
    torch.testing.assert_close(y.mean(1), torch.zeros(2, 3, 3), atol=1e-5, rtol=0)


def test_cat_single_is_identity_and_rejects_non_sequences():
    t = torch.randn(3)
    assert cat([t]) is t
    assert cat([t, t]).shape == (6,)
    with pytest.raises(TypeError):
        cat(t)


def test_shape_spec_defaults():
    assert ShapeSpec(channels=3) == ShapeSpec(3, None, None, None)


@given(st.floats(0.0, 2.0))
@settings(max_examples=25, deadline=None)
def test_smooth_l1_matches_torch(beta):
    a, b = torch.randn(20), torch.randn(20)
    expected = F.smooth_l1_loss(a, b, beta=beta, reduction="sum") if beta >= 1e-5 else (a - b).abs().sum()
    torch.testing.assert_close(smooth_l1_loss(a, b, beta, "sum"), expected)


def test_losses_validate_arguments():
    with pytest.raises(ValueError, match="same shape"):
        smooth_l1_loss(torch.zeros(3), torch.zeros(4), 0.0)
    with pytest.raises(ValueError, match="reduction"):
        giou_loss(torch.zeros(1, 4), torch.zeros(1, 4), reduction="avg")
    with pytest.raises(ValueError, match=r"\[..., 4\]"):
        diou_loss(torch.zeros(1, 5), torch.zeros(1, 5))


boxes_strategy = st.lists(
    st.tuples(st.floats(0, 50), st.floats(0, 50), st.floats(1, 50), st.floats(1, 50)), min_size=1, max_size=8
)


@given(boxes_strategy, boxes_strategy)
@settings(max_examples=30, deadline=None)
def test_iou_losses_are_zero_on_identical_boxes_and_bounded(b1, b2):
    n = min(len(b1), len(b2))
    t1 = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in b1[:n]], dtype=torch.float64)
    t2 = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in b2[:n]], dtype=torch.float64)
    for fn in (giou_loss, diou_loss, ciou_loss):
        torch.testing.assert_close(fn(t1, t1), torch.zeros(n, dtype=torch.float64), atol=1e-6, rtol=0)
        loss = fn(t1, t2)
        assert ((loss >= -1e-6) & (loss <= 2 + 1e-6 + (fn is ciou_loss))).all()


def test_giou_known_value_and_empty_mean():
    a = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[2.0, 0.0, 3.0, 1.0]])  # disjoint: IoU 0, enclosing 3, union 2 -> GIoU = -1/3
    torch.testing.assert_close(giou_loss(a, b), torch.tensor([1 + 1 / 3]))
    empty = torch.zeros(0, 4, requires_grad=True)
    loss = giou_loss(empty, empty, reduction="mean")
    assert loss.item() == 0.0
    loss.backward()
