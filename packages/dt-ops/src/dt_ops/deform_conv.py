"""Deformable convolution v1/v2 (torchvision semantics) as ``torch.ops.dt.deform_conv2d``.

The native kernels gather the bilinearly sampled columns (deformable im2col) and scatter their
gradients back; the products with the weight are torch matmuls.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dt_ops import _native
from dt_ops._checks import autocast_float32, check_same_device, check_same_dtype, check_tensor, pair
from dt_ops._rois import INPUT_DTYPES, compute_dtype

__all__ = ["deform_conv2d"]


def _out_size(size: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    return (size + 2 * pad - (dilation * (kernel - 1) + 1)) // stride + 1


def _geometry(weight: Tensor, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w) -> tuple:
    kernel_h, kernel_w = weight.shape[2], weight.shape[3]
    return (kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w)


def _im2col(input: Tensor, offset: Tensor, mask: Tensor | None, geometry: tuple) -> Tensor:
    """Deformable columns ``Tensor[B, C * kh * kw, Ho * Wo]``."""
    b, c = input.shape[:2]
    columns = input.new_empty((b, c * geometry[0] * geometry[1], offset.shape[2] * offset.shape[3]))
    if columns.numel() > 0:
        _native.call("deform_im2col", input.device, input, offset, mask, *geometry, columns)
    return columns


def _grouped(weight: Tensor, groups: int) -> Tensor:
    """Weight as ``Tensor[groups, Cout / groups, Cin / groups * kh * kw]``."""
    return weight.reshape(groups, weight.shape[0] // groups, -1)


def _image(t: Tensor | None, b: int) -> Tensor | None:
    """Image b of a batched tensor, keeping the batch dim (a contiguous view)."""
    return t[b : b + 1] if t is not None else None


# Images are processed one at a time: the columns of one image are reused from the allocator's cache
# and stay closer to the CPU caches between the sampling kernel and the matmul.


@torch.library.custom_op("dt::deform_conv2d", mutates_args=())
def _deform_conv2d_op(
    input: Tensor, weight: Tensor, offset: Tensor, mask: Tensor | None, bias: Tensor | None,
    stride_h: int, stride_w: int, pad_h: int, pad_w: int, dilation_h: int, dilation_w: int,
) -> Tensor:  # fmt: skip
    input, weight, offset = input.contiguous(), weight.contiguous(), offset.contiguous()
    mask = mask.contiguous() if mask is not None else None
    geometry = _geometry(weight, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w)
    c_out, groups = weight.shape[0], input.shape[1] // weight.shape[1]
    out_h, out_w = offset.shape[2], offset.shape[3]
    output = input.new_empty((input.shape[0], c_out, out_h, out_w))
    weight_g = _grouped(weight, groups)  # [G, Cout / G, Cin / G * K]
    for b in range(input.shape[0]):
        columns = _im2col(_image(input, b), _image(offset, b), _image(mask, b), geometry)
        columns = columns.view(groups, weight_g.shape[2], out_h * out_w)
        torch.bmm(weight_g, columns, out=output[b].view(groups, c_out // groups, out_h * out_w))
    if bias is not None:
        output += bias.view(1, -1, 1, 1)
    return output


@_deform_conv2d_op.register_fake
def _(input, weight, offset, mask, bias, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w):
    torch._check(input.dim() == 4 and weight.dim() == 4 and offset.dim() == 4, lambda: "expected 4-D tensors")
    return input.new_empty((input.shape[0], weight.shape[0], offset.shape[2], offset.shape[3]))


@torch.library.custom_op("dt::deform_conv2d_backward", mutates_args=())
def _deform_conv2d_backward_op(
    grad: Tensor, input: Tensor, weight: Tensor, offset: Tensor, mask: Tensor | None,
    stride_h: int, stride_w: int, pad_h: int, pad_w: int, dilation_h: int, dilation_w: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """Gradients (input, offset, weight, bias, mask); grad of mask is ``Tensor[0]`` when mask is None."""
    grad, input, weight, offset = (t.contiguous() for t in (grad, input, weight, offset))
    mask = mask.contiguous() if mask is not None else None
    geometry = _geometry(weight, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w)
    groups = input.shape[1] // weight.shape[1]
    length = offset.shape[2] * offset.shape[3]
    weight_g = _grouped(weight, groups)  # [G, Cout / G, Cin / G * K]
    grad_input = torch.zeros_like(input)
    grad_offset = torch.zeros_like(offset)
    grad_mask = torch.zeros_like(mask) if mask is not None else input.new_empty(0)
    grad_weight = torch.zeros_like(weight_g)
    for b in range(input.shape[0]):
        grad_b = grad[b].view(groups, weight_g.shape[1], length)  # [G, Cout / G, L]
        grad_columns = torch.bmm(weight_g.transpose(1, 2), grad_b)  # [G, Cin / G * K, L]
        grad_columns = grad_columns.view(1, groups * weight_g.shape[2], length)
        input_b, offset_b, mask_b = _image(input, b), _image(offset, b), _image(mask, b)
        if grad_columns.numel() > 0:
            grad_input_b = grad_input[b : b + 1]
            _native.call(
                "deform_col2im", input.device, grad_columns, offset_b, mask_b, *geometry, grad_input_b
            )
            _native.call(
                "deform_col2im_coord", input.device, grad_columns, input_b, offset_b, mask_b, *geometry,
                grad_offset[b : b + 1], _image(grad_mask, b) if mask is not None else None,
            )  # fmt: skip
        columns = _im2col(input_b, offset_b, mask_b, geometry).view(groups, weight_g.shape[2], length)
        grad_weight.baddbmm_(grad_b, columns.transpose(1, 2))
    grad_bias = grad.sum(dim=(0, 2, 3))
    return grad_input, grad_offset, grad_weight.view_as(weight), grad_bias, grad_mask


@_deform_conv2d_backward_op.register_fake
def _(grad, input, weight, offset, mask, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w):
    grad_mask = torch.empty_like(mask) if mask is not None else input.new_empty(0)
    return (
        torch.empty_like(input),
        torch.empty_like(offset),
        torch.empty_like(weight),
        weight.new_empty(weight.shape[0]),
        grad_mask,
    )


def _setup_context(ctx, inputs, output):
    input, weight, offset, mask, bias, *params = inputs
    ctx.save_for_backward(input, weight, offset, mask)
    ctx.has_bias = bias is not None
    ctx.params = params


def _backward(ctx, grad):
    input, weight, offset, mask = ctx.saved_tensors
    grads = torch.ops.dt.deform_conv2d_backward(grad, input, weight, offset, mask, *ctx.params)
    grad_input, grad_offset, grad_weight, grad_bias, grad_mask = grads
    return (
        grad_input,
        grad_weight,
        grad_offset,
        grad_mask if mask is not None else None,
        grad_bias if ctx.has_bias else None,
        *([None] * 6),
    )


_deform_conv2d_op.register_autograd(_backward, setup_context=_setup_context)


def _check_shapes(input, offset, weight, bias, mask, stride, padding, dilation) -> None:
    fn = "deform_conv2d"
    b, c, h, w = input.shape
    c_out, c_per_group, kh, kw = weight.shape
    if c_per_group == 0 or c % c_per_group != 0:
        raise ValueError(f"{fn}: input channels ({c}) must be a multiple of weight.shape[1] ({c_per_group})")
    groups = c // c_per_group
    if c_out % groups != 0:
        raise ValueError(f"{fn}: weight.shape[0] ({c_out}) must be divisible by groups ({groups})")
    out_h = _out_size(h, kh, stride[0], padding[0], dilation[0])
    out_w = _out_size(w, kw, stride[1], padding[1], dilation[1])
    if out_h <= 0 or out_w <= 0:
        raise ValueError(
            f"{fn}: the output would be empty ({out_h}x{out_w}) for input {h}x{w} and kernel {kh}x{kw}"
        )
    k = kh * kw
    if offset.shape[1] == 0 or offset.shape[1] % (2 * k) != 0:
        raise ValueError(
            f"{fn}: offset.shape[1] must be a positive multiple of 2 * kh * kw = {2 * k}, "
            f"got {offset.shape[1]}"
        )
    offset_groups = offset.shape[1] // (2 * k)
    if c % offset_groups != 0:
        raise ValueError(f"{fn}: input channels ({c}) must be divisible by offset groups ({offset_groups})")
    if tuple(offset.shape) != (b, offset.shape[1], out_h, out_w):
        raise ValueError(
            f"{fn}: offset must have shape [{b}, {offset.shape[1]}, {out_h}, {out_w}], "
            f"got {tuple(offset.shape)}"
        )
    if mask is not None and tuple(mask.shape) != (b, offset_groups * k, out_h, out_w):
        expected = [b, offset_groups * k, out_h, out_w]
        raise ValueError(f"{fn}: mask must have shape {expected}, got {tuple(mask.shape)}")
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ValueError(f"{fn}: bias must have shape [{c_out}], got {tuple(bias.shape)}")


def deform_conv2d(
    input: Tensor,
    offset: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | Sequence[int] = (1, 1),
    padding: int | Sequence[int] = (0, 0),
    dilation: int | Sequence[int] = (1, 1),
    mask: Tensor | None = None,
) -> Tensor:
    """Deformable convolution: DCNv1, or DCNv2 (modulated) when ``mask`` is given (torchvision semantics).

    Args:
        input: ``Tensor[B, Cin, H, W]``.
        offset: ``Tensor[B, 2 * offset_groups * kh * kw, Ho, Wo]``: (dy, dx) per kernel tap, per offset group.
        weight: ``Tensor[Cout, Cin / groups, kh, kw]`` (groups inferred from the shapes).
        bias: ``Tensor[Cout]`` or None.
        stride, padding, dilation: ints or (h, w) pairs.
        mask: ``Tensor[B, offset_groups * kh * kw, Ho, Wo]`` modulation, or None.

    Returns:
        ``Tensor[B, Cout, Ho, Wo]``.
    """
    fn = "deform_conv2d"
    output_dtype = input.dtype if isinstance(input, Tensor) else None
    input, offset, weight, bias, mask = autocast_float32(input, offset, weight, bias, mask)
    check_tensor(fn, "input", input, ndim=4, dtypes=INPUT_DTYPES)
    check_tensor(fn, "offset", offset, ndim=4, dtypes=INPUT_DTYPES)
    check_tensor(fn, "weight", weight, ndim=4, dtypes=INPUT_DTYPES)
    if bias is not None:
        check_tensor(fn, "bias", bias, ndim=1, dtypes=INPUT_DTYPES)
    if mask is not None:
        check_tensor(fn, "mask", mask, ndim=4, dtypes=INPUT_DTYPES)
    check_same_device(fn, input=input, offset=offset, weight=weight, bias=bias, mask=mask)
    check_same_dtype(fn, input=input, offset=offset, weight=weight, bias=bias, mask=mask)
    stride_hw = pair(fn, "stride", stride, minimum=1)
    padding_hw = pair(fn, "padding", padding, minimum=0)
    dilation_hw = pair(fn, "dilation", dilation, minimum=1)
    _check_shapes(input, offset, weight, bias, mask, stride_hw, padding_hw, dilation_hw)
    dtype = compute_dtype(input.dtype)

    def cast(t: Tensor | None) -> Tensor | None:
        return t.to(dtype) if t is not None else None

    output = torch.ops.dt.deform_conv2d(
        cast(input), cast(weight), cast(offset), cast(mask), cast(bias), *stride_hw, *padding_hw, *dilation_hw
    )
    return output.to(output_dtype)
