"""RetinaNet: parity with detectron2 on the golden narrow R50-FPN, focal loss, labels, losses, decoding."""

import math
from pathlib import Path

import attrs
import pytest
import torch

from dt_config import ConfigError, structure
from dt_models import build_model, detectron2_model_config, load_weights
from dt_models.config import AnchorGeneratorConfig, ModelConfig, ResNetConfig, ResNetFPNConfig
from dt_models.layers.focal_loss import sigmoid_focal_loss
from dt_models.meta_arch import RetinaNet, RetinaNetConfig
from dt_models.meta_arch.retinanet_head import RetinaNetHeadConfig
from dt_structures import Boxes, Instances

MODEL_DIR = Path(__file__).resolve().parent / "data" / "retinanet_R_50_FPN"


def tiny_retinanet_config(**changes) -> RetinaNetConfig:
    """A narrow RetinaNet R50-FPN P3-P7 that runs in well under a second on CPU."""
    resnet = ResNetConfig(
        width_per_group=4, stem_out_channels=8, res2_out_channels=16, out_features=("res3", "res4", "res5")
    )
    backbone = ResNetFPNConfig(
        resnet=resnet, in_features=("res3", "res4", "res5"), out_channels=16, top_block="p6p7"
    )
    return RetinaNetConfig(**{
        "backbone": backbone, "num_classes": 3, "head": RetinaNetHeadConfig(num_convs=1),
        "anchor_generator": AnchorGeneratorConfig(sizes=((16.0, 24.0),), aspect_ratios=((1.0,),)), **changes,
    })  # fmt: skip


def gt(image_size, boxes, classes) -> Instances:
    inst = Instances(image_size)
    inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.gt_classes = torch.tensor(classes, dtype=torch.int64)
    return inst


@pytest.fixture(scope="module")
def golden():
    if not MODEL_DIR.is_dir():
        pytest.fail(f"golden files not found at {MODEL_DIR} (they belong to the repository: restore them)")
    model = build_model(detectron2_model_config(MODEL_DIR / "config.yaml")).eval()
    report = load_weights(model, MODEL_DIR / "model_final.pkl")
    io = torch.load(MODEL_DIR / "io.pt", weights_only=True)
    inputs = [{"image": io["image"], "height": io["height"], "width": io["width"]}]
    with torch.no_grad():
        features = model.backbone(model.preprocess_image(inputs).tensor)
        final = model(inputs)[0]["instances"]
    return dict(io=io, report=report, features=features, final=final, model=model)


def test_golden_checkpoint_loads_every_tensor_by_detectron2_names(golden):
    assert golden["report"].ok, golden["report"].table()


def test_golden_features(golden):
    for name, expected in golden["io"]["features"].items():
        assert (golden["features"][name] - expected).abs().max() <= 1e-3, name


def test_golden_final_detections(golden):
    io, final = golden["io"], golden["final"]
    assert len(final) == len(io["pred_boxes"]) > 0
    assert (final.pred_boxes.tensor - io["pred_boxes"]).abs().max() <= 1e-2
    assert (final.scores - io["scores"]).abs().max() <= 1e-4
    assert torch.equal(final.pred_classes, io["pred_classes"])
    assert final.image_size == (io["height"], io["width"])


def test_golden_config_translates():
    cfg = detectron2_model_config(MODEL_DIR / "config.yaml")
    assert isinstance(cfg, RetinaNetConfig)
    assert (
        cfg.num_classes == 10
        and cfg.head.num_convs == 2
        and cfg.in_features == ("p3", "p4", "p5", "p6", "p7")
    )
    assert cfg.backbone.top_block == "p6p7" and cfg.backbone.top_block_in_feature == "res5"
    assert len(cfg.anchor_generator.sizes) == 5 and cfg.anchor_generator.sizes[0][1] == 32 * 2 ** (1.0 / 3)


