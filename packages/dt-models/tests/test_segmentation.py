"""Semantic FPN and Panoptic FPN: the head, sem_seg_postprocess, the panoptic combination rules."""

import pytest
import torch
from dtm_helpers import square_instances, tiny_rcnn_config
from torch.nn import functional as F

from dt_config import ConfigError, structure
from dt_models import build_model
from dt_models.config import ModelConfig, ResNetConfig, ResNetFPNConfig, StandardROIHeadsConfig
from dt_models.layers import ShapeSpec
from dt_models.meta_arch import PanopticFPNConfig, SemanticSegmentorConfig, sem_seg_postprocess
from dt_models.meta_arch.panoptic_fpn import combine_semantic_and_instance_outputs
from dt_models.meta_arch.sem_seg_head import SemSegFPNHead, SemSegFPNHeadConfig
from dt_structures import Boxes, Instances


def tiny_backbone() -> ResNetFPNConfig:
    resnet = ResNetConfig(width_per_group=4, stem_out_channels=8, res2_out_channels=16)
    return ResNetFPNConfig(resnet=resnet, out_channels=16)


def tiny_head(**changes) -> SemSegFPNHeadConfig:
    return SemSegFPNHeadConfig(**{"num_classes": 4, "conv_dims": 8, "norm": "", **changes})


