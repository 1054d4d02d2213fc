"""``DenseGraph``: one-stage detector inference (RetinaNet, FCOS) as a capturable graph over an eager
``DenseDetector``'s parts (see :mod:`dt_export.graph`).

Per level the scores above ``test_score_thresh`` are gathered and the ``test_topk_candidates`` best
decoded against the level's anchors (points, for FCOS); then class-wise NMS over all levels keeps the
``max_detections_per_image`` best, as ``DenseDetector.decode_multi_level_predictions`` and
``select_detections``. Outputs: ``boxes``, ``scores``, ``classes``.
"""

from __future__ import annotations

import torch

import dt_ops
from dt_models.meta_arch import FCOS, RetinaNet
from dt_models.meta_arch.dense_detector import DenseDetector, permute_to_N_HWA_K
from dt_models.proposal_generator.proposal_utils import clip_boxes, nonempty_boxes

from .graph import ExportGraph, GridAnchors, eager_instance_outputs, top_k

__all__ = ["DenseGraph"]


class DenseGraph(ExportGraph):
    """The inference of a ``RetinaNet`` or ``FCOS`` on one image, without data-dependent control flow."""

    output_names = ("boxes", "scores", "classes")

    def __init__(self, model: DenseDetector) -> None:
        super().__init__(model)
        if type(model) not in (RetinaNet, FCOS):
            raise ValueError(f"cannot export {type(model).__name__} (supported: RetinaNet, FCOS)")
        self.anchors = GridAnchors(model.anchor_generator)

    def eager_outputs(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return eager_instance_outputs(self.model, image, self.output_names)

    def _level_scores(self, predictions: tuple[list[torch.Tensor], ...], level: int) -> torch.Tensor:
        """``Tensor[Hi*Wi*A, K]`` detection scores of one level (RetinaNet: sigmoid of the logits;
        FCOS: ``sqrt(sigmoid(cls) * sigmoid(centerness))``)."""
        k = self.model.num_classes
        scores = permute_to_N_HWA_K(predictions[0][level], k)[0].sigmoid()
        if isinstance(self.model, FCOS):
            centerness = permute_to_N_HWA_K(predictions[2][level], 1)[0].sigmoid()
            scores = torch.sqrt(scores * centerness)
        return scores

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        model = self.model
        height, width = image.shape[-2:]
        features = self.features(image)
        feats = [features[f] for f in model.head_in_features]
        predictions = model.head(feats)
        boxes, scores, classes = [], [], []
        for level, feature in enumerate(feats):
            level_scores = self._level_scores(predictions, level)  # [R, K]
            deltas = permute_to_N_HWA_K(predictions[1][level], 4)[0]  # [R, 4]
            keep = level_scores > model.test_score_thresh
            candidates = torch.nonzero(keep)  # [M, 2]: (anchor, class), row-major
            top_scores, idx = top_k(level_scores[keep], model.test_topk_candidates)
            anchor_idx, class_idx = candidates[idx, 0], candidates[idx, 1]
            anchors = self.anchors(level, feature)
            boxes.append(model.box2box_transform.apply_deltas(deltas[anchor_idx], anchors[anchor_idx]))
            scores.append(top_scores)
            classes.append(class_idx)
        boxes, scores, classes = torch.cat(boxes), torch.cat(scores), torch.cat(classes)
        keep = dt_ops.batched_nms(boxes, scores, classes, model.test_nms_thresh)
        keep = keep[: model.max_detections_per_image]
        boxes = clip_boxes(boxes[keep], (height, width))  # detector_postprocess at scale 1
        scores, classes = scores[keep], classes[keep]
        keep = torch.nonzero(nonempty_boxes(boxes)).squeeze(1)
        return boxes[keep], scores[keep], classes[keep]
