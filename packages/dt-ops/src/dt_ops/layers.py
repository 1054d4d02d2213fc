"""``nn.Module`` wrappers with detectron2's constructor signatures (``detectron2.layers``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from dt_ops._checks import pair
from dt_ops.deform_conv import deform_conv2d
from dt_ops.roi_align import roi_align
from dt_ops.roi_pool import roi_pool
from dt_ops.rotated import roi_align_rotated

__all__ = ["DeformConv", "ModulatedDeformConv", "ROIAlign", "ROIAlignRotated", "ROIPool"]


def _size(name: str, value: int | Sequence[int]) -> tuple[int, int]:
    return pair(name, "output_size", value, minimum=1)


class ROIAlign(nn.Module):
    """ROIAlign over ``rois: Tensor[K, 5]`` (batch_index, x1, y1, x2, y2); see :func:`dt_ops.roi_align`.

    ``aligned=True`` (detectron2's default) samples at pixel centers; ``False`` is the legacy Mask R-CNN
    behaviour.
    """

    def __init__(
        self,
        output_size: int | Sequence[int],
        spatial_scale: float,
        sampling_ratio: int,
        aligned: bool = True,
    ) -> None:
        super().__init__()
        self.output_size = _size("ROIAlign", output_size)
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = int(sampling_ratio)
        self.aligned = bool(aligned)

    def forward(self, input: Tensor, rois: Tensor) -> Tensor:
        """``input: Tensor[B, C, H, W]``, ``rois: Tensor[K, 5]`` -> ``Tensor[K, C, *output_size]``."""
        if input.is_quantized:
            input = input.dequantize()
        rois = rois.to(dtype=input.dtype) if isinstance(rois, Tensor) else rois
        return roi_align(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}"
        )


class ROIPool(nn.Module):
    """Max ROI pooling over ``rois: Tensor[K, 5]``; see :func:`dt_ops.roi_pool`."""

    def __init__(self, output_size: int | Sequence[int], spatial_scale: float) -> None:
        super().__init__()
        self.output_size = _size("ROIPool", output_size)
        self.spatial_scale = float(spatial_scale)

    def forward(self, input: Tensor, rois: Tensor) -> Tensor:
        rois = rois.to(dtype=input.dtype) if isinstance(rois, Tensor) else rois
        return roi_pool(input, rois, self.output_size, self.spatial_scale)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"


class ROIAlignRotated(nn.Module):
    """ROIAlign over rotated ``rois: Tensor[K, 6]`` (batch_index, cx, cy, w, h, angle degrees);
    see :func:`dt_ops.roi_align_rotated`."""

    def __init__(self, output_size: int | Sequence[int], spatial_scale: float, sampling_ratio: int) -> None:
        super().__init__()
        self.output_size = _size("ROIAlignRotated", output_size)
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = int(sampling_ratio)

    def forward(self, input: Tensor, rois: Tensor) -> Tensor:
        rois = rois.to(dtype=input.dtype)
        return roi_align_rotated(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio)

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}"
        )


class _DeformConvBase(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int],
        padding: int | Sequence[int],
        dilation: int | Sequence[int],
        groups: int,
        deformable_groups: int,
        bias: bool,
        norm: nn.Module | None,
        activation: Callable[[Tensor], Tensor] | None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if in_channels % groups != 0 or out_channels % groups != 0:
            raise ValueError(
                f"{name}: in_channels ({in_channels}) and out_channels ({out_channels}) must be divisible "
                f"by groups ({groups})"
            )
        if in_channels % deformable_groups != 0:
            raise ValueError(
                f"{name}: in_channels ({in_channels}) must be divisible by "
                f"deformable_groups ({deformable_groups})"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = pair(name, "kernel_size", kernel_size, minimum=1)
        self.stride = pair(name, "stride", stride, minimum=1)
        self.padding = pair(name, "padding", padding, minimum=0)
        self.dilation = pair(name, "dilation", dilation, minimum=1)
        self.groups = groups
        self.deformable_groups = deformable_groups
        self.norm = norm
        self.activation = activation
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, nonlinearity="relu")
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def _forward(self, x: Tensor, offset: Tensor, mask: Tensor | None) -> Tensor:
        out = deform_conv2d(x, offset, self.weight, self.bias, self.stride, self.padding, self.dilation, mask)
        if self.norm is not None:
            out = self.norm(out)
        if self.activation is not None:
            out = self.activation(out)
        return out

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
            f"deformable_groups={self.deformable_groups}, bias={self.bias is not None}"
        )


class DeformConv(_DeformConvBase):
    """Deformable convolution v1 (detectron2's ``DeformConv``): ``forward(x, offset)`` with
    ``offset: Tensor[B, 2 * deformable_groups * kh * kw, Ho, Wo]``; ``norm`` and ``activation`` are
    applied to the output in that order."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        deformable_groups: int = 1,
        bias: bool = False,
        norm: nn.Module | None = None,
        activation: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
            deformable_groups, bias, norm, activation,
        )  # fmt: skip

    def forward(self, x: Tensor, offset: Tensor) -> Tensor:
        return self._forward(x, offset, None)


class ModulatedDeformConv(_DeformConvBase):
    """Modulated deformable convolution, DCNv2 (detectron2's ``ModulatedDeformConv``):
    ``forward(x, offset, mask)`` with ``mask: Tensor[B, deformable_groups * kh * kw, Ho, Wo]``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        deformable_groups: int = 1,
        bias: bool = True,
        norm: nn.Module | None = None,
        activation: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
            deformable_groups, bias, norm, activation,
        )  # fmt: skip

    def forward(self, x: Tensor, offset: Tensor, mask: Tensor) -> Tensor:
        return self._forward(x, offset, mask)
