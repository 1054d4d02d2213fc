import copy

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from PIL import Image

from dt_data import DatasetMapper, MetadataCatalog
from dt_data import detection_utils as utils
from dt_data import transforms as T
from dt_data.config import CropConfig, InputConfig
from dt_structures import BitMasks, Boxes, BoxMode, Instances, PolygonMasks


def _write(tmp_path, name="img.jpg", size=(20, 30), exif_orientation=None):
    arr = np.zeros((size[0], size[1], 3), np.uint8)
    arr[..., 0] = 200  # red in RGB
    arr[: size[0] // 2, :, 1] = 100
    path = tmp_path / name
    img = Image.fromarray(arr)
    if exif_orientation is None:
        img.save(path)
    else:
        exif = Image.Exif()
        exif[274] = exif_orientation
        img.save(path, exif=exif)
    return str(path)


def test_read_image_formats_and_exif(tmp_path):
    path = _write(tmp_path, "a.png")
    rgb = utils.read_image(path, "RGB")
    bgr = utils.read_image(path, "BGR")
    gray = utils.read_image(path, "L")
    assert rgb.shape == (20, 30, 3) and rgb[0, 0, 0] == 200 and bgr[0, 0, 2] == 200
    assert gray.shape == (20, 30, 1) and gray.dtype == np.uint8
    assert utils.read_image(_write(tmp_path, "r.jpg", exif_orientation=6), "RGB").shape == (30, 20, 3)
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        utils.read_image(str(tmp_path / "missing.jpg"))
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.jpg"):
        utils.read_image(str(tmp_path / "bad.jpg"))
    with pytest.raises(ValueError, match="format"):
        utils.read_image(path, "CMYK")


def test_check_image_size():
    utils.check_image_size({"height": 20, "width": 30}, np.zeros((20, 30, 3)))
    with pytest.raises(utils.SizeMismatchError, match="x.jpg"):
        utils.check_image_size({"file_name": "x.jpg", "height": 21, "width": 30}, np.zeros((20, 30, 3)))


def test_transform_instance_annotations_flip_and_clip():
    anno = {
        "bbox": [2.0, 3.0, 50.0, 4.0],
        "bbox_mode": BoxMode.XYWH_ABS,
        "category_id": 1,
        "segmentation": [[2.0, 3.0, 10.0, 3.0, 10.0, 7.0]],
        "keypoints": [2.5, 3.5, 2, 100.0, 3.0, 2],
    }
    before = copy.deepcopy(anno)
    tfm = T.TransformList([T.HFlipTransform(30)])
    out = utils.transform_instance_annotations(anno, tfm, (20, 30), keypoint_hflip_indices=[1, 0])
    assert anno == before
    np.testing.assert_allclose(out["bbox"], [0.0, 3.0, 28.0, 7.0])
    assert out["bbox_mode"] == BoxMode.XYXY_ABS
    np.testing.assert_allclose(out["segmentation"][0], [28.0, 3.0, 20.0, 3.0, 20.0, 7.0])
    # keypoint 1 was outside -> (0, 0, 0); flip swaps them
    np.testing.assert_allclose(out["keypoints"], [[0, 0, 0], [27.5, 3.5, 2]])
    with pytest.raises(ValueError, match="keypoint_hflip_indices"):
        utils.transform_instance_annotations(anno, tfm, (20, 30))


def test_transform_rle_and_bad_annotations():
    mask = np.zeros((20, 30), np.uint8, order="F")
    mask[2:6, 3:9] = 1
    anno = {"bbox": [3, 2, 9, 6], "bbox_mode": BoxMode.XYXY_ABS, "segmentation": mask_util.encode(mask)}
    out = utils.transform_instance_annotations(anno, [T.ResizeTransform(20, 30, 40, 60)], (40, 60))
    assert out["segmentation"].shape == (40, 60) and out["segmentation"].sum() == 96
    for bad, match in [
        ({"bbox": [1, 2, 3], "bbox_mode": 0}, "bbox"),
        ({"bbox": [1, 2, 3, float("nan")], "bbox_mode": 0}, "bbox"),
        ({"bbox": [1, 2, 3, 4], "bbox_mode": 0, "segmentation": [[1, 2, 3, 4]]}, "polygon 0"),
        ({"bbox": [1, 2, 3, 4], "bbox_mode": 0, "segmentation": {"size": [20, 30]}}, "RLE"),
        ({"bbox": [1, 2, 3, 4], "bbox_mode": 0, "segmentation": 5}, "segmentation"),
    ]:
        with pytest.raises(ValueError, match=match):
            utils.transform_instance_annotations(bad, [T.NoOpTransform()], (20, 30))


def test_annotations_to_instances_and_filter():
    annos = [
        {
            "bbox": [0, 0, 10, 10],
            "bbox_mode": BoxMode.XYXY_ABS,
            "category_id": 2,
            "segmentation": [[0, 0, 10, 0, 10, 10]],
        },
        {
            "bbox": [5, 5, 5, 9],
            "bbox_mode": BoxMode.XYXY_ABS,
            "category_id": 1,
            "segmentation": [[5, 5, 6, 5, 6, 6]],
        },
    ]
    inst = utils.annotations_to_instances(annos, (20, 30))
    assert isinstance(inst.gt_masks, PolygonMasks) and inst.gt_classes.tolist() == [2, 1]
    bit = utils.annotations_to_instances(annos, (20, 30), mask_format="bitmask")
    assert isinstance(bit.gt_masks, BitMasks) and bit.gt_masks.tensor.shape == (2, 20, 30)
    kept = utils.filter_empty_instances(inst)
    assert len(kept) == 1 and kept.gt_classes.tolist() == [2]
    empty = utils.annotations_to_instances([], (20, 30))
    assert len(empty) == 0 and empty.gt_boxes.tensor.shape == (0, 4)
    with pytest.raises(ValueError, match="mask_format"):
        utils.annotations_to_instances(annos, (20, 30), mask_format="rle")


def test_keypoint_hflip_indices_from_metadata():
    MetadataCatalog.get("unit_kp").set(
        keypoint_names=["nose", "l_eye", "r_eye"], keypoint_flip_map=[("l_eye", "r_eye")]
    )
    try:
        assert utils.create_keypoint_hflip_indices("unit_kp") == [0, 2, 1]
    finally:
        MetadataCatalog.remove("unit_kp")


def test_transform_proposals():
    d = {
        "proposal_boxes": np.array([[0, 0, 10, 10], [5, 5, 5, 5], [1, 1, 50, 50]], np.float32),
        "proposal_bbox_mode": BoxMode.XYXY_ABS,
        "proposal_objectness_logits": np.array([3.0, 2.0, 1.0]),
    }
    out = utils.transform_proposals(d, (20, 30), T.NoOpTransform(), proposal_topk=5)
    props = out["proposals"]
    assert isinstance(props, Instances) and len(props) == 2 and "proposal_boxes" in d
    torch.testing.assert_close(props.proposal_boxes.tensor[1], torch.tensor([1.0, 1.0, 30.0, 20.0]))


def test_build_augmentation_from_config():
    cfg = InputConfig(
        min_size_train=(32, 48),
        min_size_train_sampling="range",
        crop=CropConfig(type="relative", size=(0.5, 0.5)),
    )
    train = utils.build_augmentation(cfg, True)
    assert [type(a).__name__ for a in train] == ["RandomCrop", "ResizeShortestEdge", "RandomFlip"]
    test = utils.build_augmentation(InputConfig(random_flip="none"), False)
    assert [type(a).__name__ for a in test] == ["ResizeShortestEdge"]


def test_mapper_on_shapes(tiny_shapes):
    d = tiny_shapes[0]
    mapper = DatasetMapper(
        True,
        augmentations=[T.RandomFlip(1.0)],
        use_instance_mask=True,
        recompute_boxes=True,
        image_format="RGB",
    )
    out = mapper(d, rng=np.random.default_rng(0))
    assert "annotations" not in out and "sem_seg_file_name" not in out and "annotations" in d
    assert out["image"].shape == (3, 64, 64) and out["image"].dtype == torch.uint8
    assert out["sem_seg"].shape == (64, 64) and out["sem_seg"].dtype == torch.int64
    inst = out["instances"]
    assert len(inst) == len(d["annotations"]) and isinstance(inst.gt_masks, PolygonMasks)
    assert isinstance(inst.gt_boxes, Boxes)
    # flipped boxes: x -> 64 - x
    orig = np.array([BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in d["annotations"]])
    np.testing.assert_allclose(inst.gt_boxes.tensor[:, [2, 0]].numpy(), 64 - orig[:, [0, 2]], atol=1.0)
    bit = DatasetMapper(True, augmentations=[], use_instance_mask=True, instance_mask_format="bitmask")(d)
    assert bit["instances"].gt_masks.tensor.shape[1:] == (64, 64)
    test = DatasetMapper(False, augmentations=[T.Resize(32)])(d)
    assert test["image"].shape == (3, 32, 32) and "instances" not in test and test["height"] == 64


def test_mapper_errors_name_file_and_annotation(tiny_shapes):
    d = copy.deepcopy(tiny_shapes[0])
    d["annotations"][0]["bbox"] = [1, 2, 3]
    with pytest.raises(ValueError, match=r"000000.jpg: annotation id=\d+: bbox"):
        DatasetMapper(True, augmentations=[])(d)
    d = copy.deepcopy(tiny_shapes[0])
    d["height"] = 65
    with pytest.raises(utils.SizeMismatchError, match="000000.jpg"):
        DatasetMapper(True, augmentations=[])(d)
    d = dict(tiny_shapes[0], file_name="/nonexistent/x.jpg")
    with pytest.raises(FileNotFoundError, match="/nonexistent/x.jpg"):
        DatasetMapper(True, augmentations=[])(d)
    d = copy.deepcopy(tiny_shapes[0])
    d["annotations"][0]["iscrowd"] = 1
    assert len(DatasetMapper(True, augmentations=[])(d)["instances"]) == len(d["annotations"]) - 1
    with pytest.raises(ValueError, match="recompute_boxes"):
        DatasetMapper(True, augmentations=[], recompute_boxes=True)


def test_mapper_keypoints_flip_remap(tiny_shapes):
    d = copy.deepcopy(tiny_shapes[0])
    d["annotations"] = [dict(d["annotations"][0], keypoints=[10.0, 20.0, 2, 30.0, 20.0, 1])]
    mapper = DatasetMapper(
        True, augmentations=[T.RandomFlip(1.0)], use_keypoint=True, keypoint_hflip_indices=[1, 0]
    )
    kp = mapper(d)["instances"].gt_keypoints.tensor[0]
    torch.testing.assert_close(kp, torch.tensor([[34.0, 20.0, 1.0], [54.0, 20.0, 2.0]]))


def test_rotated_instances_crop_with_instance_and_fed_loss_weights():
    inst = utils.annotations_to_instances_rotated([{"bbox": [10, 10, 4, 2, 30], "category_id": 3}], (20, 30))
    assert inst.gt_boxes.tensor.shape == (1, 5) and inst.gt_classes.tolist() == [3]
    anno = {"bbox": [10, 10, 4, 4], "bbox_mode": BoxMode.XYWH_ABS}
    for seed in range(10):
        crop = utils.gen_crop_transform_with_instance((8, 8), (40, 50), anno, np.random.default_rng(seed))
        assert crop.x0 <= 12 <= crop.x0 + 8 and crop.y0 <= 12 <= crop.y0 + 8
    with pytest.raises(ValueError, match="larger than the image"):
        utils.gen_crop_transform_with_instance((80, 8), (40, 50), anno)
    MetadataCatalog.get("unit_fed").set(
        class_image_count=[{"id": 2, "image_count": 4}, {"id": 1, "image_count": 9}]
    )
    try:
        torch.testing.assert_close(utils.get_fed_loss_cls_weights("unit_fed", 0.5), torch.tensor([3.0, 2.0]))
    finally:
        MetadataCatalog.remove("unit_fed")


def test_transform_instance_annotations_crops_polygon_lists():
    from dt_data.transforms import CropTransform

    u = [0, 0, 30, 0, 30, 20, 20, 20, 20, 5, 10, 5, 10, 20, 0, 20]  # "U": legs below y = 5
    far = [50, 50, 60, 50, 60, 60]  # outside the crop window
    anno = {"bbox": [0, 0, 30, 20], "bbox_mode": BoxMode.XYXY_ABS, "segmentation": [u, far], "category_id": 1}
    out = utils.transform_instance_annotations(anno, [CropTransform(0, 10, 30, 10)], (10, 30))
    assert anno["segmentation"] == [u, far]  # input unchanged
    polys = out["segmentation"]
    assert len(polys) == 2 and all(p.ndim == 1 and len(p) == 8 for p in polys)
    xs = sorted((p[0::2].min(), p[0::2].max()) for p in polys)
    assert xs == [(0, 10), (20, 30)] and all(p[1::2].min() == 0 and p[1::2].max() == 10 for p in polys)
    np.testing.assert_allclose(out["bbox"], [0, 0, 30, 10])
    inst = utils.annotations_to_instances([out], (10, 30))
    assert len(inst.gt_masks.polygons[0]) == 2
    mask = BitMasks.from_polygon_masks(inst.gt_masks, 10, 30).tensor[0]
    assert mask[:, 10:20].sum() == 0 and mask[:, :10].all() and mask[:, 20:].all()
