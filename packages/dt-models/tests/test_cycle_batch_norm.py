"""CycleBatchNormList: one set of BatchNorm statistics per level, one shared affine transform; the
RetinaNet head uses it for ``norm: BN``."""

import pytest
import torch

from dt_models import build_model
from dt_models.layers import CycleBatchNormList
from dt_models.meta_arch.retinanet_head import RetinaNetHead, RetinaNetHeadConfig


def test_each_call_uses_the_next_levels_statistics():
    torch.manual_seed(0)
    norm = CycleBatchNormList(3, 2, momentum=1.0)  # momentum 1: running stats = last batch stats
    levels = [torch.randn(4, 2, 5, 5) * s + m for s, m in ((1.0, 0.0), (3.0, 5.0), (0.5, -2.0))]
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([2.0, 1.0]))
        norm.bias.copy_(torch.tensor([0.5, 0.0]))
    outs = [norm(x) for x in levels]
    for x, bn, out in zip(levels, norm, outs, strict=True):
        mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)
        torch.testing.assert_close(bn.running_mean, mean)
        expected = (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + bn.eps)
        expected = (
            expected * torch.tensor([2.0, 1.0])[None, :, None, None]
            + torch.tensor([0.5, 0.0])[None, :, None, None]
        )
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert norm(levels[0]).shape == levels[0].shape  # back to the first level after a full cycle
    assert sorted(norm.state_dict())[:3] == ["0.num_batches_tracked", "0.running_mean", "0.running_var"]
    assert {"weight", "bias"} <= set(norm.state_dict()) and all(not bn.affine for bn in norm)
    with pytest.raises(ValueError, match="length"):
        CycleBatchNormList(0, 2)


def test_retinanet_head_with_bn_keeps_statistics_per_level():
    head = RetinaNetHead(in_channels=4, num_classes=2, num_anchors=1, conv_dims=[4], norm="BN", num_levels=2)
    assert [type(m).__name__ for m in head.cls_subnet] == ["Conv2d", "CycleBatchNormList", "ReLU"]
    features = [torch.randn(2, 4, 8, 8), torch.randn(2, 4, 4, 4) * 10]
    head(features)
    stats = [bn.running_var for bn in head.cls_subnet[1]]
    assert not torch.allclose(stats[0], stats[1])
    with pytest.raises(ValueError, match="runs on 2 levels, got 1"):
        head(features[:1])
    with pytest.raises(ValueError, match="give num_levels"):
        RetinaNetHead(in_channels=4, num_classes=2, num_anchors=1, conv_dims=[4], norm="SyncBN")


def test_retinanet_config_with_bn_head_builds_one_bn_per_level():
    from test_retinanet import tiny_retinanet_config

    config = tiny_retinanet_config(head=RetinaNetHeadConfig(num_convs=1, norm="BN"))
    model = build_model(config)
    assert len(model.head.bbox_subnet[1]) == len(config.in_features)
