"""Inside autocast (AMP training, bfloat16 on CPU) the ops compute in float32 like torchvision's, so a
model whose features and scores come out in reduced precision can call them with float32 boxes."""

import pytest
import torch

import dt_ops


def _boxes(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 50
    wh = torch.rand(n, 2, generator=g) * 20 + 1
    return torch.cat([xy, xy + wh], dim=1)


def test_nms_takes_reduced_precision_scores_under_autocast():
    boxes = _boxes(60, 0)
    scores = torch.rand(60, generator=torch.Generator().manual_seed(1))
    scores_bf16 = scores.bfloat16()
    idxs = torch.arange(60) % 3
    with torch.autocast("cpu", dtype=torch.bfloat16):
        keep = dt_ops.nms(boxes, scores_bf16, 0.5)
        keep_batched = dt_ops.batched_nms(boxes, scores_bf16, idxs, 0.5)
        iou = dt_ops.box_iou(boxes.bfloat16(), boxes)
    assert torch.equal(keep, dt_ops.nms(boxes, scores_bf16.float(), 0.5))
    assert torch.equal(keep_batched, dt_ops.batched_nms(boxes, scores_bf16.float(), idxs, 0.5))
    assert iou.dtype == torch.float32


def test_rotated_ops_under_autocast():
    boxes = torch.cat([_boxes(20, 2)[:, :2] + 10, torch.rand(20, 2) * 9 + 1, torch.rand(20, 1) * 90], dim=1)
    scores = torch.rand(20).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        keep = dt_ops.nms_rotated(boxes, scores, 0.5)
        iou = dt_ops.box_iou_rotated(boxes, boxes.bfloat16())
    assert torch.equal(keep, dt_ops.nms_rotated(boxes, scores.float(), 0.5))
    assert iou.dtype == torch.float32


@pytest.mark.parametrize("op", ["roi_align", "roi_pool"])
def test_pooling_of_bfloat16_features_with_float32_boxes(op):
    features = torch.randn(2, 4, 16, 16)
    rois = torch.cat([torch.tensor([[0.0], [1.0], [1.0]]), _boxes(3, 3) / 4], dim=1)
    pool = getattr(dt_ops, op)
    kwargs = {"sampling_ratio": 2, "aligned": True} if op == "roi_align" else {}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = pool(features.bfloat16(), rois, (5, 5), 0.5, **kwargs)
    expected = pool(features.bfloat16().float(), rois, (5, 5), 0.5, **kwargs)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected.bfloat16().float())


def test_roi_align_rotated_and_deform_conv_under_autocast():
    features = torch.randn(1, 3, 12, 12)
    rois = torch.tensor([[0.0, 6.0, 6.0, 5.0, 3.0, 30.0]])
    offset = torch.randn(1, 18, 10, 10) * 0.5
    weight = torch.randn(5, 3, 3, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pooled = dt_ops.roi_align_rotated(features.bfloat16(), rois, 4, 1.0, 2)
        conv = dt_ops.deform_conv2d(features.bfloat16(), offset, weight)
    assert pooled.dtype == torch.bfloat16 and conv.dtype == torch.bfloat16
    expected = dt_ops.deform_conv2d(features.bfloat16().float(), offset, weight)
    torch.testing.assert_close(conv.float(), expected.bfloat16().float())


def test_mixed_dtypes_outside_autocast_still_rejected():
    with pytest.raises(TypeError, match="scores must have dtype float32 or float64"):
        dt_ops.nms(_boxes(4, 4), torch.rand(4).bfloat16(), 0.5)
