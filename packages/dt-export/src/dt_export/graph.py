"""``ExportGraph``: the base of the capturable graph modules, one per family, and the pieces they share.

A graph wraps an eager dt model (eval mode, CPU) and runs its inference on one image as a graph
without data-dependent Python control flow, on the model's own submodules and dt-ops kernels, so
that ``torch.export``, the ONNX exporter and TorchScript tracing capture one graph for every image
size. Input: one image ``Tensor[C, H, W]`` float32 in the model's input format (0-255, already
resized). Output: a tuple of tensors named by ``output_names`` (their meaning: ``OUTPUTS``), in the
image's pixel frame. :meth:`ExportGraph.eager_outputs` gives the eager model's outputs under the
same names: what the export is checked against.
"""

from __future__ import annotations

import abc

import torch
from torch import nn
from torch.nn import functional as F

from dt_models.anchor_generator import DefaultAnchorGenerator
from dt_models.rotated_anchor_generator import RotatedAnchorGenerator

__all__ = ["OUTPUTS", "PADDING_CONSTRAINTS", "ExportGraph", "GridAnchors", "eager_instance_outputs", "top_k"]

PADDING_CONSTRAINTS = ("size_divisibility", "square_size")
"""The ``padding_constraints`` of ``ImageList.from_tensors`` a graph reproduces."""

OUTPUTS: dict[str, dict] = {
    "boxes": {
        "shape": ["R", 4],
        "dtype": "float32",
        "meaning": "XYXY_ABS, input image pixels; divide by the resize scale for the original",
    },
    "rotated_boxes": {
        "shape": ["R", 5],
        "dtype": "float32",
        "meaning": "XYWHA_ABS: center x, center y, width, height in input image pixels, angle in degrees "
        "counter-clockwise in [-180, 180)",
    },
    "scores": {"shape": ["R"], "dtype": "float32", "meaning": "decreasing"},
    "classes": {"shape": ["R"], "dtype": "int64", "meaning": "index into class_names"},
    "masks": {
        "shape": ["R", "height", "width"],
        "dtype": "bool",
        "meaning": "pasted in the input image (probability >= 0.5)",
    },
    "keypoint_heatmaps": {
        "shape": ["R", "K", "S", "S"],
        "dtype": "float32",
        "meaning": "keypoint logits in each box; decoded to keypoints [R, K, 3] (x, y, score) by "
        "dt_structures.heatmaps_to_keypoints(heatmaps, boxes)[:, :, [0, 1, 3]] "
        "(dt_export.runtime.decode_outputs does it)",
    },
    "sem_seg": {
        "shape": ["C", "height", "width"],
        "dtype": "float32",
        "meaning": "per-class scores at the input image size; argmax is the label map",
    },
    "segments": {
        "shape": ["S", 4],
        "dtype": "int64",
        "meaning": "one row per panoptic_seg id 1..S: id, isthing, category_id, instance index (things) "
        "or area (stuff)",
    },
    "panoptic_seg": {
        "shape": ["height", "width"],
        "dtype": "int32 (PanopticFPN) or int64 (PanopticDeepLab)",
        "meaning": "panoptic segment of each pixel: PanopticFPN's segment ids (0: none, see segments); "
        "PanopticDeepLab's labels class * label_divisor + instance (-1: void)",
    },
}
"""What each output name means (the sidecar JSON's ``outputs``)."""


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``min(len(scores), k)`` largest ``scores`` ``Tensor[N]`` and their indices, decreasing."""
    if torch.jit.is_tracing():  # sizes are traced tensors there: sort, then slice (clamps at N)
        ordered, order = scores.sort(descending=True)
        return ordered[:k], order[:k]
    return scores.topk(torch.sym_min(scores.shape[0], k))


def eager_instance_outputs(model: nn.Module, image: torch.Tensor, names: tuple[str, ...]) -> dict:
    """The eager ``instances`` of ``model`` on ``image`` ``Tensor[C, H, W]`` by output name
    (``keypoints`` ``[R, K, 3]`` for ``keypoint_heatmaps``): R-CNN's and dense detectors' fields
    (``rotated_boxes``: rotated R-CNN's ``RotatedBoxes``)."""
    with torch.no_grad():
        instances = model([{"image": image}])[0]["instances"]
    fields = {
        "boxes": lambda: instances.pred_boxes.tensor,
        "rotated_boxes": lambda: instances.pred_boxes.tensor,
        "scores": lambda: instances.scores,
        "classes": lambda: instances.pred_classes,
        "masks": lambda: instances.pred_masks,
        "keypoints": lambda: instances.pred_keypoints,
    }
    return {n: fields[n]() for n in (("keypoints" if n == "keypoint_heatmaps" else n) for n in names)}


class GridAnchors(nn.Module):
    """The anchors of a ``DefaultAnchorGenerator`` (XYXY) or ``RotatedAnchorGenerator`` (XYWHA)
    computed from each feature map's size in the graph (the eager generator caches them by size in
    Python, which a graph cannot)."""

    def __init__(self, generator: DefaultAnchorGenerator | RotatedAnchorGenerator) -> None:
        super().__init__()
        self.strides = list(generator.strides)
        self.offset = float(generator.offset)
        for level, cell in enumerate(generator._cell_anchors):
            self.register_buffer(f"cell_{level}", cell.clone(), persistent=False)

    def forward(self, level: int, feature: torch.Tensor) -> torch.Tensor:
        """The anchors of ``feature`` ``Tensor[N, C, Hi, Wi]`` at ``level`` -> ``Tensor[Hi*Wi*A, B]``
        (row, column, cell anchor order, as the generator; ``B`` 4 XYXY or 5 XYWHA)."""
        stride = self.strides[level]
        height, width = feature.shape[-2:]
        start = self.offset * stride
        shifts_x = torch.arange(width, dtype=torch.float32, device=feature.device) * stride + start
        shifts_y = torch.arange(height, dtype=torch.float32, device=feature.device) * stride + start
        shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
        shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
        cell = getattr(self, f"cell_{level}")  # [A, B]
        if cell.shape[1] == 5:  # rotated: only the center moves
            zeros = torch.zeros_like(shift_x)
            shifts = torch.stack((shift_x, shift_y, zeros, zeros, zeros), dim=1)  # [Hi*Wi, 5]
        else:
            shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)  # [Hi*Wi, 4]
        return (shifts[:, None, :] + cell[None, :, :]).reshape(-1, cell.shape[1])


