"""ImageNet converters: torchvision-named and MSRA/Caffe2-named ResNet weights into dt's ResNet.

No torchvision here: the torchvision state dict is built by hand with its key names and shapes, and
a functional forward written from torchvision's architecture (stride in the 3x3 conv, BatchNorm in eval)
is the reference the dt ResNet's features must equal.
"""

import os
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dt_zoo
from dt_config import structure
from dt_engine.config.experiment import load_experiment
from dt_engine.weights import load_model_weights
from dt_models import build_model
from dt_models.backbone.resnet import ResNetConfig, build_resnet
from dt_models.layers import ShapeSpec
from dt_zoo import ZooError
from dt_zoo.convert import msra_resnet_to_dt, save_backbone_weights, torchvision_resnet_to_dt

STEM, WIDTH, GROUPS, BLOCKS = 8, 8, 2, (3, 4, 6, 3)  # a ResNeXt-50 (2x4d) with an 8-channel stem


def _torchvision_state(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """torchvision's ``resnext50``-style ``state_dict()`` names and shapes, random values."""
    state: dict[str, torch.Tensor] = {}

    def bn(prefix: str, channels: int) -> None:
        state[f"{prefix}.weight"] = torch.rand(channels, generator=generator) + 0.5
        state[f"{prefix}.bias"] = torch.randn(channels, generator=generator) * 0.1
        state[f"{prefix}.running_mean"] = torch.randn(channels, generator=generator) * 0.1
        state[f"{prefix}.running_var"] = torch.rand(channels, generator=generator) + 0.5
        state[f"{prefix}.num_batches_tracked"] = torch.tensor(100)

    def conv(name: str, out: int, inp: int, k: int) -> None:
        state[name] = torch.randn(out, inp, k, k, generator=generator) * (2.0 / (inp * k * k)) ** 0.5

    conv("conv1.weight", STEM, 3, 7)
    bn("bn1", STEM)
    in_ch, out_ch, bottleneck = STEM, STEM * 4, WIDTH * GROUPS
    for stage, blocks in enumerate(BLOCKS, start=1):
        for block in range(blocks):
            p = f"layer{stage}.{block}"
            conv(f"{p}.conv1.weight", bottleneck, in_ch, 1)
            bn(f"{p}.bn1", bottleneck)
            conv(f"{p}.conv2.weight", bottleneck, bottleneck // GROUPS, 3)
            bn(f"{p}.bn2", bottleneck)
            conv(f"{p}.conv3.weight", out_ch, bottleneck, 1)
            bn(f"{p}.bn3", out_ch)
            if block == 0:
                conv(f"{p}.downsample.0.weight", out_ch, in_ch, 1)
                bn(f"{p}.downsample.1", out_ch)
            in_ch = out_ch
        out_ch, bottleneck = out_ch * 2, bottleneck * 2
    state["fc.weight"] = torch.randn(10, in_ch, generator=generator)
    state["fc.bias"] = torch.zeros(10)
    return state


def _torchvision_forward(state: dict[str, torch.Tensor], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """torchvision's ResNet forward in functional form: the features after each ``layer<i>``."""

    def bn(p: str, y: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(y, state[f"{p}.running_mean"], state[f"{p}.running_var"], state[f"{p}.weight"],
                            state[f"{p}.bias"], training=False, eps=1e-5)  # fmt: skip

    y = F.max_pool2d(F.relu(bn("bn1", F.conv2d(x, state["conv1.weight"], stride=2, padding=3))), 3, 2, 1)
    features = {}
    for stage, blocks in enumerate(BLOCKS, start=1):
        for block in range(blocks):
            p = f"layer{stage}.{block}"
            stride = 2 if block == 0 and stage > 1 else 1
            out = F.relu(bn(f"{p}.bn1", F.conv2d(y, state[f"{p}.conv1.weight"])))
            out = F.conv2d(out, state[f"{p}.conv2.weight"], stride=stride, padding=1, groups=GROUPS)
            out = bn(f"{p}.bn3", F.conv2d(F.relu(bn(f"{p}.bn2", out)), state[f"{p}.conv3.weight"]))
            if block == 0:
                y = bn(f"{p}.downsample.1", F.conv2d(y, state[f"{p}.downsample.0.weight"], stride=stride))
            y = F.relu(out + y)
        features[f"res{stage + 1}"] = y
    return features


def _dt_resnet(stride_in_1x1: bool, norm: str = "BN"):
    config = structure(
        ResNetConfig,
        {
            "depth": 50, "num_groups": GROUPS, "width_per_group": WIDTH, "stem_out_channels": STEM,
            "res2_out_channels": STEM * 4, "stride_in_1x1": stride_in_1x1, "norm": norm, "freeze_at": 0,
            "out_features": ["res2", "res3", "res4", "res5"],
        },
    )  # fmt: skip
    return build_resnet(config, ShapeSpec(channels=3)).eval()


def test_torchvision_resnext_converts_and_gives_torchvisions_features():
    state = _torchvision_state(torch.Generator().manual_seed(0))
    converted = torchvision_resnet_to_dt(state)
    model = _dt_resnet(stride_in_1x1=False)
    model.load_state_dict(converted, strict=True)  # every dt tensor named, nothing left over
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got, expected = model(x), _torchvision_forward(state, x)
    for name in ("res2", "res3", "res4", "res5"):
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-4)


def test_torchvision_converter_refuses_other_architectures():
    with pytest.raises(ZooError, match="1 tensors are not a ResNet's \\(first: 'features.0.weight'\\)"):
        torchvision_resnet_to_dt({"conv1.weight": torch.zeros(1), "features.0.weight": torch.zeros(1)})


def _msra_blobs(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """Caffe2 names (``res2_0_branch2a_w``, ``res_conv1_bn_s``) for each dt tensor MSRA files hold."""
    blobs = {"fc1000_w": np.zeros((10, 4), np.float32), "fc1000_b": np.zeros(10, np.float32)}
    for name, tensor in model.state_dict().items():
        if name.endswith(("running_mean", "running_var")):
            continue  # MSRA's files hold the frozen scale and shift only
        caffe2 = name.replace(".norm.weight", "_bn_s").replace(".norm.bias", "_bn_b").replace(".weight", "_w")
        caffe2 = caffe2.replace("stem.conv1_bn", "res_conv1_bn").replace("stem.conv1_w", "conv1_w")
        caffe2 = caffe2.replace(".shortcut", ".branch1").replace(".conv1", ".branch2a")
        caffe2 = caffe2.replace(".conv2", ".branch2b").replace(".conv3", ".branch2c")
        blobs[caffe2.replace(".", "_")] = (
            np.random.default_rng(len(blobs)).standard_normal(tensor.shape).astype(np.float32)
        )
        blobs[caffe2.replace(".", "_") + "_momentum"] = np.zeros(tensor.shape, np.float32)
    return blobs


def test_msra_pickle_converts_and_loads_by_suffix_into_an_fpn_model(tmp_path):
    reference = _dt_resnet(stride_in_1x1=True, norm="FrozenBN")
    blobs = _msra_blobs(reference)
    msra = tmp_path / "R-50.pkl"
    msra.write_bytes(pickle.dumps({"blobs": blobs}, protocol=2))
    converted = msra_resnet_to_dt(msra)
    assert not any(k.startswith("fc1000") for k in converted)
    torch.testing.assert_close(converted["res3.0.conv2.weight"], torch.from_numpy(blobs["res3_0_branch2b_w"]))
    torch.testing.assert_close(converted["stem.conv1.norm.weight"], torch.from_numpy(blobs["res_conv1_bn_s"]))
    weights = save_backbone_weights(converted, tmp_path / "R-50-dt.pkl")
    tiny = {"resnet": {"depth": 50, "num_groups": GROUPS, "width_per_group": WIDTH, "stem_out_channels": STEM,
                       "res2_out_channels": STEM * 4}}  # fmt: skip
    config = tmp_path / "fpn.yaml"
    config.write_text(f"model: {{backbone: {tiny}}}\n")
    fpn = build_model(load_experiment(config).model)
    report = load_model_weights(fpn, weights)  # names matched by suffix, as detectron2 does
    assert len(report.loaded) == len(converted)
    torch.testing.assert_close(fpn.backbone.bottom_up.res5[2].conv3.weight, converted["res5.2.conv3.weight"])


def test_a_pkl_that_runs_code_is_refused_by_the_converter_and_by_get(tmp_path, server):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = pickle.dumps({"blobs": {"conv1_w": Exploit()}})
    path = tmp_path / "R-50.pkl"
    path.write_bytes(evil)
    refused = "disallowed callables: (posix|os)\\.system; refusing to load it"
    with pytest.raises(ZooError, match=refused):
        msra_resnet_to_dt(path)
    server.files["/d2/Evil/model_final.pkl"] = evil
    config = tmp_path / "tiny.yaml"
    resnet = "{depth: 50, stem_out_channels: 8, res2_out_channels: 16, width_per_group: 4}"
    config.write_text(f"model: {{backbone: {{resnet: {resnet}}}}}\n")
    url = server.url("/d2/Evil/model_final.pkl")
    entry = {"name": "Evil/rcnn", "task": "detection", "label": "evil", "section": "tests",
             "config": str(config), "weights": {"urls": [url]}}  # fmt: skip
    manifest = dt_zoo.parse_manifest({"version": 1, "entries": [entry]})
    with pytest.raises(ZooError, match="^zoo model 'Evil/rcnn': .*" + refused):
        dt_zoo.get("Evil/rcnn", manifest=manifest, progress=False)
    assert not marker.exists()
