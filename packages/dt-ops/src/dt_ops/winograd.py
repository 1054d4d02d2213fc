"""3x3 convolutions (stride 1, padding 1) on CPU by Winograd's minimal filtering F(4x4, 3x3).

A 4x4 output tile costs 36 multiply-adds per input/output channel pair instead of 144, so where
:func:`winograd_is_faster` says so these convolutions take 0.4-0.7x the time of oneDNN's direct ones,
on AVX-512 and AVX2 CPUs alike (``python benchmarks/conv3x3.py``). Results differ from a direct
convolution by about 1e-5 of the output's magnitude (the transforms' rounding); inference only: there
is no backward.

Use :func:`winograd_weight` once per filter and :func:`conv3x3_winograd` per call::

    packed = winograd_weight(conv.weight)                 # [36, ceil(K / 16), C, 16]
    y = conv3x3_winograd(x, packed, conv.bias, relu=True)  # == relu(conv(x)), channels-last
"""

from __future__ import annotations

import torch

from dt_ops._native import _C

__all__ = ["conv3x3_winograd", "winograd_available", "winograd_is_faster", "winograd_weight"]

_LANES = 16  # output channels per packed panel (the kernel's vector width)
# G of F(4x4, 3x3): the filter transform U = G g G^T (its Kronecker square is rounded to float32 once)
_G = torch.tensor(
    [
        [1 / 4, 0, 0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0, 0, 1],
    ],
    dtype=torch.float64,
)
_ISA_OF_CAPABILITY = {"AVX512": 2, "AVX2": 1}


def _isa() -> int:
    """The kernel's instruction set: the best this CPU has, capped by torch's own CPU capability (so
    ``ATEN_CPU_CAPABILITY=avx2`` restricts these kernels too)."""
    return _C.winograd_isa(_ISA_OF_CAPABILITY.get(torch.backends.cpu.get_cpu_capability(), 0))


def winograd_available(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether :func:`conv3x3_winograd` runs this input and ``[K, C, 3, 3]`` filter: float32 CPU tensors
    of matching channels, outside autograd and outside tracing/compilation (the kernel is opaque)."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and x.dim() == 4
        and weight.shape[1:] == (x.shape[1], 3, 3)
        and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
        and not torch.jit.is_tracing()
        and not torch.compiler.is_compiling()
    )


def winograd_is_faster(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether :func:`conv3x3_winograd` beats torch's direct convolution for this ``[N, C, H, W]``
    input: from 64 input channels and 4096 tiles x channels. Below, the filter transform is read for
    too few tiles (measured on AVX-512 and restricted to AVX2, 16-512 channels, 6x9 to 96x144 maps:
    0.4-1.0x there, 1.05-2.6x above)."""
    tiles = x.shape[0] * -(-x.shape[2] // 4) * -(-x.shape[3] // 4)
    return weight.shape[1] >= 64 and tiles * weight.shape[1] >= 4096


def winograd_weight(weight: torch.Tensor) -> torch.Tensor:
    """``Tensor[K, C, 3, 3]`` filter -> its transform ``G g G^T`` packed as ``Tensor[36, ceil(K / 16),
    C, 16]`` float32 (output channels in panels of 16, zero-padded). One ``[36, 9] x [9, C*K]`` matrix
    product between two copies: 4 ms for 256x256 channels, 28 ms for 512x512 (2 threads)."""
    if weight.dim() != 4 or weight.shape[2:] != (3, 3):
        raise ValueError(f"winograd_weight: expected a [K, C, 3, 3] filter, got {tuple(weight.shape)}")
    out_channels, in_channels = weight.shape[:2]
    panels = -(-out_channels // _LANES)
    transform = torch.kron(_G, _G).to(device=weight.device, dtype=torch.float32)  # [36, 9]
    taps = weight.detach().float().new_zeros((9, in_channels, panels * _LANES))  # [9, C, K padded]
    taps[:, :, :out_channels].copy_(weight.detach().reshape(out_channels, in_channels, 9).permute(2, 1, 0))
    transformed = (transform @ taps.view(9, -1)).view(36, in_channels, panels, _LANES)
    return transformed.permute(0, 2, 1, 3).contiguous()


def conv3x3_winograd(
    x: torch.Tensor,
    packed: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    out_channels: int | None = None,
    relu: bool = False,
) -> torch.Tensor:
    """``conv2d(x, weight, bias, padding=1)`` (then ReLU if ``relu``) for ``x`` ``Tensor[N, C, H, W]``
    float32 on CPU and ``packed = winograd_weight(weight)``; ``out_channels`` defaults to ``bias``'s
    size, else to the packed panels' 16 per panel. Returns ``Tensor[N, K, H, W]`` in channels-last
    memory format (``x`` is read in it, converted if needed)."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.dim() != 4:
        raise ValueError(
            f"conv3x3_winograd: x must be a 4-d float32 CPU tensor, got {x.dtype} {x.device} "
            f"of shape {tuple(x.shape)}"
        )
    if (
        packed.dim() != 4
        or packed.shape[0] != 36
        or packed.shape[2] != x.shape[1]
        or packed.shape[3] != _LANES
    ):
        raise ValueError(
            f"conv3x3_winograd: packed weight {tuple(packed.shape)} does not fit an input of "
            f"{x.shape[1]} channels (make it with winograd_weight)"
        )
    if out_channels is None:
        out_channels = bias.numel() if bias is not None else packed.shape[1] * _LANES
    if -(-out_channels // _LANES) != packed.shape[1] or (bias is not None and bias.numel() != out_channels):
        bias_shape = None if bias is None else tuple(bias.shape)
        raise ValueError(
            f"conv3x3_winograd: {out_channels} output channels do not fit the packed weight "
            f"{tuple(packed.shape)} and bias {bias_shape}"
        )
    n, _, h, w = x.shape
    nhwc = x.permute(0, 2, 3, 1).contiguous().detach()
    out = torch.empty((n, out_channels, h, w), memory_format=torch.channels_last)
    bias = None if bias is None else bias.detach().float().contiguous()
    nhwc_out = out.permute(0, 2, 3, 1)
    _C.conv3x3_winograd(
        nhwc, packed.detach().contiguous(), bias, relu, nhwc_out, _isa(), torch.get_num_threads()
    )
    return out
