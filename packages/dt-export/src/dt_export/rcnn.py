"""``RCNNGraph``: Faster / Mask R-CNN inference as one flat, capturable graph over an eager model's parts.

The eager ``GeneralizedRCNN.inference`` branches in Python on data (``if not valid.all()``, skipping
empty pyramid levels, an anchor cache keyed by feature sizes), which ``torch.export`` and tracing
cannot follow. This module runs the same computation on the same submodules (backbone, RPN head,
box head and predictor, mask head) and the same dt-ops kernels, with every data-dependent choice
written as tensor operations, so one graph serves every image size.

Input: one image ``Tensor[C, H, W]`` float32 in the model's input format (0-255, already resized).
Outputs, in that image's pixel frame: ``boxes`` ``Tensor[R, 4]`` XYXY_ABS, ``scores`` ``Tensor[R]``,
``classes`` ``Tensor[R]`` int64 and, for Mask R-CNN, ``masks`` ``Tensor[R, H, W]`` bool.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

import dt_ops
from dt_models.meta_arch import GeneralizedRCNN
from dt_models.poolers import ROIPooler, assign_boxes_to_levels
from dt_models.proposal_generator.proposal_utils import clip_boxes, nonempty_boxes
from dt_structures.mask_paste import _do_paste_mask

__all__ = ["RCNNGraph", "unsupported_rcnn_parts"]


def unsupported_rcnn_parts(model: GeneralizedRCNN) -> list[str]:
    """What in ``model`` this graph cannot express (empty: exportable)."""
    from dt_models.proposal_generator import RPN
    from dt_models.roi_heads import FastRCNNOutputLayers, MaskBranch, StandardROIHeads

    problems = []
    constraints = {k: v for k, v in model.padding_constraints.items() if v}
    if constraints:
        problems.append(f"padding constraints {constraints} (supported: size_divisibility)")
    if type(model.proposal_generator) is not RPN:
        problems.append(f"proposal generator {type(model.proposal_generator).__name__} (supported: RPN)")
    heads = model.roi_heads
    if type(heads) is not StandardROIHeads:
        problems.append(f"ROI heads {type(heads).__name__} (supported: StandardROIHeads)")
        return problems
    if type(heads.box_predictor) is not FastRCNNOutputLayers:
        problems.append(
            f"box predictor {type(heads.box_predictor).__name__} (supported: FastRCNNOutputLayers)"
        )
    poolers = [heads.box_pooler, *(b.pooler for b in heads.branches.values())]
    kinds = {p.level_poolers[0].kind for p in poolers}
    if not kinds <= {"ROIAlign", "ROIAlignV2"}:
        problems.append(f"pooler types {sorted(kinds)} (supported: ROIAlign, ROIAlignV2)")
    for name, branch in heads.branches.items():
        if name != "mask" or type(branch) is not MaskBranch or not hasattr(branch.head, "layers"):
            problems.append(f"ROI branch {name!r} ({type(branch).__name__}; supported: mask = MaskBranch)")
    return problems


def _pool(pooler: ROIPooler, features: list[torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
    """``ROIPooler`` of one image's ``boxes`` ``Tensor[R, 4]`` -> ``Tensor[R, C, S, S]``, every level
    pooled for the boxes assigned to it (an empty level pools nothing instead of being skipped)."""
    rois = torch.cat([boxes.new_zeros((boxes.shape[0], 1)), boxes], dim=1)  # [R, 5]
    levels = assign_boxes_to_levels(
        [boxes], pooler.min_level, pooler.max_level, pooler.canonical_box_size, pooler.canonical_level
    )
    output = features[0].new_zeros((boxes.shape[0], features[0].shape[1], *pooler.output_size))
    for level, (feature, level_pooler) in enumerate(zip(features, pooler.level_poolers, strict=True)):
        inds = torch.nonzero(levels == level).squeeze(1)
        pooled = dt_ops.roi_align(
            feature, rois[inds], level_pooler.output_size, level_pooler.spatial_scale,
            level_pooler.sampling_ratio, aligned=level_pooler.kind == "ROIAlignV2",
        )  # fmt: skip
        output = output.index_put((inds,), pooled)
    return output


def _top(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``min(len(scores), k)`` largest ``scores`` ``Tensor[N]`` and their indices, decreasing."""
    if torch.jit.is_tracing():  # sizes are traced tensors there: sort, then slice (clamps at N)
        ordered, order = scores.sort(descending=True)
        return ordered[:k], order[:k]
    return scores.topk(torch.sym_min(scores.shape[0], k))


