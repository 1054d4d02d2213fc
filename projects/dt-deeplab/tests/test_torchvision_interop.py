"""torchvision's DeepLabV3 backbones in ``DeepLabResNet`` (``nox -s interop``: torchvision imports only
beside the compat torch). torchvision's ``deeplabv3_resnet50`` (COCO) and its ImageNet ``resnet50``
with ``replace_stride_with_dilation=[False, True, True]`` are a ResNet-50 with the 7x7 stem, res4
dilated 2 and res5 dilated 4, whose dilated stages start with the previous stage's dilation: dt's
``DeepLabResNet`` with ``stem_type: basic, res4_dilation: 2, res5_dilation: 4, res5_multi_grid: [1, 1,
1], dilate_first_block: false``. Models are built with random weights (no download); the converted
weights must give torchvision's features."""

import pytest
import torch

from dt_config import structure
from dt_deeplab.backbone import DeepLabResNetConfig, build_deeplab_resnet
from dt_deeplab.semantic_seg import DeepLabSegmentorConfig, build_deeplab_segmentor
from dt_models.checkpoint import load_weights
from dt_models.layers import ShapeSpec
from dt_zoo.convert import save_backbone_weights, torchvision_resnet_to_dt

pytestmark = pytest.mark.interop

TORCHVISION_LAYOUT = {
    "depth": 50,
    "stem_type": "basic",
    "stem_out_channels": 64,
    "norm": "BN",
    "res4_dilation": 2,
    "res5_dilation": 4,
    "res5_multi_grid": [1, 1, 1],
    "dilate_first_block": False,
    "out_features": ["res2", "res3", "res4", "res5"],
}


def _randomized(model: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial BatchNorm statistics and affine terms, so a misplaced norm shows."""
    torch.manual_seed(0)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_(0, 0.1)
    return model.eval()


def _torchvision_backbone(name: str) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """The ResNet trunk of ``name`` and its ``state_dict`` with torchvision's ResNet names (the
    segmentation models' ``backbone.`` prefix removed, their ``classifier``/``aux_classifier`` left out)."""
    import torchvision  # only beside the compat torch

    if name == "deeplabv3_resnet50":
        model = torchvision.models.segmentation.deeplabv3_resnet50(
            weights=None, weights_backbone=None, aux_loss=True
        )
        trunk = _randomized(model).backbone
        state = {
            k.removeprefix("backbone."): v for k, v in model.state_dict().items() if k.startswith("backbone.")
        }
        return trunk, state
    trunk = _randomized(torchvision.models.resnet50(replace_stride_with_dilation=[False, True, True]))
    return trunk, trunk.state_dict()


@torch.no_grad()
def _stages(trunk: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    x = trunk.maxpool(trunk.relu(trunk.bn1(trunk.conv1(x))))
    features = {}
    for i in range(1, 5):
        x = getattr(trunk, f"layer{i}")(x)
        features[f"res{i + 1}"] = x
    return features


def _max_relative_difference(got: torch.Tensor, expected: torch.Tensor) -> float:
    return ((got - expected).abs().max() / expected.abs().max().clamp(min=1)).item()


@pytest.mark.parametrize("name", ["deeplabv3_resnet50", "resnet50"])
def test_torchvision_backbone_gives_its_features_in_deeplab_resnet(name):
    trunk, state = _torchvision_backbone(name)
    backbone = build_deeplab_resnet(structure(DeepLabResNetConfig, TORCHVISION_LAYOUT), ShapeSpec(channels=3))
    backbone.load_state_dict(torchvision_resnet_to_dt(state), strict=True)
    x = torch.randn(2, 3, 64, 96)
    expected = _stages(trunk, x)
    with torch.no_grad():
        got = backbone.eval()(x)
    assert {f: got[f].shape for f in expected} == {f: t.shape for f, t in expected.items()}
    assert expected["res5"].shape[-2:] == (8, 12)  # output stride 8
    for feature, tensor in expected.items():
        assert _max_relative_difference(got[feature], tensor) < 1e-4, feature

    # DeepLab's own layout (every block of a dilated stage dilated) is another network
    uniform = build_deeplab_resnet(
        structure(DeepLabResNetConfig, {**TORCHVISION_LAYOUT, "dilate_first_block": True}),
        ShapeSpec(channels=3),
    )
    uniform.load_state_dict(torchvision_resnet_to_dt(state), strict=True)
    with torch.no_grad():
        assert _max_relative_difference(uniform.eval()(x)["res4"], expected["res4"]) > 1e-2


def test_converted_file_starts_a_deeplabv3_model(tmp_path):
    """The converter's ``.pkl`` (``model.weights`` / ``--weights``) fills every backbone tensor of a
    DeepLabV3 model by name suffix and leaves only the head to train."""
    trunk, state = _torchvision_backbone("deeplabv3_resnet50")
    path = save_backbone_weights(
        torchvision_resnet_to_dt(state), tmp_path / "deeplabv3_resnet50_backbone.pkl"
    )
    config = structure(
        DeepLabSegmentorConfig,
        {
            "backbone": {"name": "DeepLabResNet", **TORCHVISION_LAYOUT, "out_features": ["res5"]},
            "sem_seg_head": {
                "name": "DeepLabV3Head",
                "in_features": ["res5"],
                "common_stride": 8,
                "num_classes": 21,
            },
            "pixel_mean": [123.675, 116.28, 103.53],
            "pixel_std": [58.395, 57.12, 57.375],
            "input_format": "RGB",
        },
    )
    model = build_deeplab_segmentor(config).eval()
    report = load_weights(model, path)
    assert not report.unexpected and not report.shape_mismatch
    backbone_keys = [k for k in model.state_dict() if k.startswith("backbone.")]
    tensors = [k for k in backbone_keys if not k.endswith("num_batches_tracked")]  # counters stay 0
    assert sorted(k for k in report.loaded if k.startswith("backbone.")) == sorted(tensors)
    assert all(k.startswith("sem_seg_head.") or k.endswith("num_batches_tracked") for k in report.missing)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        got = model.backbone(x)["res5"]
    assert _max_relative_difference(got, _stages(trunk, x)["res5"]) < 1e-4
