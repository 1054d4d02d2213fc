"""roi_pool against the pure-PyTorch reference."""

import pytest
import torch
from dt_ops_inputs import random_rois
from dt_ops_reference import roi_pool_ref

import dt_ops


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("contiguous", [True, False])
def test_matches_reference(dtype, contiguous):
    x = torch.randn(2, 3, 11, 14, dtype=dtype)
    if not contiguous:
        x = x.permute(0, 1, 3, 2).contiguous().permute(0, 1, 3, 2)
    rois = random_rois(8, 2, 22, 28, dtype)
    rois[0, 1:] = torch.tensor([30.0, 30, 40, 40], dtype=dtype)  # outside the image: empty bins
    rois[1, 3] = rois[1, 1]  # zero width
    x_ref = x.detach().clone().requires_grad_()
    x = x.requires_grad_()
    out = dt_ops.roi_pool(x, rois, (3, 4), 0.5)
    ref = roi_pool_ref(x_ref, rois, (3, 4), 0.5)
    torch.testing.assert_close(out, ref, atol=0, rtol=0)
    grad = torch.randn_like(out)
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad)


def test_gradcheck_and_empty():
    x = torch.randn(1, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 0.0, 0.0, 5.0, 4.0], [0, 2.0, 1.0, 6.0, 5.0]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: dt_ops.roi_pool(t, rois, 2), (x,))
    assert dt_ops.roi_pool(x, torch.zeros(0, 5, dtype=torch.float64), 2).shape == (0, 2, 2, 2)
    with pytest.raises(ValueError, match="output_size"):
        dt_ops.roi_pool(x, rois, (0, 2))
