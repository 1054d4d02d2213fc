import json

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest

from dt_data import DatasetCatalog, MetadataCatalog
from dt_data.datasets import generate_shapes, load_shapes, register_shapes, shapes_root


def test_generation_is_deterministic_and_cached(shapes_root, tiny_shapes):
    folder = generate_shapes("train", 8, 64, 3, shapes_root)
    again = load_shapes("train", 8, 64, 3, shapes_root, "panoptic")
    assert again == tiny_shapes
    other = generate_shapes("train", 4, 64, 3, shapes_root / "other")
    for i in range(4):  # image i depends only on (seed, split, i)
        a = cv2.imread(str(folder / "images" / f"{i:06d}.jpg"))
        b = cv2.imread(str(other / "images" / f"{i:06d}.jpg"))
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="split"):
        generate_shapes("test", 4, 64, 3, shapes_root)


def test_annotations_agree_with_panoptic_and_semantic_pngs(tiny_shapes):
    n_instances = 0
    for d in tiny_shapes:
        image = cv2.imread(d["file_name"])
        assert image.shape == (64, 64, 3) and image.std() > 5
        sem = cv2.imread(d["sem_seg_file_name"], cv2.IMREAD_UNCHANGED)
        pan = cv2.imread(d["pan_seg_file_name"])[:, :, ::-1].astype(np.int64)
        pan_id = pan[..., 0] + 256 * pan[..., 1] + 65536 * pan[..., 2]
        things = [s for s in d["segments_info"] if s["isthing"]]
        assert len(things) == len(d["annotations"]) >= 1
        assert {s["id"] for s in d["segments_info"]} == set(np.unique(pan_id).tolist())
        for ann, seg in zip(d["annotations"], things, strict=True):
            n_instances += 1
            assert ann["category_id"] == seg["category_id"] and 0 <= ann["category_id"] < 5
            region = pan_id == seg["id"]
            assert (sem[region] == ann["category_id"]).all()
            rle = mask_util.merge(mask_util.frPyObjects(ann["segmentation"], 64, 64))
            poly_mask = mask_util.decode(rle).astype(bool)
            iou = (poly_mask & region).sum() / (poly_mask | region).sum()
            assert iou > (0.9 if region.sum() >= 100 else 0.75)
            ys, xs = np.nonzero(region)
            assert ann["bbox"] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
        stuff = [s for s in d["segments_info"] if not s["isthing"]]
        assert all(s["category_id"] in (5, 6) for s in stuff)
    assert n_instances >= 8


