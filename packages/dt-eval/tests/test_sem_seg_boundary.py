"""Boundary IoU of SemSegEvaluator (detectron2's ``_mask_to_boundary`` semantics) on hand-made masks."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dt_eval.sem_seg_evaluation import SemSegEvaluator, mask_to_boundary


def _scores(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """One-hot scores [C, H, W] whose argmax is labels."""
    return (np.arange(num_classes)[:, None, None] == labels[None]).astype(np.float32)


def _window_min_boundary(mask: np.ndarray, dilation: int) -> np.ndarray:
    """Reference without OpenCV: mask minus its minimum over a (2d+1)^2 window, outside pixels = 0."""
    h, w = mask.shape
    padded = np.zeros((h + 2 * dilation, w + 2 * dilation), dtype=mask.dtype)
    padded[dilation : dilation + h, dilation : dilation + w] = mask
    low = mask.copy()
    for dy in range(2 * dilation + 1):
        for dx in range(2 * dilation + 1):
            low = np.minimum(low, padded[dy : dy + h, dx : dx + w])
    return mask - low


def _square(h: int, w: int, rows: slice, cols: slice) -> np.ndarray:
    m = np.zeros((h, w), dtype=np.uint8)
    m[rows, cols] = 1
    return m


def test_boundary_of_a_square_and_of_the_image_edge():
    # 10x10: 0.02 * diagonal = 0.28 -> dilation 1: a one-pixel inner ring
    square = _square(10, 10, slice(2, 8), slice(2, 8))
    ring = square - _square(10, 10, slice(3, 7), slice(3, 7))
    np.testing.assert_array_equal(mask_to_boundary(square), ring)
    # the image border counts as background, so a full mask has its outer ring as boundary
    full = np.ones((10, 10), dtype=np.uint8)
    assert mask_to_boundary(full).sum() == 36 and mask_to_boundary(full)[1:-1, 1:-1].sum() == 0
    # 100x100: 0.02 * 141.4 = 2.83 -> dilation 3: a band of width 3
    big = _square(100, 100, slice(20, 80), slice(20, 80))
    band = big - _square(100, 100, slice(23, 77), slice(23, 77))
    np.testing.assert_array_equal(mask_to_boundary(big), band)
    assert band.sum() == 60 * 60 - 54 * 54
    # dilation_ratio: 0.2 * 14.1 = 2.83 -> 3
    np.testing.assert_array_equal(mask_to_boundary(full, 0.2), _window_min_boundary(full, 3))


def test_boundary_of_a_label_map_is_the_label_difference():
    labels = np.zeros((6, 6), dtype=np.uint8)
    labels[:, :3] = 1
    labels[:, 3:] = 3
    # each pixel minus the smallest label in its 3x3 window (0 outside the image)
    expected = np.array(
        [[1, 1, 1, 3, 3, 3]] + [[1, 0, 0, 2, 0, 3]] * 4 + [[1, 1, 1, 3, 3, 3]], dtype=np.uint8
    )
    np.testing.assert_array_equal(mask_to_boundary(labels), expected)


@settings(max_examples=30, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40)), elements=st.integers(0, 6)))
def test_matches_a_window_minimum_reference(mask):
    h, w = mask.shape
    dilation = max(1, int(round(0.02 * np.sqrt(h**2 + w**2))))
    np.testing.assert_array_equal(mask_to_boundary(mask), _window_min_boundary(mask, dilation))


def test_mask_to_boundary_input_checks():
    with pytest.raises(TypeError, match="uint8"):
        mask_to_boundary(np.zeros((3, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="2-dimensional"):
        mask_to_boundary(np.zeros((2, 3, 3), dtype=np.uint8))
    assert mask_to_boundary(np.zeros((0, 5), dtype=np.uint8)).shape == (0, 5)


def test_boundary_iou_hand_computed():
    gt = _square(10, 10, slice(2, 8), slice(2, 8)).astype(np.int64)
    pred = _square(10, 10, slice(2, 8), slice(3, 9)).astype(np.int64)
    ev = SemSegEvaluator(num_classes=2, metadata={"stuff_classes": ["bg", "fg"]})
    ev.process([{"sem_seg_gt": gt}], [{"sem_seg": _scores(pred, 2)}])
    res = ev.evaluate()["sem_seg"]
    # rings of 20 pixels each share rows 2 and 7 over columns 3..7: 10 -> fg B-IoU 10 / 30.
    # Boundary maps are 0 elsewhere, interiors included (detectron2 counts those as class 0):
    # 80 zeros in each, 70 in both -> bg B-IoU 70 / 90.
    assert res["BoundaryIoU-fg"] == pytest.approx(100 / 3)
    assert res["BoundaryIoU-bg"] == pytest.approx(700 / 9)
    assert res["mBIoU"] == pytest.approx((100 / 3 + 700 / 9) / 2)
    assert res["IoU-fg"] == pytest.approx(100 * 30 / 42) and res["IoU-bg"] == pytest.approx(100 * 58 / 70)
    assert res["min(IoU, B-Iou)-fg"] == pytest.approx(100 / 3)
    assert res["min(IoU, B-Iou)-bg"] == pytest.approx(700 / 9)
    assert list(res)[:9] == [
        "mIoU", "fwIoU", "mBIoU", "IoU-bg", "BoundaryIoU-bg", "min(IoU, B-Iou)-bg",
        "IoU-fg", "BoundaryIoU-fg", "min(IoU, B-Iou)-fg",
    ]  # fmt: skip


def test_boundary_iou_with_ignored_pixels_follows_detectron2():
    # ground truth: class 1 everywhere but a 2x2 ignored block (255 -> 2 before the boundary)
    gt = np.ones((10, 10), dtype=np.int64)
    gt[4:6, 4:6] = 255
    pred = np.ones((10, 10), dtype=np.int64)
    ev = SemSegEvaluator(num_classes=2, ignore_label=255, metadata={"stuff_classes": ["a", "b"]})
    ev.process([{"sem_seg_gt": gt}], [{"sem_seg": _scores(pred, 2)}])
    res = ev.evaluate()["sem_seg"]
    # gt boundary: outer ring (1 - 0) and the ignored block (2 - 1 = 1): 40 pixels of value 1, 60 of 0;
    # prediction boundary: the outer ring, 36 pixels of 1, 64 of 0.
    assert res["BoundaryIoU-b"] == pytest.approx(100 * 36 / 40)
    assert res["BoundaryIoU-a"] == pytest.approx(100 * 60 / 64)
    assert res["mBIoU"] == pytest.approx((90 + 93.75) / 2)
    assert res["IoU-b"] == pytest.approx(100)
    assert res["min(IoU, B-Iou)-b"] == pytest.approx(90)
    assert math.isnan(res["IoU-a"]) and math.isnan(res["min(IoU, B-Iou)-a"])  # Python's min(nan, x)


def test_boundary_iou_accumulates_over_images():
    gt = _square(10, 10, slice(2, 8), slice(2, 8)).astype(np.int64)
    pred = _square(10, 10, slice(2, 8), slice(3, 9)).astype(np.int64)
    ev = SemSegEvaluator(num_classes=2)
    ev.process(
        [{"sem_seg_gt": gt}, {"sem_seg_gt": gt}], [{"sem_seg": _scores(pred, 2)}, {"sem_seg": _scores(gt, 2)}]
    )
    res = ev.evaluate()["sem_seg"]
    # fg rings: image 1 tp 10, gt 20, pred 20; image 2 (perfect) tp 20, gt 20, pred 20 -> 30 / 50
    assert res["BoundaryIoU-1"] == pytest.approx(100 * 30 / 50)


def test_boundary_iou_off_or_too_many_classes(caplog):
    gt = _square(10, 10, slice(2, 8), slice(2, 8)).astype(np.int64)
    off = SemSegEvaluator(num_classes=2, compute_boundary_iou=False)
    on = SemSegEvaluator(num_classes=2)
    for ev in (off, on):
        ev.process([{"sem_seg_gt": gt}], [{"sem_seg": _scores(gt, 2)}])
    res_off, res_on = off.evaluate()["sem_seg"], on.evaluate()["sem_seg"]
    assert not any("Boundary" in k or "B-Iou" in k for k in res_off) and "mBIoU" not in res_off
    assert {k: v for k, v in res_on.items() if k in res_off} == res_off
    with caplog.at_level(logging.WARNING, logger="dt_eval.sem_seg_evaluation"):
        many = SemSegEvaluator(num_classes=255)
    assert "boundary IoU needs fewer than 255 classes" in caplog.text
    many.process([{"sem_seg_gt": gt}], [{"sem_seg": _scores(gt, 255)}])
    assert "mBIoU" not in many.evaluate()["sem_seg"]
