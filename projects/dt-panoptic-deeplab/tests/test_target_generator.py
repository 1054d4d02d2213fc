"""The target generator on a crafted panoptic map: labels, Gaussian centres, offsets and weights."""

import math

import numpy as np
import pytest
import torch

from dt_panoptic_deeplab.target_generator import PanopticDeepLabTargetGenerator


def _scene():
    """12x12 ids: stuff 1 (class 0) everywhere, thing 2 (class 3, 3x3 at rows 1-3, cols 1-3),
    thing 3 (class 4, 4x6 at rows 6-9, cols 4-9), a crowd thing 4 (class 3) at row 11 cols 0-3,
    and unlabelled (id 0) at row 11 cols 8-11."""
    ids = np.ones((12, 12), dtype=np.int64)
    ids[1:4, 1:4] = 2
    ids[6:10, 4:10] = 3
    ids[11, 0:4] = 4
    ids[11, 8:12] = 0
    segments = [
        {"id": 1, "category_id": 0, "iscrowd": 0},
        {"id": 2, "category_id": 3, "iscrowd": 0},
        {"id": 3, "category_id": 4, "iscrowd": 0},
        {"id": 4, "category_id": 3, "iscrowd": 1},
    ]
    return ids, segments


def _generator(**kwargs):
    return PanopticDeepLabTargetGenerator(ignore_label=255, thing_ids=[3, 4], sigma=2, **kwargs)


def test_semantic_labels_and_centre_points():
    ids, segments = _scene()
    t = _generator()(ids, segments)
    sem = t["sem_seg"]
    assert sem.dtype == torch.int64 and sem.shape == (12, 12)
    assert sem[2, 2] == 3 and sem[7, 5] == 4 and sem[0, 0] == 0 and sem[11, 1] == 3 and sem[11, 9] == 255
    # a crowd thing gets a centre too (detectron2's rule); its centre weights are 0, so it trains nothing
    assert t["center_points"] == [[2.0, 2.0], [7.5, 6.5], [11.0, 1.5]]


def test_gaussian_peaks_at_the_rounded_centres():
    ids, segments = _scene()
    center = _generator()(ids, segments)["center"]
    assert center[2, 2] == pytest.approx(1.0)
    assert center[2, 4] == pytest.approx(math.exp(-4 / 8))  # 2 px away, sigma 2
    # the second centre (7.5, 6.5) rounds to (8, 6) (numpy rounds half to even: 7.5 -> 8, 6.5 -> 6)
    assert center[8, 6] == pytest.approx(1.0)
    assert center[8, 7] == pytest.approx(math.exp(-1 / 8))
    assert center.max() == pytest.approx(1.0) and center[0, 11] < 1e-3


def test_offsets_point_from_every_thing_pixel_to_its_centre():
    ids, segments = _scene()
    offset = _generator()(ids, segments)["offset"]  # [2, H, W] (dy, dx)
    assert offset[:, 1, 1].tolist() == [1.0, 1.0]
    assert offset[:, 3, 2].tolist() == [-1.0, 0.0]
    assert offset[:, 9, 9].tolist() == [-1.5, -2.5]
    ys, xs = np.nonzero(ids == 3)
    assert np.allclose(ys + offset[0, ys, xs].numpy(), 7.5) and np.allclose(
        xs + offset[1, ys, xs].numpy(), 6.5
    )
    assert offset[:, 0, 0].tolist() == [0.0, 0.0]  # stuff has no offset


def test_weights_ignore_crowd_unlabelled_and_stuff_offsets_and_boost_small_instances():
    ids, segments = _scene()
    t = _generator(ignore_stuff_in_offset=True, small_instance_area=10, small_instance_weight=3)(
        ids, segments
    )
    cw, ow, sw = t["center_weights"][0], t["offset_weights"][0], t["sem_seg_weights"]
    assert t["center_weights"].shape == (1, 12, 12)
    assert cw[0, 0] == 1 and cw[11, 1] == 0 and cw[11, 9] == 0  # crowd and unlabelled ignored
    assert ow[0, 0] == 0 and ow[2, 2] == 1 and ow[7, 5] == 1  # stuff ignored in offsets
    assert sw[2, 2] == 3 and sw[7, 5] == 1 and sw[0, 0] == 1  # the 9-pixel thing is small


def test_crowd_can_be_ignored_in_semantics():
    ids, segments = _scene()
    sem = _generator(ignore_crowd_in_semantic=True)(ids, segments)["sem_seg"]
    assert sem[11, 1] == 255 and sem[2, 2] == 3
