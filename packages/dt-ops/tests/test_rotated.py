"""Rotated ops against the pure-PyTorch references (an independent polygon-clipping IoU)."""

import pytest
import torch
from dt_ops_inputs import non_contiguous, random_rotated_boxes
from dt_ops_reference import batched_nms_ref, box_iou_rotated_ref, nms_rotated_ref, roi_align_rotated_ref

import dt_ops

DTYPES = [torch.float32, torch.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("contiguous", [True, False])
def test_box_iou_rotated_matches_polygon_clipping(dtype, contiguous):
    a, b = random_rotated_boxes(30, dtype), random_rotated_boxes(20, dtype)
    b[:3] = a[:3]  # identical boxes
    b[3, 4] = a[3, 4] + 90  # same box turned by 90 degrees
    b[3, :2], b[3, 2:4] = a[3, :2], a[3, 2:4].flip(0)
    if not contiguous:
        a, b = non_contiguous(a), non_contiguous(b)
    iou = dt_ops.box_iou_rotated(a, b)
    assert iou.dtype == dtype
    torch.testing.assert_close(iou.double(), box_iou_rotated_ref(a, b), atol=1e-4, rtol=0)
    torch.testing.assert_close(iou.diagonal()[:4], torch.ones(4, dtype=dtype), atol=1e-5, rtol=0)


def test_box_iou_rotated_degenerate_and_empty():
    boxes = torch.tensor([[5.0, 5, 0, 4, 30], [5, 5, 4, 4, 0]])
    assert dt_ops.box_iou_rotated(boxes, boxes)[0].tolist() == [0.0, 0.0]
    assert dt_ops.box_iou_rotated(torch.zeros(0, 5), boxes).shape == (0, 2)
    assert dt_ops.box_iou_rotated(boxes, torch.zeros(0, 5)).shape == (2, 0)


def test_box_iou_rotated_axis_aligned_equals_box_iou():
    boxes = random_rotated_boxes(25, torch.float64)
    boxes[:, 4] = 0
    xyxy = torch.cat([boxes[:, :2] - boxes[:, 2:4] / 2, boxes[:, :2] + boxes[:, 2:4] / 2], dim=1)
    torch.testing.assert_close(
        dt_ops.box_iou_rotated(boxes, boxes), dt_ops.box_iou(xyxy, xyxy), atol=1e-9, rtol=0
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threshold", [0.2, 0.5])
def test_nms_rotated_matches_reference(dtype, threshold):
    boxes = random_rotated_boxes(120, dtype, size=40.0)
    scores = torch.rand(120, dtype=dtype)
    assert torch.equal(
        dt_ops.nms_rotated(boxes, scores, threshold), nms_rotated_ref(boxes, scores, threshold)
    )
    idxs = torch.randint(0, 4, (120,))
    want = batched_nms_ref(boxes, scores, idxs, threshold, nms_fn=nms_rotated_ref)
    assert torch.equal(dt_ops.batched_nms_rotated(boxes, scores, idxs, threshold), want)


def test_nms_rotated_empty_and_validation():
    assert dt_ops.nms_rotated(torch.zeros(0, 5), torch.zeros(0), 0.5).shape == (0,)
    with pytest.raises(ValueError, match="boxes must have 5 values"):
        dt_ops.nms_rotated(torch.zeros(2, 4), torch.zeros(2), 0.5)
    with pytest.raises(TypeError, match="idxs must have dtype int64 or int32"):
        dt_ops.batched_nms_rotated(torch.zeros(2, 5), torch.zeros(2), torch.zeros(2), 0.5)
    with pytest.raises(TypeError, match="same dtype"):
        dt_ops.box_iou_rotated(torch.zeros(2, 5), torch.zeros(2, 5, dtype=torch.float64))


def _rotated_rois(k, batch, height, width, dtype):
    centers = torch.rand(k, 2, dtype=dtype) * torch.tensor([width, height], dtype=dtype)
    sizes = torch.rand(k, 2, dtype=dtype) * 0.5 * torch.tensor([width, height], dtype=dtype)
    angles = torch.rand(k, 1, dtype=dtype) * 360 - 180
    index = torch.randint(0, batch, (k, 1)).to(dtype)
    return torch.cat([index, centers, sizes, angles], dim=1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sampling_ratio", [0, 2])
@pytest.mark.parametrize("contiguous", [True, False])
def test_roi_align_rotated_matches_reference(dtype, sampling_ratio, contiguous):
    x = torch.randn(2, 3, 10, 13, dtype=dtype)
    if not contiguous:
        x = x.permute(0, 1, 3, 2).contiguous().permute(0, 1, 3, 2)
    rois = _rotated_rois(7, 2, 20, 26, dtype)
    x_ref = x.detach().clone().requires_grad_()
    x = x.requires_grad_()
    out = dt_ops.roi_align_rotated(x, rois, (3, 4), 0.5, sampling_ratio)
    ref = roi_align_rotated_ref(x_ref, rois, (3, 4), 0.5, sampling_ratio)
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 1e-10, "rtol": 1e-10}
    torch.testing.assert_close(out, ref, **tol)
    grad = torch.randn_like(out)
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, **tol)


def test_roi_align_rotated_zero_angle_equals_aligned_roi_align():
    x = torch.randn(1, 2, 9, 9, dtype=torch.float64)
    rotated = torch.tensor([[0, 4.0, 3.5, 5.0, 3.0, 0.0]], dtype=torch.float64)
    xyxy = torch.tensor([[0, 1.5, 2.0, 6.5, 5.0]], dtype=torch.float64)
    torch.testing.assert_close(
        dt_ops.roi_align_rotated(x, rotated, 3, 1.0, 2), dt_ops.roi_align(x, xyxy, 3, 1.0, 2, aligned=True)
    )


def test_roi_align_rotated_gradcheck_and_empty():
    x = torch.randn(1, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 3.0, 3.0, 4.0, 2.5, 30.0], [0, 2.0, 4.0, 3.0, 3.0, -120.0]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: dt_ops.roi_align_rotated(t, rois, 2, 1.0, 2), (x,))
    assert dt_ops.roi_align_rotated(x, torch.zeros(0, 6, dtype=torch.float64), 2).shape == (0, 2, 2, 2)
    with pytest.raises(ValueError, match="rois must have 6 values"):
        dt_ops.roi_align_rotated(x, torch.zeros(1, 5, dtype=torch.float64), 2)
