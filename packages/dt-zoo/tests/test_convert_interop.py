"""The converters against the real torchvision and timm models (``nox -s interop``: they import only
beside the compat torch). Each model is built with random weights (no download), its ``state_dict()``
converted and loaded into dt's backbone, and the features of both compared on a random input."""

import pytest
import torch
import torch.nn.functional as F

from dt_config import structure
from dt_models.backbone.regnet import RegNetConfig, build_regnet
from dt_models.backbone.resnet import ResNetConfig, build_resnet
from dt_models.backbone.swin import SwinConfig, build_swin
from dt_models.backbone.vit import ViTConfig, build_vit
from dt_models.layers import ShapeSpec
from dt_zoo.convert import (
    timm_regnet_to_dt,
    timm_resnet_to_dt,
    timm_swin_to_dt,
    timm_vit_to_dt,
    torchvision_regnet_to_dt,
    torchvision_resnet_to_dt,
)

pytestmark = pytest.mark.interop
TOLERANCE = 1e-4


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


def _randomize_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial running statistics and affine terms, so a misplaced BatchNorm shows."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_(0, 0.1)
    return model.eval()


def _loaded(dt_model: torch.nn.Module, converted: dict[str, torch.Tensor]) -> torch.nn.Module:
    dt_model.load_state_dict(converted, strict=True)  # every dt tensor named, nothing left over
    return dt_model.eval()


