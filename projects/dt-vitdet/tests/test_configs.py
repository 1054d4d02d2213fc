"""The shipped recipes load, round-trip, and hold detectron2's ViTDet settings."""

import pytest
import torch

import dt_vitdet
from dt_config import ConfigError
from dt_engine.config.experiment import dump_config, load_experiment
from dt_engine.lsj import LSJTrainerConfig
from dt_models import build_model
from dt_models.config import (
    CascadeROIHeadsConfig,
    MViTFPNConfig,
    StandardROIHeadsConfig,
    SwinFPNConfig,
    ViTSimpleFeaturePyramidConfig,
)
from dt_vitdet.multiscale_crop import MultiScaleCropTrainerConfig

# size: (embed_dim, depth, num_heads, drop_path_rate, globally attending blocks, layer decay rate)
VITS = {
    "b": (768, 12, 12, 0.1, (2, 5, 8, 11), 0.7),
    "l": (1024, 24, 16, 0.4, (5, 11, 17, 23), 0.8),
    "h": (1280, 32, 16, 0.5, (7, 15, 23, 31), 0.9),
}
RECIPES = [
    ("COCO/mask_rcnn_vitdet_b_100ep.yaml", "b", StandardROIHeadsConfig, 184375),
    ("COCO/mask_rcnn_vitdet_l_100ep.yaml", "l", StandardROIHeadsConfig, 184375),
    ("COCO/mask_rcnn_vitdet_h_75ep.yaml", "h", StandardROIHeadsConfig, 138281),
    ("COCO/cascade_mask_rcnn_vitdet_b_100ep.yaml", "b", CascadeROIHeadsConfig, 184375),
    ("COCO/cascade_mask_rcnn_vitdet_l_100ep.yaml", "l", CascadeROIHeadsConfig, 184375),
    ("COCO/cascade_mask_rcnn_vitdet_h_75ep.yaml", "h", CascadeROIHeadsConfig, 138281),
]

# name: (embed_dim, depth, num_heads, last_block_indexes, drop_path_rate, base_lr, max_iter, steps)
MVIT_RECIPES = {
    "COCO/cascade_mask_rcnn_mvitv2_b_in21k_100ep.yaml": (
        96,
        24,
        1,
        (1, 4, 20, 23),
        0.4,
        8e-5,
        184375,
        (163889, 177546),
    ),
    "COCO/cascade_mask_rcnn_mvitv2_l_in21k_50ep.yaml": (
        144,
        48,
        2,
        (1, 7, 43, 47),
        0.5,
        8e-5,
        92187,
        (81944, 88773),
    ),
    "COCO/cascade_mask_rcnn_mvitv2_h_in21k_36ep.yaml": (
        192,
        80,
        3,
        (3, 11, 71, 79),
        0.6,
        1.6e-4,
        67500,
        (52500, 62500),
    ),
}

# name: (embed_dim, num_heads, drop_path_rate, base_lr, max_iter, steps, warmup_iters)
SWIN_RECIPES = {
    "COCO/cascade_mask_rcnn_swin_b_in21k_50ep.yaml": (
        128,
        (4, 8, 16, 32),
        0.4,
        4e-5,
        92187,
        (81944, 88773),
        125,
    ),
    "COCO/cascade_mask_rcnn_swin_l_in21k_50ep.yaml": (
        192,
        (6, 12, 24, 48),
        0.4,
        4e-5,
        92187,
        (81944, 88773),
        125,
    ),
    "LVIS/cascade_mask_rcnn_swin_b_in21k_50ep.yaml": (
        128,
        (4, 8, 16, 32),
        0.3,
        1e-4,
        78125,
        (69444, 75231),
        250,
    ),
    "LVIS/cascade_mask_rcnn_swin_l_in21k_50ep.yaml": (
        192,
        (6, 12, 24, 48),
        0.3,
        1e-4,
        78125,
        (69444, 75231),
        250,
    ),
}

