"""The shipped recipes load, round-trip, and hold detectron2's ViTDet settings."""

import pytest

import dt_vitdet
from dt_config import ConfigError
from dt_engine.config.experiment import dump_config, load_experiment
from dt_models.config import (
    CascadeROIHeadsConfig,
    MViTFPNConfig,
    StandardROIHeadsConfig,
    ViTSimpleFeaturePyramidConfig,
)
from dt_vitdet.trainer import ViTDetTrainerConfig

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


def test_every_recipe_is_listed():
    assert set(dt_vitdet.list_configs()) == {name for name, *_ in RECIPES} | set(MVIT_RECIPES) | {
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
    assert cfg.workflow == ViTDetTrainerConfig(image_size=1024, min_scale=0.1, max_scale=2.0, pad=False)


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