def test_separated_panoptic_labels_things_as_one_class(shapes_root, tiny_shapes):
    separated = load_shapes("train", 8, 64, 3, shapes_root, "panoptic_separated")
    for d, full in zip(separated, tiny_shapes, strict=True):
        assert {k: v for k, v in d.items() if k != "sem_seg_file_name"} == {
            k: v for k, v in full.items() if k != "sem_seg_file_name"
        }
        stuff_only = cv2.imread(d["sem_seg_file_name"], cv2.IMREAD_UNCHANGED)
        sem = cv2.imread(full["sem_seg_file_name"], cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(stuff_only, np.where(sem < 5, 0, sem - 4))  # 5 sky -> 1, 6 ground -> 2
    register_shapes("sep_shapes", num_train=8, num_val=4, image_size=64, seed=3, root=shapes_root)
    meta = MetadataCatalog.get("sep_shapes_train_panoptic_separated")
    assert meta.evaluator_type == "coco_panoptic_seg"
    assert meta.stuff_classes == ["things", "sky", "ground"]
    assert meta.stuff_dataset_id_to_contiguous_id == {0: 0, 6: 1, 7: 2}
    assert meta.sem_seg_root.endswith("panoptic_stuff")
    assert MetadataCatalog.get("sep_shapes_train_panoptic").stuff_classes[5:] == ["sky", "ground"]


def test_occlusion_is_reflected(shapes_root):
    dicts = load_shapes("val", 40, 64, 0, shapes_root)
    folder = generate_shapes("val", 40, 64, 0, shapes_root)
    with open(folder / "instances.json") as f:
        anns = json.load(f)["annotations"]
    # some visible regions are not convex: their area is clearly below their convex hull's area
    concave = 0
    for a in anns:
        pts = np.asarray(a["segmentation"][0], np.float32).reshape(-1, 2)
        if cv2.contourArea(cv2.convexHull(pts)) > 1.15 * cv2.contourArea(pts) and a["category_id"] != 4:
            concave += 1
    assert concave > 0 and len(dicts) == 40


def test_register_shapes_env_root_and_kinds(tmp_path, monkeypatch):
    monkeypatch.setenv("DT_DATASETS", str(tmp_path))
    assert shapes_root() == tmp_path / "shapes"
    names = register_shapes("unit_shapes", num_train=3, num_val=2, image_size=48, seed=1)
    try:
        assert len(DatasetCatalog.get("unit_shapes_val")) == 2
        sem = DatasetCatalog.get("unit_shapes_train_sem_seg")
        assert set(sem[0]) == {"file_name", "height", "width", "image_id", "sem_seg_file_name"}
        assert (tmp_path / "shapes").is_dir()
        meta = MetadataCatalog.get("unit_shapes_val")
        assert meta.json_file.startswith(str(tmp_path))
    finally:
        for n in names:
            DatasetCatalog.remove(n)
            MetadataCatalog.remove(n)


def test_keypoints_are_the_regions_centroid_and_extreme_points(tiny_shapes, shapes_root):
    folder = generate_shapes("train", 8, 64, 3, shapes_root)
    with open(folder / "keypoints.json") as f:
        coco = json.load(f)
    assert coco["categories"][0]["keypoints"] == ["center", "top", "bottom", "left", "right"]
    keypoint_dicts = load_shapes("train", 8, 64, 3, shapes_root, "keypoints")
    for d, kd in zip(tiny_shapes, keypoint_dicts, strict=True):
        pan = cv2.imread(d["pan_seg_file_name"])[:, :, ::-1].astype(np.int64)
        pan_id = pan[..., 0] + 256 * pan[..., 1] + 65536 * pan[..., 2]
        things = [s for s in d["segments_info"] if s["isthing"]]
        for ann, seg in zip(kd["annotations"], things, strict=True):
            ys, xs = np.nonzero(pan_id == seg["id"])
            points = np.asarray(ann["keypoints"]).reshape(5, 3)
            assert (points[:, 2] == 2).all()
            x, y = points[:, 0] - 0.5, points[:, 1] - 0.5  # the loader moved pixel indices to centres
            np.testing.assert_allclose([x[0], y[0]], [xs.mean(), ys.mean()], atol=0.01)
            assert (y[1], y[2], x[3], x[4]) == (ys.min(), ys.max(), xs.min(), xs.max())
            assert xs[ys == ys.min()].min() <= x[1] <= xs[ys == ys.min()].max()
            assert ys[xs == xs.max()].min() <= y[4] <= ys[xs == xs.max()].max()


def test_keypoints_flip_with_the_flip_map(shapes_root):
    from dt_data.datasets.shapes_drawing import keypoints_of

    region = np.zeros((20, 30), bool)
    region[3:9, 4:12] = True
    region[9:15, 4:7] = True  # an L: its extreme points are not symmetric
    points = np.asarray(keypoints_of(region)).reshape(5, 3)
    flipped = np.asarray(keypoints_of(region[:, ::-1])).reshape(5, 3)
    mirrored = points.copy()
    mirrored[:, 0] = region.shape[1] - 1 - mirrored[:, 0]
    mirrored[[3, 4]] = mirrored[[4, 3]]  # left <-> right
    np.testing.assert_allclose(flipped, mirrored)


def test_keypoint_dataset_metadata(tmp_path):
    names = register_shapes("unit_kp_shapes", num_train=2, num_val=1, image_size=48, seed=1, root=tmp_path)
    try:
        meta = MetadataCatalog.get("unit_kp_shapes_train_keypoints")
        assert meta.evaluator_type == "coco" and meta.json_file.endswith("keypoints.json")
        assert meta.keypoint_flip_map == [["left", "right"]] and len(meta.keypoint_oks_sigmas) == 5
        assert "keypoints" in DatasetCatalog.get("unit_kp_shapes_val_keypoints")[0]["annotations"][0]
        assert "keypoints" not in DatasetCatalog.get("unit_kp_shapes_val")[0]["annotations"][0]
    finally:
        for n in names:
            DatasetCatalog.remove(n)
            MetadataCatalog.remove(n)
