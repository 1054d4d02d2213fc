"""Every golden case (torchvision / detectron2 outputs), forward and gradients, at the README's tolerances."""

import pytest
import torch
from dt_ops_golden import golden_cases

import dt_ops


def _tol(dtype: torch.dtype, float32: float, float64: float) -> dict:
    tol = float32 if dtype == torch.float32 else float64
    return {"atol": tol, "rtol": 0.0}


@pytest.mark.parametrize("case", golden_cases("nms"))
def test_nms(case):
    keep = dt_ops.nms(case["boxes"], case["scores"], case["iou_threshold"])
    assert torch.equal(keep, case["keep"])
    keep = dt_ops.batched_nms(case["boxes"], case["scores"], case["idxs"], case["iou_threshold"])
    assert torch.equal(keep, case["keep_batched"])


@pytest.mark.parametrize("case", golden_cases("box_iou"))
def test_box_iou(case):
    torch.testing.assert_close(dt_ops.box_iou(case["boxes1"], case["boxes2"]), case["iou"], atol=1e-6, rtol=0)


@pytest.mark.parametrize("case", golden_cases("roi_align"))
def test_roi_align(case):
    x = case["input"].clone().requires_grad_()
    out = dt_ops.roi_align(
        x, case["rois"], case["output_size"], case["spatial_scale"], case["sampling_ratio"], case["aligned"]
    )
    out.backward(case["grad_output"])
    tol = _tol(x.dtype, 1e-5, 1e-10)
    torch.testing.assert_close(out, case["output"], **tol)
    torch.testing.assert_close(x.grad, case["grad_input"], **tol)


@pytest.mark.parametrize("case", golden_cases("box_iou_rotated"))
def test_box_iou_rotated(case):
    iou = dt_ops.box_iou_rotated(case["boxes1"], case["boxes2"])
    torch.testing.assert_close(iou, case["iou"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("case", golden_cases("nms_rotated"))
def test_nms_rotated(case):
    keep = dt_ops.nms_rotated(case["boxes"], case["scores"], case["iou_threshold"])
    assert torch.equal(keep, case["keep"])
    keep = dt_ops.batched_nms_rotated(case["boxes"], case["scores"], case["idxs"], case["iou_threshold"])
    assert torch.equal(keep, case["keep_batched"])


@pytest.mark.parametrize("case", golden_cases("roi_align_rotated"))
def test_roi_align_rotated(case):
    x = case["input"].clone().requires_grad_()
    out = dt_ops.roi_align_rotated(
        x, case["rois"], case["output_size"], case["spatial_scale"], case["sampling_ratio"]
    )
    out.backward(case["grad_output"])
    tol = _tol(x.dtype, 1e-5, 1e-10)
    torch.testing.assert_close(out, case["output"], **tol)
    torch.testing.assert_close(x.grad, case["grad_input"], **tol)


@pytest.mark.parametrize("case", golden_cases("deform_conv2d"))
def test_deform_conv2d(case):
    names = ["input", "offset", "weight", "bias", "mask"]
    tensors = {n: case[n].clone().requires_grad_() if case[n] is not None else None for n in names}
    out = dt_ops.deform_conv2d(
        tensors["input"], tensors["offset"], tensors["weight"], tensors["bias"],
        case["stride"], case["padding"], case["dilation"], tensors["mask"],
    )  # fmt: skip
    out.backward(case["grad_output"])
    tol = _tol(out.dtype, 1e-4, 1e-9)
    torch.testing.assert_close(out, case["output"], **tol)
    for name in names:
        if tensors[name] is not None:
            torch.testing.assert_close(tensors[name].grad, case[f"grad_{name}"], **tol)
        else:
            assert case[f"grad_{name}"] is None
