import json

import numpy as np
import pycocotools.mask as mask_util
import pytest

from dt_data import DatasetCatalog, MetadataCatalog
from dt_data.datasets import load_coco_json, load_sem_seg, register_coco_instances
from dt_data.datasets._validate import AnnotationError, rle_string_counts
from dt_structures import BoxMode


def _coco(tmp_path, annotations, categories=None, name="inst.json"):
    data = {
        "images": [
            {"id": 7, "file_name": "b.jpg", "height": 10, "width": 12},
            {"id": 3, "file_name": "a.jpg", "height": 10, "width": 12},
        ],
        "annotations": annotations,
        "categories": categories or [{"id": 5, "name": "cat"}, {"id": 9, "name": "dog"}],
    }
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def _ann(ann_id, **kw):
    base = {"id": ann_id, "image_id": 3, "category_id": 5, "bbox": [1, 2, 3, 4], "iscrowd": 0}
    base.update(kw)
    return base


def test_load_coco_json_detectron2_semantics(tmp_path):
    mask = np.zeros((10, 12), np.uint8, order="F")
    mask[2:5, 3:7] = 1
    rle_c = mask_util.encode(mask)
    rle_c["counts"] = rle_c["counts"].decode()
    uncompressed = {"size": [10, 12], "counts": [25, 3, 7, 3, 7, 3, 72]}
    anns = [
        _ann(1, segmentation=[[0, 0, 4, 0, 4, 4], [1, 1, 2, 2]]),  # second polygon has 2 points: dropped
        _ann(2, category_id=9, segmentation=[[0, 0, 1, 1]]),  # no valid polygon: instance dropped
        _ann(3, segmentation=rle_c, iscrowd=1),
        _ann(4, image_id=7, segmentation=uncompressed, keypoints=[1, 2, 2, 0, 0, 0]),
    ]
    json_file = _coco(tmp_path, anns)
    dicts = load_coco_json(json_file, "/imgs", "unit_coco_sem")
    try:
        assert [d["image_id"] for d in dicts] == [3, 7]
        assert dicts[0]["file_name"] == "/imgs/a.jpg" and dicts[0]["height"] == 10
        a1, a3 = dicts[0]["annotations"]
        assert a1["segmentation"] == [[0, 0, 4, 0, 4, 4]] and a1["bbox_mode"] == BoxMode.XYWH_ABS
        assert a1["category_id"] == 0 and a1["id"] == 1
        assert a3["iscrowd"] == 1 and isinstance(a3["segmentation"]["counts"], str)
        (a4,) = dicts[1]["annotations"]
        assert isinstance(a4["segmentation"]["counts"], bytes)
        assert mask_util.area(a4["segmentation"]) == 9
        assert a4["keypoints"] == [1.5, 2.5, 2, 0.5, 0.5, 0]
        meta = MetadataCatalog.get("unit_coco_sem")
        assert meta.thing_classes == ["cat", "dog"]
        assert meta.thing_dataset_id_to_contiguous_id == {5: 0, 9: 1}
    finally:
        MetadataCatalog.remove("unit_coco_sem")
    raw = load_coco_json(json_file, "/imgs")
    assert raw[0]["annotations"][0]["category_id"] == 5


@pytest.mark.parametrize(
    "ann, match",
    [
        (_ann(11, bbox=[1, 2, -3, 4]), "negative width"),
        (_ann(12, bbox=[1, 2, 3]), "4 finite numbers"),
        (_ann(13, category_id=42), "category_id=42"),
        (_ann(14, segmentation=[[0, 0, 4, 0, 4]]), "odd number"),
        (_ann(15, segmentation=[[0, 0, "x", 0, 4, 4]]), "finite numbers"),
        (_ann(16, segmentation={"size": [10, 12], "counts": [5, 5]}), "cover 10 pixels"),
        (_ann(17, segmentation={"size": [9, 12], "counts": [108]}), "does not match the image size"),
        (_ann(18, segmentation={"size": [10, 12], "counts": "\x7f\x7f"}), "broken compressed RLE"),
        (_ann(19, image_id=99), "not in 'images'"),
        (_ann(20, ignore=1), "ignore"),
    ],
)
def test_malformed_annotations_name_file_and_id(tmp_path, ann, match):
    json_file = _coco(tmp_path, [ann])
    with pytest.raises(AnnotationError, match=match) as info:
        load_coco_json(json_file, "/imgs", None)
    assert "inst.json" in str(info.value) and f"id={ann['id']}" in str(info.value)


def test_duplicate_ids_and_missing_file(tmp_path):
    with pytest.raises(AnnotationError, match="not unique"):
        load_coco_json(_coco(tmp_path, [_ann(1), _ann(1)]), "/imgs")
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_coco_json(str(tmp_path / "nope.json"), "/imgs")


def test_rle_string_decoder_matches_pycocotools():
    mask = np.random.default_rng(0).random((17, 13)) > 0.6
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    counts = rle_string_counts(rle["counts"])
    assert sum(counts) == 17 * 13
    flat = np.concatenate([np.full(c, i % 2, np.uint8) for i, c in enumerate(counts)])
    np.testing.assert_array_equal(flat.reshape(13, 17).T, mask)


def test_register_coco_instances(tmp_path):
    json_file = _coco(tmp_path, [_ann(1)])
    register_coco_instances("unit_coco_reg", {"extra": 1}, json_file, str(tmp_path))
    try:
        assert len(DatasetCatalog.get("unit_coco_reg")) == 2
        meta = MetadataCatalog.get("unit_coco_reg")
        assert meta.evaluator_type == "coco" and meta.extra == 1 and meta.json_file == json_file
    finally:
        DatasetCatalog.remove("unit_coco_reg")
        MetadataCatalog.remove("unit_coco_reg")


def test_load_sem_seg_pairs_by_name(tmp_path):
    (tmp_path / "img" / "sub").mkdir(parents=True)
    (tmp_path / "gt" / "sub").mkdir(parents=True)
    for stem in ("x", "sub/y", "only_image"):
        (tmp_path / "img" / f"{stem}.jpg").write_bytes(b"")
    for stem in ("x", "sub/y"):
        (tmp_path / "gt" / f"{stem}.png").write_bytes(b"")
    dicts = load_sem_seg(str(tmp_path / "gt"), str(tmp_path / "img"))
    assert [d["file_name"].split("img/")[1] for d in dicts] == ["sub/y.jpg", "x.jpg"]
    assert dicts[1]["sem_seg_file_name"].endswith("gt/x.png")
    with pytest.raises(FileNotFoundError):
        load_sem_seg(str(tmp_path / "none"), str(tmp_path / "img"))
