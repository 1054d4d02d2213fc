"""Pasting fixed-size ROI masks (e.g. 28x28) into full-image masks.

Same numerics as detectron2's ``detectron2/layers/mask_ops.py`` (``paste_masks_in_image``): each
image pixel center is mapped into the box's mask and sampled bilinearly with ``grid_sample``
(zero outside the mask). On CPU masks are pasted one at a time, only over the region around
their box (from one pixel outside the box on each side); on other devices they are pasted in
chunks over the whole image, each chunk kept under ``GPU_MEM_LIMIT`` bytes. Under
``torch.export`` and ``torch.jit.trace`` all masks are pasted over the whole image at once.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from ._utils import check_size_pair, is_graph_capture
from .boxes import Boxes

__all__ = ["BYTES_PER_FLOAT", "GPU_MEM_LIMIT", "paste_masks_in_image"]

BYTES_PER_FLOAT = 4
GPU_MEM_LIMIT = 1024**3  # bytes of float masks pasted at once on a GPU


def _do_paste_mask(
    masks: torch.Tensor, boxes: torch.Tensor, img_h: int, img_w: int, skip_empty: bool
) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """Sample ``masks`` ``[N, 1, M, M]`` at the pixel centers of the image, placed by ``boxes`` ``[N, 4]``.

    Returns the pasted soft masks ``[N, h, w]`` and the (rows, cols) slices of the image they
    cover: the whole image, or with ``skip_empty`` only the region around the boxes.
    """
    device = masks.device
    if skip_empty:
        x0_int, y0_int = torch.clamp(boxes.min(dim=0).values.floor()[:2] - 1, min=0).to(dtype=torch.int32)
        x1_int = torch.clamp(boxes[:, 2].max().ceil() + 1, max=img_w).to(dtype=torch.int32)
        y1_int = torch.clamp(boxes[:, 3].max().ceil() + 1, max=img_h).to(dtype=torch.int32)
        # boxes entirely outside the image give an empty region (detectron2 fails on them)
        x1_int = torch.maximum(x1_int, x0_int)
        y1_int = torch.maximum(y1_int, y0_int)
    else:
        x0_int, y0_int, x1_int, y1_int = 0, 0, img_w, img_h
    x0, y0, x1, y1 = torch.split(boxes, 1, dim=1)  # each [N, 1]
    n = masks.shape[0]

    img_y = torch.arange(y0_int, y1_int, device=device, dtype=torch.float32) + 0.5  # pixel centers
    img_x = torch.arange(x0_int, x1_int, device=device, dtype=torch.float32) + 0.5
    img_y = (img_y - y0) / (y1 - y0) * 2 - 1  # [N, h] in grid_sample's [-1, 1] box coordinates
    img_x = (img_x - x0) / (x1 - x0) * 2 - 1  # [N, w]
    gx = img_x[:, None, :].expand(n, img_y.size(1), img_x.size(1))
    gy = img_y[:, :, None].expand(n, img_y.size(1), img_x.size(1))
    grid = torch.stack([gx, gy], dim=3)  # [N, h, w, 2]

    if not masks.dtype.is_floating_point:
        masks = masks.float()
    img_masks = F.grid_sample(masks, grid.to(masks.dtype), align_corners=False)  # [N, 1, h, w]
    if skip_empty:
        return img_masks[:, 0], (slice(y0_int, y1_int), slice(x0_int, x1_int))
    return img_masks[:, 0], ()


def _paste(
    masks: torch.Tensor,
    boxes: torch.Tensor,
    img_h: int,
    img_w: int,
    threshold: float,
    skip_empty: bool,
    num_chunks: int,
) -> torch.Tensor:
    n = masks.shape[0]
    device = boxes.device
    img_masks = torch.zeros(
        n, img_h, img_w, device=device, dtype=torch.bool if threshold >= 0 else torch.uint8
    )
    for inds in torch.chunk(torch.arange(n, device=device), num_chunks):
        chunk, spatial_inds = _do_paste_mask(masks[inds, None, :, :], boxes[inds], img_h, img_w, skip_empty)
        if threshold >= 0:
            chunk = chunk >= threshold
        else:
            chunk = (chunk * 255).to(dtype=torch.uint8)  # soft masks, for visualization
        img_masks[(inds, *spatial_inds)] = chunk
    return img_masks


def paste_masks_in_image(
    masks: torch.Tensor,
    boxes: Boxes | torch.Tensor,
    image_shape: tuple[int, int],
    threshold: float = 0.5,
) -> torch.Tensor:
    """Paste per-box masks into image-sized masks.

    Args:
        masks: ``Tensor[N, Hm, Wm]``, mask probabilities in [0, 1] (e.g. 28x28 per detection).
        boxes: ``Boxes`` or ``Tensor[N, 4]`` XYXY_ABS; ``masks[i]`` is stretched over ``boxes[i]``.
        image_shape: (height, width) of the output.
        threshold: ``>= 0``: bool masks, True where the pasted probability is ``>= threshold``;
            ``< 0``: uint8 masks holding ``probability * 255`` (truncated), for visualization.

    Returns:
        ``Tensor[N, height, width]`` (bool, or uint8 when ``threshold < 0``) on ``boxes``' device.
    """
    if not isinstance(masks, torch.Tensor) or masks.dim() != 3:
        got = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
        raise ValueError(f"masks must be a Tensor[N, Hm, Wm], got {got}")
    if isinstance(boxes, Boxes):
        boxes = boxes.tensor
    if not isinstance(boxes, torch.Tensor) or boxes.dim() != 2 or boxes.shape[1] != 4:
        got = tuple(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes).__name__
        raise ValueError(f"boxes must be Boxes or a Tensor[N, 4], got {got}")
    if len(boxes) != len(masks):
        raise ValueError(f"masks and boxes must have the same length, got {len(masks)} and {len(boxes)}")
    if masks.device != boxes.device:
        raise ValueError(f"masks ({masks.device}) and boxes ({boxes.device}) must be on the same device")
    img_h, img_w = check_size_pair(image_shape, "image_shape")
    img_h, img_w = int(img_h), int(img_w)
    n = len(masks)
    if n == 0:
        return masks.new_zeros((0, img_h, img_w), dtype=torch.bool if threshold >= 0 else torch.uint8)

    if is_graph_capture():
        # the per-box regions have data-dependent sizes; a graph pastes over the whole image at
        # once (as detectron2's scripted path does)
        return _paste(masks, boxes, img_h, img_w, threshold, skip_empty=False, num_chunks=1)
    if boxes.device.type == "cpu":
        # one mask at a time over its own region: the fewest operations on CPU
        return _paste(masks, boxes, img_h, img_w, threshold, skip_empty=True, num_chunks=n)
    num_chunks = math.ceil(n * img_h * img_w * BYTES_PER_FLOAT / GPU_MEM_LIMIT)
    if num_chunks > n:
        raise RuntimeError(
            f"one {img_h}x{img_w} mask needs more than GPU_MEM_LIMIT={GPU_MEM_LIMIT} bytes; "
            "raise dt_structures.mask_paste.GPU_MEM_LIMIT"
        )
    return _paste(masks, boxes, img_h, img_w, threshold, skip_empty=False, num_chunks=num_chunks)
