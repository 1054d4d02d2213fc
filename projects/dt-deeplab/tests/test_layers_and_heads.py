"""ASPP and the DeepLab heads: shapes at output strides 16 and 8, pooling windows, the segmentor."""

import pytest
import torch
from deeplab_helpers import tiny_model_config

from dt_config import ConfigError, structure
from dt_deeplab.backbone import DeepLabResNetConfig, build_deeplab_resnet
from dt_deeplab.layers import ASPP, DepthwiseSeparableConv2d
from dt_models import ModelConfig, build_model
from dt_models.layers import ShapeSpec


@pytest.mark.parametrize("separable", [False, True])
def test_aspp_keeps_the_spatial_size_and_pools_the_whole_map(separable):
    aspp = ASPP(8, 6, (1, 2, 3), norm="", dropout=0.0, use_depthwise_separable_conv=separable).eval()
    x = torch.randn(2, 8, 9, 13)
    out = aspp(x)
    assert out.shape == (2, 6, 9, 13)
    # image pooling sees the whole map: a constant input gives a constant pooled branch
    pooled = aspp.convs[-1](x)
    assert pooled.shape == (2, 6, 1, 1)
    assert len(aspp.convs) == 5 and aspp.project.in_channels == 30


def test_aspp_with_a_pooling_window_needs_a_multiple_of_it():
    aspp = ASPP(4, 4, (1, 2, 3), norm="", pool_kernel_size=(4, 4)).eval()
    assert aspp(torch.randn(1, 4, 8, 8)).shape == (1, 4, 8, 8)
    with pytest.raises(ValueError, match="not a multiple of pool_kernel_size"):
        aspp(torch.randn(1, 4, 6, 8))


def test_aspp_dropout_only_in_training():
    aspp = ASPP(4, 4, (1, 2, 3), norm="", dropout=0.5)
    x = torch.randn(1, 4, 8, 8)
    aspp.eval()
    torch.testing.assert_close(aspp(x), aspp(x))
    aspp.train()
    torch.manual_seed(0)
    assert (aspp(x) == 0).float().mean() > 0.3  # about half the activations dropped


def test_depthwise_separable_conv_is_depthwise_then_pointwise():
    conv = DepthwiseSeparableConv2d(6, 10, kernel_size=5, padding=2, norm="BN")
    assert conv.depthwise.groups == 6 and conv.depthwise.weight.shape == (6, 1, 5, 5)
    assert conv.pointwise.weight.shape == (10, 6, 1, 1)
    assert conv(torch.randn(2, 6, 7, 7)).shape == (2, 10, 7, 7)


@pytest.mark.parametrize(
    ("dilations", "stride", "res5_dilations"),
    [({"res5_dilation": 2}, 16, [2, 4, 8]), ({"res4_dilation": 2, "res5_dilation": 4}, 8, [4, 8, 16])],
)
def test_backbone_output_stride_and_multi_grid(dilations, stride, res5_dilations):
    config = DeepLabResNetConfig(
        depth=50,
        stem_out_channels=8,
        res2_out_channels=16,
        width_per_group=4,
        out_features=("res2", "res3", "res4", "res5"),
        **dilations,
    )
    backbone = build_deeplab_resnet(config, ShapeSpec(channels=3))
    assert config.output_stride == stride and backbone.size_divisibility == stride
    features = backbone(torch.randn(1, 3, 64, 64))
    assert features["res2"].shape[-1] == 16 and features["res5"].shape[-1] == 64 // stride
    assert [block.conv2.dilation[0] for block in backbone.res5] == res5_dilations
    assert [c.kernel_size for c in (backbone.stem.conv1, backbone.stem.conv2, backbone.stem.conv3)] == [
        (3, 3)
    ] * 3
    assert backbone.stem.conv1.out_channels == 4 and backbone.stem.conv3.out_channels == 8