LVIS_100EP = (156250, (138889, 150463))
LVIS_50EP = (78125, (69444, 75231))
# name: (backbone: ViT size | MViTv2 (embed_dim, depth) | "swin", ROI heads, base_lr, (max_iter, steps))
LVIS_RECIPES = {
    "LVIS/mask_rcnn_vitdet_b_100ep.yaml": ("b", StandardROIHeadsConfig, 2e-4, LVIS_100EP),
    "LVIS/mask_rcnn_vitdet_l_100ep.yaml": ("l", StandardROIHeadsConfig, 2e-4, LVIS_100EP),
    "LVIS/mask_rcnn_vitdet_h_100ep.yaml": ("h", StandardROIHeadsConfig, 1e-4, LVIS_100EP),
    "LVIS/cascade_mask_rcnn_vitdet_b_100ep.yaml": ("b", CascadeROIHeadsConfig, 2e-4, LVIS_100EP),
    "LVIS/cascade_mask_rcnn_vitdet_l_100ep.yaml": ("l", CascadeROIHeadsConfig, 2e-4, LVIS_100EP),
    "LVIS/cascade_mask_rcnn_vitdet_h_100ep.yaml": ("h", CascadeROIHeadsConfig, 1e-4, LVIS_100EP),
    "LVIS/cascade_mask_rcnn_mvitv2_b_in21k_100ep.yaml": ((96, 24), CascadeROIHeadsConfig, 1e-4, LVIS_100EP),
    "LVIS/cascade_mask_rcnn_mvitv2_l_in21k_50ep.yaml": ((144, 48), CascadeROIHeadsConfig, 4e-5, LVIS_50EP),
    "LVIS/cascade_mask_rcnn_mvitv2_h_in21k_50ep.yaml": ((192, 80), CascadeROIHeadsConfig, 2e-5, LVIS_50EP),
    "LVIS/cascade_mask_rcnn_swin_b_in21k_50ep.yaml": ("swin", CascadeROIHeadsConfig, 1e-4, LVIS_50EP),
    "LVIS/cascade_mask_rcnn_swin_l_in21k_50ep.yaml": ("swin", CascadeROIHeadsConfig, 1e-4, LVIS_50EP),
}

MVITV2_3X = (1.6e-4, 67500, (52500, 62500))
# name: (embed_dim, depth, num_heads, last_block_indexes, drop_path_rate, cascade, LSJ,
#        (base_lr, max_iter, steps))
MVITV2_PROJECT_RECIPES = {
    "MViTv2/mask_rcnn_mvitv2_t_3x.yaml": (96, 10, 1, (0, 2, 7, 9), 0.2, False, False, MVITV2_3X),
    "MViTv2/cascade_mask_rcnn_mvitv2_t_3x.yaml": (96, 10, 1, (0, 2, 7, 9), 0.2, True, False, MVITV2_3X),
    "MViTv2/cascade_mask_rcnn_mvitv2_s_3x.yaml": (96, 16, 1, (0, 2, 13, 15), 0.2, True, False, MVITV2_3X),
    "MViTv2/cascade_mask_rcnn_mvitv2_b_3x.yaml": (96, 24, 1, (1, 4, 20, 23), 0.4, True, False, MVITV2_3X),
    "MViTv2/cascade_mask_rcnn_mvitv2_b_in21k_3x.yaml": (
        96,
        24,
        1,
        (1, 4, 20, 23),
        0.4,
        True,
        False,
        MVITV2_3X,
    ),
    "MViTv2/cascade_mask_rcnn_mvitv2_l_in21k_lsj_50ep.yaml": (
        144,
        48,
        2,
        (1, 7, 43, 47),
        0.5,
        True,
        True,
        (1e-4, 92187, (81944, 88773)),
    ),
    "MViTv2/cascade_mask_rcnn_mvitv2_h_in21k_lsj_3x.yaml": (
        192,
        80,
        3,
        (3, 11, 71, 79),
        0.6,
        True,
        True,
        MVITV2_3X,
    ),
}


