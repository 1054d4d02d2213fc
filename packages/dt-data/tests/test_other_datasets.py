import json

import numpy as np
import pytest
from PIL import Image

from dt_data import DatasetCatalog, MetadataCatalog
from dt_data.datasets import (
    load_cityscapes_instances,
    load_cityscapes_semantic,
    load_coco_panoptic_json,
    load_lvis_json,
    load_voc_instances,
    merge_to_panoptic,
    register_coco_panoptic_separated,
)
from dt_data.datasets._validate import AnnotationError
from dt_structures import BoxMode


def test_coco_panoptic_standard_and_separated(tmp_path):
    for sub in ("images", "panoptic", "stuff"):
        (tmp_path / sub).mkdir()
    Image.new("RGB", (8, 6)).save(tmp_path / "images" / "000001.jpg")
    Image.new("RGB", (8, 6)).save(tmp_path / "panoptic" / "000001.png")
    Image.new("L", (8, 6)).save(tmp_path / "stuff" / "000001.png")
    pan = {
        "annotations": [
            {
                "image_id": 1,
                "file_name": "000001.png",
                "segments_info": [{"id": 5, "category_id": 3, "iscrowd": 0}, {"id": 6, "category_id": 90}],
            }
        ]
    }
    (tmp_path / "pan.json").write_text(json.dumps(pan))
    meta = {"thing_dataset_id_to_contiguous_id": {3: 0}, "stuff_dataset_id_to_contiguous_id": {3: 0, 90: 1}}
    (d,) = load_coco_panoptic_json(
        str(tmp_path / "pan.json"), str(tmp_path / "images"), str(tmp_path / "panoptic"), meta
    )
    assert d["file_name"].endswith("images/000001.jpg") and d["pan_seg_file_name"].endswith(
        "panoptic/000001.png"
    )
    assert d["segments_info"] == [
        {"id": 5, "category_id": 0, "iscrowd": 0, "isthing": True},
        {"id": 6, "category_id": 1, "isthing": False},
    ]
    bad = {
        "annotations": [
            {"image_id": 1, "file_name": "000001.png", "segments_info": [{"id": 1, "category_id": 7}]}
        ]
    }
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="category_id=7"):
        load_coco_panoptic_json(
            str(tmp_path / "bad.json"), str(tmp_path / "images"), str(tmp_path / "panoptic"), meta
        )

    inst = {
        "images": [{"id": 1, "file_name": "000001.jpg", "height": 6, "width": 8}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [0, 0, 2, 2], "iscrowd": 0}],
        "categories": [{"id": 3, "name": "thing"}],
    }
    (tmp_path / "inst.json").write_text(json.dumps(inst))
    register_coco_panoptic_separated(
        "unit_pan", {}, str(tmp_path / "images"), str(tmp_path / "panoptic"), str(tmp_path / "pan.json"),
        str(tmp_path / "stuff"), str(tmp_path / "inst.json"),
    )  # fmt: skip
    try:
        (sep,) = DatasetCatalog.get("unit_pan_separated")
        assert sep["sem_seg_file_name"].endswith("stuff/000001.png") and len(sep["annotations"]) == 1
        assert MetadataCatalog.get("unit_pan_stuffonly").evaluator_type == "sem_seg"
    finally:
        for n in ("unit_pan_separated", "unit_pan_stuffonly"):
            DatasetCatalog.remove(n)
            MetadataCatalog.remove(n)
    with pytest.raises(ValueError, match="no semantic label map"):
        merge_to_panoptic([{"file_name": "x"}], [{"file_name": "y"}])


def _lvis(tmp_path, segm):
    data = {
        "images": [
            {
                "id": 4,
                "height": 10,
                "width": 10,
                "coco_url": "http://images.cocodataset.org/val2017/000000000004.jpg",
                "not_exhaustive_category_ids": [2],
                "neg_category_ids": [1],
            }
        ],
        "annotations": [
            {"id": 1, "image_id": 4, "category_id": 2, "bbox": [1, 1, 3, 3], "segmentation": segm}
        ],
        "categories": [{"id": 1, "name": "apple"}, {"id": 2, "name": "banana"}],
    }
    path = tmp_path / "lvis.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_lvis(tmp_path):
    (d,) = load_lvis_json(_lvis(tmp_path, [[1, 1, 4, 1, 4, 4]]), "/coco")
    assert d["file_name"] == "/coco/val2017/000000000004.jpg"
    assert d["not_exhaustive_category_ids"] == [1] and d["neg_category_ids"] == [0]
    assert d["annotations"][0]["category_id"] == 1 and d["annotations"][0]["bbox_mode"] == BoxMode.XYWH_ABS
    try:
        (d,) = load_lvis_json(_lvis(tmp_path, [[1, 1, 4, 1, 4, 4]]), "/coco", "unit_lvis")
        assert MetadataCatalog.get("unit_lvis").thing_classes == ["apple", "banana"]
    finally:
        MetadataCatalog.remove("unit_lvis")
    with pytest.raises(AnnotationError, match="fewer than 3 points"):
        load_lvis_json(_lvis(tmp_path, [[1, 1, 4, 1]]), "/coco")