@pytest.mark.parametrize(
    ("dilations", "res4_dilations", "res5_dilations"),
    [
        ({"res5_dilation": 2}, [1] * 6, [1, 2, 2]),  # torchvision's output stride 16
        ({"res4_dilation": 2, "res5_dilation": 4}, [1] + [2] * 5, [2, 4, 4]),  # deeplabv3_resnet50's
    ],
)
def test_torchvision_layout_starts_a_dilated_stage_with_the_previous_dilation(
    dilations, res4_dilations, res5_dilations
):
    config = DeepLabResNetConfig(
        depth=50,
        stem_type="basic",
        stem_out_channels=8,
        res2_out_channels=16,
        width_per_group=4,
        res5_multi_grid=(1, 1, 1),
        dilate_first_block=False,
        out_features=("res5",),
        **dilations,
    )
    backbone = build_deeplab_resnet(config, ShapeSpec(channels=3))
    assert [block.conv2.dilation[0] for block in backbone.res4] == res4_dilations
    assert [block.conv2.dilation[0] for block in backbone.res5] == res5_dilations
    assert [block.conv2.padding[0] for block in backbone.res5] == res5_dilations  # sizes kept
    assert backbone.stem.conv1.kernel_size == (7, 7)


@pytest.mark.parametrize("os_kwargs", [{"res5_dilation": 2}, {"res4_dilation": 2, "res5_dilation": 4}])
@pytest.mark.parametrize("separable", [False, True])
def test_v3_plus_logits_at_stride_4_and_outputs_at_input_size(os_kwargs, separable):
    head = {
        "name": "DeepLabV3PlusHead",
        "num_classes": 5,
        "project_channels": [8],
        "convs_dim": 16,
        "aspp_channels": 16,
        "use_depthwise_separable_conv": separable,
    }
    model = build_model(tiny_model_config(head, **os_kwargs)).eval()
    images = torch.rand(3, 50, 70) * 255  # padded to a multiple of the output stride inside
    features = model.extract_features(model.preprocess_image([{"image": images}]))
    logits, _ = model.sem_seg_head(features)
    size = model.preprocess_image([{"image": images}]).tensor.shape[-2:]
    assert logits.shape == (1, 5, *size)
    with torch.no_grad():
        (out,) = model([{"image": images, "height": 100, "width": 140}])
    assert out["sem_seg"].shape == (5, 100, 140)


@pytest.mark.parametrize("stride", [16, 8])
def test_v3_head_at_output_stride(stride):
    dil = {"res5_dilation": 2} if stride == 16 else {"res4_dilation": 2, "res5_dilation": 4}
    head = {
        "name": "DeepLabV3Head",
        "num_classes": 3,
        "aspp_channels": 8,
        "common_stride": stride,
        "train_size": [64, 64],
    }
    model = build_model(tiny_model_config(head, out_features=["res5"], **dil)).eval()
    assert model.sem_seg_head.aspp.pool_kernel_size == (64 // stride, 64 // stride)
    with torch.no_grad():
        (out,) = model([{"image": torch.rand(3, 64, 64) * 255}])
    assert out["sem_seg"].shape == (3, 64, 64)


def test_training_pads_labels_with_the_ignore_value_and_returns_the_loss():
    model = build_model(tiny_model_config()).train()
    labels = torch.randint(0, 5, (30, 40))
    losses = model([{"image": torch.rand(3, 30, 40) * 255, "sem_seg": labels}])
    assert set(losses) == {"loss_sem_seg"} and losses["loss_sem_seg"].requires_grad
    losses["loss_sem_seg"].backward()
    with pytest.raises(ValueError, match="'sem_seg' in every input"):
        model([{"image": torch.rand(3, 32, 32) * 255}])


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"\$\.backbone\.res5_dilation: must be 4"):
        structure(ModelConfig, tiny_model_config(res4_dilation=2, res5_dilation=2))
    bad_head = {"name": "DeepLabV3PlusHead", "num_classes": 5, "project_channels": [8, 8]}
    with pytest.raises(ConfigError, match=r"\$\.sem_seg_head\.project_channels: needs 1 value"):
        structure(ModelConfig, tiny_model_config(bad_head))
    with pytest.raises(ConfigError, match=r"sem_seg_head\.in_features.*not backbone outputs"):
        structure(ModelConfig, tiny_model_config({"name": "DeepLabV3Head", "in_features": ["res4"]}))
    with pytest.raises(ConfigError, match=r"aspp_dilatoins.*did you mean"):
        structure(ModelConfig, tiny_model_config({"name": "DeepLabV3Head", "aspp_dilatoins": [1, 2, 3]}))
