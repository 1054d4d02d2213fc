from pathlib import Path

import pytest
import torch

from dt_config import ConfigError, structure
from dt_models.backbone.regnet import adjust_block_compatibility, generate_regnet_parameters
from dt_models.build import build_backbone
from dt_models.config import ModelConfig, RegNetConfig, RegNetFPNConfig
from dt_models.layers import FrozenBatchNorm2d

DATA = Path(__file__).parent / "data" / "regnety_tiny"
TINY = dict(stem_width=16, depth=6, w_a=8.0, w_0=16, w_m=2.0, group_width=8, norm="BN", freeze_at=0)
STAGES = ("s1", "s2", "s3")


@pytest.mark.parametrize(
    ("params", "group_width", "widths", "depths"),
    [
        ((38.65, 96, 2.43, 23), 40, [80, 240, 560, 1360], [2, 5, 14, 2]),  # RegNetX-4GF
        ((31.41, 96, 2.24, 22), 64, [128, 192, 512, 1088], [2, 6, 12, 2]),  # RegNetY-4GF
        ((8.0, 16, 2.0, 6), 8, [16, 32, 64], [1, 3, 2]),
    ],
)
def test_regnet_widths_and_depths(params, group_width, widths, depths):
    stage_widths, stage_depths = generate_regnet_parameters(*params)
    assert stage_depths == depths
    adjusted, _, groups = adjust_block_compatibility(
        stage_widths, [1.0] * len(widths), [group_width] * len(widths)
    )
    assert adjusted == widths and all(w % g == 0 for w, g in zip(adjusted, groups, strict=True))


# torchvision's regnet_x_400mf and regnet_y_800mf: stage widths 392 and 136, 776 are odd multiples of 8
X_400MF = {"depth": 22, "w_0": 24, "w_a": 24.48, "w_m": 2.54, "group_width": 16}
Y_800MF = {"depth": 14, "w_0": 56, "w_a": 38.84, "w_m": 2.4, "group_width": 16}


@pytest.mark.parametrize(
    ("fields", "half_even", "half_up"),
    [(X_400MF, [32, 64, 160, 384], [32, 64, 160, 400]), (Y_800MF, [64, 128, 320, 768], [64, 144, 320, 784])],
)
def test_width_rounding_half_even_as_detectron2_half_up_as_torchvision(fields, half_even, half_up):
    assert RegNetConfig(**fields).stage_specs()[0] == half_even  # the default: detectron2's widths
    assert RegNetConfig(**fields, width_rounding="half_up").stage_specs()[0] == half_up
    # half up never loses more than 10%: 96 to a multiple of 40 is 80, so 120
    assert adjust_block_compatibility([96], [1.0], [40], rounding="half_up")[0] == [120]
    assert adjust_block_compatibility([96], [1.0], [40])[0] == [80]
    with pytest.raises(ConfigError, match="width_rounding"):
        structure(RegNetConfig, {**fields, "width_rounding": "nearest"})


@pytest.mark.parametrize("hw", [(64, 64), (70, 45), (33, 96)])
def test_regnet_shapes_for_several_sizes(hw):
    model = build_backbone(
        RegNetConfig(**TINY, se_ratio=0.25, out_features=("stem", "s1", "s2", "s3"))
    ).eval()
    out = model(torch.randn(1, 3, *hw))
    shapes = model.output_shape()
    assert [shapes[k].stride for k in ("stem", "s1", "s2", "s3")] == [2, 4, 8, 16]
    assert [shapes[k].channels for k in ("s1", "s2", "s3")] == [16, 32, 64]
    size = list(hw)
    for name in ("stem", "s1", "s2", "s3"):
        size = [(s + 1) // 2 for s in size]  # each 3x3/2 convolution with padding 1
        assert out[name].shape == (1, shapes[name].channels, *size)


def test_regnety_matches_detectron2():
    golden = torch.load(DATA / "io.pt", weights_only=True)
    model = build_backbone(RegNetConfig(**TINY, se_ratio=0.25, out_features=STAGES)).eval()
    model.load_state_dict(golden["state_dict"])
    with torch.no_grad():
        out = model(golden["input"])
    for name in ("s1", "s2", "s3"):
        torch.testing.assert_close(out[name], golden[name], rtol=0, atol=1e-5)


def test_regnet_freeze_and_block_types():
    model = build_backbone(RegNetConfig(**{**TINY, "freeze_at": 2}, out_features=STAGES))
    assert all(not p.requires_grad for p in [*model.stem.parameters(), *model.s1.parameters()])
    assert all(p.requires_grad for p in model.s2.parameters())
    assert isinstance(model.s1.b1.f.a_bn, FrozenBatchNorm2d) and not isinstance(
        model.s2.b1.f.a_bn, FrozenBatchNorm2d
    )
    for block_type, stem_type in (("res_basic", "res"), ("vanilla", "simple")):
        model = build_backbone(
            RegNetConfig(**TINY, block_type=block_type, stem_type=stem_type, out_features=STAGES)
        ).eval()
        out = model(torch.randn(1, 3, 64, 64))
        assert out["s3"].shape[-1] == 64 // model.output_shape()["s3"].stride


def test_regnet_fpn_outputs_a_level_per_stage():
    config = RegNetFPNConfig(
        regnet=RegNetConfig(**TINY, out_features=STAGES), in_features=STAGES, out_channels=8, top_block=""
    )
    assert config.output_features() == ("p2", "p3", "p4")
    model = build_backbone(config).eval()
    out = model(torch.randn(1, 3, 64, 64))
    assert {k: tuple(v.shape[1:]) for k, v in out.items()} == {
        "p2": (8, 16, 16),
        "p3": (8, 8, 8),
        "p4": (8, 4, 4),
    }
    assert RegNetFPNConfig().output_features() == ("p2", "p3", "p4", "p5", "p6")  # RegNetX-4GF: 4 stages


def test_regnet_config_errors_name_their_path():
    with pytest.raises(ConfigError, match=r"\$\.backbone\.out_features: must be among"):
        structure(ModelConfig, {"backbone": {"name": "RegNet", **TINY, "out_features": ["s4"]}})
    with pytest.raises(ConfigError, match=r"\$\.backbone\.w_0: must be a multiple of 8"):
        structure(ModelConfig, {"backbone": {"name": "RegNet", "w_0": 20}})
    with pytest.raises(ConfigError, match=r"\$\.backbone\.in_features"):
        structure(ModelConfig, {"backbone": {"name": "RegNetFPN", "in_features": ["s5"]}})
    with pytest.raises(ConfigError, match=r"\$\.backbone\.top_block: max_pool subsamples p5"):
        regnet = {**TINY, "out_features": list(STAGES)}
        structure(
            ModelConfig, {"backbone": {"name": "RegNetFPN", "regnet": regnet, "in_features": list(STAGES)}}
        )