def _voc_xml(objects, size=(20, 30)):
    objs = "".join(
        f"<object><name>{n}</name><difficult>0</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for n, b in objects
    )
    return f"<annotation><size><width>{size[1]}</width><height>{size[0]}</height></size>{objs}</annotation>"


def test_pascal_voc(tmp_path):
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "ImageSets" / "Main" / "val.txt").write_text("img1\nimg2\n")
    (tmp_path / "Annotations" / "img1.xml").write_text(
        _voc_xml([("dog", (1, 2, 10, 12)), ("cat", (5, 5, 6, 6))])
    )
    (tmp_path / "Annotations" / "img2.xml").write_text(_voc_xml([]))
    d1, d2 = load_voc_instances(str(tmp_path), "val")
    assert d1["image_id"] == "img1" and d1["height"] == 20 and d1["width"] == 30
    assert d1["file_name"].endswith("JPEGImages/img1.jpg")
    assert d1["annotations"][0] == {
        "category_id": 11,
        "bbox": [0.0, 1.0, 10.0, 12.0],
        "bbox_mode": BoxMode.XYXY_ABS,
    }
    assert d2["annotations"] == []
    (tmp_path / "Annotations" / "img2.xml").write_text(_voc_xml([("unicorn", (1, 1, 2, 2))]))
    with pytest.raises(AnnotationError, match="img2.xml: object 0 has unknown class 'unicorn'"):
        load_voc_instances(str(tmp_path), "val")
    (tmp_path / "Annotations" / "img2.xml").write_text("<annotation><size>")
    with pytest.raises(AnnotationError, match="malformed XML"):
        load_voc_instances(str(tmp_path), "val")


def test_cityscapes_instances_and_semantic(tmp_path):
    img_dir, gt_dir = tmp_path / "leftImg8bit" / "train", tmp_path / "gtFine" / "train"
    (img_dir / "aachen").mkdir(parents=True)
    (gt_dir / "aachen").mkdir(parents=True)
    stem = "aachen_000000_000019_"
    Image.new("RGB", (16, 12)).save(img_dir / "aachen" / f"{stem}leftImg8bit.png")
    inst = np.full((12, 16), 7, np.int32)  # road (stuff)
    inst[1:4, 1:5] = 26001  # car instance 1
    inst[6:10, 8:14] = 24000  # person instance 0
    inst[0:2, 10:16] = 24  # person crowd
    inst[9:12, 0:3] = 29000  # caravan: ignored in eval
    Image.fromarray(inst.astype(np.uint16)).save(gt_dir / "aachen" / f"{stem}gtFine_instanceIds.png")
    Image.fromarray(np.zeros((12, 16), np.uint8)).save(gt_dir / "aachen" / f"{stem}gtFine_labelTrainIds.png")
    (d,) = load_cityscapes_instances(str(img_dir), str(gt_dir), from_json=False)
    assert d["height"] == 12 and d["width"] == 16 and d["image_id"] == f"{stem}leftImg8bit.png"
    by_cat = {(a["category_id"], a["iscrowd"]): a for a in d["annotations"]}
    assert set(by_cat) == {(0, True), (0, False), (2, False)}  # person crowd, person, car
    assert by_cat[(2, False)]["bbox"] == [1.0, 1.0, 4.0, 3.0]
    assert len(by_cat[(2, False)]["segmentation"][0]) >= 6
    rle = load_cityscapes_instances(str(img_dir), str(gt_dir), from_json=False, to_polygons=False)
    rle = rle[0]["annotations"][0]
    assert "counts" in rle["segmentation"]
    (s,) = load_cityscapes_semantic(str(img_dir), str(gt_dir))
    assert s["sem_seg_file_name"].endswith("gtFine_labelTrainIds.png") and (s["height"], s["width"]) == (
        12,
        16,
    )
    with pytest.raises(FileNotFoundError):
        load_cityscapes_instances(str(tmp_path / "none"), str(gt_dir))
    with pytest.raises(FileNotFoundError, match="polygons.json"):
        load_cityscapes_instances(str(img_dir), str(gt_dir))  # from_json=True is the default


