from pathlib import Path

import pytest
import torch

from dt_config import ConfigError, structure
from dt_models.backbone import MViT
from dt_models.build import build_backbone
from dt_models.config import ModelConfig, MViTConfig, MViTFPNConfig

DATA = Path(__file__).parent / "data" / "mvitv2_tiny"
TINY = dict(
    img_size=64, embed_dim=4, mlp_ratio=2.0, depth=5, num_heads=1, last_block_indexes=(0, 2, 3, 4),
    adaptive_kv_stride=2, adaptive_window_size=8, pretrain_img_size=32,
)  # fmt: skip


def test_mvit_matches_detectron2():
    golden = torch.load(DATA / "io.pt", weights_only=True)
    model = MViT(**TINY, drop_path_rate=0.2, use_abs_pos=True, rel_pos_zero_init=False).eval()
    model.load_state_dict(golden["state_dict"])
    with torch.no_grad():
        out = model(golden["input"])
    for name in ("scale2", "scale3", "scale4", "scale5"):
        torch.testing.assert_close(out[name], golden[name], rtol=0, atol=1e-5)


@pytest.mark.parametrize("hw", [(64, 64), (76, 52), (30, 90)])
def test_mvit_shapes_and_strides(hw):
    model = MViT(**TINY).eval()
    out = model(torch.randn(1, 3, *hw))
    shapes = model.output_shape()
    assert [(s.channels, s.stride) for s in shapes.values()] == [(4, 4), (8, 8), (16, 16), (32, 32)]
    size = [(s + 3) // 4 for s in hw]  # the 7x7/4 patch embedding with padding 3
    for name in ("scale2", "scale3", "scale4", "scale5"):
        assert out[name].shape == (1, shapes[name].channels, *size)
        size = [(s + 1) // 2 for s in size]  # 3x3/2 query pooling with padding 1


def test_mvit_rel_pos_tables_and_pooling_strides():
    model = MViT(**TINY)
    first, pooled = model.blocks[0].attn, model.blocks[1].attn
    assert first.pool_k.stride == (2, 2) and pooled.pool_q.stride == (2, 2)
    assert first.rel_pos_h.shape == (31, 4)  # 16 x 16 training grid, queries unpooled
    assert model.blocks[1].pool_skip is not None and model.blocks[1].proj is not None


def test_mvit_drop_path_off_in_eval_and_checkpointing_keeps_gradients():
    torch.manual_seed(0)
    dropping = MViT(**TINY, drop_path_rate=0.9).eval()
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(dropping(x)["scale5"], dropping(x)["scale5"], rtol=0, atol=0)
    plain, recomputed = MViT(**TINY), MViT(**TINY, use_act_checkpoint=True)
    recomputed.load_state_dict(plain.state_dict())
    grads = []
    for model in (plain, recomputed):
        model(x)["scale5"].sum().backward()
        grads.append(model.blocks[2].attn.rel_pos_h.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_mvit_fpn_and_config_errors():
    config = MViTFPNConfig(mvit=MViTConfig(**TINY), out_channels=8)
    assert config.output_features() == ("p2", "p3", "p4", "p5", "p6")
    out = build_backbone(config).eval()(torch.randn(1, 3, 64, 64))
    assert {k: v.shape[-1] for k, v in out.items()} == {"p2": 16, "p3": 8, "p4": 4, "p5": 2, "p6": 1}
    with pytest.raises(ConfigError, match=r"\$\.backbone\.last_block_indexes: must increase and end at"):
        structure(ModelConfig, {"backbone": {"name": "MViT", "depth": 10}})
    with pytest.raises(ConfigError, match=r"\$\.backbone\.top_block"):
        structure(
            ModelConfig, {"backbone": {"name": "MViTFPN", "mvit": {"out_features": ["scale2", "scale3"]}}}
        )
