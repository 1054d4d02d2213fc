import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dt_config import ConfigError
from dt_models import build_model, detectron2_model_config, load_weights
from dt_models.checkpoint import convert_caffe2_names, load_checkpoint_file
from dt_models.config import GeneralizedRCNNConfig, ProposalNetworkConfig, ResNetConfig
from dt_models.safe_pickle import UnsafePickleError, safe_load_pickle

GOLDEN_CONFIG = Path(__file__).resolve().parent / "data" / "mask_rcnn_R_50_FPN" / "config.yaml"

BASE_RCNN_FPN = """
MODEL:
  META_ARCHITECTURE: "GeneralizedRCNN"
  BACKBONE:
    NAME: "build_resnet_fpn_backbone"
  RESNETS:
    OUT_FEATURES: ["res2", "res3", "res4", "res5"]
  FPN:
    IN_FEATURES: ["res2", "res3", "res4", "res5"]
  ANCHOR_GENERATOR:
    SIZES: [[32], [64], [128], [256], [512]]
    ASPECT_RATIOS: [[0.5, 1.0, 2.0]]
  RPN:
    IN_FEATURES: ["p2", "p3", "p4", "p5", "p6"]
    PRE_NMS_TOPK_TRAIN: 2000
    PRE_NMS_TOPK_TEST: 1000
    POST_NMS_TOPK_TRAIN: 1000
    POST_NMS_TOPK_TEST: 1000
  ROI_HEADS:
    NAME: "StandardROIHeads"
    IN_FEATURES: ["p2", "p3", "p4", "p5"]
  ROI_BOX_HEAD:
    NAME: "FastRCNNConvFCHead"
    NUM_FC: 2
    POOLER_RESOLUTION: 7
  ROI_MASK_HEAD:
    NAME: "MaskRCNNConvUpsampleHead"
    NUM_CONV: 4
    POOLER_RESOLUTION: 14
"""


def _zoo_config(tmp_path, child: str) -> Path:
    (tmp_path / "Base-RCNN-FPN.yaml").write_text(BASE_RCNN_FPN)
    (tmp_path / "COCO").mkdir()
    path = tmp_path / "COCO" / "mask_rcnn.yaml"
    path.write_text(child)
    return path


def test_zoo_config_with_base_matches_dt_defaults(tmp_path):
    path = _zoo_config(
        tmp_path, '_BASE_: "../Base-RCNN-FPN.yaml"\nMODEL:\n  WEIGHTS: "x.pkl"\n  MASK_ON: True\n'
    )
    cfg = detectron2_model_config(path)
    assert isinstance(cfg, GeneralizedRCNNConfig)
    assert set(cfg.roi_heads.branches) == {"mask"} and cfg.roi_heads.branches["mask"].head.num_conv == 4
    assert cfg.roi_heads.box_head.fc_dim == 1024 and cfg.roi_heads.box_pooler.resolution == 7
    assert cfg.proposal_generator.pre_nms_topk_test == 1000
    # dt's own defaults are Base-RCNN-FPN's
    assert cfg.backbone == GeneralizedRCNNConfig().backbone
    assert cfg.proposal_generator == GeneralizedRCNNConfig().proposal_generator


def test_unsupported_keys_are_all_listed(tmp_path):
    child = (
        '_BASE_: "../Base-RCNN-FPN.yaml"\nMODEL:\n  KEYPOINT_ON: True\n'
        "  ROI_KEYPOINT_HEAD:\n    NAME: MyKeypointHead\n  ROI_BOX_HEAD:\n    TRAIN_ON_PRED_BOXES: True\n"
        "  RPN:\n    NMS_TRESH: 0.5\n  ROI_HEADS:\n    NAME: MyROIHeads\n"
    )
    with pytest.raises(ConfigError) as info:
        detectron2_model_config(_zoo_config(tmp_path, child))
    text = "\n".join(info.value.problems)
    assert "MODEL.ROI_KEYPOINT_HEAD.NAME = 'MyKeypointHead' is not supported" in text
    assert "MODEL.ROI_BOX_HEAD.TRAIN_ON_PRED_BOXES = True is not supported" in text
    assert "MODEL.ROI_HEADS.NAME = 'MyROIHeads' is not supported" in text
    assert "MODEL.RPN.NMS_TRESH = 0.5 is not supported by dt (unknown or unused key)" in text


