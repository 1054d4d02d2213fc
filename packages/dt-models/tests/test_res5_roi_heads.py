"""C4 models: Res5ROIHeads (res5 on pooled res4 features, shared by the box predictor and the mask head),
RPN on res4, and the dilated-res5 (DC5) backbone."""

import pytest
import torch
import yaml
from dtm_helpers import square_instances

from dt_config import ConfigError, structure, unstructure
from dt_models import build_model, detectron2_model_config
from dt_models.config import (
    AnchorGeneratorConfig,
    GeneralizedRCNNConfig,
    MaskRCNNConvUpsampleHeadConfig,
    ModelConfig,
    Res5HeadConfig,
    Res5ROIHeadsConfig,
    ResNetConfig,
    RPNConfig,
)
from dt_models.roi_heads import Res5ROIHeads


def _c4_config(mask: bool = True) -> GeneralizedRCNNConfig:
    narrow = {"width_per_group": 4, "res2_out_channels": 16}
    return GeneralizedRCNNConfig(
        backbone=ResNetConfig(depth=50, stem_out_channels=8, out_features=("res4",), **narrow),
        proposal_generator=RPNConfig(
            in_features=("res4",),
            anchor_generator=AnchorGeneratorConfig(sizes=((16.0, 32.0, 64.0),)),
            pre_nms_topk_train=200,
            post_nms_topk_train=50,
            pre_nms_topk_test=100,
            post_nms_topk_test=30,
        ),  # fmt: skip
        roi_heads=Res5ROIHeadsConfig(
            num_classes=3,
            batch_size_per_image=16,
            score_thresh_test=0.0,
            res5=Res5HeadConfig(**narrow),
            mask_head=MaskRCNNConvUpsampleHeadConfig(num_conv=0, conv_dim=8) if mask else None,
        ),  # fmt: skip
    )


def _batch():
    g = torch.Generator().manual_seed(1)
    return [
        {
            "image": (torch.rand(3, h, w, generator=g) * 255).to(torch.uint8),
            "instances": square_instances((h, w), [[4, 6, 40, 50], [20, 10, 60, 30]], [0, 2]),
        }
        for h, w in ((64, 96), (80, 64))
    ]


def test_c4_mask_rcnn_trains_and_predicts():
    torch.manual_seed(0)
    model = build_model(_c4_config())
    heads = model.roi_heads
    assert isinstance(heads, Res5ROIHeads)
    assert [b.stride for b in heads.res5] == [2, 1, 1] and heads.res5[-1].out_channels == 128
    assert heads.box_predictor.cls_score.in_features == 128  # the mean of res5's output
    losses = model(_batch())
    assert {"loss_cls", "loss_box_reg", "loss_mask", "loss_rpn_cls", "loss_rpn_loc"} <= set(losses)
    sum(losses.values()).backward()
    assert heads.res5[0].conv1.weight.grad.abs().sum() > 0  # res5 in the heads is trained
    assert heads.mask_head.predictor.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        out = model([{"image": _batch()[0]["image"]}])[0]["instances"]
    assert len(out) > 0 and out.pred_masks.shape == (len(out), 64, 96)


def test_mask_head_reads_res5_output_of_the_detections():
    model = build_model(_c4_config()).eval()
    heads = model.roi_heads
    seen = []
    heads.mask_head.register_forward_pre_hook(lambda _, args: seen.append(args[0].shape))
    with torch.no_grad():
        out = model.inference([{"image": _batch()[0]["image"]}], do_postprocess=False)[0]
    assert seen == [(len(out), 128, 7, 7)]  # res5 output at half the 14x14 pooler resolution


def test_faster_c4_without_masks_and_its_config():
    cfg = _c4_config(mask=False)
    assert cfg.gt_fields() == {"gt_boxes", "gt_classes"}
    assert _c4_config().gt_fields() == {"gt_boxes", "gt_classes", "gt_masks"}
    assert structure(ModelConfig, yaml.safe_load(yaml.safe_dump(unstructure(cfg)))) == cfg
    model = build_model(cfg)
    assert model.roi_heads.mask_head is None
    assert "loss_mask" not in model(_batch())
    data = unstructure(cfg)
    data["roi_heads"]["in_features"] = ["res3", "res4"]
    with pytest.raises(ConfigError, match=r"\$\.roi_heads\.in_features: must have 1 values"):
        structure(ModelConfig, data)
    data["roi_heads"]["in_features"] = ["res4"]
    data["roi_heads"]["res5"]["norm"] = "FrozenBM"
    with pytest.raises(
        ConfigError, match=r"\$\.roi_heads\.res5\.norm: must be one of .*did you mean 'FrozenBN'"
    ):
        structure(ModelConfig, data)


def test_c4_state_dict_uses_detectron2_names():
    keys = set(build_model(_c4_config()).state_dict())
    assert "roi_heads.res5.0.shortcut.weight" in keys and "roi_heads.res5.2.conv3.norm.weight" in keys
    assert (
        "roi_heads.mask_head.predictor.weight" in keys and "roi_heads.box_predictor.cls_score.weight" in keys
    )
    assert not any(k.startswith("backbone.res5") for k in keys)


def test_dc5_backbone_dilates_res5_and_keeps_stride_16(tmp_path):
    path = tmp_path / "dc5.yaml"
    path.write_text(
        "MODEL:\n  RESNETS:\n    OUT_FEATURES: [res5]\n    RES5_DILATION: 2\n"
        "  RPN:\n    IN_FEATURES: [res5]\n    PRE_NMS_TOPK_TEST: 100\n    POST_NMS_TOPK_TEST: 20\n"
        "  ROI_HEADS:\n    NAME: StandardROIHeads\n    IN_FEATURES: [res5]\n    NUM_CLASSES: 2\n"
        "  ROI_BOX_HEAD:\n    NAME: FastRCNNConvFCHead\n    NUM_FC: 2\n    FC_DIM: 16\n"
        "    POOLER_RESOLUTION: 7\n"
    )
    cfg = detectron2_model_config(path)
    assert cfg.backbone.res5_dilation == 2
    model = build_model(cfg).eval()
    assert model.backbone.output_shape()["res5"].stride == 16
    assert model.backbone.res5[0].conv2.dilation == (2, 2) and model.backbone.res5[0].conv2.stride == (1, 1)
    with torch.no_grad():
        features = model.backbone(torch.zeros(1, 3, 64, 96))
    assert features["res5"].shape[-2:] == (4, 6)
