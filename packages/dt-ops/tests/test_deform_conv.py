"""deform_conv2d (v1 and v2) against the pure-PyTorch reference, and the detectron2-style modules."""

import pytest
import torch
from dt_ops_reference import deform_conv2d_ref

import dt_ops


def _inputs(dtype, groups=1, offset_groups=1, modulated=True, stride=1, padding=1, dilation=1, batch=2):
    c_in, c_out, k = 4, 6, 3
    x = torch.randn(batch, c_in, 7, 8, dtype=dtype)
    out_h = (7 + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    out_w = (8 + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    offset = torch.randn(batch, 2 * offset_groups * k * k, out_h, out_w, dtype=dtype) * 2
    mask = torch.rand(batch, offset_groups * k * k, out_h, out_w, dtype=dtype) if modulated else None
    weight = torch.randn(c_out, c_in // groups, k, k, dtype=dtype)
    bias = torch.randn(c_out, dtype=dtype)
    return x, offset, weight, bias, mask


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("modulated", [False, True])
@pytest.mark.parametrize(
    ("groups", "offset_groups", "stride", "padding", "dilation"), [(1, 1, 1, 1, 1), (2, 2, 2, 0, 2)]
)
@pytest.mark.parametrize("contiguous", [True, False])
def test_matches_reference(dtype, modulated, groups, offset_groups, stride, padding, dilation, contiguous):
    tensors = _inputs(dtype, groups, offset_groups, modulated, stride, padding, dilation)
    if not contiguous:
        tensors = tuple(
            t.transpose(-1, -2).contiguous().transpose(-1, -2) if t is not None and t.dim() == 4 else t
            for t in tensors
        )
    ours = [t.detach().clone().requires_grad_() if t is not None else None for t in tensors]
    refs = [t.detach().clone().requires_grad_() if t is not None else None for t in tensors]
    geometry = ((stride,) * 2, (padding,) * 2, (dilation,) * 2)
    out = dt_ops.deform_conv2d(ours[0], ours[1], ours[2], ours[3], *geometry, mask=ours[4])
    ref = deform_conv2d_ref(refs[0], refs[1], refs[2], refs[3], *geometry, refs[4])
    tol = {"atol": 1e-4, "rtol": 1e-4} if dtype == torch.float32 else {"atol": 1e-9, "rtol": 1e-9}
    torch.testing.assert_close(out, ref, **tol)
    grad = torch.randn_like(out)
    out.backward(grad)
    ref.backward(grad)
    for got, want in zip(ours, refs, strict=True):
        if got is not None:
            torch.testing.assert_close(got.grad, want.grad, **tol)


def test_gradcheck_v1_and_v2():
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    offset = (torch.randn(1, 8, 3, 3, dtype=torch.float64) * 0.7).requires_grad_()
    mask = torch.rand(1, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: dt_ops.deform_conv2d(*a), (x, offset, weight, bias))
    assert torch.autograd.gradcheck(
        lambda x, o, w, b, m: dt_ops.deform_conv2d(x, o, w, b, mask=m), (x, offset, weight, bias, mask)
    )


def test_zero_offset_equals_conv2d():
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64)
    weight = torch.randn(8, 2, 3, 3, dtype=torch.float64)
    bias = torch.randn(8, dtype=torch.float64)
    offset = torch.zeros(2, 18, 5, 5, dtype=torch.float64)
    want = torch.nn.functional.conv2d(x, weight, bias, stride=2, padding=1, groups=2)
    torch.testing.assert_close(dt_ops.deform_conv2d(x, offset, weight, bias, stride=2, padding=1), want)


def test_empty_batch():
    x, offset, weight, bias, mask = _inputs(torch.float32, batch=0)
    x.requires_grad_()
    out = dt_ops.deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)
    assert out.shape == (0, 6, 7, 8)
    out.sum().backward()
    assert x.grad.shape == x.shape


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"offset": torch.zeros(2, 17, 7, 8)}, ValueError, "multiple of 2 \\* kh \\* kw"),
        ({"offset": torch.zeros(2, 18, 6, 8)}, ValueError, "offset must have shape"),
        ({"mask": torch.zeros(2, 8, 7, 8)}, ValueError, "mask must have shape"),
        ({"bias": torch.zeros(5)}, ValueError, "bias must have shape"),
        ({"weight": torch.zeros(6, 3, 3, 3)}, ValueError, "multiple of weight.shape\\[1\\]"),
        ({"weight": torch.zeros(6, 4, 3, 3, dtype=torch.float64)}, TypeError, "same dtype"),
        ({"input": torch.zeros(2, 4, 7)}, ValueError, "input must be 4-D"),
        ({"stride": 0}, ValueError, "stride must be >= 1"),
        ({"mask": torch.zeros(2, 9, 7, 8, device="meta")}, ValueError, "cpu or cuda"),
    ],
)
def test_validation_errors(change, error, match):
    x, offset, weight, bias, mask = _inputs(torch.float32)
    args = {"input": x, "offset": offset, "weight": weight, "bias": bias, "padding": 1, "mask": mask}
    args.update(change)
    with pytest.raises(error, match=match):
        dt_ops.deform_conv2d(**args)
