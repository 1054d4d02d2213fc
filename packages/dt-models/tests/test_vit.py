from pathlib import Path

import pytest
import torch

from dt_config import ConfigError, structure, unstructure
from dt_models.backbone import SimpleFeaturePyramid, ViT, convert_timm_vit_state_dict
from dt_models.backbone.fpn import LastLevelMaxPool
from dt_models.backbone.transformer_utils import (
    DropPath,
    get_abs_pos,
    get_rel_pos,
    window_partition,
    window_unpartition,
)
from dt_models.build import build_backbone
from dt_models.config import ModelConfig, ViTConfig, ViTSimpleFeaturePyramidConfig

DATA = Path(__file__).parent / "data"


def _tiny_vit(**kwargs) -> ViT:
    options = dict(
        img_size=64, patch_size=16, embed_dim=16, depth=3, num_heads=2, mlp_ratio=2.0, window_size=3,
        window_block_indexes=(0, 2), use_rel_pos=True, pretrain_img_size=64,
    )  # fmt: skip
    return ViT(**{**options, **kwargs})


@pytest.mark.parametrize("hw", [(5, 6), (6, 6), (7, 2), (1, 1)])
def test_window_partition_round_trip(hw):
    x = torch.randn(2, *hw, 4)
    windows, padded = window_partition(x, 3)
    assert padded == (-(-hw[0] // 3) * 3, -(-hw[1] // 3) * 3)
    assert windows.shape == (2 * padded[0] // 3 * padded[1] // 3, 3, 3, 4)
    torch.testing.assert_close(window_unpartition(windows, 3, padded, hw), x, rtol=0, atol=0)


def test_window_partition_order_and_padding():
    x = torch.arange(2 * 4 * 5, dtype=torch.float32).view(2, 4, 5, 1)
    windows, padded = window_partition(x, 3)
    assert padded == (6, 6)
    torch.testing.assert_close(windows[1, :, :, 0], torch.tensor([[3.0, 4, 0], [8, 9, 0], [13, 14, 0]]))
    torch.testing.assert_close(windows[4, 0, 0, 0], x[1, 0, 0, 0])  # 4 windows per image, row-major


def test_rel_pos_indexes_by_distance_and_interpolates():
    table = torch.randn(7, 3)  # tables for a 4-token axis: distances -3 .. 3
    rel = get_rel_pos(4, 4, table)
    assert rel.shape == (4, 4, 3)
    for i in range(4):
        for j in range(4):
            torch.testing.assert_close(rel[i, j], table[i - j + 3])
    # resized to 11 rows for 6 tokens: linear interpolation keeps the zero distance at the centre
    resized = get_rel_pos(6, 6, table)
    assert resized.shape == (6, 6, 3)
    for i in range(6):
        torch.testing.assert_close(resized[i, i], table[3])
    # distance -4 is row 1 of 11, at source position 1.5 * 7 / 11 - 0.5 between rows 0 and 1
    weight = 1.5 * 7 / 11 - 0.5
    torch.testing.assert_close(resized[1, 5], table[0] + weight * (table[1] - table[0]))
    torch.testing.assert_close(get_rel_pos(6, 6, torch.full((7, 3), 2.5)), torch.full((6, 6, 3), 2.5))


def test_rel_pos_stretches_the_shorter_axis():
    table = torch.arange(7, dtype=torch.float32)[:, None]  # 2 * max(2, 4) - 1 rows
    rel = get_rel_pos(2, 4, table)[..., 0]
    expected = torch.tensor([[2 * i - j + 3 for j in range(4)] for i in range(2)], dtype=torch.float32)
    torch.testing.assert_close(rel, expected)


def test_abs_pos_drops_cls_token_and_resizes():
    grid = torch.randn(1, 16, 5)
    with_cls = torch.cat([torch.full((1, 1, 5), 100.0), grid], dim=1)
    torch.testing.assert_close(get_abs_pos(with_cls, True, (4, 4)), grid.view(1, 4, 4, 5))
    assert get_abs_pos(grid, False, (3, 7)).shape == (1, 3, 7, 5)
    torch.testing.assert_close(get_abs_pos(torch.ones(1, 16, 5), False, (6, 2)), torch.ones(1, 6, 2, 5))
    with pytest.raises(ValueError, match="square grid"):
        get_abs_pos(torch.ones(1, 15, 5), False, (3, 5))


def test_drop_path_off_in_eval_and_per_sample_in_training():
    drop = DropPath(0.5)
    x = torch.ones(64, 3, 2)
    assert torch.equal(drop.eval()(x), x)
    y = drop.train()(x)
    per_sample = y.flatten(1)
    assert set(per_sample.unique().tolist()) <= {0.0, 2.0}
    assert (per_sample == per_sample[:, :1]).all()  # a whole sample is kept or dropped
    assert 0 < (per_sample[:, 0] == 0).sum() < 64
    with pytest.raises(ValueError, match="drop path"):
        DropPath(1.0)


def test_vit_drop_path_only_in_training():
    torch.manual_seed(0)
    vit = _tiny_vit(drop_path_rate=0.9)
    x = torch.randn(4, 3, 32, 32)
    vit.eval()
    torch.testing.assert_close(vit(x)["last_feat"], vit(x)["last_feat"], rtol=0, atol=0)
    vit.train()
    assert not torch.allclose(vit(x)["last_feat"], vit(x)["last_feat"])


@pytest.mark.parametrize("hw", [(64, 64), (80, 96), (70, 45), (16, 112)])
def test_vit_shapes_for_sizes_not_divisible_by_patch_or_window(hw):
    vit = _tiny_vit(residual_block_indexes=(1,)).eval()
    out = vit(torch.randn(2, 3, *hw))
    spec = vit.output_shape()["last_feat"]
    assert (spec.channels, spec.stride) == (16, 16)
    assert out["last_feat"].shape == (2, 16, hw[0] // 16, hw[1] // 16)
    assert torch.isfinite(out["last_feat"]).all()


def test_vit_activation_checkpointing_keeps_outputs_and_gradients():
    torch.manual_seed(0)
    plain = _tiny_vit().train()
    recomputed = _tiny_vit(use_act_checkpoint=True).train()
    recomputed.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 32, 48)
    outs, grads = [], []
    for model in (plain, recomputed):
        out = model(x)["last_feat"]
        out.square().sum().backward()
        outs.append(out.detach())
        grads.append(model.blocks[1].attn.rel_pos_h.grad)
    torch.testing.assert_close(outs[0], outs[1])
    torch.testing.assert_close(grads[0], grads[1])


def test_vit_rel_pos_tables_are_sized_by_window_or_image():
    vit = _tiny_vit(img_size=96)
    assert vit.blocks[0].attn.rel_pos_h.shape == (5, 8)  # window 3: 2 * 3 - 1 distances
    assert vit.blocks[1].attn.rel_pos_w.shape == (11, 8)  # global, 96 / 16 = 6 tokens
    assert not hasattr(_tiny_vit(use_rel_pos=False).blocks[0].attn, "rel_pos_h")


def test_vit_validation():
    with pytest.raises(ValueError, match="window_block_indexes"):
        _tiny_vit(window_block_indexes=(3,))
    with pytest.raises(ValueError, match="divisible"):
        _tiny_vit(num_heads=3)
    with pytest.raises(ValueError, match="Tensor"):
        _tiny_vit()(torch.randn(3, 32, 32))


@pytest.mark.parametrize("hw", [(64, 64), (96, 160), (80, 96), (33, 50)])
def test_sfp_shapes_and_strides(hw):
    sfp = SimpleFeaturePyramid(
        net=_tiny_vit(), in_feature="last_feat", out_channels=8, top_block=LastLevelMaxPool()
    )
    out = sfp.eval()(torch.randn(1, 3, *hw))
    shapes = sfp.output_shape()
    assert list(out) == list(shapes) == ["p2", "p3", "p4", "p5", "p6"]
    assert [s.stride for s in shapes.values()] == [4, 8, 16, 32, 64]
    grid = (hw[0] // 16, hw[1] // 16)
    for name, scale in zip(["p2", "p3", "p4", "p5"], [4, 2, 1, 0.5], strict=True):
        assert out[name].shape == (1, 8, int(grid[0] * scale), int(grid[1] * scale))
    assert out["p6"].shape[-2:] == ((out["p5"].shape[-2] + 1) // 2, (out["p5"].shape[-1] + 1) // 2)
    assert sfp.size_divisibility == 32


def test_sfp_rejects_non_doubling_scales():
    with pytest.raises(ValueError, match="double"):
        SimpleFeaturePyramid(
            net=_tiny_vit(), in_feature="last_feat", out_channels=8, scale_factors=(4.0, 1.0)
        )
    with pytest.raises(ValueError, match="in_feature"):
        SimpleFeaturePyramid(net=_tiny_vit(), in_feature="res5", out_channels=8)


def test_vit_sfp_matches_detectron2():
    golden = torch.load(DATA / "vitdet_tiny" / "io.pt", weights_only=True)
    config = ViTSimpleFeaturePyramidConfig(
        net=ViTConfig(
            img_size=64, embed_dim=16, depth=3, num_heads=2, mlp_ratio=2.0, window_size=3,
            window_block_indexes=(0, 2), residual_block_indexes=(1,), pretrain_img_size=64,
        ),
        out_channels=8, square_pad=0,
    )  # fmt: skip
    sfp = build_backbone(config).eval()
    sfp.load_state_dict(golden["state_dict"])
    with torch.no_grad():
        out = sfp(golden["input"])
        last = sfp.net(golden["input"])["last_feat"]
    torch.testing.assert_close(last, golden["last_feat"], rtol=0, atol=1e-5)
    for name in ("p2", "p3", "p4", "p5", "p6"):
        torch.testing.assert_close(out[name], golden[name], rtol=0, atol=1e-5)


def test_converted_timm_vit_gives_timm_features():
    golden = torch.load(DATA / "timm_vit_tiny" / "io.pt", weights_only=True)
    vit = ViT(
        img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2, pretrain_img_size=32,
        pretrain_use_cls_token=False,
    ).eval()  # fmt: skip
    vit.load_state_dict(convert_timm_vit_state_dict(golden["state_dict"]))
    with torch.no_grad():
        out = vit(golden["input"])["last_feat"]
    torch.testing.assert_close(out, golden["last_feat"], rtol=0, atol=1e-5)


def test_timm_converter_drops_head_and_cls_token_and_rejects_unknown_parts():
    timm_keys = {k: torch.zeros(shape) for k, shape in torch.load(
        DATA / "timm_vit_tiny" / "io.pt", weights_only=True
    )["cls_token_keys"].items()}  # fmt: skip
    converted = convert_timm_vit_state_dict({"model": timm_keys}, prefix="backbone.net.")
    assert "backbone.net.cls_token" not in converted and "backbone.net.head.weight" not in converted
    vit = ViT(img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2, pretrain_img_size=32)
    vit.load_state_dict({k.removeprefix("backbone.net."): v for k, v in converted.items()})  # strict
    with pytest.raises(ValueError, match="blocks.0.ls1.gamma"):
        convert_timm_vit_state_dict({**timm_keys, "blocks.0.ls1.gamma": torch.ones(16)})


def test_vit_sfp_config_round_trips_and_reports_paths():
    data = {
        "backbone": {"name": "ViTSimpleFeaturePyramid", "net": {"depth": 24, "window_block_indexes": [0]}}
    }
    config = structure(ModelConfig, data)
    assert isinstance(config.backbone, ViTSimpleFeaturePyramidConfig)
    assert config.backbone.output_features() == ("p2", "p3", "p4", "p5", "p6")
    assert structure(ModelConfig, unstructure(config)) == config
    with pytest.raises(ConfigError, match=r"\$\.backbone\.net\.num_heads"):
        structure(ModelConfig, {"backbone": {"name": "ViTSimpleFeaturePyramid", "net": {"num_heads": 5}}})
    with pytest.raises(ConfigError, match=r"\$\.backbone\.window_block_indexes"):
        structure(ModelConfig, {"backbone": {"name": "ViT", "depth": 2}})
    with pytest.raises(ConfigError, match=r"\$\.backbone\.scale_factors"):
        structure(ModelConfig, {"backbone": {"name": "ViTSimpleFeaturePyramid", "scale_factors": [4.0, 1.0]}})
    with pytest.raises(ConfigError, match=r"\$\.backbone\.top_block"):
        structure(
            ModelConfig,
            {
                "backbone": {
                    "name": "ViTSimpleFeaturePyramid",
                    "scale_factors": [4.0, 2.0],
                    "top_block": "max_pool",
                }
            },
        )


def test_builds_on_the_meta_device_with_drop_path():
    """Full-size recipes are checked against detectron2's key lists without allocating weights."""
    with torch.device("meta"):
        vit = ViT(img_size=64, patch_size=16, embed_dim=32, depth=3, num_heads=2, drop_path_rate=0.2)
    assert next(vit.parameters()).is_meta
    assert [round(b.drop_path.p, 3) for b in vit.blocks[1:]] == [0.1, 0.2]
