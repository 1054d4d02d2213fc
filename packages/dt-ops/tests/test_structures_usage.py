"""The calls dt-structures makes into dt-ops (detectron2's BitMasks.crop_and_resize and
RotatedBoxes pairwise IoU), checked against the pure-PyTorch references."""

import torch
from dt_ops_inputs import random_rotated_boxes
from dt_ops_reference import box_iou_rotated_ref, roi_align_ref

import dt_ops


def test_bitmasks_crop_and_resize_call():
    masks = torch.rand(5, 30, 40) > 0.5  # [N, H, W] bool
    boxes = torch.tensor(
        [[2.0, 3, 20, 25], [0, 0, 40, 30], [10, 10, 11, 11], [-5, -5, 10, 10], [30, 20, 39, 29]]
    )
    # detectron2: one ROI per mask, indexing its own mask, ROIAlign(M, 1.0, 0, aligned=True), >= 0.5
    rois = torch.cat([torch.arange(5, dtype=boxes.dtype)[:, None], boxes], dim=1)
    pooled = dt_ops.ROIAlign((14, 14), 1.0, 0, aligned=True)(masks[:, None].float(), rois).squeeze(1)
    expected = roi_align_ref(masks[:, None].float(), rois, (14, 14), 1.0, 0, True).squeeze(1)
    torch.testing.assert_close(pooled, expected, atol=1e-5, rtol=1e-5)
    assert ((pooled >= 0.5) == (expected >= 0.5)).float().mean() > 0.999


def test_rotated_boxes_pairwise_iou_call():
    a, b = random_rotated_boxes(12), random_rotated_boxes(9)
    torch.testing.assert_close(
        dt_ops.box_iou_rotated(a, b).double(), box_iou_rotated_ref(a, b), atol=1e-4, rtol=0
    )