def test_every_recipe_is_listed():
    recipes = {name for name, *_ in RECIPES} | set(MVIT_RECIPES) | set(SWIN_RECIPES) | set(LVIS_RECIPES)
    assert set(dt_vitdet.list_configs()) == recipes | set(MVITV2_PROJECT_RECIPES) | {
        "shapes/mask_rcnn_vitdet_narrow.yaml",
        "shapes/cascade_mask_rcnn_vitdet_narrow.yaml",
        "shapes/cascade_mask_rcnn_mvitv2_narrow.yaml",
    }
    with pytest.raises(KeyError, match="mask_rcnn_vitdet_b_100ep"):
        dt_vitdet.get_config_file("COCO/mask_rcnn_vitdet_x.yaml")


@pytest.mark.parametrize(("name", "size", "heads_type", "max_iter"), RECIPES)
def test_recipes_hold_detectron2_settings(name, size, heads_type, max_iter):
    cfg = load_experiment(dt_vitdet.get_config_file(name))
    embed_dim, depth, num_heads, drop_path, global_blocks, decay = VITS[size]
    backbone = cfg.model.backbone
    assert isinstance(backbone, ViTSimpleFeaturePyramidConfig)
    net = backbone.net
    assert (net.embed_dim, net.depth, net.num_heads, net.drop_path_rate) == (
        embed_dim,
        depth,
        num_heads,
        drop_path,
    )
    assert sorted(set(range(depth)) - set(net.window_block_indexes)) == list(global_blocks)
    assert (net.window_size, net.use_rel_pos, net.img_size, net.patch_size) == (14, True, 1024, 16)
    assert (backbone.out_channels, backbone.square_pad, backbone.norm) == (256, 1024, "LN")
    assert backbone.output_features() == ("p2", "p3", "p4", "p5", "p6")
    assert cfg.model.input_format == cfg.data.input.format == "RGB"
    assert cfg.model.proposal_generator.head_conv_dims == (-1, -1)
    heads = cfg.model.roi_heads
    assert isinstance(heads, heads_type) and heads.num_classes == 80
    assert (heads.box_head.num_conv, heads.box_head.num_fc, heads.box_head.norm) == (4, 1, "LN")
    assert heads.branches["mask"].head.norm == "LN"
    if heads_type is CascadeROIHeadsConfig:
        weights = [p.bbox_reg_weights for p in heads.box_predictors]
        assert weights == [(10, 10, 5, 5), (20, 20, 10, 10), (30, 30, 15, 15)]
        assert heads.stage_iou_thresholds == (0.5, 0.6, 0.7)
    solver = cfg.solver
    assert (solver.optimizer, solver.base_lr, solver.weight_decay, solver.ims_per_batch) == (
        "AdamW",
        1e-4,
        0.1,
        64,
    )
    assert (solver.layer_decay.rate, solver.layer_decay.num_layers) == (decay, depth)
    assert solver.max_iter == max_iter and solver.warmup_iters == 250 and solver.amp.enabled
    assert list(solver.steps) == [int(s * max_iter / 184375) for s in (163889, 177546)]
    if size == "h":  # ViT-H decays norms and position embeddings like other weights
        assert solver.weight_decay_norm is None and solver.weight_decay_overrides == {"pos_embed": 0.1}
    else:
        assert solver.weight_decay_norm == 0.0 and solver.weight_decay_overrides == {"pos_embed": 0.0}
    assert cfg.workflow == LSJTrainerConfig(image_size=1024, min_scale=0.1, max_scale=2.0, pad=False)


@pytest.mark.parametrize("name", dt_vitdet.list_configs())
def test_recipes_round_trip_through_their_dump(name, tmp_path):
    cfg = load_experiment(dt_vitdet.get_config_file(name))
    (tmp_path / "saved.yaml").write_text(dump_config(cfg))
    assert load_experiment(tmp_path / "saved.yaml") == cfg


