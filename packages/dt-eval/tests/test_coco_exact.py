"""dt_eval.coco.COCOeval gives pycocotools' numbers on generated data covering the tricky cases."""

from __future__ import annotations

import numpy as np
import pytest
from dteval_compare import assert_same_eval, run_both
from dteval_synth import make_dataset

IOU_TYPES = ["bbox", "segm", "keypoints"]


@pytest.fixture(scope="module")
def data():
    # crowd regions, RLE/uncompressed/multi-polygon gt, images without gt or detections,
    # equal scores (10 levels), zero-area boxes, areas outside the ranges
    return make_dataset(seed=1, num_images=40, crowd_prob=0.2)


@pytest.mark.parametrize("iou_type", IOU_TYPES)
def test_default_params(data, iou_type):
    ref, ours = run_both(*data, iou_type)
    assert_same_eval(ref, ours)
    assert ref.stats[0] > 0.05  # the data makes real matches, not an all-miss comparison


@pytest.mark.parametrize("iou_type", IOU_TYPES)
def test_use_cats_0(data, iou_type):
    def setup(p):
        p.useCats = 0

    assert_same_eval(*run_both(*data, iou_type, setup))


@pytest.mark.parametrize("iou_type", IOU_TYPES)
def test_custom_params(data, iou_type):
    def setup(p):
        p.iouThrs = np.array([0.3, 0.5, 0.75, 0.9, 1.0])
        p.recThrs = np.linspace(0, 1, 11)
        p.maxDets = [7, 2, 4] if iou_type != "keypoints" else [3]
        p.areaRng = [[0, 1e10], [0, 40**2], [40**2, 90**2], [90**2, 1e10]][: len(p.areaRngLbl)]
        p.imgIds = sorted(p.imgIds)[3:31:2]
        p.catIds = p.catIds[1:]
        if iou_type == "keypoints":
            p.kpt_oks_sigmas = np.linspace(0.02, 0.12, 17)

    ref, ours = run_both(*data, iou_type, setup)
    assert_same_eval(ref, ours)
    assert ours.eval["precision"].shape == (5, 11, 3, len(ours.params.areaRng), len(ours.params.maxDets))


def test_more_detections_than_max_dets():
    gt, res = make_dataset(seed=2, num_images=12, dets_per_gt=12.0, score_levels=4)

    def setup(p):
        p.maxDets = [1, 3, 10]

    assert_same_eval(*run_both(gt, res, "bbox", setup))


def test_continuous_scores():
    assert_same_eval(*run_both(*make_dataset(seed=3, num_images=20, score_levels=None), "segm"))


def test_no_detections_at_all():
    gt, _ = make_dataset(seed=4, num_images=10)
    ref, ours = run_both(gt, [], "bbox")
    assert_same_eval(ref, ours)
    assert ours.stats[0] == 0


def test_ids_zero_and_crowd_only_images():
    gt, res = make_dataset(seed=5, num_images=15, crowd_prob=0.6)
    gt["annotations"][0]["id"] = 0  # pycocotools treats a match to gt id 0 as no match
    assert_same_eval(*run_both(gt, res, "bbox"))


@pytest.mark.parametrize("use_cats", [1, 0])
@pytest.mark.parametrize("iou_type", IOU_TYPES)
def test_eval_imgs_and_ious(iou_type, use_cats):
    def setup(p):
        p.useCats = use_cats
        p.maxDets = [1, 2, 3]  # images with more detections than the last limit

    ref, ours = run_both(*make_dataset(seed=6, num_images=12), iou_type, setup)
    assert ref.ious.keys() == ours.ious.keys()
    for key, a in ref.ious.items():
        b = ours.ious[key]
        if len(a) == 0:
            assert len(b) == 0
        else:
            np.testing.assert_array_equal(b, a)
    assert len(ref.evalImgs) == len(ours.evalImgs)
    for a, b in zip(ref.evalImgs, ours.evalImgs, strict=True):
        assert (a is None) == (b is None)
        if a is None:
            continue
        assert a.keys() == b.keys()
        for key, value in a.items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(b[key], value, err_msg=key)
            else:
                assert list(np.atleast_1d(b[key])) == list(np.atleast_1d(value)), key
