"""Rotated boxes (detectron2 semantics): pairwise IoU, NMS and ROIAlignRotated.

A rotated box is ``(cx, cy, w, h, angle)`` with the angle in degrees, counter-clockwise, as
detectron2's ``RotatedBoxes``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dt_ops import _native
from dt_ops._checks import (
    autocast_float32,
    check_float_tensor,
    check_idxs,
    check_nms_args,
    check_same_device,
    check_same_dtype,
    check_tensor,
    pair,
)
from dt_ops._nms_impl import nms_impl
from dt_ops._rois import check_pool_input, compute_dtype

__all__ = ["batched_nms_rotated", "box_iou_rotated", "nms_rotated", "roi_align_rotated"]


@torch.library.custom_op("dt::box_iou_rotated", mutates_args=())
def _box_iou_rotated_op(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    out = boxes1.new_empty((boxes1.shape[0], boxes2.shape[0]))
    if out.numel() > 0:
        _native.call("box_iou_rotated", boxes1.device, boxes1.contiguous(), boxes2.contiguous(), out)
    return out


@_box_iou_rotated_op.register_fake
def _(boxes1, boxes2):
    torch._check(boxes1.dim() == 2 and boxes1.shape[1] == 5, lambda: "boxes1 must be [N, 5]")
    torch._check(boxes2.dim() == 2 and boxes2.shape[1] == 5, lambda: "boxes2 must be [M, 5]")
    return boxes1.new_empty((boxes1.shape[0], boxes2.shape[0]))


@torch.library.custom_op("dt::nms_rotated", mutates_args=())
def _nms_rotated_op(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    return nms_impl("nms_rotated", boxes, scores, None, iou_threshold)


@torch.library.custom_op("dt::batched_nms_rotated", mutates_args=())
def _batched_nms_rotated_op(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    return nms_impl("nms_rotated", boxes, scores, idxs, iou_threshold)


def _dynamic_keep(boxes: Tensor) -> Tensor:
    n = boxes.shape[0]
    ctx = torch.library.get_ctx()
    count = ctx.new_dynamic_size(max=n) if isinstance(n, int) else ctx.new_dynamic_size()
    return boxes.new_empty((count,), dtype=torch.int64)


@_nms_rotated_op.register_fake
def _(boxes, scores, iou_threshold):
    torch._check(boxes.dim() == 2 and boxes.shape[1] == 5, lambda: "boxes must be [N, 5]")
    return _dynamic_keep(boxes)


@_batched_nms_rotated_op.register_fake
def _(boxes, scores, idxs, iou_threshold):
    torch._check(boxes.dim() == 2 and boxes.shape[1] == 5, lambda: "boxes must be [N, 5]")
    return _dynamic_keep(boxes)


@torch.library.custom_op("dt::roi_align_rotated", mutates_args=())
def _roi_align_rotated_op(
    input: Tensor,
    rois: Tensor,
    spatial_scale: float,
    pooled_height: int,
    pooled_width: int,
    sampling_ratio: int,
) -> Tensor:
    output = input.new_empty((rois.shape[0], input.shape[1], pooled_height, pooled_width))
    if output.numel() > 0:
        _native.call(
            "roi_align_rotated_forward", input.device, input.contiguous(), rois.contiguous(),
            spatial_scale, sampling_ratio, output,
        )  # fmt: skip
    return output


@_roi_align_rotated_op.register_fake
def _(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio):
    torch._check(input.dim() == 4, lambda: "input must be [B, C, H, W]")
    torch._check(rois.dim() == 2 and rois.shape[1] == 6, lambda: "rois must be [K, 6]")
    return input.new_empty((rois.shape[0], input.shape[1], pooled_height, pooled_width))


@torch.library.custom_op("dt::roi_align_rotated_backward", mutates_args=())
def _roi_align_rotated_backward_op(
    grad: Tensor, rois: Tensor, spatial_scale: float, batch: int, channels: int, height: int, width: int,
    sampling_ratio: int,
) -> Tensor:  # fmt: skip
    grad_input = grad.new_zeros((batch, channels, height, width))
    if grad.numel() > 0 and grad_input.numel() > 0:
        _native.call(
            "roi_align_rotated_backward", grad.device, grad.contiguous(), rois.contiguous(),
            spatial_scale, sampling_ratio, grad_input,
        )  # fmt: skip
    return grad_input


@_roi_align_rotated_backward_op.register_fake
def _(grad, rois, spatial_scale, batch, channels, height, width, sampling_ratio):
    torch._check(grad.dim() == 4, lambda: "grad must be [K, C, PH, PW]")
    return grad.new_empty((batch, channels, height, width))


def _setup_context(ctx, inputs, output):
    input, rois, spatial_scale, _, _, sampling_ratio = inputs
    ctx.save_for_backward(rois)
    ctx.params = (spatial_scale, *input.shape, sampling_ratio)


def _backward(ctx, grad):
    (rois,) = ctx.saved_tensors
    grad_input = torch.ops.dt.roi_align_rotated_backward(grad, rois, *ctx.params)
    return grad_input, None, None, None, None, None


_roi_align_rotated_op.register_autograd(_backward, setup_context=_setup_context)


def box_iou_rotated(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise IoU of rotated boxes ``Tensor[N, 5]`` x ``Tensor[M, 5]`` -> ``Tensor[N, M]``.

    Boxes with area < 1e-14 have IoU 0 with everything. Not differentiable.
    """
    fn = "box_iou_rotated"
    boxes1, boxes2 = autocast_float32(boxes1, boxes2)
    check_float_tensor(fn, "boxes1", boxes1, ndim=2, last=5)
    check_float_tensor(fn, "boxes2", boxes2, ndim=2, last=5)
    check_same_dtype(fn, boxes1=boxes1, boxes2=boxes2)
    check_same_device(fn, boxes1=boxes1, boxes2=boxes2)
    return torch.ops.dt.box_iou_rotated(boxes1, boxes2)