def test_workflow_options_are_checked_at_their_path():
    path = dt_vitdet.get_config_file("shapes/mask_rcnn_vitdet_narrow.yaml")
    with pytest.raises(ConfigError, match=r"\$\.workflow\.min_scale: must be <= max_scale"):
        load_experiment(path, ["workflow.min_scale=3.0"])
    with pytest.raises(
        ConfigError, match=r"\$\.workflow\.image_sise: unknown key \(did you mean 'image_size'\?\)"
    ):
        load_experiment(path, ["workflow.image_sise=64"])


@pytest.mark.parametrize("name", sorted(MVIT_RECIPES))
def test_mvitv2_recipes_hold_detectron2_settings(name):
    cfg = load_experiment(dt_vitdet.get_config_file(name))
    embed_dim, depth, num_heads, last_blocks, drop_path, base_lr, max_iter, steps = MVIT_RECIPES[name]
    backbone = cfg.model.backbone
    assert isinstance(backbone, MViTFPNConfig) and (backbone.norm, backbone.square_pad) == ("LN", 1024)
    mvit = backbone.mvit
    assert (mvit.embed_dim, mvit.depth, mvit.num_heads, mvit.last_block_indexes) == (
        embed_dim,
        depth,
        num_heads,
        last_blocks,
    )
    assert (mvit.drop_path_rate, mvit.norm_eps, mvit.residual_pooling, mvit.use_rel_pos) == (
        drop_path,
        1e-6,
        True,
        True,
    )
    assert mvit.use_act_checkpoint == (depth == 80)
    assert isinstance(cfg.model.roi_heads, CascadeROIHeadsConfig)
    solver = cfg.solver
    assert (solver.base_lr, solver.max_iter, solver.steps, solver.layer_decay.rate) == (
        base_lr,
        max_iter,
        steps,
        1.0,
    )
    assert (solver.weight_decay, solver.weight_decay_norm, solver.weight_decay_overrides) == (
        0.1,
        0.0,
        {"pos_embed": 0.0},
    )
    assert cfg.workflow.image_size == 1024 and cfg.model.input_format == "RGB"


def _box_predictors(heads):
    return heads.box_predictors if isinstance(heads, CascadeROIHeadsConfig) else (heads.box_predictor,)


@pytest.mark.parametrize("name", sorted(LVIS_RECIPES))
def test_lvis_recipes_hold_detectron2_settings(name):
    cfg = load_experiment(dt_vitdet.get_config_file(name))
    backbone, heads_type, base_lr, (max_iter, steps) = LVIS_RECIPES[name]
    heads = cfg.model.roi_heads
    assert isinstance(heads, heads_type)
    assert (heads.num_classes, heads.score_thresh_test, heads.detections_per_image) == (1203, 0.02, 300)
    for predictor in _box_predictors(heads):  # sigmoid + federated loss, classes sampled by freq ** 0.5
        assert (predictor.use_sigmoid_ce, predictor.use_fed_loss) == (True, True)
        assert predictor.fed_loss_freq_weight_power == 0.5
    if heads_type is CascadeROIHeadsConfig:
        weights = [p.bbox_reg_weights for p in heads.box_predictors]
        assert weights == [(10, 10, 5, 5), (20, 20, 10, 10), (30, 30, 15, 15)]
        assert all(p.cls_agnostic_bbox_reg for p in heads.box_predictors)
    data = cfg.data
    assert (data.datasets.train, data.datasets.test) == (("lvis_v1_train",), ("lvis_v1_val",))
    assert (data.loader.sampler, data.loader.repeat_threshold) == ("RepeatFactorTrainingSampler", 0.001)
    assert (cfg.test.detections_per_image, cfg.test.eval_period) == (300, 30000)
    solver = cfg.solver
    assert (solver.base_lr, solver.max_iter, solver.steps, solver.warmup_iters) == (
        base_lr,
        max_iter,
        steps,
        250,
    )
    assert (solver.optimizer, solver.ims_per_batch, solver.amp.enabled) == ("AdamW", 64, True)
    model = cfg.model.backbone
    if backbone in VITS:
        embed_dim, depth, _, drop_path, _, decay = VITS[backbone]
        drop_path = 0.4 if backbone == "h" else drop_path  # LVIS ViT-H drops fewer paths than COCO's
        assert (model.net.embed_dim, model.net.depth, model.net.drop_path_rate) == (
            embed_dim,
            depth,
            drop_path,
        )
        assert (solver.layer_decay.rate, solver.layer_decay.num_layers) == (decay, depth)
    elif backbone == "swin":
        assert isinstance(model, SwinFPNConfig) and model.swin.drop_path_rate == 0.3
    else:
        assert isinstance(model, MViTFPNConfig) and (model.mvit.embed_dim, model.mvit.depth) == backbone
    assert cfg.workflow == LSJTrainerConfig(image_size=1024, min_scale=0.1, max_scale=2.0, pad=False)


