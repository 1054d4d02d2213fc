"""The detectron2-style modules: constructor signatures, forward, repr."""

import torch

import dt_ops


def test_roi_align_module():
    layer = dt_ops.ROIAlign((7, 7), spatial_scale=0.25, sampling_ratio=0)
    assert repr(layer) == "ROIAlign(output_size=(7, 7), spatial_scale=0.25, sampling_ratio=0, aligned=True)"
    x = torch.randn(1, 3, 16, 16)
    rois = torch.tensor([[0, 4.0, 4, 40, 30]], dtype=torch.float64)  # cast to the input dtype, as detectron2
    torch.testing.assert_close(layer(x, rois), dt_ops.roi_align(x, rois.float(), 7, 0.25, 0, True))


def test_roi_pool_and_rotated_modules():
    x = torch.randn(1, 3, 16, 16)
    pool = dt_ops.ROIPool(2, 0.5)
    assert repr(pool) == "ROIPool(output_size=(2, 2), spatial_scale=0.5)"
    assert pool(x, torch.tensor([[0, 1.0, 1, 20, 20]])).shape == (1, 3, 2, 2)
    rotated = dt_ops.ROIAlignRotated((3, 5), 1.0, 2)
    assert repr(rotated) == "ROIAlignRotated(output_size=(3, 5), spatial_scale=1.0, sampling_ratio=2)"
    assert rotated(x, torch.tensor([[0, 8.0, 8, 6, 4, 30]])).shape == (1, 3, 3, 5)


def test_deform_conv_modules():
    conv = dt_ops.DeformConv(
        4, 8, 3, padding=1, deformable_groups=2, norm=torch.nn.BatchNorm2d(8), activation=torch.relu
    )
    assert conv.bias is None and conv.weight.shape == (8, 4, 3, 3)
    assert repr(conv).startswith(
        "DeformConv(\n  in_channels=4, out_channels=8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), "
        "dilation=(1, 1), groups=1, deformable_groups=2, bias=False"
    )
    x = torch.randn(2, 4, 6, 6)
    out = conv(x, torch.zeros(2, 36, 6, 6))
    assert out.shape == (2, 8, 6, 6) and (out >= 0).all()
    modulated = dt_ops.ModulatedDeformConv(4, 8, 3, padding=1)
    assert modulated.bias is not None
    out = modulated(x, torch.zeros(2, 18, 6, 6), torch.ones(2, 9, 6, 6))
    want = torch.nn.functional.conv2d(x, modulated.weight, modulated.bias, padding=1)
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)
    out.sum().backward()
    assert modulated.weight.grad is not None and modulated.bias.grad is not None