def test_sigmoid_focal_loss_hand_computed():
    # logit 0 -> p = 0.5: positive -> alpha * 0.5**2 * log 2; negative -> (1 - alpha) * 0.5**2 * log 2
    # logit log(3) -> p = 0.75: positive -> 0.25 * 0.25**2 * log(4/3); negative -> 0.75 * 0.75**2 * log 4
    logits = torch.tensor([0.0, 0.0, math.log(3.0), math.log(3.0)], dtype=torch.float64)
    targets = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    expected = torch.tensor([
        0.25 * 0.25 * math.log(2), 0.75 * 0.25 * math.log(2),
        0.25 * 0.0625 * math.log(4 / 3), 0.75 * 0.5625 * math.log(4),
    ], dtype=torch.float64)  # fmt: skip
    loss = sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=2.0)
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets, reduction="sum"), expected.sum())
    # gamma 0, no alpha: plain binary cross-entropy
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets, alpha=-1, gamma=0.0), bce)
    with pytest.raises(ValueError, match="same shape"):
        sigmoid_focal_loss(logits, targets[:2])


def test_head_prior_probability_bias():
    model = build_model(tiny_retinanet_config(head=RetinaNetHeadConfig(num_convs=2, prior_prob=0.02)))
    assert torch.allclose(model.head.cls_score.bias.sigmoid(), torch.tensor(0.02))
    assert torch.all(model.head.bbox_pred.bias == 0)
    assert [type(m).__name__ for m in model.head.cls_subnet] == ["Conv2d", "ReLU", "Conv2d", "ReLU"]
    wide = attrs.evolve(tiny_retinanet_config().backbone, out_channels=32)  # GN has 32 groups
    with_norm = build_model(
        tiny_retinanet_config(backbone=wide, head=RetinaNetHeadConfig(num_convs=1, norm="GN"))
    )
    assert [type(m).__name__ for m in with_norm.head.cls_subnet] == ["Conv2d", "GroupNorm", "ReLU"]


def test_label_anchors_foreground_background_ignored():
    model = build_model(tiny_retinanet_config())
    anchors = [Boxes(torch.tensor([[0, 0, 10, 10], [0, 0, 10, 14.0], [50, 50, 60, 60], [0, 0, 10, 30.0]]))]
    labels, matched = model.label_anchors(anchors, [gt((64, 64), [[0, 0, 10, 10]], [2])])
    # IoUs 1, 0.714 (fg), 0 (bg), 0.333 (< 0.4: bg)
    assert labels[0].tolist() == [2, 2, 3, 3]
    assert torch.equal(matched[0][0], torch.tensor([0, 0, 10, 10.0]))
    labels, _ = model.label_anchors(anchors[:1], [gt((64, 64), [[0, 0, 10, 22]], [1])])
    # IoUs 0.4545 (ignored), 0.636 (fg), 0, 0.733 (fg)
    assert labels[0].tolist() == [-1, 1, 3, 1]
    empty, _ = model.label_anchors(anchors, [gt((64, 64), [], [])])
    assert empty[0].tolist() == [3, 3, 3, 3]


def test_training_losses_and_ema_normalizer():
    torch.manual_seed(0)
    model = build_model(tiny_retinanet_config()).train()
    image = torch.rand(3, 64, 96) * 255
    inputs = [{"image": image, "instances": gt((64, 96), [[8, 8, 40, 40], [50, 10, 90, 60]], [0, 2])}]
    losses = model(inputs)
    assert set(losses) == {"loss_cls", "loss_box_reg"}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    assert model.head.cls_score.weight.grad is not None
    anchors = model.anchor_generator(
        [f for f in model.backbone(model.preprocess_image(inputs).tensor).values()]
    )
    labels, _ = model.label_anchors(anchors, [inputs[0]["instances"]])
    num_pos = int(((labels[0] >= 0) & (labels[0] != 3)).sum())
    assert model.loss_normalizer == pytest.approx(0.9 * 100 + 0.1 * num_pos)
    model(inputs)
    assert model.loss_normalizer == pytest.approx(0.9 * (0.9 * 100 + 0.1 * num_pos) + 0.1 * num_pos)


