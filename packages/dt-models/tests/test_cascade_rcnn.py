"""Cascade R-CNN: stage matching, gradient scaling, score averaging, config checks, names, translation."""

import pytest
import torch
import yaml
from dtm_helpers import square_instances, tiny_mask_branches, tiny_rcnn_config, with_changes

from dt_config import ConfigError, structure, unstructure
from dt_models import build_model, detectron2_model_config
from dt_models.config import (
    CascadeROIHeadsConfig,
    FastRCNNConvFCHeadConfig,
    FastRCNNOutputLayersConfig,
    ModelConfig,
)
from dt_models.layers import scale_gradient
from dt_models.roi_heads import CascadeROIHeads, fast_rcnn_inference
from dt_structures import Boxes, Instances


def _cascade_config(stages: int = 3, mask: bool = True):
    base = tiny_rcnn_config(mask=False)
    ious = (0.5, 0.6, 0.7)[:stages]
    heads = CascadeROIHeadsConfig(
        num_classes=3, batch_size_per_image=32, score_thresh_test=0.0, stage_iou_thresholds=ious,
        box_head=FastRCNNConvFCHeadConfig(fc_dim=16),
        box_predictors=tuple(
            FastRCNNOutputLayersConfig(
                cls_agnostic_bbox_reg=True, bbox_reg_weights=(10.0 * (k + 1),) * 2 + (5.0 * (k + 1),) * 2
            )
            for k in range(stages)
        ),
        branches=tiny_mask_branches() if mask else {},
    )  # fmt: skip
    return with_changes(base, roi_heads=heads)


def _batch():
    g = torch.Generator().manual_seed(2)
    return [
        {
            "image": (torch.rand(3, h, w, generator=g) * 255).to(torch.uint8),
            "instances": square_instances((h, w), [[4, 6, 40, 50], [20, 10, 60, 30]], [0, 2]),
        }
        for h, w in ((96, 128), (80, 64))
    ]


def test_scale_gradient_is_identity_forward_and_scales_backward():
    x = torch.randn(3, 4, requires_grad=True)
    y = scale_gradient(x, 0.25)
    assert torch.equal(y, x)
    (y * torch.arange(4.0)).sum().backward()
    assert torch.allclose(x.grad, torch.arange(4.0).expand(3, 4) * 0.25)


def test_cascade_mask_rcnn_trains_every_stage():
    torch.manual_seed(0)
    model = build_model(_cascade_config())
    heads = model.roi_heads
    assert isinstance(heads, CascadeROIHeads) and heads.num_cascade_stages == 3
    losses = model(_batch())
    expected = {f"loss_{n}_stage{k}" for n in ("cls", "box_reg") for k in range(3)} | {"loss_mask"}
    assert expected <= set(losses) and "loss_cls" not in losses
    sum(losses.values()).backward()
    for k in range(3):
        assert heads.box_predictor[k].cls_score.weight.grad.abs().sum() > 0, k
        assert heads.box_head[k].fc1.weight.grad.abs().sum() > 0, k
    model.eval()
    with torch.no_grad():
        out = model([{"image": _batch()[0]["image"]}])[0]["instances"]
    assert len(out) > 0 and out.pred_masks.shape[1:] == (96, 128)


def test_stage_gradient_into_pooled_features_is_divided_by_the_number_of_stages():
    torch.manual_seed(0)
    heads = build_model(_cascade_config(mask=False)).roi_heads
    feats = [torch.randn(1, 16, s, s) for s in (32, 16, 8, 4)]
    props = Instances((128, 128))
    props.proposal_boxes = Boxes(torch.tensor([[8.0, 8.0, 60.0, 70.0], [30.0, 20.0, 100.0, 90.0]]))
    grads = []
    for training in (True, False):
        heads.train(training)
        leaf = [f.clone().requires_grad_() for f in feats]
        scores, deltas = heads._run_stage(leaf, [props], 1)
        (scores.sum() + deltas.sum()).backward()
        grads.append(leaf[0].grad)
    assert grads[1].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1] / 3)


def test_later_stages_match_at_their_own_iou():
    heads = build_model(_cascade_config(mask=False)).roi_heads
    target = Instances((100, 100))
    target.gt_boxes = Boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0]]))
    target.gt_classes = torch.tensor([1])
    props = Instances((100, 100))
    props.proposal_boxes = Boxes(
        torch.tensor([[0.0, 0.0, 10.0, 6.5], [50.0, 50.0, 60.0, 60.0]])
    )  # IoU 0.65, 0
    labels = [heads._match_and_label_boxes([props], k, [target])[0].gt_classes.tolist() for k in (1, 2)]
    assert labels == [[1, 3], [3, 3]]  # foreground at IoU 0.6, background at 0.7 (background = 3)
    assert props.gt_boxes.tensor[0].tolist() == [0.0, 0.0, 10.0, 10.0]


