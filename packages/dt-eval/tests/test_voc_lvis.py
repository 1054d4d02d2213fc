"""PascalVOCDetectionEvaluator on hand-made annotations; LVISEvaluator equals the lvis package."""

from __future__ import annotations

import contextlib
import io
import json
import logging

import numpy as np
import pytest
import torch

from dt_eval._compat import legacy_numpy_names
from dt_eval.lvis_evaluation import LVISEvaluator
from dt_eval.pascal_voc_evaluation import PascalVOCDetectionEvaluator, voc_ap
from dt_structures import Boxes, Instances

VOC_XML = """<annotation>{objects}</annotation>"""
VOC_OBJ = (
    "<object><name>{name}</name><difficult>{difficult}</difficult>"
    "<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
)


def _voc_dir(tmp_path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    objects = {
        "000001": [("cat", 0, (11, 11, 50, 50)), ("dog", 0, (61, 61, 100, 100))],
        "000002": [("cat", 0, (1, 1, 20, 20)), ("cat", 1, (31, 31, 60, 60))],
    }
    for image_id, objs in objects.items():
        xml = "".join(
            VOC_OBJ.format(name=n, difficult=d, x0=b[0], y0=b[1], x1=b[2], y1=b[3]) for n, d, b in objs
        )
        (tmp_path / "Annotations" / f"{image_id}.xml").write_text(VOC_XML.format(objects=xml))
    (tmp_path / "ImageSets" / "Main" / "test.txt").write_text("000001\n000002\n")
    return tmp_path


def _instances(boxes, scores, classes):
    inst = Instances((128, 128))
    inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.scores = torch.tensor(scores, dtype=torch.float32)
    inst.pred_classes = torch.tensor(classes, dtype=torch.int64)
    return inst


@pytest.mark.parametrize("year", [2007, 2012])
def test_voc_hand_computed(tmp_path, year):
    ev = PascalVOCDetectionEvaluator(
        dirname=str(_voc_dir(tmp_path)), split="test", class_names=["cat", "dog"], year=year
    )
    # detectron2 boxes are XYXY in 0-based pixels: VOC (11, 11, 50, 50) is (10, 10, 50, 50)
    ev.process(
        [{"image_id": "000001"}, {"image_id": "000002"}],
        [
            {
                "instances": _instances(
                    [[10, 10, 50, 50], [60, 60, 100, 100], [0, 0, 5, 5]], [0.9, 0.8, 0.95], [0, 1, 0]
                )
            },
            {"instances": _instances([[30, 30, 60, 60], [0, 0, 20, 20]], [0.99, 0.7], [0, 0])},
        ],
    )
    res = ev.evaluate()["bbox"]
    # cat (2 non-difficult gts): ranked 0.99 (difficult: skipped), 0.95 FP, 0.9 TP, 0.7 TP
    # -> precision 0, 1/2, 2/3 at recall 0, 1/2, 1; dog: a single TP -> AP 100
    rec, prec = np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.5, 2 / 3])
    cat_ap = voc_ap(rec, prec, year == 2007) * 100
    assert res["AP50"] == pytest.approx((cat_ap + 100) / 2)
    # the envelope is 2/3 at every recall: both the 11-point and the area metric give 2/3
    assert cat_ap == pytest.approx(100 * 2 / 3)
    assert res["AP75"] == pytest.approx(res["AP50"])  # the matches are exact boxes
    assert res["AP"] == pytest.approx(res["AP50"])


def test_voc_needs_dataset_description():
    with pytest.raises(ValueError, match="dirname"):
        PascalVOCDetectionEvaluator()


def _lvis_data():
    rng = np.random.default_rng(0)
    cats = [{"id": i + 1, "name": f"c{i}", "frequency": "rcf"[i % 3], "synset": f"s{i}"} for i in range(6)]
    images, anns, results = [], [], []
    for i in range(8):
        images.append(
            {
                "id": i + 1,
                "height": 100,
                "width": 120,
                "neg_category_ids": [6],
                "not_exhaustive_category_ids": [5],
            }
        )
        for _ in range(int(rng.integers(1, 5))):
            x, y, w, h = rng.uniform(0, 60), rng.uniform(0, 50), rng.uniform(5, 50), rng.uniform(5, 40)
            cat = int(rng.integers(1, 6))
            poly = [x, y, x + w, y, x + w, y + h, x, y + h]
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": cat, "bbox": [x, y, w, h],
                         "area": w * h, "segmentation": [poly]})  # fmt: skip
            for _ in range(2):
                dx, dy = rng.normal(0, 3, 2)
                label = cat if rng.random() < 0.8 else int(rng.integers(1, 7))
                results.append(
                    {
                        "image_id": i + 1,
                        "category_id": label,
                        "bbox": [x + dx, y + dy, w, h],
                        "score": float(rng.random()),
                    }
                )
    return {"images": images, "annotations": anns, "categories": cats}, results


@pytest.mark.parametrize("task", ["bbox", "segm"])
def test_lvis_equals_lvis_package(tmp_path, task):
    lvis = pytest.importorskip("lvis")
    from pycocotools import mask as mask_utils

    gt, results = _lvis_data()
    if task == "segm":
        for r in results:
            x, y, w, h = r["bbox"]
            rle = mask_utils.frPyObjects([[x, y, x + w, y, x + w, y + h, x, y + h]], 100, 120)[0]
            r["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()}
    path = tmp_path / "lvis.json"
    path.write_text(json.dumps(gt))
    logging.getLogger("lvis").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()):
        ours = LVISEvaluator(lvis_json=str(path), tasks=[task]).evaluate_results(results)[task]
        reference_input = json.loads(json.dumps(results))
        if task == "segm":
            for r in reference_input:
                r.pop("bbox")
        ref = lvis.LVISEval(str(path), reference_input, task)
        with legacy_numpy_names():  # the lvis package predates numpy 1.24
            ref.run()
    raw = ref.get_results()
    for name, value in ours.items():
        expected = raw[name] * 100
        if expected < 0:
            assert np.isnan(value)
        else:
            assert value == pytest.approx(expected, abs=1e-12), name
    assert ours["AP"] > 10
    assert "float" not in np.__dict__


def test_lvis_model_outputs_map_to_one_based_ids(tmp_path):
    pytest.importorskip("lvis")
    gt, results = _lvis_data()
    path = tmp_path / "lvis.json"
    path.write_text(json.dumps(gt))
    ev = LVISEvaluator(lvis_json=str(path), tasks=["bbox"], output_dir=str(tmp_path))
    r = results[0]
    x, y, w, h = r["bbox"]
    ev.process(
        [{"image_id": r["image_id"]}],
        [{"instances": _instances([[x, y, x + w, y + h]], [r["score"]], [r["category_id"] - 1])}],
    )
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
    written = json.loads((tmp_path / "lvis_instances_results.json").read_text())
    assert written[0]["category_id"] == r["category_id"]


def test_voc_ap_11_point_vs_area():
    rec, prec = np.array([0.5]), np.array([1.0])
    assert voc_ap(rec, prec, use_07_metric=True) == pytest.approx(6 / 11)  # t = 0, 0.1, ..., 0.5
    assert voc_ap(rec, prec, use_07_metric=False) == pytest.approx(0.5)