def nms_rotated(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS of rotated boxes ``Tensor[N, 5]``: a box is discarded when its IoU with a
    higher-scored kept box is >= iou_threshold (detectron2). Returns int64 ``Tensor[K]`` indices in
    decreasing score order."""
    boxes, scores = autocast_float32(boxes, scores)
    threshold = check_nms_args("nms_rotated", boxes, scores, iou_threshold, 5)
    return torch.ops.dt.nms_rotated(boxes, scores, threshold)


def batched_nms_rotated(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """Rotated NMS independently per category ``idxs`` (integer ``Tensor[N]``); indices in decreasing
    score order."""
    fn = "batched_nms_rotated"
    boxes, scores = autocast_float32(boxes, scores)
    threshold = check_nms_args(fn, boxes, scores, iou_threshold, 5)
    idxs = check_idxs(fn, boxes, idxs)
    return torch.ops.dt.batched_nms_rotated(boxes, scores, idxs, threshold)


def roi_align_rotated(
    input: Tensor,
    rois: Tensor,
    output_size: int | Sequence[int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
) -> Tensor:
    """ROIAlign over rotated boxes, detectron2's ``ROIAlignRotated`` (always half-pixel aligned).

    Args:
        input: ``Tensor[B, C, H, W]``.
        rois: ``Tensor[K, 6]`` rows (batch_index, cx, cy, w, h, angle degrees counter-clockwise).
        output_size: ``int`` or ``(height, width)``.
        spatial_scale: factor from box coordinates to feature coordinates.
        sampling_ratio: samples per bin along each axis; <= 0 means adaptive.

    Returns:
        ``Tensor[K, C, output_h, output_w]``.
    """
    fn = "roi_align_rotated"
    output_dtype = input.dtype if isinstance(input, Tensor) else None
    input, rois = autocast_float32(input, rois)
    check_pool_input(fn, input)
    check_tensor(fn, "rois", rois, ndim=2, last=6, dtypes=(input.dtype,))
    check_same_device(fn, input=input, rois=rois)
    pooled_h, pooled_w = pair(fn, "output_size", output_size, minimum=1)
    if not isinstance(sampling_ratio, int) or isinstance(sampling_ratio, bool):
        raise TypeError(f"{fn}: sampling_ratio must be an int, got {type(sampling_ratio).__name__}")
    dtype = compute_dtype(input.dtype)
    output = torch.ops.dt.roi_align_rotated(
        input.to(dtype), rois.to(dtype), float(spatial_scale), pooled_h, pooled_w, sampling_ratio
    )
    return output.to(output_dtype)
