"""``RCNNGraph``: R-CNN inference (Faster / Mask / Keypoint R-CNN, Cascade R-CNN, C4) as one flat,
capturable graph over an eager ``GeneralizedRCNN``'s parts (see :mod:`dt_export.graph`).

The eager ``GeneralizedRCNN.inference`` branches in Python on data (``if not valid.all()``, skipping
empty pyramid levels, an anchor cache keyed by feature sizes); this graph runs the same computation
on the same submodules with every data-dependent choice written as tensor operations. The box
stage comes in three shapes, one per ROI-heads class: ``StandardROIHeads`` (one box head),
``CascadeROIHeads`` (stages refining the previous stage's boxes, class scores averaged) and
``Res5ROIHeads`` (C4: res5 on the pooled boxes, the predictor on its spatial mean).

Outputs: ``boxes``, ``scores``, ``classes`` and, as the model has them, ``masks`` ``[R, H, W]`` bool
and ``keypoint_heatmaps`` ``[R, K, S, S]`` (decoded to keypoints outside the graph: the eager decoder
resizes each box's heatmap to its own size, which no fixed graph can).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

import dt_ops
from dt_models.meta_arch import GeneralizedRCNN
from dt_models.poolers import ROIPooler, assign_boxes_to_levels
from dt_models.proposal_generator import RPN
from dt_models.proposal_generator.proposal_utils import clip_boxes, nonempty_boxes
from dt_models.roi_heads import (
    CascadeROIHeads,
    FastRCNNOutputLayers,
    KeypointBranch,
    MaskBranch,
    Res5ROIHeads,
    StandardROIHeads,
)
from dt_structures.mask_paste import _do_paste_mask

from .graph import ExportGraph, GridAnchors, eager_instance_outputs, top_k

__all__ = ["RCNNGraph", "unsupported_rcnn_parts"]

ROI_HEADS = (StandardROIHeads, CascadeROIHeads, Res5ROIHeads)


def _predictors(heads: nn.Module) -> list[nn.Module]:
    if isinstance(heads, CascadeROIHeads):
        return list(heads.box_predictor)
    return [heads.box_predictor]


def unsupported_rcnn_parts(model: GeneralizedRCNN) -> list[str]:
    """What in ``model`` this graph cannot express (empty: exportable)."""
    problems = []
    if type(model.proposal_generator) is not RPN:
        problems.append(f"proposal generator {type(model.proposal_generator).__name__} (supported: RPN)")
    heads = model.roi_heads
    if type(heads) not in ROI_HEADS:
        names = ", ".join(h.__name__ for h in ROI_HEADS)
        problems.append(f"ROI heads {type(heads).__name__} (supported: {names})")
        return problems
    for predictor in _predictors(heads):
        if type(predictor) is not FastRCNNOutputLayers:
            problems.append(f"box predictor {type(predictor).__name__} (supported: FastRCNNOutputLayers)")
    branches = {} if isinstance(heads, Res5ROIHeads) else dict(heads.branches)
    pooler = heads.pooler if isinstance(heads, Res5ROIHeads) else heads.box_pooler
    kinds = {p.level_poolers[0].kind for p in [pooler, *(b.pooler for b in branches.values())]}
    if not kinds <= {"ROIAlign", "ROIAlignV2"}:
        problems.append(f"pooler types {sorted(kinds)} (supported: ROIAlign, ROIAlignV2)")
    for name, branch in branches.items():
        kind, method = {"mask": (MaskBranch, "class_logits"), "keypoint": (KeypointBranch, "layers")}.get(
            name, (None, "")
        )
        if kind is None or type(branch) is not kind or not hasattr(branch.head, method):
            problems.append(
                f"ROI branch {name!r} ({type(branch).__name__}; supported: mask = MaskBranch, "
                "keypoint = KeypointBranch)"
            )
    return problems


def _pool(pooler: ROIPooler, features: list[torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
    """``ROIPooler`` of one image's ``boxes`` ``Tensor[R, 4]`` (rotated: ``[R, 5]``) ->
    ``Tensor[R, C, S, S]``, every level pooled for the boxes assigned to it (an empty level pools
    nothing instead of being skipped)."""
    rois = torch.cat([boxes.new_zeros((boxes.shape[0], 1)), boxes], dim=1)  # [R, 5] (rotated: 6)
    levels = assign_boxes_to_levels(
        [boxes], pooler.min_level, pooler.max_level, pooler.canonical_box_size, pooler.canonical_level
    )
    output = features[0].new_zeros((boxes.shape[0], features[0].shape[1], *pooler.output_size))
    for level, (feature, level_pooler) in enumerate(zip(features, pooler.level_poolers, strict=True)):
        inds = torch.nonzero(levels == level).squeeze(1)
        output = output.index_put((inds,), level_pooler(feature, rois[inds]))
    return output


def _class_probabilities(predictor: FastRCNNOutputLayers, logits: torch.Tensor) -> torch.Tensor:
    """``Tensor[P, K+1]`` class probabilities, as ``FastRCNNOutputLayers.predict_probs``."""
    return logits.sigmoid() if predictor.use_sigmoid_ce else F.softmax(logits, dim=-1)


class RCNNGraph(ExportGraph):
    """The inference of a ``GeneralizedRCNN`` (RPN; standard, cascade or C4 ROI heads; optional mask
    and keypoint branches) on one image, as a graph without data-dependent Python control flow.

    The box operations (``box_dim``, :meth:`clip`, :meth:`nonempty`, :meth:`batched_nms`,
    :meth:`postprocess`) are those of XYXY boxes; :class:`~dt_export.rotated_rcnn.RotatedRCNNGraph`
    replaces them with their rotated counterparts.
    """

    box_dim = 4
    unsupported_parts = staticmethod(unsupported_rcnn_parts)

    def __init__(self, model: GeneralizedRCNN) -> None:
        super().__init__(model)
        problems = self.unsupported_parts(model)
        if problems:
            raise ValueError(f"cannot export {type(model).__name__}: {'; '.join(problems)}")
        self.anchors = GridAnchors(model.proposal_generator.anchor_generator)
        heads = model.roi_heads
        if isinstance(heads, Res5ROIHeads):
            self.branch_names = ["mask"] if heads.mask_head is not None else []
        else:
            self.branch_names = [n for n in ("mask", "keypoint") if n in heads.branches]
        extra = {"mask": "masks", "keypoint": "keypoint_heatmaps"}
        self.output_names = ("boxes", "scores", "classes", *(extra[n] for n in self.branch_names))

    def eager_outputs(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return eager_instance_outputs(self.model, image, self.output_names)

    def clip(self, boxes: torch.Tensor, image_size: tuple) -> torch.Tensor:
        """``boxes`` ``Tensor[N, box_dim]`` clipped to the image."""
        return clip_boxes(boxes, image_size)

    def nonempty(self, boxes: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
        """``Tensor[N]`` bool: both sides of the box longer than ``threshold``."""
        return nonempty_boxes(boxes, threshold)

    def batched_nms(
        self, boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, threshold: float
    ) -> torch.Tensor:
        """Kept indices ``Tensor[K]`` of NMS per ``idxs``, by decreasing score."""
        return dt_ops.batched_nms(boxes, scores, idxs, threshold)

    def postprocess(self, boxes: torch.Tensor, image_size: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        """``detector_postprocess`` at scale 1 of the (clipped) detections: the boxes and the indices
        of the non-empty ones."""
        return boxes, torch.nonzero(self.nonempty(boxes)).squeeze(1)

    def _proposals(self, features: dict[str, torch.Tensor], image_size: tuple) -> torch.Tensor:
        """RPN proposals ``Tensor[P, box_dim]`` by decreasing objectness (as ``find_top_rpn_proposals``)."""
        rpn = self.model.proposal_generator
        feats = [features[f] for f in rpn.in_features]
        logits, deltas = rpn.rpn_head(feats)
        pre_nms_topk, post_nms_topk = rpn.pre_nms_topk[False], rpn.post_nms_topk[False]
        boxes, scores, levels = [], [], []
        for level, (feature, logit, delta) in enumerate(zip(feats, logits, deltas, strict=True)):
            logit = logit[0].permute(1, 2, 0).reshape(-1)  # [Hi*Wi*A]
            delta = delta[0].view(-1, self.box_dim, *delta.shape[-2:]).permute(2, 3, 0, 1)
            delta = delta.reshape(-1, self.box_dim)  # [Hi*Wi*A, box_dim]
            proposals = rpn.box2box_transform.apply_deltas(delta, self.anchors(level, feature))
            top_scores, top_idx = top_k(logit, pre_nms_topk)
            boxes.append(proposals[top_idx])
            scores.append(top_scores)
            levels.append(torch.full_like(top_idx, level))
        boxes, scores, levels = torch.cat(boxes), torch.cat(scores), torch.cat(levels)
        valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores)
        boxes = self.clip(boxes, image_size)
        keep = torch.nonzero(valid & self.nonempty(boxes, rpn.min_box_size)).squeeze(1)
        boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
        keep = self.batched_nms(boxes, scores, levels, rpn.nms_thresh)[:post_nms_topk]
        return boxes[keep]

    def _res5(self, features: dict[str, torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
        """C4: res5 on the pooled ``boxes`` -> ``Tensor[R, C5, S/2, S/2]``."""
        heads = self.model.roi_heads
        return heads.res5(_pool(heads.pooler, [features[f] for f in heads.in_features], boxes))

    def _box_predictions(
        self, features: dict[str, torch.Tensor], proposals: torch.Tensor, image_size: tuple
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoded boxes ``Tensor[P, K*box_dim]`` (or ``[P, box_dim]``) and class probabilities
        ``[P, K+1]``."""
        heads = self.model.roi_heads
        if isinstance(heads, Res5ROIHeads):
            predictor = heads.box_predictor
            logits, deltas = predictor(self._res5(features, proposals).mean(dim=(2, 3)))
            boxes = predictor.box2box_transform.apply_deltas(deltas, proposals)
            return boxes, _class_probabilities(predictor, logits)
        feats = [features[f] for f in heads.box_in_features]
        cascade = isinstance(heads, CascadeROIHeads)
        box_heads = list(heads.box_head) if cascade else [heads.box_head]
        probabilities = []
        for stage, (head, predictor) in enumerate(zip(box_heads, _predictors(heads), strict=True)):
            if stage > 0:  # the previous stage's boxes, clipped, are this stage's proposals
                proposals = clip_boxes(boxes, image_size)
            logits, deltas = predictor(head(_pool(heads.box_pooler, feats, proposals)))
            boxes = predictor.box2box_transform.apply_deltas(deltas, proposals)
            probabilities.append(_class_probabilities(predictor, logits))
        return boxes, sum(probabilities) / len(probabilities)

    def _detections(
        self, features: dict[str, torch.Tensor], proposals: torch.Tensor, image_size: tuple
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Boxes, scores and classes after the box stage (``fast_rcnn_inference_single_image``)."""
        predictor = _predictors(self.model.roi_heads)[-1]
        boxes, scores = self._box_predictions(features, proposals, image_size)
        valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores).all(dim=1)  # [P]
        scores = scores[:, :-1]
        num_reg_classes = boxes.shape[1] // self.box_dim
        boxes = self.clip(boxes.reshape(-1, self.box_dim), image_size)
        boxes = boxes.view(-1, num_reg_classes, self.box_dim)  # [P, K, box_dim]
        candidates = torch.nonzero((scores > predictor.test_score_thresh) & valid[:, None])  # [M, 2]
        proposal_idx, classes = candidates[:, 0], candidates[:, 1]
        boxes = boxes[proposal_idx, classes if num_reg_classes > 1 else torch.zeros_like(classes)]
        scores = scores[proposal_idx, classes]
        keep = self.batched_nms(boxes, scores, classes, predictor.test_nms_thresh)
        if predictor.test_topk_per_image >= 0:
            keep = keep[: predictor.test_topk_per_image]
        return boxes[keep], scores[keep], classes[keep]

    def _branch_logits(
        self, name: str, features: dict[str, torch.Tensor], boxes: torch.Tensor, classes: torch.Tensor
    ) -> torch.Tensor:
        """The ``name`` branch's logits of the detections: masks of each detection's class
        ``[R, 1, M, M]``, keypoint heatmaps ``[R, K, S, S]``."""
        heads = self.model.roi_heads
        if isinstance(heads, Res5ROIHeads):
            head, pooled = heads.mask_head, self._res5(features, boxes)
        else:
            branch = heads.branches[name]
            head, pooled = branch.head, _pool(branch.pooler, [features[f] for f in branch.in_features], boxes)
        return head.layers(pooled) if name == "keypoint" else head.class_logits(pooled, classes)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.detect(self.features(image), tuple(image.shape[-2:]))

    def detect(self, features: dict[str, torch.Tensor], image_size: tuple) -> tuple[torch.Tensor, ...]:
        """The outputs (``output_names``) from the backbone ``features`` of an image of ``image_size``."""
        height, width = image_size
        proposals = self._proposals(features, image_size)
        boxes, scores, classes = self._detections(features, proposals, image_size)
        boxes, keep = self.postprocess(boxes, image_size)
        boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
        outputs = [boxes, scores, classes]
        for name in self.branch_names:
            logits = self._branch_logits(name, features, boxes, classes)
            if name == "keypoint":
                outputs.append(logits)
                continue
            logits = logits[:, 0]  # mask_rcnn_inference: the mask of each detection's class
            # paste_masks_in_image's whole-image path (its argument checks need concrete lengths)
            pasted, _ = _do_paste_mask(logits.sigmoid()[:, None], boxes, height, width, skip_empty=False)
            outputs.append(pasted >= 0.5)  # [R, H, W]
        return tuple(outputs)