@pytest.mark.parametrize("name", sorted(SWIN_RECIPES))
def test_swin_recipes_hold_detectron2_settings(name):
    cfg = load_experiment(dt_vitdet.get_config_file(name))
    embed_dim, num_heads, drop_path, base_lr, max_iter, steps, warmup = SWIN_RECIPES[name]
    backbone = cfg.model.backbone
    assert isinstance(backbone, SwinFPNConfig)
    swin = backbone.swin
    assert (swin.embed_dim, swin.depths, swin.num_heads, swin.drop_path_rate) == (
        embed_dim,
        (2, 2, 18, 2),
        num_heads,
        drop_path,
    )
    assert (swin.patch_size, swin.window_size, swin.pretrain_img_size, swin.ape) == (4, 7, 224, False)
    assert backbone.output_features() == ("p2", "p3", "p4", "p5", "p6")  # all four stages + max pool
    assert (backbone.norm, backbone.square_pad, backbone.out_channels) == ("LN", 1024, 256)
    assert isinstance(cfg.model.roi_heads, CascadeROIHeadsConfig)
    solver = cfg.solver
    assert (solver.base_lr, solver.max_iter, solver.steps, solver.warmup_iters) == (
        base_lr,
        max_iter,
        steps,
        warmup,
    )
    assert (solver.optimizer, solver.weight_decay, solver.weight_decay_norm) == ("AdamW", 0.05, 0.0)
    assert solver.weight_decay_overrides["relative_position_bias_table"] == 0.0
    assert solver.layer_decay.rate == 1.0 and solver.amp.enabled and solver.ims_per_batch == 64
    assert cfg.workflow == LSJTrainerConfig(image_size=1024, min_scale=0.1, max_scale=2.0, pad=False)


