"""Translation of detectron2's SemanticSegmentor and PanopticFPN YAML configs (RetinaNet: test_yaml_eval)."""

import pytest
from test_detectron2_compat import BASE_RCNN_FPN

from dt_config import ConfigError
from dt_models import build_model, detectron2_model_config
from dt_models.meta_arch import PanopticFPN, PanopticFPNConfig, SemanticSegmentor, SemanticSegmentorConfig


def _config(tmp_path, child: str):
    (tmp_path / "Base-RCNN-FPN.yaml").write_text(BASE_RCNN_FPN)
    path = tmp_path / "child.yaml"
    path.write_text('_BASE_: "Base-RCNN-FPN.yaml"\n' + child)
    return detectron2_model_config(path)


def test_semantic_fpn_translates_and_builds(tmp_path):
    cfg = _config(tmp_path, 'MODEL:\n  META_ARCHITECTURE: "SemanticSegmentor"\n  RESNETS:\n    DEPTH: 50\n')
    assert cfg == SemanticSegmentorConfig()  # dt's defaults are detectron2's
    head = cfg.sem_seg_head
    assert (head.num_classes, head.conv_dims, head.common_stride, head.norm, head.ignore_value) == (
        54, 128, 4, "GN", 255,
    )  # fmt: skip
    model = build_model(cfg)
    assert isinstance(model, SemanticSegmentor) and model.sem_seg_head.in_features == ["p2", "p3", "p4", "p5"]


def test_panoptic_fpn_translates_and_builds(tmp_path):
    child = (
        'MODEL:\n  META_ARCHITECTURE: "PanopticFPN"\n  MASK_ON: True\n  SEM_SEG_HEAD:\n    LOSS_WEIGHT: 0.5\n'
        "  PANOPTIC_FPN:\n    INSTANCE_LOSS_WEIGHT: 0.8\n    COMBINE:\n      STUFF_AREA_LIMIT: 1000\n"
        "  ROI_HEADS:\n    NUM_CLASSES: 7\n"
    )
    cfg = _config(tmp_path, child)
    assert isinstance(cfg, PanopticFPNConfig)
    assert cfg.sem_seg_head.loss_weight == 0.5 and cfg.instance_loss_weight == 0.8
    combine = (cfg.combine_overlap_thresh, cfg.combine_stuff_area_thresh, cfg.combine_instances_score_thresh)
    assert combine == (0.5, 1000, 0.5)
    assert cfg.roi_heads.num_classes == 7 and set(cfg.roi_heads.branches) == {"mask"}
    assert isinstance(build_model(cfg), PanopticFPN)


def test_panoptic_fpn_without_masks_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match=r"\$\.roi_heads: PanopticFPN needs a mask branch"):
        _config(tmp_path, 'MODEL:\n  META_ARCHITECTURE: "PanopticFPN"\n')


def test_sem_seg_head_problems_are_listed(tmp_path):
    child = (
        'MODEL:\n  META_ARCHITECTURE: "SemanticSegmentor"\n'
        '  SEM_SEG_HEAD:\n    NAME: "DeepLabHead"\n    CONV_DIM: 3\n'
    )
    with pytest.raises(ConfigError) as info:
        _config(tmp_path, child)
    text = str(info.value)
    assert (
        "MODEL.SEM_SEG_HEAD.NAME = 'DeepLabHead' is not supported (dt supports only 'SemSegFPNHead')" in text
    )
    assert "MODEL.SEM_SEG_HEAD.CONV_DIM = 3 is not supported by dt (unknown or unused key)" in text


def test_sections_of_other_architectures_are_ignored(tmp_path):
    # a Mask R-CNN config ignores SEM_SEG_HEAD / PANOPTIC_FPN, as detectron2 does
    child = (
        "MODEL:\n  MASK_ON: True\n  SEM_SEG_HEAD:\n    NUM_CLASSES: 3\n"
        "  PANOPTIC_FPN:\n    INSTANCE_LOSS_WEIGHT: 2.0\n"
    )
    assert type(_config(tmp_path, child)).__name__ == "GeneralizedRCNNConfig"
    # a semantic segmentor ignores the ROI heads of its Base-RCNN-FPN base
    cfg = _config(
        tmp_path, 'MODEL:\n  META_ARCHITECTURE: "SemanticSegmentor"\n  ROI_HEADS:\n    NUM_CLASSES: 3\n'
    )
    assert isinstance(cfg, SemanticSegmentorConfig)
