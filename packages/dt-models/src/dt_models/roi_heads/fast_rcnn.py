"""``FastRCNNOutputLayers``: class scores and per-class box deltas, their losses, and inference; its
config ``FastRCNNOutputLayersConfig`` (the default box predictor, ``FastRCNNOutputLayers``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
import torch
from torch import nn
from torch.nn import functional as F

from dt_config import ConfigProblem
from dt_config import validators as check
from dt_models.box_regression import BOX_REG_LOSS_TYPES, Box2BoxTransform, dense_box_regression_loss
from dt_models.layers import ShapeSpec, cat, nonzero_tuple
from dt_models.proposal_generator.proposal_utils import clip_boxes
from dt_models.registry import ROI_BOX_PREDICTOR_REGISTRY, BoxPredictorConfig
from dt_ops import batched_nms, batched_nms_rotated
from dt_structures import Boxes, Instances, RotatedBoxes

__all__ = [
    "FastRCNNOutputLayers",
    "FastRCNNOutputLayersConfig",
    "build_fast_rcnn_output_layers",
    "fast_rcnn_inference",
    "fast_rcnn_inference_single_image",
    "fed_loss_classes",
    "sigmoid_cross_entropy_loss",
]


def fast_rcnn_inference(
    boxes: Sequence[torch.Tensor],
    scores: Sequence[torch.Tensor],
    image_shapes: Sequence[tuple[int, int]],
    score_thresh: float,
    nms_thresh: float,
    topk_per_image: int,
    rotated: bool = False,
) -> tuple[list[Instances], list[torch.Tensor]]:
    """Per image: threshold scores, per-class NMS, keep the ``topk_per_image`` best (``< 0``: all).

    Args:
        boxes: per image, ``Tensor[Ri, K*4]`` (class-specific) or ``Tensor[Ri, 4]``, XYXY_ABS; with
            ``rotated``, ``Tensor[Ri, K*5]`` or ``Tensor[Ri, 5]`` XYWHA_ABS boxes, clipped as
            ``RotatedBoxes.clip`` does, suppressed by rotated NMS and returned as ``RotatedBoxes``.
        scores: per image, ``Tensor[Ri, K+1]`` probabilities, background last.
        image_shapes: ``(h, w)`` per image, boxes are clipped to it.

    Returns:
        per image, ``Instances`` with ``pred_boxes``, ``scores``, ``pred_classes``; and per image the
        index of the proposal each detection came from.
    """
    results = [
        fast_rcnn_inference_single_image(b, s, shape, score_thresh, nms_thresh, topk_per_image, rotated)
        for b, s, shape in zip(boxes, scores, image_shapes, strict=True)
    ]
    return [r[0] for r in results], [r[1] for r in results]


def fast_rcnn_inference_single_image(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    image_shape: tuple[int, int],
    score_thresh: float,
    nms_thresh: float,
    topk_per_image: int,
    rotated: bool = False,
) -> tuple[Instances, torch.Tensor]:
    """:func:`fast_rcnn_inference` for one image."""
    valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores).all(dim=1)
    if not valid.all():
        boxes, scores = boxes[valid], scores[valid]
    scores = scores[:, :-1]  # drop background
    box_dim = 5 if rotated else 4
    num_reg_classes = boxes.shape[1] // box_dim
    flat = boxes.reshape(-1, box_dim)
    flat = RotatedBoxes(flat).clipped(image_shape).tensor if rotated else clip_boxes(flat, image_shape)
    boxes = flat.view(-1, num_reg_classes, box_dim)  # [R, K, box_dim]
    filter_mask = scores > score_thresh  # [R, K]
    filter_inds = filter_mask.nonzero()  # [M, 2]: (proposal, class)
    if num_reg_classes == 1:
        boxes = boxes[filter_inds[:, 0], 0]
    else:
        boxes = boxes[filter_mask]
    scores = scores[filter_mask]
    keep = (batched_nms_rotated if rotated else batched_nms)(boxes, scores, filter_inds[:, 1], nms_thresh)
    if topk_per_image >= 0:
        keep = keep[:topk_per_image]
    boxes, scores, filter_inds = boxes[keep], scores[keep], filter_inds[keep]
    result = Instances(tuple(image_shape))
    result.pred_boxes = RotatedBoxes(boxes) if rotated else Boxes(boxes)
    result.scores = scores
    result.pred_classes = filter_inds[:, 1]
    return result, filter_inds[:, 0]


def fed_loss_classes(
    gt_classes: torch.Tensor, num_fed_loss_classes: int, num_classes: int, weight: torch.Tensor
) -> torch.Tensor:
    """The classes a federated loss is computed on: every class in ``gt_classes`` (``Tensor[R]``,
    background ``num_classes`` included) and, while fewer than ``num_fed_loss_classes``, other
    foreground classes drawn without replacement with probabilities proportional to ``weight``
    (``Tensor[num_classes]``, e.g. image counts ** 0.5, as detectron2's LVIS models)."""
    present = torch.unique(gt_classes)
    if len(present) >= num_fed_loss_classes:
        return present
    prob = present.new_zeros(num_classes + 1, dtype=torch.float32)
    prob[:num_classes] = weight.float()
    prob[present] = 0
    negatives = torch.multinomial(prob, num_fed_loss_classes - len(present), replacement=False)
    return torch.cat([present, negatives])


def sigmoid_cross_entropy_loss(
    logits: torch.Tensor, gt_classes: torch.Tensor, class_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Binary cross-entropy of each foreground class logit (``logits`` ``Tensor[R, K+1]``, background
    last and unused) against one-hot ``gt_classes`` ``Tensor[R]``, summed over the classes (only those
    where ``class_mask`` ``Tensor[K]`` is true, if given) and averaged over the proposals."""
    if logits.numel() == 0:
        return logits.sum() * 0.0
    num_classes = logits.shape[1] - 1
    target = F.one_hot(gt_classes, num_classes + 1)[:, :num_classes].to(logits.dtype)  # [R, K]
    loss = F.binary_cross_entropy_with_logits(logits[:, :-1], target, reduction="none")
    if class_mask is not None:
        loss = loss * class_mask.to(loss.dtype)[None]
    return loss.sum() / logits.shape[0]


class FastRCNNOutputLayers(nn.Module):
    """Two linear layers on box features: ``K + 1`` class scores and ``K * B`` (or ``B``) box deltas,
    ``B = len(box2box_transform.weights)`` (4; 5 for rotated boxes).

    Args:
        input_shape: shape of the box features (flattened if spatial).
        box2box_transform: box delta coding (weights ``(10, 10, 5, 5)`` in the standard model).
        num_classes: foreground classes ``K``; the background is the last score.
        test_score_thresh, test_nms_thresh, test_topk_per_image: inference settings.
        cls_agnostic_bbox_reg: predict one box per proposal instead of one per class.
        smooth_l1_beta, box_reg_loss_type: box loss settings.
        loss_weight: one weight, or ``{"loss_cls": w, "loss_box_reg": w}``.
        use_sigmoid_ce: train the classes with per-class sigmoid cross-entropy (and score them with
            sigmoids) instead of a softmax.
        use_fed_loss: federated loss (LVIS): the sigmoid loss only on the batch's classes and
            ``fed_loss_num_classes`` in all, other classes sampled by the ``fed_loss_cls_weights``
            buffer (``Tensor[K]``, ones until :meth:`set_fed_loss_cls_weights` or a checkpoint sets it).
    """

    rotated: ClassVar[bool] = False
    """Inference decodes and suppresses rotated boxes (``RotatedBoxes`` ``pred_boxes``)."""

    def __init__(
        self,
        *,
        input_shape: ShapeSpec,
        box2box_transform: Box2BoxTransform,
        num_classes: int,
        test_score_thresh: float = 0.0,
        test_nms_thresh: float = 0.5,
        test_topk_per_image: int = 100,
        cls_agnostic_bbox_reg: bool = False,
        smooth_l1_beta: float = 0.0,
        box_reg_loss_type: str = "smooth_l1",
        loss_weight: float | dict[str, float] = 1.0,
        use_sigmoid_ce: bool = False,
        use_fed_loss: bool = False,
        fed_loss_num_classes: int = 50,
    ) -> None:
        super().__init__()
        if num_classes <= 0:
            raise ValueError(f"num_classes must be > 0, got {num_classes}")
        if use_fed_loss and not use_sigmoid_ce:
            raise ValueError("the federated loss needs use_sigmoid_ce=True")
        self.use_sigmoid_ce = use_sigmoid_ce
        self.use_fed_loss = use_fed_loss
        self.fed_loss_num_classes = fed_loss_num_classes
        if use_fed_loss:
            self.register_buffer("fed_loss_cls_weights", torch.ones(num_classes))
        input_size = (input_shape.channels or 1) * (input_shape.width or 1) * (input_shape.height or 1)
        self.num_classes = num_classes
        self.cls_score = nn.Linear(input_size, num_classes + 1)
        num_reg_classes = 1 if cls_agnostic_bbox_reg else num_classes
        self.box_dim = len(box2box_transform.weights)
        self.bbox_pred = nn.Linear(input_size, num_reg_classes * self.box_dim)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        for layer in (self.cls_score, self.bbox_pred):
            nn.init.constant_(layer.bias, 0)
        self.box2box_transform = box2box_transform
        self.smooth_l1_beta = smooth_l1_beta
        self.test_score_thresh = test_score_thresh
        self.test_nms_thresh = test_nms_thresh
        self.test_topk_per_image = test_topk_per_image
        self.box_reg_loss_type = box_reg_loss_type
        if isinstance(loss_weight, (int, float)):
            loss_weight = {"loss_cls": float(loss_weight), "loss_box_reg": float(loss_weight)}
        self.loss_weight = dict(loss_weight)

    def set_fed_loss_cls_weights(self, weights: torch.Tensor) -> None:
        """Set the federated loss's class sampling weights ``Tensor[K]`` (detectron2 computes them with
        ``dt_data.detection_utils.get_fed_loss_cls_weights``: image counts ** 0.5)."""
        if not self.use_fed_loss:
            raise RuntimeError("set_fed_loss_cls_weights needs use_fed_loss=True")
        if tuple(weights.shape) != (self.num_classes,):
            raise ValueError(f"expected Tensor[{self.num_classes}] weights, got shape {tuple(weights.shape)}")
        self.fed_loss_cls_weights.copy_(weights)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``Tensor[R, ...]`` features to scores ``Tensor[R, K+1]`` and deltas ``Tensor[R, K*B]``."""
        if x.dim() > 2:
            x = torch.flatten(x, start_dim=1)
        return self.cls_score(x), self.bbox_pred(x)

    def losses(
        self, predictions: tuple[torch.Tensor, torch.Tensor], proposals: Sequence[Instances]
    ) -> dict[str, torch.Tensor]:
        """Cross-entropy over classes and box regression on foreground proposals.

        ``proposals`` carry ``proposal_boxes``, ``gt_classes`` and (when there is ground truth)
        ``gt_boxes``, as produced by ``ROIHeads.label_and_sample_proposals``.
        """
        scores, deltas = predictions
        if proposals:
            gt_classes = cat([p.gt_classes for p in proposals], dim=0)
            proposal_boxes = cat([p.proposal_boxes.tensor for p in proposals], dim=0)
            gt_boxes = cat(
                [(p.gt_boxes if p.has("gt_boxes") else p.proposal_boxes).tensor for p in proposals], dim=0
            )
        else:
            gt_classes = torch.empty(0, dtype=torch.int64, device=scores.device)
            proposal_boxes = gt_boxes = torch.empty((0, self.box_dim), device=scores.device)
        if gt_classes.numel() == 0:
            loss_cls = scores.sum() * 0.0
        elif self.use_sigmoid_ce:
            class_mask = None
            if self.use_fed_loss:
                kept = fed_loss_classes(
                    gt_classes, self.fed_loss_num_classes, self.num_classes, self.fed_loss_cls_weights
                )
                class_mask = torch.zeros(self.num_classes + 1, dtype=torch.bool, device=scores.device)
                class_mask[kept] = True
                class_mask = class_mask[: self.num_classes]
            loss_cls = sigmoid_cross_entropy_loss(scores, gt_classes, class_mask)
        else:
            loss_cls = F.cross_entropy(scores, gt_classes, reduction="mean")
        fg_inds = nonzero_tuple((gt_classes >= 0) & (gt_classes < self.num_classes))[0]
        if deltas.shape[1] == self.box_dim:  # class-agnostic
            fg_deltas = deltas[fg_inds]
        else:
            fg_deltas = deltas.view(-1, self.num_classes, self.box_dim)[fg_inds, gt_classes[fg_inds]]
        loss_box_reg = dense_box_regression_loss(
            [proposal_boxes[fg_inds]], self.box2box_transform, [fg_deltas.unsqueeze(0)],
            [gt_boxes[fg_inds]], ..., self.box_reg_loss_type, self.smooth_l1_beta,
        )  # fmt: skip
        loss_box_reg = loss_box_reg / max(gt_classes.numel(), 1.0)
        losses = {"loss_cls": loss_cls, "loss_box_reg": loss_box_reg}
        return {k: v * self.loss_weight.get(k, 1.0) for k, v in losses.items()}

    def predict_boxes(
        self, predictions: tuple[torch.Tensor, torch.Tensor], proposals: Sequence[Instances]
    ) -> list[torch.Tensor]:
        """Per image, decoded class-specific boxes ``Tensor[Ri, K*B]`` (or ``[Ri, B]``)."""
        if not proposals:
            return []
        _, deltas = predictions
        proposal_boxes = cat([p.proposal_boxes.tensor for p in proposals], dim=0)
        boxes = self.box2box_transform.apply_deltas(deltas, proposal_boxes)
        return list(boxes.split([len(p) for p in proposals]))

    def predict_probs(
        self, predictions: tuple[torch.Tensor, torch.Tensor], proposals: Sequence[Instances]
    ) -> list[torch.Tensor]:
        """Per image, class probabilities ``Tensor[Ri, K+1]``."""
        scores, _ = predictions
        probs = scores.sigmoid() if self.use_sigmoid_ce else F.softmax(scores, dim=-1)
        return list(probs.split([len(p) for p in proposals]))

    def inference(
        self, predictions: tuple[torch.Tensor, torch.Tensor], proposals: Sequence[Instances]
    ) -> tuple[list[Instances], list[torch.Tensor]]:
        """Detections per image (see :func:`fast_rcnn_inference`; rotated boxes when ``rotated``)."""
        return fast_rcnn_inference(
            self.predict_boxes(predictions, proposals), self.predict_probs(predictions, proposals),
            [p.image_size for p in proposals], self.test_score_thresh, self.test_nms_thresh,
            self.test_topk_per_image, rotated=self.rotated,
        )  # fmt: skip


@attrs.define(frozen=True, kw_only=True)
class FastRCNNOutputLayersConfig(BoxPredictorConfig):
    """Softmax box predictor: box coding weights, class-agnostic regression, box loss."""

    name: ClassVar[str] = "FastRCNNOutputLayers"
    bbox_reg_weights: tuple[float, ...] = attrs.field(
        default=(10.0, 10.0, 5.0, 5.0), validator=check.length(4)
    )
    cls_agnostic_bbox_reg: bool = False
    bbox_reg_loss_type: str = attrs.field(default="smooth_l1", validator=check.one_of(BOX_REG_LOSS_TYPES))
    smooth_l1_beta: float = attrs.field(default=0.0, validator=check.at_least(0.0))
    bbox_reg_loss_weight: float = 1.0
    use_sigmoid_ce: bool = False
    use_fed_loss: bool = False
    fed_loss_num_classes: int = attrs.field(default=50, validator=check.at_least(1))
    fed_loss_freq_weight_power: float = 0.5
    """The power of the image counts that weight the federated loss's class sampling (for the trainer,
    which computes the weights from the training datasets' metadata)."""

    def __attrs_post_init__(self) -> None:
        if self.use_fed_loss and not self.use_sigmoid_ce:
            raise ConfigProblem("the federated loss needs use_sigmoid_ce: true", key="use_fed_loss")


@ROI_BOX_PREDICTOR_REGISTRY.register(FastRCNNOutputLayersConfig)
def build_fast_rcnn_output_layers(
    config: FastRCNNOutputLayersConfig,
    input_shape: ShapeSpec,
    num_classes: int,
    test_score_thresh: float,
    test_nms_thresh: float,
    test_topk_per_image: int,
) -> FastRCNNOutputLayers:
    """``FastRCNNOutputLayers`` on box features of ``input_shape``."""
    return FastRCNNOutputLayers(
        **output_layers_kwargs(config, Box2BoxTransform(config.bbox_reg_weights), input_shape, num_classes),
        test_score_thresh=test_score_thresh,
        test_nms_thresh=test_nms_thresh,
        test_topk_per_image=test_topk_per_image,
    )


def output_layers_kwargs(
    config: FastRCNNOutputLayersConfig, box2box_transform: Any, input_shape: ShapeSpec, num_classes: int
) -> dict[str, Any]:
    """The constructor arguments an output-layers config gives, for ``FastRCNNOutputLayers`` and its
    subclasses (the rotated one differs only in ``box2box_transform``)."""
    return dict(
        input_shape=input_shape, box2box_transform=box2box_transform, num_classes=num_classes,
        cls_agnostic_bbox_reg=config.cls_agnostic_bbox_reg, smooth_l1_beta=config.smooth_l1_beta,
        box_reg_loss_type=config.bbox_reg_loss_type,
        loss_weight={"loss_cls": 1.0, "loss_box_reg": config.bbox_reg_loss_weight},
        use_sigmoid_ce=config.use_sigmoid_ce, use_fed_loss=config.use_fed_loss,
        fed_loss_num_classes=config.fed_loss_num_classes,
    )  # fmt: skip
