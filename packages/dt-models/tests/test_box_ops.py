import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dt_models.anchor_generator import DefaultAnchorGenerator
from dt_models.box_regression import Box2BoxTransform
from dt_models.matcher import Matcher
from dt_models.sampling import subsample_labels


def _random_boxes(n, generator):
    xy = torch.rand(n, 2, generator=generator) * 100
    wh = torch.rand(n, 2, generator=generator) * 50 + 1
    return torch.cat([xy, xy + wh], dim=1)


@given(st.integers(0, 2**31 - 1), st.sampled_from([(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)]))
@settings(max_examples=25, deadline=None)
def test_box2box_round_trip(seed, weights):
    g = torch.Generator().manual_seed(seed)
    src, dst = _random_boxes(16, g), _random_boxes(16, g)
    transform = Box2BoxTransform(weights)
    deltas = transform.get_deltas(src, dst)
    torch.testing.assert_close(transform.apply_deltas(deltas, src), dst, rtol=1e-4, atol=1e-3)


def test_apply_deltas_class_specific_shape_and_clamp():
    transform = Box2BoxTransform((1.0, 1.0, 1.0, 1.0))
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    deltas = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 100.0, 100.0]])
    out = transform.apply_deltas(deltas, boxes)
    assert out.shape == (1, 8)
    torch.testing.assert_close(out[0, :4], boxes[0])
    assert out[0, 6] - out[0, 4] == pytest.approx(10 * 1000 / 16, rel=1e-4)  # clamped at log(1000/16)
    with pytest.raises(ValueError):
        Box2BoxTransform((1.0, 1.0))


def test_apply_deltas_empty():
    out = Box2BoxTransform((10.0, 10.0, 5.0, 5.0)).apply_deltas(torch.zeros(0, 12), torch.zeros(0, 4))
    assert out.shape == (0, 12)


def test_matcher_thresholds_and_low_quality():
    quality = torch.tensor([[0.1, 0.5, 0.8, 0.2], [0.0, 0.6, 0.1, 0.25]])
    matches, labels = Matcher([0.3, 0.7], [0, -1, 1])(quality)
    assert matches.tolist() == [0, 1, 0, 1]
    assert labels.tolist() == [0, -1, 1, 0]
    _, labels = Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=True)(quality)
    assert labels.tolist() == [0, 1, 1, 0]  # column 1 is gt 1's best match


def test_matcher_empty_ground_truth_and_validation():
    matches, labels = Matcher([0.5], [0, 1])(torch.zeros(0, 5))
    assert matches.tolist() == [0] * 5 and labels.tolist() == [0] * 5
    with pytest.raises(ValueError, match="increasing"):
        Matcher([0.7, 0.3], [0, -1, 1])
    with pytest.raises(ValueError, match="labels"):
        Matcher([0.5], [0, 1, 1])


@given(st.integers(0, 300), st.integers(0, 300), st.integers(0, 64), st.floats(0, 1))
@settings(max_examples=40, deadline=None)
def test_subsample_labels_counts(num_pos, num_neg, num_samples, fraction):
    labels = torch.cat([torch.ones(num_pos), torch.zeros(num_neg), -torch.ones(7)]).long()
    labels = labels[torch.randperm(len(labels))]
    pos, neg = subsample_labels(labels, num_samples, fraction, 0)
    assert len(pos) == min(num_pos, int(num_samples * fraction))
    assert len(neg) == min(num_neg, num_samples - len(pos))
    assert (labels[pos] == 1).all() and (labels[neg] == 0).all()
    assert len(set(pos.tolist())) == len(pos)


def test_subsample_labels_validation():
    with pytest.raises(ValueError):
        subsample_labels(torch.zeros(3), 2, 1.5, 0)


def test_anchor_generator_values_and_order():
    gen = DefaultAnchorGenerator(sizes=[[32.0]], aspect_ratios=[[0.5, 1.0, 2.0]], strides=[4, 8], offset=0.0)
    assert gen.num_cell_anchors == [3, 3]
    features = [torch.zeros(1, 1, 2, 3), torch.zeros(1, 1, 1, 2)]
    anchors = gen(features)
    assert [len(a) for a in anchors] == [2 * 3 * 3, 1 * 2 * 3]
    a = anchors[0].tensor
    w = math.sqrt(32 * 32 / 0.5)
    torch.testing.assert_close(a[0], torch.tensor([-w / 2, -0.25 * w, w / 2, 0.25 * w]))
    # next cell along x is shifted by the stride, same cell anchor order
    torch.testing.assert_close(a[3] - a[0], torch.tensor([4.0, 0.0, 4.0, 0.0]))
    # first anchor of the second row
    torch.testing.assert_close(a[9] - a[0], torch.tensor([0.0, 4.0, 0.0, 4.0]))
    sides = (a[:3, 2] - a[:3, 0]) * (a[:3, 3] - a[:3, 1])
    torch.testing.assert_close(sides, torch.full((3,), 32.0 * 32))


def test_anchor_generator_offset_and_validation():
    gen = DefaultAnchorGenerator(sizes=[[8.0]], aspect_ratios=[[1.0]], strides=[16], offset=0.5)
    torch.testing.assert_close(
        gen([torch.zeros(1, 1, 1, 1)])[0].tensor, torch.tensor([[4.0, 4.0, 12.0, 12.0]])
    )
    with pytest.raises(ValueError, match="3 entries but there are 2"):
        DefaultAnchorGenerator(sizes=[[8.0], [16.0], [32.0]], aspect_ratios=[[1.0]], strides=[4, 8])
    with pytest.raises(ValueError, match="offset"):
        DefaultAnchorGenerator(sizes=[[8.0]], aspect_ratios=[[1.0]], strides=[4], offset=1.0)
    with pytest.raises(ValueError, match="expected 1 feature maps"):
        gen([torch.zeros(1, 1, 2, 2)] * 2)
