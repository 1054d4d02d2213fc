"""roi_align against the pure-PyTorch reference: values, gradients, edge cases, validation."""

import pytest
import torch
from dt_ops_inputs import random_rois
from dt_ops_reference import roi_align_ref

import dt_ops


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
@pytest.mark.parametrize("contiguous", [True, False])
def test_matches_reference(dtype, aligned, sampling_ratio, contiguous):
    x = torch.randn(2, 3, 12, 15, dtype=dtype)
    if not contiguous:
        x = x.permute(0, 1, 3, 2).contiguous().permute(0, 1, 3, 2)
    rois = random_rois(9, 2, 24, 30, dtype, scale=2.0)
    rois[0, 3] = rois[0, 1]  # zero width
    x_ref = x.detach().clone().requires_grad_()
    x = x.requires_grad_()
    out = dt_ops.roi_align(x, rois, (4, 3), 0.5, sampling_ratio, aligned)
    ref = roi_align_ref(x_ref, rois, (4, 3), 0.5, sampling_ratio, aligned)
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 1e-12, "rtol": 1e-12}
    torch.testing.assert_close(out, ref, **tol)
    grad = torch.randn_like(out)
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, **tol)


def test_large_adaptive_grids_are_processed_in_chunks():
    # ~41k samples per ROI (adaptive grid 29x29 per bin): more than one chunk of the tap table.
    x = torch.randn(2, 2, 60, 60, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[i % 2, 1.0 + i, 2.0, 203.0 + i, 204.0] for i in range(30)], dtype=torch.float64)
    x_ref = x.detach().clone().requires_grad_()
    out = dt_ops.roi_align(x, rois, 7, 1.0, 0, True)
    ref = roi_align_ref(x_ref, rois, (7, 7), 1.0, 0, True)
    torch.testing.assert_close(out, ref)
    out.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad)


def test_gradcheck():
    x = torch.randn(1, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 0.3, 0.7, 4.2, 5.1], [0, 2.5, 1.5, 6.5, 3.3]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: dt_ops.roi_align(t, rois, 3, 1.0, 2, True), (x,))
    assert torch.autograd.gradcheck(lambda t: dt_ops.roi_align(t, rois, (2, 3), 0.9, -1, False), (x,))


def test_list_of_boxes_equals_rois_tensor():
    x = torch.randn(2, 3, 10, 10)
    boxes = [torch.tensor([[1.0, 1, 5, 6]]), torch.tensor([[0.0, 2, 8, 9], [3, 3, 4, 4]])]
    rois = torch.tensor([[0, 1.0, 1, 5, 6], [1, 0, 2, 8, 9], [1, 3, 3, 4, 4]])
    torch.testing.assert_close(dt_ops.roi_align(x, boxes, 2), dt_ops.roi_align(x, rois, 2))


def test_empty_rois_and_empty_channels():
    x = torch.randn(2, 3, 10, 10, requires_grad=True)
    out = dt_ops.roi_align(x, torch.zeros(0, 5), (7, 5))
    assert out.shape == (0, 3, 7, 5)
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    assert dt_ops.roi_align(torch.randn(1, 0, 4, 4), torch.zeros(2, 5), 2).shape == (2, 0, 2, 2)
    assert dt_ops.roi_align(x, [torch.zeros(0, 4), torch.zeros(0, 4)], 2).shape == (0, 3, 2, 2)


def test_half_precision_is_computed_in_float32():
    x = torch.randn(1, 2, 8, 8)
    rois = torch.tensor([[0, 1.0, 1, 6, 5]])
    out = dt_ops.roi_align(x.bfloat16(), rois.bfloat16(), 3, aligned=True)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(
        out.float(),
        dt_ops.roi_align(x.bfloat16().float(), rois.bfloat16().float(), 3, aligned=True),
        atol=1e-2,
        rtol=1e-2,
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"input": torch.zeros(2, 3, 4)}, ValueError, "input must be 4-D"),
        ({"input": torch.zeros(1, 1, 4, 4, dtype=torch.int32)}, TypeError, "input must have dtype"),
        ({"boxes": torch.zeros(2, 4)}, ValueError, "boxes must have 5 values"),
        ({"boxes": torch.zeros(2, 5, dtype=torch.float64)}, TypeError, "same dtype"),
        ({"boxes": [torch.zeros(2, 5)]}, ValueError, r"boxes\[0\] must have 4 values"),
        ({"boxes": torch.zeros(2, 5, device="meta")}, ValueError, "cpu or cuda"),
        ({"output_size": 0}, ValueError, "output_size must be >= 1"),
        ({"output_size": (2, 2, 2)}, TypeError, "output_size must be an int or a pair"),
        ({"sampling_ratio": 1.5}, TypeError, "sampling_ratio must be an int"),
    ],
)
def test_validation_errors(kwargs, error, match):
    args = {"input": torch.zeros(1, 1, 4, 4), "boxes": torch.zeros(2, 5), "output_size": 2}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        dt_ops.roi_align(**args)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("aligned", "sampling_ratio"), [(False, -1), (True, 0), (True, 2)])
def test_channels_last_input_gives_the_same_result(dtype, aligned, sampling_ratio):
    # read in place by the channels-last kernel: the same sums in the same order, so equal bit for bit
    x = torch.randn(2, 19, 12, 15, dtype=dtype)
    rois = random_rois(40, 2, 24, 30, dtype, scale=2.0)
    rois[0, 0] = 5  # an image index out of range: zeros
    expected = dt_ops.roi_align(x, rois, (4, 3), 0.5, sampling_ratio, aligned)
    channels_last = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    out = dt_ops.roi_align(channels_last, rois, (4, 3), 0.5, sampling_ratio, aligned)
    assert torch.equal(out, expected)
    grad = torch.randn_like(out)
    out.backward(grad)
    x_ref = x.clone().requires_grad_()
    dt_ops.roi_align(x_ref, rois, (4, 3), 0.5, sampling_ratio, aligned).backward(grad)
    assert channels_last.grad.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(channels_last.grad, x_ref.grad)