def test_other_architecture_sections_are_ignored_and_rpn_only_translates(tmp_path):
    child = (
        '_BASE_: "../Base-RCNN-FPN.yaml"\nMODEL:\n  META_ARCHITECTURE: ProposalNetwork\n'
        "  RETINANET:\n    NUM_CLASSES: 3\n  ROI_HEADS:\n    NUM_CLASSES: 3\n"
    )
    cfg = detectron2_model_config(_zoo_config(tmp_path, child))
    assert isinstance(cfg, ProposalNetworkConfig)


ROTATED = (
    '_BASE_: "../Base-RCNN-FPN.yaml"\nMODEL:\n  PROPOSAL_GENERATOR: {NAME: RRPN}\n'
    "  ANCHOR_GENERATOR: {NAME: RotatedAnchorGenerator, ANGLES: [[0, 90]]}\n"
    "  RPN: {BBOX_REG_WEIGHTS: [1, 1, 1, 1, 1]}\n  ROI_HEADS: {NAME: RROIHeads}\n"
    "  ROI_BOX_HEAD: {POOLER_TYPE: ROIAlignRotated, BBOX_REG_WEIGHTS: [10, 10, 5, 5, 1]}\n"
)


def test_rotated_faster_rcnn_translates_and_mismatched_parts_are_reported(tmp_path):
    cfg = detectron2_model_config(_zoo_config(tmp_path, ROTATED))
    assert type(cfg.proposal_generator).name == "RRPN" and type(cfg.roi_heads).name == "RROIHeads"
    assert cfg.proposal_generator.anchor_generator.angles == ((0.0, 90.0),)
    assert cfg.roi_heads.box_predictor.bbox_reg_weights == (10.0, 10.0, 5.0, 5.0, 1.0)
    assert not cfg.roi_heads.branches
    wrong = (
        ROTATED.replace("NAME: RotatedAnchorGenerator", "NAME: DefaultAnchorGenerator") + "  MASK_ON: True\n"
    )
    (tmp_path / "wrong").mkdir()
    with pytest.raises(ConfigError) as info:
        detectron2_model_config(_zoo_config(tmp_path / "wrong", wrong))
    text = "\n".join(info.value.problems)
    assert "MODEL.ANCHOR_GENERATOR.NAME = 'DefaultAnchorGenerator' is not supported (dt supports only" in text
    assert "MODEL.MASK_ON = True is not supported with RROIHeads" in text
    (tmp_path / "plain").mkdir()
    plain = detectron2_model_config(_zoo_config(tmp_path / "plain", '_BASE_: "../Base-RCNN-FPN.yaml"\n'))
    assert type(plain.proposal_generator).name == "RPN"  # ANGLES (a default in every dump) is ignored


def test_invalid_translated_values_report_dt_paths(tmp_path):
    child = '_BASE_: "../Base-RCNN-FPN.yaml"\nMODEL:\n  RESNETS:\n    DEPTH: 42\n'
    with pytest.raises(ConfigError, match=r"\$\.backbone\.resnet\.depth: must be one of"):
        detectron2_model_config(_zoo_config(tmp_path, child))


def test_golden_dump_translates():
    cfg = detectron2_model_config(GOLDEN_CONFIG)
    assert cfg.roi_heads.num_classes == 10
    assert cfg.backbone.resnet.width_per_group == 16 and cfg.backbone.out_channels == 64
    assert yaml.safe_load(GOLDEN_CONFIG.read_text())["MODEL"]["MASK_ON"] is True


def _save_pickle(path: Path, obj) -> Path:
    path.write_bytes(pickle.dumps(obj))
    return path


class _Evil:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_rejected_before_running(tmp_path):
    marker = tmp_path / "pwned"
    data = pickle.dumps({"model": {"a": np.zeros(2)}, "__author__": _Evil(str(marker))})
    with pytest.raises(UnsafePickleError, match="posix.system|os.system"):
        safe_load_pickle(data)
    model = torch.nn.Linear(2, 2)
    path = tmp_path / "evil.pkl"
    path.write_bytes(data)
    with pytest.raises(UnsafePickleError):
        load_weights(model, path)
    assert not marker.exists()


def test_pickle_with_builtin_eval_is_rejected():
    payload = b"cbuiltins\neval\n(S'1+1'\ntR."
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        safe_load_pickle(payload)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_safe_pickle_loads_plain_data_and_arrays(protocol):
    obj = {
        "model": {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "s": np.float64(2.5)},
        "l": [1, "x", b"b"],
    }
    out = safe_load_pickle(pickle.dumps(obj, protocol=protocol))
    np.testing.assert_array_equal(out["model"]["w"], obj["model"]["w"])
    assert out["l"] == [1, "x", b"b"] and out["model"]["s"] == 2.5


