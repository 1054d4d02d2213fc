"""The RegNet, timm ResNet/ViT and Swin converters on state dicts with the libraries' real key names
(listed from torchvision 0.29 and timm 1.0), built from a small dt model's shapes. The comparison with
the real models is in test_convert_interop.py (``nox -s interop``)."""

import re

import pytest
import torch

from dt_config import structure
from dt_models.backbone.regnet import RegNetConfig, build_regnet
from dt_models.backbone.swin import SwinConfig, build_swin
from dt_models.layers import ShapeSpec
from dt_zoo import ZooError
from dt_zoo.convert import (
    timm_regnet_to_dt,
    timm_resnet_to_dt,
    timm_swin_to_dt,
    timm_vit_to_dt,
    torchvision_regnet_to_dt,
)

REGNET_Y = {"depth": 8, "w_0": 16, "w_a": 16.0, "w_m": 2.0, "group_width": 8, "se_ratio": 0.25,
            "stem_width": 8, "norm": "BN", "freeze_at": 0}  # fmt: skip


def _regnet() -> torch.nn.Module:
    return build_regnet(structure(RegNetConfig, REGNET_Y), ShapeSpec(channels=3))


def _random_named(dt_state: dict[str, torch.Tensor], rename) -> dict[str, torch.Tensor]:
    """``dt_state``'s shapes under the library's names (``rename``), random values, plus BN counters."""
    generator = torch.Generator().manual_seed(0)
    state = {rename(k): torch.randn(v.shape, generator=generator) for k, v in dt_state.items()}
    for name in [k for k in state if k.endswith("running_var")]:
        state[name.replace("running_var", "num_batches_tracked")] = torch.tensor(7)
    return state


def _torchvision_regnet_name(dt_name: str) -> str:
    name = re.sub(
        r"^s(\d+)\.b(\d+)\.", lambda m: f"trunk_output.block{m[1]}.block{m[1]}-{int(m[2]) - 1}.", dt_name
    )
    name = name.replace("stem.conv.", "stem.0.").replace("stem.bn.", "stem.1.")
    name = re.sub(r"\.f\.([abc])_bn\.", r".f.\1.1.", re.sub(r"\.f\.([abc])\.weight", r".f.\1.0.weight", name))
    name = name.replace(".proj.weight", ".proj.0.weight").replace(".bn.", ".proj.1.")
    return name.replace(".se.f_ex.0.", ".se.fc1.").replace(".se.f_ex.2.", ".se.fc2.")


def _timm_regnet_name(dt_name: str) -> str:
    name = re.sub(r"\.f\.([abc])_bn\.", lambda m: f".conv{'abc'.index(m[1]) + 1}.bn.", dt_name)
    name = re.sub(r"\.f\.([abc])\.weight", lambda m: f".conv{'abc'.index(m[1]) + 1}.conv.weight", name)
    name = re.sub(r"^(s\d+\.b\d+)\.bn\.", r"\1.downsample.bn.", name).replace(".proj.", ".downsample.conv.")
    return name.replace(".f.se.f_ex.0.", ".se.fc1.").replace(".f.se.f_ex.2.", ".se.fc2.")


TORCHVISION_REGNET_NAMES = [
    "stem.0.weight",
    "trunk_output.block1.block1-0.proj.1.running_mean",
    "trunk_output.block2.block2-0.f.b.0.weight",
    "trunk_output.block1.block1-0.f.se.fc2.bias",
    "trunk_output.block1.block1-0.f.c.1.num_batches_tracked",
]
TIMM_REGNET_NAMES = [
    "stem.conv.weight",
    "stem.bn.running_var",
    "s1.b1.conv1.conv.weight",
    "s1.b1.conv2.bn.bias",
    "s1.b1.se.fc1.weight",
    "s1.b1.conv3.conv.weight",
    "s1.b1.downsample.conv.weight",
    "s2.b1.downsample.bn.weight",
]


@pytest.mark.parametrize(
    ("convert", "rename", "head", "real_names"),
    [
        (torchvision_regnet_to_dt, _torchvision_regnet_name, "fc", TORCHVISION_REGNET_NAMES),
        (timm_regnet_to_dt, _timm_regnet_name, "head.fc", TIMM_REGNET_NAMES),
    ],
)
def test_regnet_converters_give_every_dt_tensor(convert, rename, head, real_names):
    model = _regnet()
    state = _random_named(model.state_dict(), rename)
    assert set(real_names) <= set(state), "the synthetic dict must use the library's names"
    state[f"{head}.weight"], state[f"{head}.bias"] = torch.zeros(10, 4), torch.zeros(10)
    converted = convert(state)
    model.load_state_dict(converted, strict=True)
    torch.testing.assert_close(model.s2.b1.f.b.weight, state[rename("s2.b1.f.b.weight")])
    torch.testing.assert_close(model.s1.b1.f.se.f_ex[2].bias, state[rename("s1.b1.f.se.f_ex.2.bias")])


