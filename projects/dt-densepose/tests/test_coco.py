"""DensePose-COCO files load with their dp_* fields, and the training mapper turns them into
``gt_densepose`` (flip included); a bad annotation names the image file and the annotation id."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest

from dt_data import DatasetCatalog, MetadataCatalog
from dt_data import transforms as T
from dt_densepose import mirror_chart_symmetry
from dt_densepose.coco import register_densepose_coco
from dt_densepose.mapper import DensePoseDatasetMapper


def _write(tmp_path, **dp_overrides) -> tuple[str, str]:
    cv2.imwrite(str(tmp_path / "a.jpg"), np.full((40, 60, 3), 128, np.uint8))
    mask = np.zeros((256, 256), np.uint8)
    mask[:, :128] = 1
    rle = mask_util.encode(np.asfortranarray(mask))
    anno = {
        "id": 5, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [10, 5, 20, 30], "area": 600,
        "segmentation": [[10, 5, 30, 5, 30, 35, 10, 35]],
        "dp_x": [64.0, 192.0], "dp_y": [128.0, 128.0], "dp_I": [1, 2], "dp_U": [0.2, 0.7], "dp_V": [0.5, 0.5],
        "dp_masks": [{"size": [256, 256], "counts": rle["counts"].decode()}],
    }  # fmt: skip
    anno.update(dp_overrides)
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 40, "width": 60}],
        "annotations": [anno, {"id": 6, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 100,
                               "bbox": [40, 5, 10, 10], "segmentation": [[40, 5, 50, 5, 50, 15, 40, 15]]}],
        "categories": [{"id": 1, "name": "person"}],
    }  # fmt: skip
    path = tmp_path / "dp.json"
    path.write_text(json.dumps(data))
    return str(path), str(tmp_path)


def _mapper(flip: bool) -> DensePoseDatasetMapper:
    augs = [T.RandomFlip(prob=1.0)] if flip else []
    return DensePoseDatasetMapper(True, augmentations=augs, symmetry=mirror_chart_symmetry(2, 1), num_parts=2,
                                  num_mask_parts=1)  # fmt: skip


@pytest.fixture
def registered(tmp_path):
    names = []

    def register(name, **overrides):
        register_densepose_coco(name, *_write(tmp_path, **overrides))
        names.append(name)
        return DatasetCatalog.get(name)

    yield register
    for name in names:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_loads_and_maps_with_flip(registered):
    (record,) = registered("dp_test_flip")
    assert MetadataCatalog.get("dp_test_flip").evaluator_type == "densepose"
    plain = _mapper(False)(record)["instances"]
    flipped = _mapper(True)(record)["instances"]
    assert len(flipped) == 2 and flipped.gt_densepose.items[1] is None  # the second has no DensePose
    a, b = plain.gt_densepose.items[0], flipped.gt_densepose.items[0]
    np.testing.assert_allclose(b.x.numpy(), 256 - a.x.numpy(), atol=1e-3)
    np.testing.assert_allclose(b.u.numpy(), 1 - a.u.numpy(), atol=1e-2)
    assert a.segm[128, 10] == 1 and b.segm[128, 10] == 0 and b.segm[128, 250] == 1


def test_bad_annotation_names_file_and_id(registered):
    (record,) = registered("dp_test_bad", dp_I=[1, 7])
    with pytest.raises(ValueError, match=r"a\.jpg: annotation id=5: dp_I must be integers in 1\.\.2$"):
        _mapper(False)(record)


def test_dt_train_check_names_a_missing_cache_file(registered, tmp_path, monkeypatch):
    import dt_densepose
    from dt_engine.config.experiment import load_experiment
    from dt_engine.defaults import build_workflow
    from dt_engine.errors import InputError

    registered("densepose_coco_2014_minival")
    monkeypatch.setenv("DT_CACHE", str(tmp_path / "cache"))
    overrides = ["data.datasets.train=[densepose_coco_2014_minival]", f"output_dir={tmp_path / 'out'}"]
    cfg = load_experiment(str(dt_densepose.config_path("densepose_rcnn_R_50_FPN_s1x.yaml")), overrides)
    with pytest.raises(InputError, match=r"UV_symmetry_transforms\.mat is missing: download https://"):
        build_workflow(cfg).check()
