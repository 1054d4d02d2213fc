import pytest
import torch
from torch import nn

from dt_config import ConfigError, structure
from dt_engine.build import build_optimizer
from dt_engine.config.solver import LayerDecayConfig, SolverConfig
from dt_engine.param_groups import get_vit_lr_decay_rate, optimizer_param_groups
from dt_models.build import build_backbone
from dt_models.config import ViTConfig, ViTSimpleFeaturePyramidConfig

# exponent k of lr_decay_rate ** k for a 12-block ViT, as detectron2's get_vit_lr_decay_rate gives them
DETECTRON2_EXPONENTS = [
    ("backbone.net.pos_embed", 13),
    ("backbone.net.patch_embed.proj.weight", 13),
    ("backbone.net.blocks.0.attn.qkv.weight", 12),
    ("backbone.net.blocks.5.mlp.fc1.bias", 7),
    ("backbone.net.blocks.10.attn.rel_pos_h", 2),
    ("backbone.net.blocks.11.norm1.weight", 1),
    ("backbone.net.blocks.3.residual.conv1.weight", 0),
    ("backbone.simfp_2.0.weight", 0),
    ("backbone.simfp_5.1.norm.weight", 0),
    ("roi_heads.box_head.fc1.weight", 0),
    ("proposal_generator.rpn_head.conv.weight", 0),
    ("blocks.3.attn.qkv.weight", 0),
    ("backbone.bottom_up.blocks.2.x", 10),
]


@pytest.mark.parametrize(("name", "exponent"), DETECTRON2_EXPONENTS)
def test_vit_lr_decay_rate_matches_detectron2(name, exponent):
    assert get_vit_lr_decay_rate(name, lr_decay_rate=0.7, num_layers=12) == pytest.approx(0.7**exponent)
    assert get_vit_lr_decay_rate(name, lr_decay_rate=1.0, num_layers=12) == 1.0


class _Detector(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        net = ViTConfig(
            img_size=32, embed_dim=8, depth=3, num_heads=2, window_size=2, window_block_indexes=(0,),
            residual_block_indexes=(2,), pretrain_img_size=32,
        )  # fmt: skip
        self.backbone = build_backbone(ViTSimpleFeaturePyramidConfig(net=net, out_channels=4, square_pad=0))
        self.roi_heads = nn.Linear(4, 2)


def test_param_groups_apply_layer_decay_and_weight_decay_rules():
    model = _Detector()
    solver = SolverConfig(
        optimizer="AdamW", base_lr=1.0, weight_decay=0.1, weight_decay_norm=0.0,
        weight_decay_overrides={"pos_embed": 0.0, "rel_pos_h": 0.0, "rel_pos_w": 0.0},
        layer_decay=LayerDecayConfig(rate=0.5, num_layers=3),
    )  # fmt: skip
    groups = optimizer_param_groups(model, solver)
    hyper = {id(p): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert set(hyper) == {id(p) for p in named.values()}
    expected = {
        "backbone.net.pos_embed": (0.5**4, 0.0),
        "backbone.net.patch_embed.proj.weight": (0.5**4, 0.1),
        "backbone.net.blocks.0.attn.qkv.weight": (0.5**3, 0.1),
        "backbone.net.blocks.0.attn.rel_pos_h": (0.5**3, 0.0),
        "backbone.net.blocks.1.attn.rel_pos_w": (0.5**2, 0.0),
        "backbone.net.blocks.1.norm1.weight": (0.5**2, 0.0),  # nn.LayerNorm: a norm layer
        "backbone.net.blocks.2.mlp.fc2.bias": (0.5, 0.1),
        "backbone.net.blocks.2.residual.conv1.weight": (1.0, 0.1),
        "backbone.simfp_2.0.weight": (1.0, 0.1),
        "roi_heads.weight": (1.0, 0.1),
    }
    for name, (lr, wd) in expected.items():
        assert hyper[id(named[name])] == (pytest.approx(lr), wd), name
    optimizer = build_optimizer(model, solver)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert sorted({g["lr"] for g in optimizer.param_groups}) == pytest.approx(
        [0.5**4, 0.5**3, 0.5**2, 0.5, 1.0]
    )


def test_bias_lr_factor_replaces_the_decayed_lr_as_in_detectron2():
    model = _Detector()
    solver = SolverConfig(
        base_lr=1.0, bias_lr_factor=2.0, layer_decay=LayerDecayConfig(rate=0.5, num_layers=3)
    )
    groups = optimizer_param_groups(model, solver)
    lr = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert lr[id(model.backbone.net.blocks[0].attn.qkv.bias)] == 2.0
    assert lr[id(model.backbone.net.blocks[0].attn.qkv.weight)] == pytest.approx(0.125)


def test_solver_decay_fields_are_validated_at_their_paths():
    with pytest.raises(ConfigError, match=r"\$\.layer_decay\.rate"):
        structure(SolverConfig, {"layer_decay": {"rate": 1.5}})
    with pytest.raises(ConfigError, match=r"\$\.weight_decay_overrides: .*weight_decay_bias"):
        structure(SolverConfig, {"weight_decay_overrides": {"bias": 0.0}})
    assert structure(SolverConfig, {"weight_decay_norm": None}).weight_decay_norm is None