def test_regnet_converters_name_the_first_foreign_tensor():
    with pytest.raises(
        ZooError, match=r"^timm state dict: 1 tensors are not a RegNet's \(first: 's1.b1.preact.weight'\)$"
    ):
        timm_regnet_to_dt({"stem.conv.weight": torch.zeros(1), "s1.b1.preact.weight": torch.zeros(1)})
    with pytest.raises(ZooError, match=r"no RegNet stem \(stem\.\) found"):
        torchvision_regnet_to_dt({"trunk_output.block1.block1-0.f.a.0.weight": torch.zeros(1)})
    with pytest.raises(ZooError, match="not a RegNet's"):  # a torchvision ResNet is not a RegNet
        torchvision_regnet_to_dt({"conv1.weight": torch.zeros(1), "layer1.0.conv1.weight": torch.zeros(1)})


def test_timm_resnet_converter_refuses_the_deep_stem_and_se_variants():
    names = ("conv1.weight", "bn1.bias", "layer2.0.downsample.1.weight", "fc.bias")
    converted = timm_resnet_to_dt({name: torch.zeros(1) for name in names})
    assert set(converted) == {"stem.conv1.weight", "stem.conv1.norm.bias", "res3.0.shortcut.norm.weight"}
    with pytest.raises(
        ZooError, match=r"^timm state dict: 1 tensors are not a ResNet's \(first: 'conv1.0.weight'\)$"
    ):
        timm_resnet_to_dt({"conv1.0.weight": torch.zeros(1), "bn1.weight": torch.zeros(1)})  # resnet50d
    with pytest.raises(ZooError, match="'layer1.0.se.fc1.weight'"):
        timm_resnet_to_dt({"conv1.weight": torch.zeros(1), "layer1.0.se.fc1.weight": torch.zeros(1)})


def test_timm_vit_converter_reports_unsupported_parts_in_one_line():
    names = ("cls_token", "patch_embed.proj.weight", "blocks.0.attn.qkv.weight", "head.weight")
    converted = timm_vit_to_dt({name: torch.zeros(1) for name in names})
    assert set(converted) == {"patch_embed.proj.weight", "blocks.0.attn.qkv.weight"}
    with pytest.raises(
        ZooError, match=r"^my.pth: timm key 'blocks.0.ls1.gamma' has no counterpart in dt's ViT"
    ):
        timm_vit_to_dt({"blocks.0.ls1.gamma": torch.zeros(1)}, source="my.pth")


def _timm_swin_name(dt_name: str) -> str:
    name = re.sub(r"^layers\.(\d+)\.downsample\.", lambda m: f"layers.{int(m[1]) + 1}.downsample.", dt_name)
    return name.replace("norm3.", "norm.")


def test_timm_swin_converter_moves_patch_merging_to_the_next_stage_and_the_final_norm_to_norm3():
    config = {"embed_dim": 16, "depths": [2, 2, 2, 2], "num_heads": [1, 2, 2, 4], "window_size": 4}
    model = build_swin(structure(SwinConfig, config), ShapeSpec(channels=3))
    dt_state = {k: v for k, v in model.state_dict().items()
                if not k.endswith("relative_position_index") and not re.match(r"norm[012]\.", k)}  # fmt: skip
    state = _random_named(dt_state, _timm_swin_name)
    assert {"layers.1.downsample.reduction.weight", "layers.3.downsample.norm.bias", "norm.weight"} <= set(
        state
    )
    assert "layers.0.downsample.norm.weight" not in state  # timm's first stage does not merge
    state["head.fc.weight"] = torch.zeros(10, 128)
    state["layers.0.blocks.1.attn_mask"] = torch.zeros(1)
    missing, unexpected = model.load_state_dict(timm_swin_to_dt(state), strict=False)
    assert not unexpected
    assert {k for k in missing if not k.endswith("relative_position_index")} == {
        f"norm{i}.{p}" for i in range(3) for p in ("weight", "bias")
    }
    torch.testing.assert_close(
        model.layers[0].downsample.reduction.weight, state["layers.1.downsample.reduction.weight"]
    )
    torch.testing.assert_close(model.norm3.weight, state["norm.weight"])
    with pytest.raises(
        ZooError, match=r"not a Swin's \(first: 'layers.0.blocks.0.attn.logit_scale'\)"
    ):  # SwinV2
        timm_swin_to_dt(
            {"patch_embed.proj.weight": torch.zeros(1), "layers.0.blocks.0.attn.logit_scale": torch.zeros(1)}
        )