class ExportGraph(nn.Module, abc.ABC):
    """The inference of ``model`` (an ``ImageModel``) on one image as a capturable graph.

    Subclasses set ``output_names`` and implement ``forward(image) -> tuple`` and
    :meth:`eager_outputs`.
    """

    output_names: tuple[str, ...] = ()
    batched = False
    """Whether ``forward`` takes a batch ``Tensor[B, C, H, W]`` of same-size images (each output then
    gains a leading ``B``) rather than one image ``Tensor[C, H, W]``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        constraints = {k: v for k, v in model.padding_constraints.items() if v}
        unknown = set(constraints) - set(PADDING_CONSTRAINTS)
        if unknown:
            supported = ", ".join(PADDING_CONSTRAINTS)
            raise ValueError(f"cannot export padding constraints {constraints} (supported: {supported})")
        self.size_divisibility = int(constraints.get("size_divisibility", model.size_divisibility))
        # the side of the square every image is padded to (ViTDet's square_pad), 0 if none: the
        # network then always sees that size and images may be at most that large
        self.square_size = int(constraints.get("square_size", 0))

    def normalize_and_pad(self, image: torch.Tensor) -> torch.Tensor:
        """``Tensor[C, H, W]`` (or a batch ``Tensor[B, C, H, W]``) -> normalized ``Tensor[1 | B, C, H', W']``
        padded with zeros at the bottom/right to ``square_size`` (if any), then to a multiple of the
        size divisibility (as ``ImageList.from_tensors``)."""
        model = self.model
        x = (image.to(torch.float32) - model.pixel_mean) / model.pixel_std
        height, width = x.shape[-2:]
        padded_h, padded_w = (self.square_size,) * 2 if self.square_size else (height, width)
        divisor = self.size_divisibility
        if divisor > 1:
            # written as divisor * ceil(size / divisor) so the shape solver sees a multiple of divisor
            padded_h = (padded_h + divisor - 1) // divisor * divisor
            padded_w = (padded_w + divisor - 1) // divisor * divisor
        if self.square_size or divisor > 1:
            x = F.pad(x, (0, padded_w - width, 0, padded_h - height))
        return x if x.dim() == 4 else x[None]

    def features(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """The backbone's feature maps of the normalized, padded ``image`` (or batch)."""
        return self.model.backbone(self.normalize_and_pad(image))

    @torch.no_grad()
    def named_outputs(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """This graph run uncaptured on ``image`` ``Tensor[C, H, W]`` (a batch ``[B, C, H, W]`` when
        ``batched``), its outputs by ``output_names`` (what an exported file must reproduce)."""
        return dict(zip(self.output_names, self(image), strict=True))

    @abc.abstractmethod
    def eager_outputs(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """The eager model's outputs on ``image`` ``Tensor[C, H, W]`` at its own size, by output name
        (``keypoints`` ``[R, K, 3]`` in place of ``keypoint_heatmaps``); always one image, also for a
        ``batched`` graph (the check compares each image of a batch with it)."""
