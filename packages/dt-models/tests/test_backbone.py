import pytest
import torch

import dt_ops
from dt_models.backbone import FPN, BasicStem, LastLevelMaxPool, LastLevelP6P7, ResNet, make_resnet_stages
from dt_models.build import build_backbone
from dt_models.config import ResNetConfig, ResNetFPNConfig
from dt_models.layers import FrozenBatchNorm2d, ShapeSpec


def _resnet(depth=50, out_features=("res2", "res3", "res4", "res5"), freeze_at=0, **kwargs):
    narrow = (
        {"res2_out_channels": 64} if depth in (18, 34) else {"width_per_group": 4, "res2_out_channels": 16}
    )
    stages = make_resnet_stages(depth=depth, stem_out_channels=8, norm="BN", **{**narrow, **kwargs})
    return ResNet(stem=BasicStem(3, 8, "BN"), stages=stages, out_features=out_features, freeze_at=freeze_at)


@pytest.mark.parametrize("depth", [18, 50])
def test_resnet_shapes_match_output_shape(depth):
    model = _resnet(depth).eval()
    out = model(torch.randn(1, 3, 64, 96))
    for name, spec in model.output_shape().items():
        assert out[name].shape == (1, spec.channels, 64 // spec.stride, 96 // spec.stride)
    assert [model.output_shape()[f].stride for f in ("res2", "res3", "res4", "res5")] == [4, 8, 16, 32]


def test_resnet_dc5_and_resnext():
    model = _resnet(res5_dilation=2, num_groups=2).eval()
    assert model.output_shape()["res5"].stride == 16
    assert model(torch.randn(1, 3, 64, 64))["res5"].shape[-1] == 4
    assert model.res3[0].conv2.groups == 2
    assert model.res5[1].conv2.dilation == (2, 2)


def test_resnet_stride_in_1x1():
    assert _resnet(stride_in_1x1=True).res3[0].conv1.stride == (2, 2)
    assert _resnet(stride_in_1x1=False).res3[0].conv2.stride == (2, 2)


def test_resnet_truncates_stages_and_freezes():
    model = _resnet(out_features=("res3",), freeze_at=2)
    assert not hasattr(model, "res4")
    assert all(not p.requires_grad for p in model.stem.parameters())
    assert all(not p.requires_grad for p in model.res2.parameters())
    assert all(p.requires_grad for p in model.res3.parameters())
    assert isinstance(model.res2[0].conv1.norm, FrozenBatchNorm2d)
    assert not isinstance(model.res3[0].conv1.norm, FrozenBatchNorm2d)


def test_resnet_validation():
    with pytest.raises(ValueError, match="depth"):
        make_resnet_stages(depth=42)
    with pytest.raises(ValueError, match="res2_out_channels=64"):
        make_resnet_stages(depth=18, res2_out_channels=256)
    with pytest.raises(ValueError, match="out_features"):
        _resnet(out_features=("res6",))
    with pytest.raises(ValueError, match="Tensor"):
        _resnet()(torch.randn(3, 32, 32))


def test_fpn_outputs_and_size_divisibility():
    fpn = FPN(bottom_up=_resnet(), in_features=["res2", "res3", "res4", "res5"], out_channels=8,
              top_block=LastLevelMaxPool())  # fmt: skip
    fpn.eval()
    assert fpn.size_divisibility == 32
    out = fpn(torch.randn(2, 3, 64, 64))
    assert list(out) == ["p2", "p3", "p4", "p5", "p6"]
    assert [t.shape[-1] for t in out.values()] == [16, 8, 4, 2, 1]
    assert {s.channels for s in fpn.output_shape().values()} == {8}
    assert "fpn_lateral2.weight" in fpn.state_dict() and "fpn_output5.bias" in fpn.state_dict()


def test_fpn_p6p7_and_validation():
    fpn = FPN(bottom_up=_resnet(), in_features=["res3", "res4", "res5"], out_channels=8,
              top_block=LastLevelP6P7(128, 8, "res5"))  # fmt: skip
    assert list(fpn.eval()(torch.randn(1, 3, 128, 128))) == ["p3", "p4", "p5", "p6", "p7"]
    with pytest.raises(ValueError, match="double"):
        FPN(bottom_up=_resnet(), in_features=["res2", "res4"], out_channels=8)
    with pytest.raises(ValueError, match="fuse_type"):
        FPN(bottom_up=_resnet(), in_features=["res4", "res5"], out_channels=8, fuse_type="max")


def test_build_backbone_from_config():
    cfg = ResNetFPNConfig(
        resnet=ResNetConfig(depth=18, res2_out_channels=64, stem_out_channels=8), out_channels=8
    )
    backbone = build_backbone(cfg, ShapeSpec(channels=3))
    assert list(backbone.output_shape()) == list(cfg.output_features())


@pytest.mark.skipif(not hasattr(dt_ops, "deform_conv2d"), reason="this dt-ops build has no deform_conv2d")
def test_deformable_stage_runs_and_starts_as_regular_conv():
    model = _resnet(deform_on_per_stage=(False, False, True, False), deform_modulated=True).eval()
    block = model.res4[0]
    assert hasattr(block, "conv2_offset") and block.conv2_offset.weight.abs().sum() == 0
    x = torch.randn(1, 3, 64, 64)
    out = model(x)["res4"]
    assert out.shape == (1, 64, 4, 4) and torch.isfinite(out).all()
    # zero offsets + mask 0.5 (sigmoid(0)): the deformable conv equals half a regular conv
    feats = torch.randn(1, block.conv2.weight.shape[1], 8, 8)
    ref = torch.nn.functional.conv2d(feats, block.conv2.weight, stride=block.conv2.stride, padding=1)
    torch.testing.assert_close(block._conv2(feats), block.conv2.norm(0.5 * ref), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("depth, blocks", [(34, [3, 4, 6, 3]), (101, [3, 4, 23, 3]), (152, [3, 8, 36, 3])])
def test_resnet_depths_have_standard_block_counts(depth, blocks):
    narrow = {"res2_out_channels": 64} if depth == 34 else {"width_per_group": 1, "res2_out_channels": 4}
    stages = make_resnet_stages(depth=depth, stem_out_channels=4, norm="FrozenBN", **narrow)
    assert [len(s) for s in stages] == blocks