class RCNNGraph(nn.Module):
    """The inference of a ``GeneralizedRCNN`` (RPN, ``StandardROIHeads``, optional mask branch) on one
    image, as a graph without data-dependent Python control flow (see the module docstring)."""

    def __init__(self, model: GeneralizedRCNN) -> None:
        super().__init__()
        problems = unsupported_rcnn_parts(model)
        if problems:
            raise ValueError(f"cannot export {type(model).__name__}: {'; '.join(problems)}")
        self.model = model
        rpn = model.proposal_generator
        generator = rpn.anchor_generator
        for level, cell in enumerate(generator._cell_anchors):
            self.register_buffer(f"cell_anchors_{level}", cell.clone(), persistent=False)
        self.output_names = [
            "boxes",
            "scores",
            "classes",
            *(["masks"] if "mask" in model.roi_heads.branches else []),
        ]

    def _normalize_and_pad(self, image: torch.Tensor) -> torch.Tensor:
        """``Tensor[C, H, W]`` -> normalized ``Tensor[1, C, H', W']`` padded with zeros to the model's
        size divisibility (as ``ImageList.from_tensors`` pads)."""
        model = self.model
        x = (image.to(torch.float32) - model.pixel_mean) / model.pixel_std
        divisor = model.size_divisibility
        if divisor > 1:
            height, width = x.shape[-2:]
            # written as divisor * ceil(size / divisor) so the shape solver sees a multiple of divisor
            padded_h, padded_w = (
                (height + divisor - 1) // divisor * divisor,
                (width + divisor - 1) // divisor * divisor,
            )
            x = F.pad(x, (0, padded_w - width, 0, padded_h - height))
        return x[None]

    def _anchors(self, level: int, feature: torch.Tensor) -> torch.Tensor:
        """XYXY anchors of one feature map ``Tensor[1, C, Hi, Wi]`` -> ``Tensor[Hi*Wi*A, 4]`` (row, column,
        cell anchor order, as ``DefaultAnchorGenerator``)."""
        generator = self.model.proposal_generator.anchor_generator
        stride = generator.strides[level]
        height, width = feature.shape[-2:]
        start = generator.offset * stride
        shifts_x = torch.arange(width, dtype=torch.float32, device=feature.device) * stride + start
        shifts_y = torch.arange(height, dtype=torch.float32, device=feature.device) * stride + start
        shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
        shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
        shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)  # [Hi*Wi, 4]
        cell = getattr(self, f"cell_anchors_{level}")  # [A, 4]
        return (shifts[:, None, :] + cell[None, :, :]).reshape(-1, 4)

    def _proposals(self, features: dict[str, torch.Tensor], image_size: tuple) -> torch.Tensor:
        """RPN proposals ``Tensor[P, 4]`` by decreasing objectness (as ``find_top_rpn_proposals``)."""
        rpn = self.model.proposal_generator
        feats = [features[f] for f in rpn.in_features]
        logits, deltas = rpn.rpn_head(feats)
        pre_nms_topk, post_nms_topk = rpn.pre_nms_topk[False], rpn.post_nms_topk[False]
        boxes, scores, levels = [], [], []
        for level, (feature, logit, delta) in enumerate(zip(feats, logits, deltas, strict=True)):
            logit = logit[0].permute(1, 2, 0).reshape(-1)  # [Hi*Wi*A]
            delta = delta[0].view(-1, 4, *delta.shape[-2:]).permute(2, 3, 0, 1).reshape(-1, 4)
            proposals = rpn.box2box_transform.apply_deltas(
                delta, self._anchors(level, feature)
            )  # [Hi*Wi*A, 4]
            top_scores, top_idx = _top(logit, pre_nms_topk)
            boxes.append(proposals[top_idx])
            scores.append(top_scores)
            levels.append(torch.full_like(top_idx, level))
        boxes, scores, levels = torch.cat(boxes), torch.cat(scores), torch.cat(levels)
        valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores)
        boxes = clip_boxes(boxes, image_size)
        keep = torch.nonzero(valid & nonempty_boxes(boxes, rpn.min_box_size)).squeeze(1)
        boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
        keep = dt_ops.batched_nms(boxes, scores, levels, rpn.nms_thresh)[:post_nms_topk]
        return boxes[keep]

    def _detections(
        self, features: dict[str, torch.Tensor], proposals: torch.Tensor, image_size: tuple
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Boxes, scores and classes after the box head (``fast_rcnn_inference_single_image``)."""
        heads = self.model.roi_heads
        predictor = heads.box_predictor
        pooled = _pool(heads.box_pooler, [features[f] for f in heads.box_in_features], proposals)
        logits, deltas = predictor(heads.box_head(pooled))
        boxes = predictor.box2box_transform.apply_deltas(deltas, proposals)  # [P, K*4]
        scores = F.softmax(logits, dim=-1)  # [P, K+1]
        valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores).all(dim=1)  # [P]
        scores = scores[:, :-1]
        num_reg_classes = boxes.shape[1] // 4
        boxes = clip_boxes(boxes.reshape(-1, 4), image_size).view(-1, num_reg_classes, 4)  # [P, K, 4]
        candidates = torch.nonzero((scores > predictor.test_score_thresh) & valid[:, None])  # [M, 2]
        proposal_idx, classes = candidates[:, 0], candidates[:, 1]
        boxes = boxes[proposal_idx, classes if num_reg_classes > 1 else torch.zeros_like(classes)]
        scores = scores[proposal_idx, classes]
        keep = dt_ops.batched_nms(boxes, scores, classes, predictor.test_nms_thresh)
        if predictor.test_topk_per_image >= 0:
            keep = keep[: predictor.test_topk_per_image]
        return boxes[keep], scores[keep], classes[keep]

    def _mask_probabilities(
        self, features: dict[str, torch.Tensor], boxes: torch.Tensor, classes: torch.Tensor
    ) -> torch.Tensor:
        """``Tensor[R, M, M]`` mask probabilities of each detection's class (``mask_rcnn_inference``)."""
        branch = self.model.roi_heads.branches["mask"]
        pooled = _pool(branch.pooler, [features[f] for f in branch.in_features], boxes)
        logits = branch.head.layers(pooled)  # [R, K or 1, M, M]
        if logits.shape[1] > 1:
            logits = logits[torch.arange(logits.shape[0], device=logits.device), classes]
        else:
            logits = logits[:, 0]
        return logits.sigmoid()

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        height, width = image.shape[-2:]
        image_size = (height, width)
        features = self.model.backbone(self._normalize_and_pad(image))
        proposals = self._proposals(features, image_size)
        boxes, scores, classes = self._detections(features, proposals, image_size)
        keep = torch.nonzero(nonempty_boxes(boxes)).squeeze(1)  # detector_postprocess at scale 1
        boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
        if "mask" not in self.model.roi_heads.branches:
            return boxes, scores, classes
        probabilities = self._mask_probabilities(features, boxes, classes)  # [R, M, M]
        # paste_masks_in_image's whole-image path (its argument checks need concrete lengths)
        pasted, _ = _do_paste_mask(probabilities[:, None], boxes, height, width, skip_empty=False)
        return boxes, scores, classes, pasted >= 0.5  # [R, H, W]
