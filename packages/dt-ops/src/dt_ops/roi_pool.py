"""ROIPool (torchvision semantics: max over integer-rounded bins) as ``torch.ops.dt.roi_pool``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dt_ops import _native
from dt_ops._checks import autocast_float32, pair
from dt_ops._rois import check_pool_input, compute_dtype, rois_from_boxes

__all__ = ["roi_pool"]


@torch.library.custom_op("dt::roi_pool", mutates_args=())
def _roi_pool_op(
    input: Tensor, rois: Tensor, spatial_scale: float, pooled_height: int, pooled_width: int
) -> tuple[Tensor, Tensor]:
    shape = (rois.shape[0], input.shape[1], pooled_height, pooled_width)
    output = input.new_empty(shape)
    argmax = torch.empty(shape, dtype=torch.int64, device=input.device)
    if output.numel() > 0:
        _native.call(
            "roi_pool_forward",
            input.device,
            input.contiguous(),
            rois.contiguous(),
            spatial_scale,
            output,
            argmax,
        )
    return output, argmax


@_roi_pool_op.register_fake
def _(input, rois, spatial_scale, pooled_height, pooled_width):
    torch._check(input.dim() == 4, lambda: "input must be [B, C, H, W]")
    torch._check(rois.dim() == 2 and rois.shape[1] == 5, lambda: "rois must be [K, 5]")
    shape = (rois.shape[0], input.shape[1], pooled_height, pooled_width)
    return input.new_empty(shape), input.new_empty(shape, dtype=torch.int64)


@torch.library.custom_op("dt::roi_pool_backward", mutates_args=())
def _roi_pool_backward_op(
    grad: Tensor, argmax: Tensor, rois: Tensor, batch: int, channels: int, height: int, width: int
) -> Tensor:
    grad_input = grad.new_zeros((batch, channels, height, width))
    if grad.numel() > 0 and grad_input.numel() > 0:
        _native.call(
            "roi_pool_backward",
            grad.device,
            grad.contiguous(),
            argmax.contiguous(),
            rois.contiguous(),
            grad_input,
        )
    return grad_input


@_roi_pool_backward_op.register_fake
def _(grad, argmax, rois, batch, channels, height, width):
    torch._check(grad.shape == argmax.shape, lambda: "grad and argmax must have the same shape")
    return grad.new_empty((batch, channels, height, width))


def _setup_context(ctx, inputs, output):
    input, rois = inputs[0], inputs[1]
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(rois, output[1])
    ctx.input_shape = tuple(input.shape)


def _backward(ctx, grad, _grad_argmax):
    rois, argmax = ctx.saved_tensors
    return torch.ops.dt.roi_pool_backward(grad, argmax, rois, *ctx.input_shape), None, None, None, None


_roi_pool_op.register_autograd(_backward, setup_context=_setup_context)


def roi_pool(
    input: Tensor,
    boxes: Tensor | list[Tensor],
    output_size: int | Sequence[int],
    spatial_scale: float = 1.0,
) -> Tensor:
    """Max ROI pooling (Fast R-CNN's ROIPool), torchvision semantics.

    Args:
        input: ``Tensor[B, C, H, W]``.
        boxes: ``Tensor[K, 5]`` rows (batch_index, x1, y1, x2, y2) or a list of per-image ``Tensor[Ki, 4]``.
        output_size: ``int`` or ``(height, width)``.
        spatial_scale: factor from box coordinates to feature coordinates.

    Returns:
        ``Tensor[K, C, output_h, output_w]``; empty bins are 0.
    """
    fn = "roi_pool"
    output_dtype = input.dtype if isinstance(input, Tensor) else None
    input, boxes = autocast_float32(input, boxes)
    check_pool_input(fn, input)
    rois = rois_from_boxes(fn, input, boxes, 5)
    pooled_h, pooled_w = pair(fn, "output_size", output_size, minimum=1)
    dtype = compute_dtype(input.dtype)
    output, _ = torch.ops.dt.roi_pool(
        input.to(dtype), rois.to(dtype), float(spatial_scale), pooled_h, pooled_w
    )
    return output.to(output_dtype)