def _assert_features_equal(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert list(got) == list(expected)
    for name, tensor in expected.items():
        difference = (got[name] - tensor).abs().max().item()
        assert difference <= TOLERANCE, f"{name}: max abs difference {difference}"


def _resnet_stages(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """torchvision's and timm's ResNets share the module names: the output of each ``layer<i>``."""
    x = model.maxpool(model.act1(model.bn1(model.conv1(x))) if hasattr(model, "act1") else model.relu(
        model.bn1(model.conv1(x))))  # fmt: skip
    features = {}
    for i in range(1, 5):
        x = getattr(model, f"layer{i}")(x)
        features[f"res{i + 1}"] = x
    return features


def _dt_resnet(depth: int, **fields) -> torch.nn.Module:
    config = {"depth": depth, "stride_in_1x1": False, "norm": "BN", "freeze_at": 0,
              "out_features": ["res2", "res3", "res4", "res5"], **fields}  # fmt: skip
    return build_resnet(structure(ResNetConfig, config), ShapeSpec(channels=3))


@pytest.mark.parametrize(
    ("library", "name", "fields"),
    [
        ("torchvision", "resnet50", {"depth": 50}),
        ("torchvision", "resnext50_32x4d", {"depth": 50, "num_groups": 32, "width_per_group": 4}),
        ("torchvision", "resnet18", {"depth": 18, "res2_out_channels": 64}),
        ("timm", "resnet50", {"depth": 50}),
        ("timm", "resnext50_32x4d", {"depth": 50, "num_groups": 32, "width_per_group": 4}),
    ],
)
def test_resnet(library, name, fields):
    if library == "torchvision":
        import torchvision

        reference = _randomize_batchnorm(getattr(torchvision.models, name)(weights=None))
        converted = torchvision_resnet_to_dt(reference.state_dict())
    else:
        import timm

        reference = _randomize_batchnorm(timm.create_model(name, pretrained=False))
        converted = timm_resnet_to_dt(reference.state_dict())
    model = _loaded(_dt_resnet(**fields), converted)
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        _assert_features_equal(model(x), _resnet_stages(reference, x))


# torchvision's BlockParams.from_init_params and timm's RegNetCfg arguments of each model.
# torchvision rounds a stage width to its group width half up (``width_rounding: half_up``) where
# detectron2, pycls and timm round half to even: regnet_x_400mf's s4 is 400 wide there, not 384, and
# regnet_y_800mf's s2 and s4 are 144 and 784, not 128 and 768; and never more than 10% below the
# unrounded width: regnet_y_8gf's s1 is 224, not 168.
TORCHVISION_REGNETS = {
    "regnet_y_400mf": {"depth": 16, "w_0": 48, "w_a": 27.89, "w_m": 2.09, "group_width": 8, "se_ratio": 0.25},
    "regnet_x_1_6gf": {"depth": 18, "w_0": 80, "w_a": 34.01, "w_m": 2.25, "group_width": 24},
    "regnet_x_400mf": {"depth": 22, "w_0": 24, "w_a": 24.48, "w_m": 2.54, "group_width": 16},
    "regnet_y_800mf": {"depth": 14, "w_0": 56, "w_a": 38.84, "w_m": 2.4, "group_width": 16, "se_ratio": 0.25},
    "regnet_y_8gf": {"depth": 17, "w_0": 192, "w_a": 76.82, "w_m": 2.19, "group_width": 56, "se_ratio": 0.25},
}
TIMM_REGNETS = {
    "regnetx_002": {"depth": 13, "w_0": 24, "w_a": 36.44, "w_m": 2.49, "group_width": 8},
    "regnety_002": {"depth": 13, "w_0": 24, "w_a": 36.44, "w_m": 2.49, "group_width": 8, "se_ratio": 0.25},
    "regnety_004": {"depth": 16, "w_0": 48, "w_a": 27.89, "w_m": 2.09, "group_width": 8, "se_ratio": 0.25},
}


def _dt_regnet(fields: dict) -> torch.nn.Module:
    config = {"stem_width": 32, "norm": "BN", "freeze_at": 0, **fields}
    return build_regnet(structure(RegNetConfig, config), ShapeSpec(channels=3))


@pytest.mark.parametrize("name", sorted(TORCHVISION_REGNETS))
def test_torchvision_regnet(name):
    import torchvision

    reference = _randomize_batchnorm(getattr(torchvision.models, name)(weights=None))
    fields = {**TORCHVISION_REGNETS[name], "width_rounding": "half_up"}
    model = _loaded(_dt_regnet(fields), torchvision_regnet_to_dt(reference.state_dict()))
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        y, expected = reference.stem(x), {}
        for i, stage in enumerate(reference.trunk_output, start=1):
            y = stage(y)
            expected[f"s{i}"] = y
        _assert_features_equal(model(x), expected)


@pytest.mark.parametrize("name", sorted(TIMM_REGNETS))
def test_timm_regnet(name):
    import timm

    reference = _randomize_batchnorm(timm.create_model(name, pretrained=False))
    model = _loaded(_dt_regnet(TIMM_REGNETS[name]), timm_regnet_to_dt(reference.state_dict()))
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        y, expected = reference.stem(x), {}
        for i in range(1, 5):
            y = getattr(reference, f"s{i}")(y)
            expected[f"s{i}"] = y
        _assert_features_equal(model(x), expected)


@pytest.mark.parametrize("class_token", [False, True])
def test_timm_vit(class_token):
    import timm

    reference = timm.create_model("vit_tiny_patch16_224", pretrained=False, class_token=class_token,
                                  global_pool="token" if class_token else "avg").eval()  # fmt: skip
    fields = {"img_size": 224, "patch_size": 16, "embed_dim": 192, "depth": 12, "num_heads": 3,
              "drop_path_rate": 0.0, "use_rel_pos": False, "window_size": 0, "window_block_indexes": [],
              "pretrain_img_size": 224, "pretrain_use_cls_token": class_token}  # fmt: skip
    model = build_vit(structure(ViTConfig, fields), ShapeSpec(channels=3))
    model = _loaded(model, timm_vit_to_dt(reference.state_dict()))
    if class_token:
        return  # dt's ViT (as ViTDet's) attends without the class token: its features are not timm's
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        tokens = reference.blocks(reference._pos_embed(reference.patch_embed(x)))  # before the final norm
        expected = tokens.reshape(1, 14, 14, 192).permute(0, 3, 1, 2)
        _assert_features_equal(model(x), {"last_feat": expected})


def test_timm_swin():
    import timm

    size = 448  # the last stage (14 x 14) is larger than a window, so timm shifts there too, as dt does
    reference = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, img_size=size).eval()
    model = build_swin(structure(SwinConfig, {"drop_path_rate": 0.0}), ShapeSpec(channels=3)).eval()
    converted = timm_swin_to_dt(reference.state_dict())
    missing, unexpected = model.load_state_dict(converted, strict=False)
    assert not unexpected
    assert {k for k in missing if not k.endswith("relative_position_index")} == {
        f"norm{i}.{p}" for i in range(3) for p in ("weight", "bias")
    }  # stage norms timm has no counterpart of: 1 and 0 as initialized
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        y, expected = reference.patch_embed(x), {}
        for i, stage in enumerate(reference.layers):
            y = stage(y)  # Tensor[N, H, W, C]
            normed = reference.norm(y) if i == 3 else F.layer_norm(y, y.shape[-1:])
            expected[f"p{i}"] = normed.permute(0, 3, 1, 2)
        _assert_features_equal(model(x), expected)
