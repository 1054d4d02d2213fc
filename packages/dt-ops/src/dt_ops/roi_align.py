"""ROIAlign (torchvision semantics) as the custom op ``torch.ops.dt.roi_align``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dt_ops import _native
from dt_ops._checks import autocast_float32, pair
from dt_ops._rois import check_pool_input, compute_dtype, rois_from_boxes

__all__ = ["roi_align"]


def _reads_channels_last(x: Tensor) -> bool:
    """Whether the kernels read ``x`` ``[B, C, H, W]`` in place as a C-contiguous ``[B, H, W, C]``: it is
    channels-last and not also NCHW-contiguous (as a map with C == 1 or H == W == 1 is)."""
    return not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def _grad_layout(channels_last: bool, device: torch.device) -> torch.memory_format:
    """The layout of the input gradient: the input's where a CPU kernel accumulates in it, else NCHW."""
    return torch.channels_last if channels_last and device.type == "cpu" else torch.contiguous_format


@torch.library.custom_op("dt::roi_align", mutates_args=())
def _roi_align_op(
    input: Tensor,
    rois: Tensor,
    spatial_scale: float,
    pooled_height: int,
    pooled_width: int,
    sampling_ratio: int,
    aligned: bool,
) -> Tensor:
    output = input.new_empty((rois.shape[0], input.shape[1], pooled_height, pooled_width))
    if output.numel() == 0:
        return output
    if input.device.type == "cpu" and _reads_channels_last(input):
        # read in place, a pixel's channels at a time (no NCHW copy of the map)
        _native.call(
            "roi_align_forward_nhwc", input.device, input.permute(0, 2, 3, 1), rois.contiguous(),
            spatial_scale, sampling_ratio, aligned, output,
        )  # fmt: skip
    else:
        _native.call(
            "roi_align_forward", input.device, input.contiguous(), rois.contiguous(),
            spatial_scale, sampling_ratio, aligned, output,
        )  # fmt: skip
    return output


@_roi_align_op.register_fake
def _(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned):
    torch._check(input.dim() == 4, lambda: "input must be [B, C, H, W]")
    torch._check(rois.dim() == 2 and rois.shape[1] == 5, lambda: "rois must be [K, 5]")
    return input.new_empty((rois.shape[0], input.shape[1], pooled_height, pooled_width))


@torch.library.custom_op("dt::roi_align_backward", mutates_args=())
def _roi_align_backward_op(
    grad: Tensor,
    rois: Tensor,
    spatial_scale: float,
    batch: int,
    channels: int,
    height: int,
    width: int,
    sampling_ratio: int,
    aligned: bool,
    channels_last: bool,
) -> Tensor:
    layout = _grad_layout(channels_last, grad.device)
    grad_input = grad.new_zeros((batch, channels, height, width)).contiguous(memory_format=layout)
    if grad.numel() == 0 or grad_input.numel() == 0:
        return grad_input
    if layout == torch.channels_last:  # accumulated in place in the input's layout
        _native.call(
            "roi_align_backward_nhwc", grad.device, grad.contiguous(), rois.contiguous(),
            spatial_scale, sampling_ratio, aligned, grad_input.permute(0, 2, 3, 1),
        )  # fmt: skip
    else:
        _native.call(
            "roi_align_backward", grad.device, grad.contiguous(), rois.contiguous(),
            spatial_scale, sampling_ratio, aligned, grad_input,
        )  # fmt: skip
    return grad_input


@_roi_align_backward_op.register_fake
def _(grad, rois, spatial_scale, batch, channels, height, width, sampling_ratio, aligned, channels_last):
    torch._check(grad.dim() == 4, lambda: "grad must be [K, C, PH, PW]")
    layout = _grad_layout(channels_last, grad.device)
    return grad.new_empty((batch, channels, height, width)).contiguous(memory_format=layout)


def _setup_context(ctx, inputs, output):
    input, rois, spatial_scale, _, _, sampling_ratio, aligned = inputs
    ctx.save_for_backward(rois)
    channels_last = _reads_channels_last(input)
    ctx.params = (spatial_scale, *input.shape, sampling_ratio, aligned, channels_last)


def _backward(ctx, grad):
    (rois,) = ctx.saved_tensors
    spatial_scale, batch, channels, height, width, sampling_ratio, aligned, channels_last = ctx.params
    grad_input = torch.ops.dt.roi_align_backward(
        grad, rois, spatial_scale, batch, channels, height, width, sampling_ratio, aligned, channels_last
    )
    return grad_input, None, None, None, None, None, None


_roi_align_op.register_autograd(_backward, setup_context=_setup_context)


def roi_align(
    input: Tensor,
    boxes: Tensor | list[Tensor],
    output_size: int | Sequence[int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """Bilinear ROI pooling (Mask R-CNN's ROIAlign), torchvision semantics.

    Args:
        input: ``Tensor[B, C, H, W]`` float32/float64 (float16/bfloat16 are computed in float32).
        boxes: ``Tensor[K, 5]`` rows (batch_index, x1, y1, x2, y2), or a list of ``Tensor[Ki, 4]``
            XYXY boxes, one per image. Coordinates are in input-image pixels.
        output_size: ``int`` or ``(height, width)`` of each pooled map.
        spatial_scale: factor from box coordinates to feature coordinates (e.g. 1/16).
        sampling_ratio: samples per bin along each axis; <= 0 means ``ceil(roi_size / output_size)``.
        aligned: shift coordinates by -0.5 (pixel-center convention, detectron2's ``aligned=True``).

    Returns:
        ``Tensor[K, C, output_h, output_w]``.
    """
    fn = "roi_align"
    output_dtype = input.dtype if isinstance(input, Tensor) else None
    input, boxes = autocast_float32(input, boxes)
    check_pool_input(fn, input)
    rois = rois_from_boxes(fn, input, boxes, 5)
    pooled_h, pooled_w = pair(fn, "output_size", output_size, minimum=1)
    if not isinstance(sampling_ratio, int) or isinstance(sampling_ratio, bool):
        raise TypeError(f"{fn}: sampling_ratio must be an int, got {type(sampling_ratio).__name__}")
    dtype = compute_dtype(input.dtype)
    output = torch.ops.dt.roi_align(
        input.to(dtype),
        rois.to(dtype),
        float(spatial_scale),
        pooled_h,
        pooled_w,
        sampling_ratio,
        bool(aligned),
    )
    return output.to(output_dtype)
