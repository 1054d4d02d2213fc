from pathlib import Path

import pytest
import torch

from dt_config import ConfigError, structure
from dt_models.backbone.swin import MASKED, SwinTransformer, shifted_window_mask
from dt_models.build import build_backbone
from dt_models.config import ModelConfig, SwinConfig, SwinFPNConfig

DATA = Path(__file__).parent / "data" / "swin_tiny"
TINY = dict(
    pretrain_img_size=32,
    patch_size=4,
    embed_dim=16,
    depths=(2, 2),
    num_heads=(1, 2),
    window_size=3,
    out_indices=(0, 1),
)


def test_shifted_window_mask_separates_wrapped_regions():
    mask = shifted_window_mask(6, 6, 3, 1, torch.device("cpu"))  # 4 windows of 9 tokens
    assert mask.shape == (4, 9, 9)
    assert (mask[0] == 0).all()  # the top-left window holds one region
    # the bottom-right window mixes 4 regions: its corner token (2, 2) is alone in its region
    corner = mask[3].view(3, 3, 3, 3)[2, 2]
    assert corner[2, 2] == 0 and (corner.flatten()[:-1] == MASKED).all()


@pytest.mark.parametrize("hw", [(64, 64), (50, 44), (33, 97)])
def test_swin_shapes_for_sizes_not_divisible_by_patch_or_window(hw):
    model = SwinTransformer(**TINY, drop_path_rate=0.0, ape=True).eval()
    out = model(torch.randn(1, 3, *hw))
    shapes = model.output_shape()
    assert {k: (s.channels, s.stride) for k, s in shapes.items()} == {"p0": (16, 4), "p1": (32, 8)}
    tokens = (-(-hw[0] // 4), -(-hw[1] // 4))
    assert out["p0"].shape == (1, 16, *tokens)
    assert out["p1"].shape == (1, 32, (tokens[0] + 1) // 2, (tokens[1] + 1) // 2)


def test_swin_matches_detectron2():
    golden = torch.load(DATA / "io.pt", weights_only=True)
    model = SwinTransformer(**TINY, drop_path_rate=0.2, ape=True).eval()
    torch.testing.assert_close(
        model.layers[0].blocks[0].attn.relative_position_index, golden["relative_position_index"]
    )
    own = model.state_dict()
    assert set(own) - set(golden["state_dict"]) == {k for k in own if k.endswith("relative_position_index")}
    model.load_state_dict({**own, **golden["state_dict"]})
    with torch.no_grad():
        out = model(golden["input"])
    for name in ("p0", "p1"):
        torch.testing.assert_close(out[name], golden[name], rtol=0, atol=1e-5)


def test_swin_drop_path_off_in_eval_and_checkpointing_keeps_gradients():
    torch.manual_seed(0)
    plain = SwinTransformer(**TINY, drop_path_rate=0.0)
    recomputed = SwinTransformer(**TINY, drop_path_rate=0.0, use_checkpoint=True)
    recomputed.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 32, 32)
    grads = []
    for model in (plain, recomputed):
        model(x)["p1"].square().sum().backward()
        grads.append(model.layers[1].blocks[1].attn.relative_position_bias_table.grad)
    torch.testing.assert_close(grads[0], grads[1])
    dropping = SwinTransformer(**TINY, drop_path_rate=0.9).eval()
    torch.testing.assert_close(dropping(x)["p1"], dropping(x)["p1"], rtol=0, atol=0)


def test_swin_frozen_stages():
    model = SwinTransformer(**TINY, ape=True, frozen_stages=2)
    assert not any(p.requires_grad for p in model.patch_embed.parameters())
    assert not model.absolute_pos_embed.requires_grad
    assert not any(p.requires_grad for p in model.layers[0].parameters())
    assert all(p.requires_grad for p in model.layers[1].parameters())


def test_swin_fpn_and_config_errors():
    config = SwinFPNConfig(
        swin=SwinConfig(embed_dim=8, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2), window_size=3),
        out_channels=8,
    )
    assert config.output_features() == ("p2", "p3", "p4", "p5", "p6")
    model = build_backbone(config).eval()
    out = model(torch.randn(1, 3, 64, 64))
    assert {k: v.shape[-1] for k, v in out.items()} == {"p2": 16, "p3": 8, "p4": 4, "p5": 2, "p6": 1}
    with pytest.raises(ConfigError, match=r"\$\.backbone\.num_heads: 5 heads do not divide"):
        structure(ModelConfig, {"backbone": {"name": "Swin", "num_heads": [5, 6, 12, 24]}})
    with pytest.raises(ConfigError, match=r"\$\.backbone\.top_block: max_pool subsamples p5"):
        structure(ModelConfig, {"backbone": {"name": "SwinFPN", "swin": {"out_indices": [0, 1, 2]}}})