def test_sem_seg_postprocess_crops_padding_then_resizes():
    logits = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(2, 4, 6)
    out = sem_seg_postprocess(logits, (2, 3), 4, 6)
    assert out.shape == (2, 4, 6)
    expected = F.interpolate(logits[None, :, :2, :3], size=(4, 6), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(out, expected)


def test_head_towers_and_detectron2_names():
    shapes = {f"p{k}": ShapeSpec(channels=16, stride=2**k) for k in (5, 2, 4, 3)}
    head = SemSegFPNHead(shapes, num_classes=4, conv_dims=32, common_stride=4, norm="GN")
    assert head.in_features == ["p2", "p3", "p4", "p5"]  # sorted by stride
    kinds = {name: [type(m).__name__ for m in getattr(head, name)] for name in head.in_features}
    assert kinds["p2"] == ["Conv2d"]
    assert kinds["p3"] == ["Conv2d", "Upsample"]
    assert kinds["p5"] == ["Conv2d", "Upsample"] * 3
    names = set(head.state_dict())
    assert {"p2.0.weight", "p2.0.norm.weight", "p5.4.weight", "predictor.weight", "predictor.bias"} <= names
    assert "p2.0.bias" not in names  # no conv bias under a norm, as detectron2


def test_head_loss_ignores_pixels_and_is_weighted():
    torch.manual_seed(0)
    head = SemSegFPNHead(
        {"p2": ShapeSpec(channels=3, stride=4)}, num_classes=3, conv_dims=4, common_stride=4,
        loss_weight=2.0, ignore_value=255,
    ).train()  # fmt: skip
    features = {"p2": torch.randn(1, 3, 2, 2)}
    targets = torch.full((1, 8, 8), 255, dtype=torch.long)
    targets[0, 1, 2] = 1
    targets[0, 5, 6] = 2
    _, losses = head(features, targets)
    logits = F.interpolate(head.layers(features), scale_factor=4, mode="bilinear", align_corners=False)
    log_probs = logits.log_softmax(dim=1)
    expected = -(log_probs[0, 1, 1, 2] + log_probs[0, 2, 5, 6]) / 2 * 2.0
    torch.testing.assert_close(losses["loss_sem_seg"], expected)


def test_semantic_segmentor_trains_and_outputs_at_requested_size():
    model = build_model(SemanticSegmentorConfig(backbone=tiny_backbone(), sem_seg_head=tiny_head()))
    image = torch.rand(3, 50, 60) * 255
    sem_seg = torch.randint(0, 4, (50, 60))
    losses = model.train()([{"image": image, "sem_seg": sem_seg}])
    assert set(losses) == {"loss_sem_seg"} and torch.isfinite(losses["loss_sem_seg"])
    losses["loss_sem_seg"].backward()
    with torch.no_grad():
        out = model.eval()([{"image": image, "height": 100, "width": 120}, {"image": image}])
    assert out[0]["sem_seg"].shape == (4, 100, 120) and out[1]["sem_seg"].shape == (4, 50, 60)
    with pytest.raises(ValueError, match="needs 'sem_seg' in every input"):
        model.train()([{"image": image}])


def instances(size, scores, classes, masks) -> Instances:
    inst = Instances(size)
    inst.scores = torch.tensor(scores)
    inst.pred_classes = torch.tensor(classes)
    inst.pred_masks = torch.stack(masks)
    inst.pred_boxes = Boxes(torch.zeros(len(scores), 4))
    return inst


def box_mask(size, y0, y1, x0, x1) -> torch.Tensor:
    mask = torch.zeros(size, dtype=torch.bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_combination_rules_on_crafted_maps():
    size = (8, 8)
    a = box_mask(size, 0, 4, 0, 4)  # 16 px
    b = box_mask(size, 2, 6, 2, 6)  # 16 px, 4 of them under a
    c = box_mask(size, 0, 4, 0, 3)  # entirely under a
    empty = torch.zeros(size, dtype=torch.bool)
    late = box_mask(size, 6, 8, 6, 8)  # free, but its score is below the threshold
    # given out of score order: the combination sorts by score
    inst = instances(size, [0.7, 0.4, 0.9, 0.6, 0.8], [5, 6, 2, 7, 3], [c, late, a, empty, b])
    semantic = torch.zeros(size, dtype=torch.long)
    semantic[:, 6:] = 1  # 16 px, none under an instance
    semantic[7, 0:4] = 3  # 4 px: below the stuff area limit
    panoptic, info = combine_semantic_and_instance_outputs(inst, semantic, 0.5, 5, 0.5)
    assert panoptic.dtype == torch.int32 and panoptic.shape == size
    assert [s["id"] for s in info] == [1, 2, 3]
    assert info[0] == {
        "id": 1,
        "isthing": True,
        "score": pytest.approx(0.9),
        "category_id": 2,
        "instance_id": 2,
    }
    assert info[1] == {
        "id": 2,
        "isthing": True,
        "score": pytest.approx(0.8),
        "category_id": 3,
        "instance_id": 4,
    }
    assert torch.equal(panoptic == 1, a)
    assert torch.equal(panoptic == 2, b & ~a)  # b overlaps a by 4/16 <= 0.5: it keeps its free pixels
    stuff = (semantic == 1) & ~a & ~b
    assert info[2] == {"id": 3, "isthing": False, "category_id": 1, "area": int(stuff.sum())}
    assert torch.equal(panoptic == 3, stuff)
    assert int((panoptic == 0).sum()) == 64 - 16 - 12 - int(stuff.sum())  # label 0 and label 3 stay free


def test_combination_overlap_threshold_is_strict_and_stuff_limit_inclusive():
    size = (4, 4)
    a = box_mask(size, 0, 2, 0, 4)  # 8 px
    half = box_mask(size, 1, 3, 0, 4)  # 8 px, exactly half under a
    inst = instances(size, [0.9, 0.8], [0, 1], [a, half])
    semantic = torch.full(size, 2, dtype=torch.long)
    panoptic, info = combine_semantic_and_instance_outputs(inst, semantic, 0.5, 4, 0.5)
    assert [s["isthing"] for s in info] == [True, True, False]  # overlap 0.5 is not > 0.5; 4 px >= 4
    assert info[2]["area"] == 4
    panoptic, info = combine_semantic_and_instance_outputs(inst, semantic, 0.49, 5, 0.5)
    assert [s["isthing"] for s in info] == [True, False]  # half is skipped: 0.5 > 0.49
    assert info[1]["area"] == 8


def tiny_panoptic_config(**changes) -> PanopticFPNConfig:
    rcnn = tiny_rcnn_config(mask=True, num_classes=3)
    return PanopticFPNConfig(**{
        "backbone": rcnn.backbone, "proposal_generator": rcnn.proposal_generator, "roi_heads": rcnn.roi_heads,
        "sem_seg_head": tiny_head(), "combine_stuff_area_thresh": 1, "combine_instances_score_thresh": 0.0,
        **changes,
    })  # fmt: skip


def test_panoptic_fpn_trains_with_weighted_instance_losses():
    inputs = [{
        "image": torch.rand(3, 64, 64) * 255, "sem_seg": torch.randint(0, 4, (64, 64)),
        "instances": square_instances((64, 64), [[4, 4, 30, 30], [30, 20, 60, 50]], [0, 2]),
    }]  # fmt: skip
    torch.manual_seed(0)
    model = build_model(tiny_panoptic_config()).train()
    torch.manual_seed(1)
    losses = model(inputs)
    assert {"loss_sem_seg", "loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg", "loss_mask"} <= set(
        losses
    )
    sum(losses.values()).backward()
    torch.manual_seed(0)
    halved = build_model(tiny_panoptic_config(instance_loss_weight=0.5)).train()
    torch.manual_seed(1)
    halved_losses = halved(inputs)
    for key in ("loss_cls", "loss_box_reg", "loss_mask"):
        torch.testing.assert_close(halved_losses[key], losses[key] * 0.5)
    for key in ("loss_sem_seg", "loss_rpn_cls"):
        torch.testing.assert_close(halved_losses[key], losses[key])


def test_panoptic_fpn_outputs():
    model = build_model(tiny_panoptic_config()).eval()
    with torch.no_grad():
        out = model([{"image": torch.rand(3, 64, 64) * 255, "height": 96, "width": 80}])[0]
    assert set(out) == {"sem_seg", "instances", "panoptic_seg"}
    ids, info = out["panoptic_seg"]
    assert ids.shape == (96, 80) and out["sem_seg"].shape == (4, 96, 80)
    assert sorted(int(i) for i in ids.unique() if i > 0) == [s["id"] for s in info]
    for s in info:
        if not s["isthing"]:
            assert s["area"] == int((ids == s["id"]).sum())


def test_config_checks():
    with pytest.raises(ConfigError, match=r"\$\.roi_heads: PanopticFPN needs a mask branch"):
        structure(ModelConfig, {"name": "PanopticFPN", "roi_heads": {"name": "StandardROIHeads"}})
    with pytest.raises(
        ConfigError, match=r"\$\.sem_seg_head\.in_features: \['p9'\] are not backbone outputs"
    ):
        structure(ModelConfig, {"name": "SemanticSegmentor", "sem_seg_head": {"in_features": ["p2", "p9"]}})
    with pytest.raises(ConfigError, match=r"\$\.sem_seg_head\.common_stride: must be a power of 2"):
        structure(ModelConfig, {"name": "SemanticSegmentor", "sem_seg_head": {"common_stride": 6}})
    assert isinstance(PanopticFPNConfig().roi_heads, StandardROIHeadsConfig)