def _rect(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def _shoelace(flat):
    p = np.asarray(flat, np.float64).reshape(-1, 2)
    return 0.5 * abs(float(np.dot(p[:, 0], np.roll(p[:, 1], -1)) - np.dot(p[:, 1], np.roll(p[:, 0], -1))))


def test_cityscapes_instances_from_json_resolve_overlaps(tmp_path):
    from shapely import Point, Polygon

    img_dir, gt_dir = tmp_path / "leftImg8bit" / "val", tmp_path / "gtFine" / "val"
    (img_dir / "lindau").mkdir(parents=True)
    (gt_dir / "lindau").mkdir(parents=True)
    stem = "lindau_000000_000019_"
    Image.new("RGB", (40, 30)).save(img_dir / "lindau" / f"{stem}leftImg8bit.png")
    objects = [  # drawing order: each object is painted over the earlier ones
        {"label": "road", "polygon": _rect(0, 0, 39, 29)},
        {"label": "rider", "polygon": _rect(16, 4, 20, 8)},  # later hidden entirely by the person
        {"label": "car", "polygon": _rect(2, 2, 36, 12)},  # the person cuts it in two
        {"label": "person", "polygon": _rect(14, 0, 22, 20)},
        {"label": "caravan", "polygon": _rect(0, 8, 6, 16)},  # ignored in eval, but hides the car
        {"label": "license plate", "polygon": _rect(15, 8, 18, 10)},  # id -1: ignored, hides nothing
        {"label": "cargroup", "polygon": _rect(25, 22, 35, 28)},
        {"label": "bus", "polygon": _rect(0, 0, 39, 29), "deleted": 1},
    ]
    info = {"imgHeight": 30, "imgWidth": 40, "objects": objects}
    json_file = gt_dir / "lindau" / f"{stem}gtFine_polygons.json"
    json_file.write_text(json.dumps(info))
    (d,) = load_cityscapes_instances(str(img_dir), str(gt_dir))  # no instanceIds PNG needed
    assert (d["height"], d["width"], d["image_id"]) == (30, 40, f"{stem}leftImg8bit.png")
    crowd, person, car = d["annotations"]  # reverse drawing order; rider and ignored labels dropped
    assert (crowd["category_id"], crowd["iscrowd"]) == (2, True)
    assert (person["category_id"], person["iscrowd"]) == (0, False)
    assert (car["category_id"], car["iscrowd"]) == (2, False)
    # integer vertices + 0.5, dilated by 0.5: bounds are the pixel extents [x0, x1 + 1]
    assert crowd["bbox"] == [25.0, 22.0, 36.0, 29.0] and crowd["bbox_mode"] == BoxMode.XYXY_ABS
    assert person["bbox"] == [14.0, 0.0, 23.0, 21.0]
    assert car["bbox"] == [2.0, 2.0, 37.0, 13.0]
    # the person is whole (the license plate hides nothing): 8x20 rectangle + 0.5 band + a 16-gon
    (person_poly,) = person["segmentation"]
    assert _shoelace(person_poly) == pytest.approx(9 * 21 - 4 * (0.25 - 2 * 0.25 * np.sin(np.pi / 8)))
    assert person_poly[:2] == person_poly[-2:]  # exterior ring with its closing vertex
    # the car is split by the person into two polygons; the caravan hides its lower-left corner
    left, right = sorted(
        (Polygon(np.reshape(p, (-1, 2))) for p in car["segmentation"]), key=lambda g: g.bounds
    )
    assert left.bounds == (2.0, 2.0, 14.0, 13.0) and right.bounds == (23.0, 2.0, 37.0, 13.0)
    assert left.contains(Point(10, 11)) and not left.contains(Point(4, 11)) and left.contains(Point(4, 5))
    corner = 2 * 0.25 * np.sin(np.pi / 8)  # a quarter of the 16-gon buffer(0.5, quad_segs=4) rounds with
    assert right.area == pytest.approx(14 * 11 - 2 * (0.25 - corner))  # two rounded corners, two cut ones
    with pytest.raises(ValueError, match="to_polygons"):
        load_cityscapes_instances(str(img_dir), str(gt_dir), to_polygons=False)
    objects.append({"label": "unicorn", "polygon": _rect(1, 1, 3, 3)})
    json_file.write_text(json.dumps(info))
    with pytest.raises(AnnotationError, match="object 8 has unknown label 'unicorn'"):
        load_cityscapes_instances(str(img_dir), str(gt_dir))
    objects[-1] = {"label": "car", "polygon": [[1, 1], [2, 2]]}
    json_file.write_text(json.dumps(info))
    with pytest.raises(AnnotationError, match="object 8 has a malformed polygon"):
        load_cityscapes_instances(str(img_dir), str(gt_dir))


def test_register_functions_set_evaluator_types(tmp_path):
    from dt_data.datasets import (
        register_cityscapes,
        register_coco_panoptic,
        register_lvis_instances,
        register_pascal_voc,
    )

    register_pascal_voc("unit_voc", str(tmp_path), "val", 2007)
    register_lvis_instances("unit_lvis_reg", {}, str(tmp_path / "l.json"), str(tmp_path))
    register_coco_panoptic("unit_pan_std", {"thing_classes": ["a"]}, "i", "p", "p.json")
    register_cityscapes("unit_city", "img", "gt")
    expected = {
        "unit_voc": "pascal_voc",
        "unit_lvis_reg": "lvis",
        "unit_pan_std": "coco_panoptic_seg",
        "unit_city_instance_seg": "cityscapes_instance",
        "unit_city_sem_seg": "cityscapes_sem_seg",
    }
    try:
        for name, evaluator in expected.items():
            assert name in DatasetCatalog.list()
            assert MetadataCatalog.get(name).evaluator_type == evaluator
        assert MetadataCatalog.get("unit_voc").thing_classes[0] == "aeroplane"
        assert len(MetadataCatalog.get("unit_city_instance_seg").thing_classes) == 8
        assert len(MetadataCatalog.get("unit_city_sem_seg").stuff_classes) == 19
    finally:
        for name in expected:
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