def test_caffe2_names():
    mapping = convert_caffe2_names(
        ["conv1_w", "res_conv1_bn_s", "res_conv1_bn_b", "res2_0_branch1_w", "res2_0_branch2a_bn_s",
         "res3_1_branch2c_w", "res4_0_branch2b_bn_rm", "fc1000_b"]
    )  # fmt: skip
    assert set(mapping) == {
        "stem.conv1.weight", "stem.conv1.norm.weight", "stem.conv1.norm.bias", "res2.0.shortcut.weight",
        "res2.0.conv1.norm.weight", "res3.1.conv3.weight", "res4.0.conv2.norm.running_mean", "fc1000.bias",
    }  # fmt: skip


def _tiny_resnet():
    from dt_models.build import build_backbone

    cfg = ResNetConfig(
        depth=50, width_per_group=2, stem_out_channels=4, res2_out_channels=8, out_features=("res2",)
    )
    return torch.nn.ModuleDict({"backbone": torch.nn.ModuleDict({"bottom_up": build_backbone(cfg)})})


def test_caffe2_imagenet_pickle_loads_by_suffix(tmp_path):
    model = _tiny_resnet()
    state = model.state_dict()
    blobs = {"conv1_w": np.full(tuple(state["backbone.bottom_up.stem.conv1.weight"].shape), 0.5, np.float32)}
    blobs["res_conv1_bn_s"] = np.full((4,), 2.0, np.float32)
    blobs["res2_0_branch2a_w"] = np.ones(
        tuple(state["backbone.bottom_up.res2.0.conv1.weight"].shape), np.float32
    )
    blobs["res2_0_branch2a_w_momentum"] = np.ones(3, np.float32)
    blobs["fc1000_w"] = np.zeros((10, 4), np.float32)
    report = load_weights(model, _save_pickle(tmp_path / "R-50.pkl", {"blobs": blobs}))
    assert torch.all(model.backbone.bottom_up.stem.conv1.weight == 0.5)
    assert torch.all(model.backbone.bottom_up.stem.conv1.norm.weight == 2.0)
    assert report.unexpected == ("fc1000.weight",)
    assert "backbone.bottom_up.res2.0.conv2.weight" in report.missing
    assert "missing" in report.table() and "fc1000.weight" in report.table()


def test_pth_loading_reports_shape_mismatch(tmp_path):
    src = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    dst = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 5))
    path = tmp_path / "model_final.pth"
    torch.save({"model": src.state_dict(), "iteration": 10}, path)
    report = load_weights(dst, path)
    torch.testing.assert_close(dst[0].weight, src[0].weight)
    assert sorted(m[0] for m in report.shape_mismatch) == ["1.bias", "1.weight"]
    assert report.missing == () and report.unexpected == ()
    assert not report.ok and "shape mismatch" in report.table()
    weights, heuristics = load_checkpoint_file(path)
    assert not heuristics and set(weights) == set(src.state_dict())


def test_pth_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": {}, "x": _Evil(str(tmp_path / "m"))}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_weights(torch.nn.Linear(1, 1), path)
    assert not (tmp_path / "m").exists()


def test_weights_round_trip_through_detectron2_pkl(tmp_path):
    from dtm_helpers import tiny_rcnn_config

    src, dst = build_model(tiny_rcnn_config()), build_model(tiny_rcnn_config())
    blob = {"model": {k: v.numpy() for k, v in src.state_dict().items()}, "__author__": "test"}
    report = load_weights(dst, _save_pickle(tmp_path / "model_final.pkl", blob))
    assert report.ok, report.table()
    for k, v in src.state_dict().items():
        torch.testing.assert_close(dst.state_dict()[k], v)


def test_pkl_zero_dim_arrays_stay_zero_dim(tmp_path):
    bn = torch.nn.BatchNorm2d(3)
    blobs = {name: value.numpy() for name, value in bn.state_dict().items()}
    blobs["num_batches_tracked"] = np.array(7)  # detectron2 checkpoints hold it as a 0-d array
    path = tmp_path / "model_final.pkl"
    path.write_bytes(pickle.dumps({"model": blobs, "__author__": "test"}))
    report = load_weights(torch.nn.BatchNorm2d(3), path)
    assert report.ok, report.table()
    weights, _ = load_checkpoint_file(path)
    assert weights["num_batches_tracked"].shape == () and int(weights["num_batches_tracked"]) == 7
