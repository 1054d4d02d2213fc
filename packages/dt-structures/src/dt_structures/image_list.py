"""``ImageList``: images of different sizes padded into one batch tensor."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.nn import functional as F

__all__ = ["ImageList"]

_PADDING_CONSTRAINT_KEYS = ("size_divisibility", "square_size")


def _scalar_max(a: Any, b: Any) -> Any:
    """max of two sizes that are ints, SymInts (torch.export) or 0-dim tensors (torch.jit.trace)."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return torch.maximum(a, b)
    return torch.sym_max(a, b)


class ImageList:
    """A batch of images of possibly different sizes, padded to one tensor.

    Attributes:
        tensor: ``Tensor[N, ..., H, W]``, the padded batch.
        image_sizes: ``list[tuple[int, int]]``, the (h, w) of each image before padding. Under
            ``torch.jit.trace`` the sizes are 0-dim tensors, so the trace follows the input sizes.
    """

    def __init__(self, tensor: torch.Tensor, image_sizes: list[tuple[int, int]]):
        if not isinstance(tensor, torch.Tensor) or tensor.dim() < 3:
            raise ValueError("tensor must be a Tensor[N, ..., H, W] with at least 3 dimensions")
        if not torch.jit.is_tracing() and len(image_sizes) != tensor.shape[0]:
            raise ValueError(
                f"image_sizes has {len(image_sizes)} entries but tensor holds {tensor.shape[0]} images"
            )
        self.tensor = tensor
        self.image_sizes = image_sizes

    def __len__(self) -> int:
        return len(self.image_sizes)

    def __getitem__(self, idx: int) -> torch.Tensor:
        """Image ``idx`` without its padding: ``Tensor[..., h, w]``."""
        h, w = self.image_sizes[idx]
        return self.tensor[idx, ..., :h, :w]

    def to(self, *args: Any, **kwargs: Any) -> ImageList:
        """The batch moved/cast with ``Tensor.to(*args, **kwargs)``."""
        return ImageList(self.tensor.to(*args, **kwargs), self.image_sizes)

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def __repr__(self) -> str:
        return f"ImageList(tensor={tuple(self.tensor.shape)}, image_sizes={self.image_sizes})"

    @staticmethod
    def from_tensors(
        tensors: Sequence[torch.Tensor],
        size_divisibility: int = 0,
        pad_value: float = 0.0,
        padding_constraints: Mapping[str, int] | None = None,
    ) -> ImageList:
        """Pad images to a common size and stack them.

        Args:
            tensors: images ``Tensor[..., Hi, Wi]``; all dimensions but the last two must agree.
            size_divisibility: if > 1, the padded height and width are rounded up to a multiple of it
                (many backbones need 32).
            pad_value: value of the padding.
            padding_constraints: optional ``{"square_size": int, "size_divisibility": int}``;
                ``square_size > 0`` pads to a square of that side (it must be at least every image's
                height and width), and ``size_divisibility`` here overrides the argument.

        Returns:
            ``ImageList`` with ``tensor`` of shape ``[N, ..., H, W]``, contiguous.
        """
        if not isinstance(tensors, (list, tuple)) or len(tensors) == 0:
            raise ValueError("tensors must be a non-empty list or tuple of image tensors")
        for i, t in enumerate(tensors):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"tensors[{i}] must be a Tensor, got {type(t).__name__}")
            if t.dim() < 2:
                raise ValueError(f"tensors[{i}] must have shape [..., H, W], got {tuple(t.shape)}")
            if not torch.jit.is_tracing() and t.shape[:-2] != tensors[0].shape[:-2]:
                raise ValueError(
                    f"tensors[{i}] has leading shape {tuple(t.shape[:-2])}, "
                    f"expected {tuple(tensors[0].shape[:-2])} like tensors[0]"
                )
        square_size = 0
        if padding_constraints is not None:
            unknown = set(padding_constraints) - set(_PADDING_CONSTRAINT_KEYS)
            if unknown:
                raise ValueError(
                    f"padding_constraints has unknown keys {sorted(unknown)}; "
                    f"allowed: {list(_PADDING_CONSTRAINT_KEYS)}"
                )
            square_size = int(padding_constraints.get("square_size", 0))
            size_divisibility = padding_constraints.get("size_divisibility", size_divisibility)
        if (
            isinstance(size_divisibility, bool)
            or not isinstance(size_divisibility, int)
            or size_divisibility < 0
        ):
            raise ValueError(f"size_divisibility must be an int >= 0, got {size_divisibility!r}")

        # under jit.trace, sizes are 0-dim tensors so that the trace generalizes to other sizes
        image_sizes = [(im.shape[-2], im.shape[-1]) for im in tensors]
        max_h, max_w = image_sizes[0]
        for h, w in image_sizes[1:]:
            max_h, max_w = _scalar_max(max_h, h), _scalar_max(max_w, w)
        if square_size > 0:
            if not torch.jit.is_tracing() and (max_h > square_size or max_w > square_size):
                raise ValueError(
                    f"padding_constraints['square_size']={square_size} is smaller than the largest "
                    f"image ({max_h}x{max_w})"
                )
            max_h = max_w = square_size
        if size_divisibility > 1:
            stride = size_divisibility
            max_h = (max_h + (stride - 1)) // stride * stride
            max_w = (max_w + (stride - 1)) // stride * stride

        if len(tensors) == 1:
            h, w = image_sizes[0]
            batched = F.pad(tensors[0], [0, max_w - w, 0, max_h - h], value=pad_value).unsqueeze(0)
        else:
            batch_shape = [len(tensors), *tensors[0].shape[:-2], max_h, max_w]
            batched = tensors[0].new_full(batch_shape, pad_value)
            for i, img in enumerate(tensors):
                batched[i, ..., : img.shape[-2], : img.shape[-1]].copy_(img)
        return ImageList(batched.contiguous(), image_sizes)