@pytest.mark.parametrize("name", sorted(MVITV2_PROJECT_RECIPES))
def test_mvitv2_project_recipes_hold_detectron2_settings(name):
    cfg = load_experiment(dt_vitdet.get_config_file(name))
    embed_dim, depth, num_heads, last, drop_path, cascade, lsj, (base_lr, max_iter, steps) = (
        MVITV2_PROJECT_RECIPES[name]
    )
    backbone = cfg.model.backbone
    assert isinstance(backbone, MViTFPNConfig) and (backbone.norm, backbone.square_pad) == ("", 0)
    mvit = backbone.mvit
    assert (mvit.embed_dim, mvit.depth, mvit.num_heads, mvit.last_block_indexes, mvit.drop_path_rate) == (
        embed_dim,
        depth,
        num_heads,
        last,
        drop_path,
    )
    assert (mvit.residual_pooling, mvit.norm_eps, mvit.use_act_checkpoint) == (True, 1e-6, depth == 80)
    heads = cfg.model.roi_heads
    mask_head = heads.branches["mask"].head
    if cascade:  # 4conv-1fc box heads and the mask head with per-sample synchronized BN, a 2-conv RPN head
        assert isinstance(heads, CascadeROIHeadsConfig) and heads.stage_iou_thresholds == (0.5, 0.6, 0.7)
        assert (heads.box_head.num_conv, heads.box_head.num_fc, heads.box_head.norm) == (
            4,
            1,
            "naiveSyncBN_N",
        )
        assert mask_head.norm == "naiveSyncBN_N" and cfg.model.proposal_generator.head_conv_dims == (-1, -1)
    else:  # detectron2's standard FPN heads
        assert isinstance(heads, StandardROIHeadsConfig)
        assert (heads.box_head.num_conv, heads.box_head.num_fc, heads.box_head.norm) == (0, 2, "")
        assert mask_head.norm == "" and cfg.model.proposal_generator.head_conv_dims == (-1,)
    assert (mask_head.num_conv, heads.num_classes, heads.score_thresh_test) == (4, 80, 0.05)
    if lsj:
        assert cfg.workflow == LSJTrainerConfig(
            image_size=1024, min_scale=0.1, max_scale=2.0, pad=True, test_resize="input"
        )
    else:
        assert cfg.workflow == MultiScaleCropTrainerConfig(
            crop_prob=0.5, crop_min_sizes=(400, 500, 600), crop_size=(384, 600)
        )
        assert cfg.data.input.min_size_train == tuple(range(480, 801, 32))
        assert (cfg.data.input.max_size_train, cfg.data.input.min_size_test) == (1333, 800)
    assert cfg.model.input_format == cfg.data.input.format == "RGB"
    solver = cfg.solver
    assert (solver.optimizer, solver.base_lr, solver.max_iter, solver.steps, solver.warmup_iters) == (
        "AdamW",
        base_lr,
        max_iter,
        steps,
        250,
    )
    assert (solver.weight_decay, solver.weight_decay_norm, solver.layer_decay.rate) == (0.1, 0.0, 1.0)
    assert solver.weight_decay_overrides == {"pos_embed": 0.0, "rel_pos_h": 0.0, "rel_pos_w": 0.0}
    assert (solver.ims_per_batch, solver.amp.enabled, cfg.test.eval_period) == (64, True, 5000)


# Narrower backbones and heads, so that every recipe builds in the fast suite: depths, windows, stages
# and head structure stay the recipe's.
NARROW = {
    "ViTSimpleFeaturePyramid": ["model.backbone.net.embed_dim=48"],
    "MViTFPN": ["model.backbone.mvit.embed_dim=24"],
    "SwinFPN": ["model.backbone.swin.embed_dim=48"],
}
NARROW_HEADS = [
    "model.backbone.out_channels=32",
    "model.roi_heads.box_head.conv_dim=32",
    "model.roi_heads.box_head.fc_dim=64",
    "model.roi_heads.branches.mask.head.conv_dim=16",
]


@pytest.mark.parametrize("name", dt_vitdet.list_configs())
def test_every_recipe_builds_its_model(name):
    path = dt_vitdet.get_config_file(name)
    family = load_experiment(path).model.backbone.name
    cfg = load_experiment(path, NARROW[family] + NARROW_HEADS)
    # MViTv2 and Swin build on the meta device (parameters without storage: the structure is what is
    # checked); the ViT draws its drop-path rates from a tensor, so it builds on the CPU
    device = "cpu" if family == "ViTSimpleFeaturePyramid" else "meta"
    with torch.device(device):
        model = build_model(cfg.model, device=device)
    assert type(model.backbone).__name__ in ("SimpleFeaturePyramid", "FPN")
    assert list(model.backbone.output_shape()) == list(cfg.model.backbone.output_features())
    if "cascade" in name:
        assert model.roi_heads.num_cascade_stages == len(model.roi_heads.box_predictor) == 3
    assert "mask" in model.roi_heads.branches