def test_giou_box_loss_trains():
    model = build_model(tiny_retinanet_config(bbox_reg_loss_type="giou")).train()
    inputs = [{"image": torch.rand(3, 64, 64) * 255, "instances": gt((64, 64), [[8, 8, 40, 40]], [1])}]
    losses = model(inputs)
    assert torch.isfinite(losses["loss_box_reg"]) and losses["loss_box_reg"] > 0


def test_decode_topk_per_level_threshold_and_max_detections():
    model = build_model(tiny_retinanet_config(test_topk_candidates=2, detections_per_image=3)).eval()
    level = Boxes(torch.tensor([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10], [60, 0, 70, 10.0]]))
    scores = torch.tensor([[0.9, 0.01], [0.8, 0.7], [0.04, 0.6], [0.3, 0.2]])  # [R=4, K=2]
    deltas = torch.zeros(4, 4)
    out = model.decode_per_level_predictions(level, scores, deltas, 0.05, 2, (80, 80))
    assert out.scores.tolist() == pytest.approx([0.9, 0.8])  # the top 2 above the threshold
    assert out.pred_classes.tolist() == [0, 0]
    assert torch.equal(out.pred_boxes.tensor, level.tensor[:2])
    both = model.decode_multi_level_predictions(
        [level, level], [scores, scores * 0.5], [deltas, deltas], 0.05, 2, (80, 80)
    )
    assert both.scores.tolist() == pytest.approx([0.9, 0.8, 0.45, 0.4])  # finest level first
    kept = model.select_detections(both)  # same boxes and class: NMS keeps one per box, then 3 at most
    assert kept.scores.tolist() == pytest.approx([0.9, 0.8])
    model.test_nms_thresh = 1.0
    assert model.select_detections(both).scores.tolist() == pytest.approx([0.9, 0.8, 0.45])


def test_inference_outputs_at_requested_size():
    model = build_model(tiny_retinanet_config(test_score_thresh=0.0, detections_per_image=7)).eval()
    inputs = [{"image": torch.rand(3, 64, 64) * 255, "height": 128, "width": 96}]
    with torch.no_grad():
        model.head.bbox_pred.weight.zero_()  # boxes are the anchors, which stay visible after clipping
        images = model.preprocess_image(inputs)
        features = [model.extract_features(images)[f] for f in model.head_in_features]
        raw = model.forward_inference(images, features, model.head(features))[0]
        out = model(inputs)
    assert len(raw) == 7 and raw.image_size == (64, 64)
    inst = out[0]["instances"]
    assert inst.image_size == (128, 96) and len(inst) == 7
    assert set(inst.get_fields()) == {"pred_boxes", "scores", "pred_classes"}
    assert inst.scores.tolist() == sorted(inst.scores.tolist(), reverse=True)


def test_config_errors_name_the_path():
    data = {"name": "RetinaNet", "in_features": ["p3", "p9"]}
    with pytest.raises(ConfigError, match=r"\$\.in_features: \['p9'\] are not backbone outputs"):
        structure(ModelConfig, data)
    with pytest.raises(ConfigError, match=r"\$\.head\.num_conv: unknown key"):
        structure(ModelConfig, {"name": "RetinaNet", "head": {"num_conv": 2}})
    with pytest.raises(ConfigError, match=r"\$\.anchor_generator\.sizes: has 2 entries"):
        structure(ModelConfig, {"name": "RetinaNet", "anchor_generator": {"sizes": [[32], [64]]}})
    cfg = structure(ModelConfig, {"name": "RetinaNet", "num_classes": 4})
    assert isinstance(cfg, RetinaNetConfig) and isinstance(build_model(tiny_retinanet_config()), RetinaNet)
