"""Test-time augmentation of R-CNN models: ``GeneralizedRCNNWithTTA`` (detectron2's semantics).

Each image is resized so its short edge is every size of ``min_sizes`` (its long edge at most
``max_size``) and, with ``flip``, also flipped horizontally. The box stage runs on every view without
the extra heads; the detections are mapped back to the original image, pooled and merged by per-class
NMS (the box predictor's test NMS threshold and detections per image). The mask head then runs on
every view with the merged boxes mapped into it, and its probabilities are averaged across the views
(flips undone) before they are pasted::

    tta = GeneralizedRCNNWithTTA(model, resize=resize_shortest_edge, min_sizes=(400, 600, 800),
                                 max_size=1333)
    outputs = tta([{"image": image, "height": 480, "width": 640}])   # like model.eval()(...)

``resize(image, min_size, max_size)`` does the pixel work (dt-engine passes dt-data's
``ResizeShortestEdge``, which resizes uint8 images with PIL as detectron2 does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import attrs
import torch
from torch import nn

from dt_models.meta_arch.postprocessing import detector_postprocess
from dt_models.meta_arch.rcnn import GeneralizedRCNN
from dt_models.roi_heads import MaskBranch
from dt_models.roi_heads.fast_rcnn import fast_rcnn_inference_single_image
from dt_structures import Boxes, Instances

__all__ = [
    "GeneralizedRCNNWithTTA",
    "ShortestEdgeResize",
    "boxes_to_augmented",
    "boxes_to_original",
    "merge_detections",
]

ShortestEdgeResize = Callable[[torch.Tensor, int, int], torch.Tensor]
"""``(image Tensor[C, H, W], min_size, max_size) -> Tensor[C, H', W']``: short edge ``min_size``,
long edge at most ``max_size``."""


@attrs.frozen
class _View:
    """One augmented version of an image: ``image`` ``Tensor[C, h, w]``, and whether it is flipped."""

    image: torch.Tensor
    flipped: bool

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[-2]), int(self.image.shape[-1])


def _scale_and_flip(
    boxes: torch.Tensor, scale_xy: tuple[float, float], flip_width: float | None
) -> torch.Tensor:
    """XYXY ``boxes`` scaled by ``scale_xy`` then, with ``flip_width``, flipped in an image that wide."""
    scale = boxes.new_tensor([scale_xy[0], scale_xy[1], scale_xy[0], scale_xy[1]])
    boxes = boxes * scale
    if flip_width is not None:
        x1, y1, x2, y2 = boxes.unbind(dim=1)
        boxes = torch.stack([flip_width - x2, y1, flip_width - x1, y2], dim=1)
    return boxes


def boxes_to_original(
    boxes: torch.Tensor, view_size: tuple[int, int], original_size: tuple[int, int], flipped: bool
) -> torch.Tensor:
    """XYXY_ABS ``boxes`` ``Tensor[N, 4]`` of a (``flipped``) view of ``view_size`` (h, w) -> the
    same boxes on the original image of ``original_size``, in float64 (as detectron2 maps them)."""
    boxes = boxes.to(torch.float64)
    if flipped:
        boxes = _scale_and_flip(boxes, (1.0, 1.0), view_size[1])
    return _scale_and_flip(boxes, (original_size[1] / view_size[1], original_size[0] / view_size[0]), None)


def boxes_to_augmented(
    boxes: torch.Tensor, original_size: tuple[int, int], view_size: tuple[int, int], flipped: bool
) -> torch.Tensor:
    """The inverse of :func:`boxes_to_original`: original-image boxes into a view, float64."""
    scale = (view_size[1] / original_size[1], view_size[0] / original_size[0])
    return _scale_and_flip(boxes.to(torch.float64), scale, view_size[1] if flipped else None)


def merge_detections(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    classes: torch.Tensor,
    *,
    num_classes: int,
    image_size: tuple[int, int],
    nms_thresh: float,
    detections_per_image: int,
) -> Instances:
    """Per-class NMS over the pooled detections of all views (``boxes`` ``Tensor[N, 4]`` on the
    original image, ``scores`` and ``classes`` ``Tensor[N]``): each becomes a row of a ``[N, K + 1]``
    score matrix holding only its own class's score, which ``fast_rcnn_inference_single_image`` clips,
    suppresses (score threshold 1e-8) and keeps the best ``detections_per_image`` of (boxes and
    scores in the dtype of ``boxes``)."""
    score_matrix = boxes.new_zeros(len(boxes), num_classes + 1)  # in the boxes' dtype, as NMS needs
    score_matrix[torch.arange(len(boxes), device=boxes.device), classes] = scores.to(boxes.dtype)
    merged, _ = fast_rcnn_inference_single_image(
        boxes, score_matrix, image_size, 1e-8, nms_thresh, detections_per_image
    )
    return merged


def _given_boxes_unchanged(features: dict[str, torch.Tensor], instances: list[Instances]) -> list[Instances]:
    return instances


@contextmanager
def _box_stage_only(roi_heads: nn.Module) -> Iterator[None]:
    """Inference of ``roi_heads`` without its extra heads: every dt ROI heads runs them through
    ``forward_with_given_boxes``, which is shadowed by a pass-through meanwhile."""
    roi_heads.forward_with_given_boxes = _given_boxes_unchanged
    try:
        yield
    finally:
        del roi_heads.forward_with_given_boxes


def _box_predictor(roi_heads: nn.Module) -> nn.Module:
    predictor = roi_heads.box_predictor
    return predictor[-1] if isinstance(predictor, nn.ModuleList) else predictor  # cascades: last stage


def _has_mask_head(model: GeneralizedRCNN) -> bool:
    """Whether the ROI heads have a mask head; any other extra head is refused (only masks can be
    averaged across views, as in detectron2)."""
    roi_heads = model.roi_heads
    branches = dict(getattr(roi_heads, "branches", None) or {})
    others = {name: type(b).__name__ for name, b in branches.items() if not isinstance(b, MaskBranch)}
    if others:
        raise ValueError(
            f"test-time augmentation merges boxes and masks only; the ROI heads' branches {others} "
            "are not supported (detectron2 refuses keypoints too)"
        )
    return bool(branches) or getattr(roi_heads, "mask_head", None) is not None


class GeneralizedRCNNWithTTA(nn.Module):
    """A ``GeneralizedRCNN`` run with test-time augmentation; called like the model in eval mode,
    it returns ``[{"instances": Instances}]`` at each input's ``height``/``width``.

    Args:
        model: the R-CNN model (a ``DistributedDataParallel`` wrapper is unwrapped).
        resize: the shortest-edge resize of an image (see :data:`ShortestEdgeResize`).
        min_sizes: short-edge sizes of the views; ``max_size`` caps their long edge.
        flip: add the horizontal flip of every size.
        nms_thresh, detections_per_image: of the merge; ``None``: the box predictor's test settings.
        batch_size: views run through the model together.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        resize: ShortestEdgeResize,
        min_sizes: Sequence[int],
        max_size: int,
        flip: bool = True,
        nms_thresh: float | None = None,
        detections_per_image: int | None = None,
        batch_size: int = 3,
    ) -> None:
        super().__init__()
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        if not isinstance(model, GeneralizedRCNN):
            raise TypeError(f"test-time augmentation needs a GeneralizedRCNN, got {type(model).__name__}")
        if model.proposal_generator is None:
            raise ValueError("test-time augmentation of precomputed proposals is not supported")
        if not min_sizes or any(size <= 0 for size in min_sizes) or max_size <= 0:
            raise ValueError(f"expected positive min_sizes and max_size, got {list(min_sizes)}, {max_size}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.model = model
        self.resize = resize
        self.min_sizes = tuple(min_sizes)
        self.max_size = max_size
        self.flip = flip
        predictor = _box_predictor(model.roi_heads)
        self.nms_thresh = predictor.test_nms_thresh if nms_thresh is None else nms_thresh
        self.detections_per_image = (
            predictor.test_topk_per_image if detections_per_image is None else detections_per_image
        )
        self.num_classes = model.roi_heads.num_classes
        self.mask_on = _has_mask_head(model)
        self.batch_size = batch_size

    def forward(self, batched_inputs: Sequence[dict[str, Any]]) -> list[dict[str, Instances]]:
        if self.model.training:
            raise RuntimeError("test-time augmentation is for inference; call eval() first")
        return [self._inference_one_image(x) for x in batched_inputs]

    def augmented_views(self, image: torch.Tensor) -> list[_View]:
        """Every view of ``image`` ``Tensor[C, H, W]``: each size, then its flip, in order."""
        views = []
        for size in self.min_sizes:
            resized = self.resize(image, size, self.max_size)
            views.append(_View(resized, flipped=False))
            if self.flip:
                views.append(_View(resized.flip(dims=[-1]), flipped=True))
        return views

    def _batch_inference(
        self, views: Sequence[_View], detected: Sequence[Instances] | None = None
    ) -> list[Instances]:
        """``model.inference`` on ``batch_size`` views at a time, at the views' sizes."""
        outputs: list[Instances] = []
        for start in range(0, len(views), self.batch_size):
            inputs = [{"image": v.image} for v in views[start : start + self.batch_size]]
            given = None if detected is None else list(detected[start : start + self.batch_size])
            outputs.extend(self.model.inference(inputs, given, do_postprocess=False))
        return outputs

    def _inference_one_image(self, inputs: dict[str, Any]) -> dict[str, Instances]:
        image = inputs["image"]
        original_size = (
            int(inputs.get("height", image.shape[-2])),
            int(inputs.get("width", image.shape[-1])),
        )
        views = self.augmented_views(image)
        with _box_stage_only(self.model.roi_heads):
            detections = self._batch_inference(views)
        boxes = torch.cat(
            [
                boxes_to_original(d.pred_boxes.tensor, v.size, original_size, v.flipped)
                for d, v in zip(detections, views, strict=True)
            ]
        )  # [N, 4] float64
        merged = merge_detections(
            boxes,
            torch.cat([d.scores for d in detections]),
            torch.cat([d.pred_classes for d in detections]),
            num_classes=self.num_classes,
            image_size=original_size,
            nms_thresh=self.nms_thresh,
            detections_per_image=self.detections_per_image,
        )
        dtype = detections[0].scores.dtype  # the model's, not the merge's float64
        merged.pred_boxes = Boxes(merged.pred_boxes.tensor.to(dtype))
        merged.scores = merged.scores.to(dtype)
        if not self.mask_on:
            return {"instances": merged}
        merged.pred_masks = self._averaged_masks(views, merged, original_size)
        return {"instances": detector_postprocess(merged, *original_size)}

    def _averaged_masks(
        self, views: Sequence[_View], merged: Instances, original_size: tuple[int, int]
    ) -> torch.Tensor:
        """The mask head on the ``merged`` boxes in every view, averaged: ``Tensor[R, 1, M, M]``."""
        dtype = merged.pred_boxes.tensor.dtype
        detected = [
            Instances(
                v.size,
                pred_boxes=Boxes(
                    boxes_to_augmented(merged.pred_boxes.tensor, original_size, v.size, v.flipped).to(dtype)
                ),
                pred_classes=merged.pred_classes,
                scores=merged.scores,
            )
            for v in views
        ]
        outputs = self._batch_inference(views, detected)
        masks = [
            o.pred_masks.flip(dims=[3]) if v.flipped else o.pred_masks
            for o, v in zip(outputs, views, strict=True)
        ]  # each [R, 1, M, M], unflipped
        return torch.stack(masks).mean(dim=0)