def test_inference_averages_class_scores_over_stages_and_uses_last_stage_boxes():
    torch.manual_seed(0)
    model = build_model(_cascade_config(stages=2, mask=False)).eval()
    heads = model.roi_heads
    with torch.no_grad():
        for predictor in heads.box_predictor:
            predictor.bbox_pred.weight.zero_()
            predictor.bbox_pred.bias.zero_()  # boxes stay at the proposals
        heads.box_predictor[1].cls_score.weight.zero_()
        heads.box_predictor[1].cls_score.bias.zero_()  # stage 1: uniform class probabilities
    feats = {f"p{i}": torch.randn(1, 16, s, s) for i, s in zip(range(2, 7), (32, 16, 8, 4, 2), strict=True)}
    props = Instances((128, 128))
    props.proposal_boxes = Boxes(torch.tensor([[8.0, 8.0, 60.0, 70.0], [30.0, 20.0, 100.0, 90.0]]))
    with torch.no_grad():
        detections = heads._forward_box(feats, [props])
        pooled = heads.box_pooler([feats[f] for f in heads.box_in_features], [props.proposal_boxes])
        stage0 = heads.box_predictor[0](heads.box_head[0](pooled))[0].softmax(dim=1)
    expected, _ = fast_rcnn_inference(
        [props.proposal_boxes.tensor], [(stage0 + 1 / 4) / 2], [(128, 128)], 0.0, 0.5, 100
    )
    torch.testing.assert_close(detections[0].scores, expected[0].scores)
    torch.testing.assert_close(detections[0].pred_boxes.tensor, expected[0].pred_boxes.tensor)


def test_cascade_config_checks_and_round_trip():
    cfg = _cascade_config()
    assert structure(ModelConfig, yaml.safe_load(yaml.safe_dump(unstructure(cfg)))) == cfg
    assert cfg.gt_fields() == {"gt_boxes", "gt_classes", "gt_masks"}
    data = unstructure(cfg)
    data["roi_heads"]["box_predictors"][1]["cls_agnostic_bbox_reg"] = False
    with pytest.raises(
        ConfigError, match=r"\$\.roi_heads\.box_predictors\.1\.cls_agnostic_bbox_reg: cascade"
    ):
        structure(ModelConfig, data)
    data = unstructure(cfg)
    data["roi_heads"]["box_predictors"] = data["roi_heads"]["box_predictors"][:2]
    with pytest.raises(ConfigError, match=r"\$\.roi_heads\.box_predictors: needs one predictor per stage"):
        structure(ModelConfig, data)
    data = unstructure(cfg)
    data["roi_heads"]["iou_thresholds"] = [0.6]
    with pytest.raises(ConfigError, match=r"\$\.roi_heads\.iou_thresholds: the first stage samples"):
        structure(ModelConfig, data)


def test_cascade_state_dict_names_are_detectron2_s():
    keys = set(build_model(_cascade_config()).state_dict())
    assert {"roi_heads.box_head.2.fc2.weight", "roi_heads.box_predictor.0.cls_score.bias"} <= keys
    assert (
        build_model(_cascade_config()).state_dict()["roi_heads.box_predictor.1.bbox_pred.weight"].shape[0]
        == 4
    )


def test_detectron2_cascade_yaml_translation(tmp_path):
    path = tmp_path / "cascade.yaml"
    path.write_text(
        "MODEL:\n  MASK_ON: True\n  ROI_HEADS:\n    NAME: CascadeROIHeads\n  ROI_BOX_HEAD:\n"
        "    NAME: FastRCNNConvFCHead\n    NUM_FC: 2\n    CLS_AGNOSTIC_BBOX_REG: True\n"
        "    SMOOTH_L1_BETA: 0.5\n  ROI_BOX_CASCADE_HEAD:\n    IOUS: [0.5, 0.55]\n"
        "    BBOX_REG_WEIGHTS: [[10, 10, 5, 5], [20, 20, 10, 10]]\n"
    )
    heads = detectron2_model_config(path).roi_heads
    assert isinstance(heads, CascadeROIHeadsConfig) and heads.stage_iou_thresholds == (0.5, 0.55)
    assert [p.bbox_reg_weights for p in heads.box_predictors] == [(10, 10, 5, 5), (20, 20, 10, 10)]
    assert all(p.smooth_l1_beta == 0.5 and p.cls_agnostic_bbox_reg for p in heads.box_predictors)
    assert set(heads.branches) == {"mask"} and heads.box_head.num_fc == 2
