"""Rotated boxes through the data path: transforms (flip, resize, rotation, crop), annotation
transforms, the mapper, and shapes' rotated-box annotations."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from dt_data import DatasetCatalog, DatasetMapper, MetadataCatalog
from dt_data import detection_utils as utils
from dt_data import transforms as T
from dt_data.datasets import load_shapes, register_shapes
from dt_data.datasets.shapes_drawing import rotated_box_of
from dt_structures import BoxMode, RotatedBoxes

BOXES = np.array(
    [[30.0, 20.0, 16.0, 6.0, 25.0], [10.0, 40.0, 8.0, 8.0, -170.0], [50.0, 50.0, 12.0, 4.0, 90.0]]
)


def corners(boxes: np.ndarray) -> np.ndarray:
    """``[N, 4, 2]`` corners of XYWHA boxes (angle CCW on screen, y down)."""
    theta = np.deg2rad(boxes[:, 4])
    u = np.stack([np.cos(theta), -np.sin(theta)], 1) * boxes[:, 2:3] / 2  # the box's x axis
    v = np.stack([np.sin(theta), np.cos(theta)], 1) * boxes[:, 3:4] / 2
    c = boxes[:, None, :2]
    return np.stack([c[:, 0] + su * u + sv * v for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1))], 1)


def assert_same_rectangles(a: np.ndarray, b: np.ndarray, atol: float = 1e-4) -> None:
    """Boxes cover the same regions: the same corner sets (in any order), up to ``atol`` pixels."""
    for ca, cb in zip(corners(a), corners(b), strict=True):
        dist = np.linalg.norm(ca[:, None] - cb[None], axis=2)  # [4, 4]
        assert dist.min(axis=1).max() < atol, (ca, cb)


@pytest.mark.parametrize(
    "transform",
    [
        T.HFlipTransform(64),
        T.VFlipTransform(64),
        T.ResizeTransform(64, 64, 96, 96),
        T.RotationTransform(64, 64, 30.0),
        T.RotationTransform(64, 48, -75.0, expand=False),
        T.CropTransform(5, 7, 40, 40),
        T.PadTransform(3, 4, 5, 6),
    ],
    ids=lambda t: type(t).__name__,
)
def test_rotated_boxes_follow_their_corners(transform):
    """A rigid map, a flip or a uniform scale moves a rotated box onto its moved corners."""
    moved = transform.apply_rotated_box(BOXES)
    expected = transform.apply_coords(corners(BOXES).reshape(-1, 2)).reshape(-1, 4, 2)
    for got, want in zip(corners(moved), expected, strict=True):
        assert np.linalg.norm(got[:, None] - want[None], axis=2).min(axis=1).max() < 1e-6


def test_flip_and_rotation_angles_follow_detectron2():
    flipped = T.HFlipTransform(64).apply_rotated_box(BOXES)
    np.testing.assert_allclose(flipped[:, 4], -BOXES[:, 4])
    np.testing.assert_allclose(T.VFlipTransform(64).apply_rotated_box(BOXES)[:, 4], -BOXES[:, 4])
    rotated = T.RotationTransform(64, 64, 30.0, expand=False).apply_rotated_box(BOXES)
    np.testing.assert_allclose((rotated[:, 4] - BOXES[:, 4] + 180) % 360 - 180, 30.0, atol=1e-9)
    np.testing.assert_allclose(rotated[:, 2:4], BOXES[:, 2:4])
    # anisotropic resize keeps detectron2's formula (a horizontal box stays horizontal, stretched)
    resized = T.ResizeTransform(64, 64, 32, 128).apply_rotated_box(np.array([[10.0, 10.0, 8.0, 4.0, 0.0]]))
    np.testing.assert_allclose(resized, [[20.0, 5.0, 16.0, 2.0, 0.0]])


def test_transform_list_and_annotations_keep_rotated_boxes():
    transforms = T.TransformList([T.HFlipTransform(64), T.ResizeTransform(64, 64, 32, 32)])
    anno = {"bbox": list(BOXES[0]), "bbox_mode": BoxMode.XYWHA_ABS, "category_id": 2}
    out = utils.transform_instance_annotations(anno, transforms, (32, 32))
    assert out["bbox_mode"] == BoxMode.XYWHA_ABS and anno["bbox"] == list(BOXES[0])
    np.testing.assert_allclose(out["bbox"], [(64 - 30.0) / 2, 10.0, 8.0, 3.0, -25.0])
    with pytest.raises(ValueError, match="bbox must be 5 finite numbers"):
        utils.transform_instance_annotations(dict(anno, bbox=[1, 2, 3, 4]), transforms, (32, 32))


@pytest.fixture(scope="module")
def rotated_shapes(shapes_root):
    return load_shapes("train", num_images=8, image_size=64, seed=3, root=shapes_root, kind="rotated")


def test_mapper_gives_rotated_ground_truth(rotated_shapes):
    d = rotated_shapes[0]
    out = DatasetMapper(True, augmentations=[T.RandomFlip(1.0)], image_format="RGB")(
        d, np.random.default_rng(0)
    )
    boxes = out["instances"].gt_boxes
    assert isinstance(boxes, RotatedBoxes) and len(boxes) == len(d["annotations"])
    expected = np.array([a["bbox"] for a in d["annotations"]])
    expected[:, 0] = 64 - expected[:, 0]
    expected[:, 4] = -expected[:, 4]
    assert_same_rectangles(boxes.tensor.double().numpy(), expected)
    mixed = copy.deepcopy(d)
    mixed["annotations"].append({"bbox": [1, 1, 5, 5], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0})
    with pytest.raises(ValueError, match="000000.jpg: annotations mix rotated"):
        DatasetMapper(True, augmentations=[])(mixed)


def test_minimum_area_rectangle_of_a_region():
    square = np.zeros((40, 40), bool)
    square[5:15, 8:28] = True  # 20 wide, 10 high
    cx, cy, w, h, angle = rotated_box_of(square)
    assert (cx, cy) == pytest.approx((18.0, 10.0)) and {round(w), round(h)} == {20, 10}
    assert angle % 90 == pytest.approx(0.0, abs=1e-6) or angle % 90 == pytest.approx(90.0, abs=1e-6)
    # a rasterised rectangle at 30 degrees comes back at 30 degrees, about its size
    region = np.zeros((80, 80), bool)
    ys, xs = np.mgrid[0:80, 0:80] + 0.5
    theta = np.deg2rad(30.0)
    along = (xs - 40) * np.cos(theta) - (ys - 40) * np.sin(theta)
    across = (xs - 40) * np.sin(theta) + (ys - 40) * np.cos(theta)
    region[(np.abs(along) <= 20) & (np.abs(across) <= 6)] = True
    cx, cy, w, h, angle = rotated_box_of(region)
    assert -90 <= angle < 90 and (cx, cy) == pytest.approx((40.0, 40.0), abs=0.5)
    if w < h:  # the same rectangle described from its other side
        w, h, angle = h, w, angle + 90
    assert (w, h, angle) == pytest.approx((40.0, 12.0, 30.0), abs=1.5)


def test_shapes_rotated_boxes_enclose_the_visible_region(rotated_shapes, shapes_root):
    instances = load_shapes("train", num_images=8, image_size=64, seed=3, root=shapes_root)
    for rot, inst in zip(rotated_shapes, instances, strict=True):
        assert len(rot["annotations"]) == len(inst["annotations"])
        for a, b in zip(rot["annotations"], inst["annotations"], strict=True):
            assert a["bbox_mode"] == BoxMode.XYWHA_ABS and a["category_id"] == b["category_id"]
            assert set(a) == {"bbox", "bbox_mode", "category_id", "iscrowd", "id"}
            cx, cy, w, h, angle = a["bbox"]
            x, y, bw, bh = b["bbox"]
            assert -90 <= angle < 90
            assert w * h <= bw * bh + 1e-6  # never larger than the axis-aligned box
            assert x <= cx <= x + bw and y <= cy <= y + bh


def test_rotated_split_declares_the_rotated_evaluator(tmp_path):
    names = register_shapes("unit_rot_shapes", num_train=2, num_val=1, image_size=48, seed=1, root=tmp_path)
    try:
        assert {"unit_rot_shapes_train_rotated", "unit_rot_shapes_val_rotated"} <= set(names)
        meta = MetadataCatalog.get("unit_rot_shapes_val_rotated")
        assert meta.evaluator_type == "coco_rotated" and meta.json_file.endswith("rotated.json")
        anno = DatasetCatalog.get("unit_rot_shapes_val_rotated")[0]["annotations"][0]
        assert anno["bbox_mode"] == BoxMode.XYWHA_ABS and len(anno["bbox"]) == 5
    finally:
        for n in names:
            DatasetCatalog.remove(n)
            MetadataCatalog.remove(n)
