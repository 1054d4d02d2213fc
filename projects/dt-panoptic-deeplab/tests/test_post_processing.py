"""Post-processing on crafted centre/offset maps: NMS, top-k, grouping and merging recover instances
exactly, including from the target generator's own maps."""

import numpy as np
import pytest
import torch

from dt_panoptic_deeplab.post_processing import (
    find_instance_centers,
    get_panoptic_segmentation,
    group_pixels,
    merge_semantic_and_instance,
)
from dt_panoptic_deeplab.target_generator import PanopticDeepLabTargetGenerator


def test_centres_are_thresholded_local_maxima():
    heat = torch.zeros(1, 10, 10)
    heat[0, 2, 2], heat[0, 2, 3] = 0.9, 0.5  # the weaker neighbour is suppressed by max pooling
    heat[0, 7, 7] = 0.6
    heat[0, 5, 0] = 0.05  # below the threshold
    assert find_instance_centers(heat, threshold=0.1, nms_kernel=3).tolist() == [[2, 2], [7, 7]]
    # a 1x1 kernel keeps every pixel above the threshold
    assert find_instance_centers(heat, threshold=0.1, nms_kernel=1).tolist() == [[2, 2], [2, 3], [7, 7]]


def test_top_k_keeps_peaks_above_the_kth_score():
    heat = torch.zeros(1, 9, 9)
    for (y, x), score in zip([(1, 1), (1, 7), (7, 1), (7, 7)], [0.9, 0.8, 0.7, 0.6], strict=True):
        heat[0, y, x] = score
    assert find_instance_centers(heat, nms_kernel=3, top_k=3).tolist() == [[1, 1], [1, 7]]  # > 3rd score
    assert len(find_instance_centers(heat, nms_kernel=3, top_k=10)) == 4  # fewer peaks than k: all
    with pytest.raises(ValueError, match="odd"):
        find_instance_centers(heat, nms_kernel=4)


def test_pixels_group_to_the_centre_their_offset_points_at():
    offsets = torch.zeros(2, 4, 6)
    offsets[1, :, :3] = 1.0 - torch.arange(3.0)  # left half points at column 1
    offsets[1, :, 3:] = 4.0 - torch.arange(3.0, 6.0)  # right half at column 4
    offsets[0] = 1.0 - torch.arange(4.0)[:, None]  # every row points at row 1
    ids = group_pixels(torch.tensor([[1, 4], [1, 1]]), offsets)
    assert ids.shape == (1, 4, 6)
    assert (ids[0, :, :3] == 2).all() and (ids[0, :, 3:] == 1).all()


def test_merge_majority_class_instance_numbers_and_small_stuff():
    sem = torch.tensor([[[1, 1, 2, 0, 0, 5]]])  # classes; 1 and 2 are things
    ins = torch.tensor([[[1, 1, 1, 0, 0, 0]]])
    thing = torch.isin(sem, torch.tensor([1, 2])).long()
    pan = merge_semantic_and_instance(sem, ins, thing, label_divisor=100, thing_ids=[1, 2], stuff_area=2)
    assert pan.tolist() == [[[101, 101, 101, 0, 0, -1]]]  # class 5 has 1 < 2 pixels: void


def _ground_truth():
    """20x24 panoptic ids: stuff 1 (class 0), stuff 2 (class 1) in the bottom rows, and three
    instances: two of class 2, one of class 3, touching each other."""
    ids = np.ones((20, 24), dtype=np.int64)
    ids[14:, :] = 2
    ids[2:8, 2:9] = 10
    ids[2:8, 9:14] = 11  # touches instance 10
    ids[9:13, 15:22] = 12
    segments = [
        {"id": 1, "category_id": 0},
        {"id": 2, "category_id": 1},
        {"id": 10, "category_id": 2},
        {"id": 11, "category_id": 2},
        {"id": 12, "category_id": 3},
    ]
    return ids, segments


def test_ground_truth_centres_and_offsets_recover_every_instance_exactly():
    ids, segments = _ground_truth()
    targets = PanopticDeepLabTargetGenerator(ignore_label=255, thing_ids=[2, 3], sigma=1)(ids, segments)
    panoptic, centers = get_panoptic_segmentation(
        targets["sem_seg"][None],
        targets["center"][None],
        targets["offset"],
        thing_ids=[2, 3],
        label_divisor=1000,
        stuff_area=1,
        nms_kernel=3,
        top_k=None,
    )
    assert centers.shape == (1, 3, 2)
    panoptic = panoptic[0].numpy()
    expected = {1: 0, 2: 1000, 10: 2001, 11: 2002, 12: 3001}
    for seg_id, label in expected.items():
        assert (panoptic[ids == seg_id] == label).all(), seg_id
    assert set(np.unique(panoptic).tolist()) == set(expected.values())


def test_a_foreground_mask_overrides_the_semantic_thing_classes():
    sem = torch.zeros(1, 6, 6, dtype=torch.long)
    center = torch.zeros(1, 6, 6)
    center[0, 2, 2] = 1.0
    foreground = torch.zeros(1, 6, 6, dtype=torch.long)
    foreground[0, 1:4, 1:4] = 1
    pan, _ = get_panoptic_segmentation(
        sem,
        center,
        torch.zeros(2, 6, 6),
        thing_ids=[1],
        label_divisor=10,
        stuff_area=1,
        foreground_mask=foreground,
    )
    # the instance takes the majority semantic class (0) of its pixels; stuff 0 fills the rest
    assert (pan[0, 1:4, 1:4] == 1).all() and (pan[0, 0] == 0).all()


def test_shapes_are_checked():
    with pytest.raises(ValueError, match=r"offsets must be Tensor\[2, H, W\]"):
        get_panoptic_segmentation(
            torch.zeros(1, 4, 4, dtype=torch.long),
            torch.zeros(1, 4, 4),
            torch.zeros(4, 4),
            thing_ids=[1],
            label_divisor=10,
            stuff_area=0,
        )
