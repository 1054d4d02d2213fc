"""The mask head's transposed conv and 1x1 predictor written as matrix products: the same numbers as
the layers they stand for, and the per-ROI class selection equal to indexing all classes' maps."""

import pytest
import torch
from torch.nn import functional as F

from dt_models.layers import ShapeSpec
from dt_models.roi_heads import MaskRCNNConvUpsampleHead
from dt_structures import Boxes, Instances


def _head(num_classes: int, conv_norm: str = "") -> MaskRCNNConvUpsampleHead:
    torch.manual_seed(0)
    head = MaskRCNNConvUpsampleHead(
        ShapeSpec(channels=8), num_classes=num_classes, conv_dims=(8, 8, 6), conv_norm=conv_norm
    )
    for p in head.parameters():  # non-trivial biases and predictor weights
        torch.nn.init.normal_(p, std=0.3)
    return head.eval()


def _reference(head: MaskRCNNConvUpsampleHead, x: torch.Tensor) -> torch.Tensor:
    """The head as its modules describe it: convs, ``ConvTranspose2d`` + ReLU, 1x1 conv."""
    for conv in head.conv_norm_relus:
        x = conv(x)
    return head.predictor(F.relu(head.deconv(x)))


@pytest.mark.parametrize("num_classes", [1, 3])
@pytest.mark.parametrize("channels_last", [False, True])
def test_layers_equal_transposed_conv_and_1x1_conv(num_classes, channels_last):
    head = _head(num_classes)
    x = torch.randn(5, 8, 7, 7)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = _reference(head, x)
        got = head.layers(x)
    assert got.shape == (5, num_classes, 14, 14)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_class_logits_select_each_rois_class_and_backpropagate_the_same():
    head = _head(4).train()
    x = torch.randn(6, 8, 7, 7)
    classes = torch.tensor([3, 0, 2, 2, 1, 3])
    selected = head.class_logits(x, classes)
    full = head.layers(x)[torch.arange(6), classes][:, None]
    torch.testing.assert_close(selected, full, rtol=1e-5, atol=1e-5)
    grads = torch.autograd.grad((selected * selected).sum(), list(head.parameters()))
    expected = torch.autograd.grad((full * full).sum(), list(head.parameters()))
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_inference_sets_the_predicted_class_mask_of_each_instance():
    head = _head(3)
    x = torch.randn(4, 8, 7, 7)
    instances = [Instances((32, 32)), Instances((32, 32))]
    for inst, classes in zip(instances, ([2, 0, 1], [1]), strict=True):
        inst.pred_boxes = Boxes(torch.tensor([[0.0, 0.0, 8.0, 8.0]] * len(classes)))
        inst.pred_classes = torch.tensor(classes)
    with torch.no_grad():
        head(x, instances)
        expected = _reference(head, x)[torch.arange(4), torch.tensor([2, 0, 1, 1])].sigmoid()
    got = torch.cat([i.pred_masks for i in instances])
    assert got.shape == (4, 1, 14, 14)
    torch.testing.assert_close(got[:, 0], expected, rtol=1e-5, atol=1e-6)


def test_no_rois_give_empty_logits():
    head = _head(3)
    empty = torch.zeros(0, 8, 7, 7)
    assert head.class_logits(empty, torch.zeros(0, dtype=torch.int64)).shape == (0, 1, 14, 14)
    assert head.layers(empty).shape == (0, 3, 14, 14)
