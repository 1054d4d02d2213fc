"""COCOEvaluator from model outputs, results json and dataset dicts; inference_on_dataset."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import math

import numpy as np
import pytest
import torch
from dteval_outputs import metadata_of as _metadata
from dteval_outputs import model_outputs as _outputs
from dteval_synth import load, make_dataset
from pycocotools.cocoeval import COCOeval as RefCOCOeval

from dt_eval import COCOeval, DatasetEvaluators, inference_on_dataset
from dt_eval.coco_evaluation import COCOEvaluator


@pytest.fixture(scope="module")
def dataset():
    gt, results = make_dataset(seed=21, num_images=12, crowd_prob=0.0, rle_gt_prob=0.0)
    return gt, results


def _reference_stats(gt, results, iou_type):
    coco_gt, coco_dt = load(gt, results, iou_type)
    E = RefCOCOeval(coco_gt, coco_dt, iou_type)
    with contextlib.redirect_stdout(io.StringIO()):
        E.evaluate()
        E.accumulate()
        E.summarize()
    return E.stats


def test_model_outputs_match_pycocotools(dataset, tmp_path):
    gt, results = dataset
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    evaluator = COCOEvaluator("synth", output_dir=str(tmp_path), coco_json=str(path), metadata=_metadata(gt))
    inputs, outputs = _outputs(gt, results)
    evaluator.reset()
    for i in range(0, len(inputs), 5):
        evaluator.process(inputs[i : i + 5], outputs[i : i + 5])
    res = evaluator.evaluate()
    assert set(res) == {"bbox", "segm"}
    written = json.loads((tmp_path / "coco_instances_results.json").read_text())
    assert len(written) == len(results)
    assert {r["category_id"] for r in written} <= {c["id"] for c in gt["categories"]}
    # the evaluator's boxes went through float32 XYXY; compare with pycocotools on what it wrote
    for task, names in (("bbox", ["AP", "AP50", "AP75", "APs", "APm", "APl"]), ("segm", ["AP", "AP50"])):
        ref = _reference_stats(gt, [dict(r, bbox=r["bbox"]) for r in written], task)
        for i, name in enumerate(names):
            expected = ref[i] * 100 if ref[i] >= 0 else math.nan
            assert res[task][name] == pytest.approx(expected, nan_ok=True, abs=1e-9), (task, name)
    assert res["bbox"]["AP"] > 5
    per_class = [k for k in res["bbox"] if k.startswith("AP-")]
    assert len(per_class) == len(gt["categories"])


def test_dataset_dicts_without_json(dataset, tmp_path):
    gt, results = dataset
    meta = _metadata(gt)
    anns_by_image: dict = {im["id"]: [] for im in gt["images"]}
    for a in gt["annotations"]:
        label = meta["thing_dataset_id_to_contiguous_id"][a["category_id"]]
        anns_by_image[a["image_id"]].append(
            {"bbox": a["bbox"], "bbox_mode": 1, "category_id": label, "iscrowd": a["iscrowd"]}
        )
    dicts = [
        {"file_name": f"{im['id']}.jpg", "image_id": im["id"], "height": im["height"], "width": im["width"],
         "annotations": anns_by_image[im["id"]]}
        for im in gt["images"]
    ]  # fmt: skip
    evaluator = COCOEvaluator(
        "synth_dicts", output_dir=str(tmp_path), dataset_dicts=dicts, metadata=meta, tasks=["bbox"]
    )
    assert (tmp_path / "synth_dicts_coco_format.json").exists()
    inputs, outputs = _outputs(gt, results, with_masks=False)
    evaluator.process(inputs, outputs)
    res = evaluator.evaluate()
    # areas come from the boxes here (no masks), so compare with pycocotools on the converted json
    converted = json.loads((tmp_path / "synth_dicts_coco_format.json").read_text())
    written = json.loads((tmp_path / "coco_instances_results.json").read_text())
    ref = _reference_stats(converted, written, "bbox")
    assert res["bbox"]["AP"] == pytest.approx(ref[0] * 100)


def test_results_json_bad_entries_are_named(dataset, tmp_path):
    gt, results = dataset
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    evaluator = COCOEvaluator("synth", coco_json=str(path), tasks=["bbox"])
    good = [{k: r[k] for k in ("image_id", "category_id", "bbox", "score")} for r in results[:5]]
    cases = [
        ({"image_id": 999999}, r"results\[2\]: unknown image_id 999999"),
        ({"category_id": 555}, r"results\[2\]: unknown category_id 555"),
        ({"bbox": [1, 2, 3]}, r"results\[2\]: 'bbox' must be"),
        ({"bbox": [1, 2, -3, 4]}, r"results\[2\]: 'bbox' must be"),
        ({"score": float("nan")}, r"results\[2\]: 'score'"),
        ({"segmentation": {"counts": "abc"}}, r"results\[2\]: 'segmentation'"),
    ]
    for change, message in cases:
        bad = copy.deepcopy(good)
        bad[2].update(change)
        with pytest.raises(ValueError, match=message):
            evaluator.evaluate_results(bad)


def test_empty_results_give_zeros_and_warning(dataset, tmp_path):
    gt, _ = dataset
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    evaluator = COCOEvaluator("synth", coco_json=str(path), tasks=["bbox"])
    with pytest.warns(RuntimeWarning, match="no detections"):
        res = evaluator.evaluate_results([])
    assert res["bbox"]["AP"] == 0 and res["bbox"]["AP50"] == 0


def test_no_predictions_from_model_returns_empty(dataset, tmp_path):
    gt, _ = dataset
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    evaluator = COCOEvaluator("synth", coco_json=str(path))
    assert evaluator.evaluate() == {}


class _ReplayModel(torch.nn.Module):
    """Returns pre-computed outputs for the image ids it is given."""

    def __init__(self, outputs_by_id):
        super().__init__()
        self.outputs_by_id = outputs_by_id
        self.seen_training = []

    def forward(self, batch):
        self.seen_training.append(self.training)
        return [self.outputs_by_id[x["image_id"]] for x in batch]


def test_inference_on_dataset_with_several_evaluators(dataset, tmp_path):
    gt, results = dataset
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    inputs, outputs = _outputs(gt, results)
    model = _ReplayModel({i["image_id"]: o for i, o in zip(inputs, outputs, strict=True)})
    model.train()
    loader = [inputs[i : i + 3] for i in range(0, len(inputs), 3)]
    evaluators = DatasetEvaluators(
        [
            COCOEvaluator("a", coco_json=str(path), metadata=_metadata(gt), tasks=["bbox"]),
            COCOEvaluator("b", coco_json=str(path), metadata=_metadata(gt), tasks=["segm"]),
        ]
    )
    res = inference_on_dataset(model, loader, evaluators, progress=False)
    assert set(res) == {"bbox", "segm"}
    assert model.training and not any(model.seen_training)
    direct = COCOEvaluator("c", coco_json=str(path), metadata=_metadata(gt), tasks=["bbox"])
    direct.process(inputs, outputs)
    assert res["bbox"] == direct.evaluate()["bbox"]


def test_lazy_top_level_names():
    assert COCOeval.__module__ == "dt_eval.coco"
    import dt_eval

    with pytest.raises(AttributeError):
        dt_eval.NoSuchEvaluator  # noqa: B018


def test_max_dets_per_image(dataset, tmp_path):
    gt, results = dataset
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    ev = COCOEvaluator("synth", coco_json=str(path), tasks=["bbox"], max_dets_per_image=3)
    res = ev.evaluate_results(
        [{k: r[k] for k in ("image_id", "category_id", "bbox", "score")} for r in results]
    )
    coco_gt, coco_dt = load(gt, results, "bbox")
    E = RefCOCOeval(coco_gt, coco_dt, "bbox")
    E.params.maxDets = [1, 10, 3]
    with contextlib.redirect_stdout(io.StringIO()):
        E.evaluate()
        E.accumulate()
    precision = E.eval["precision"][:, :, :, 0, E.params.maxDets.index(10)]  # maxDets sorted to [1, 3, 10]
    assert res["bbox"]["AP"] == pytest.approx(100 * np.mean(precision[precision > -1]))
    with pytest.raises(ValueError, match="max_dets_per_image"):
        COCOEvaluator("synth", coco_json=str(path), max_dets_per_image=0)


def test_inference_logs_per_image_time_and_shows_progress(dataset, tmp_path, caplog, capsys):
    gt, results = dataset
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    inputs, outputs = _outputs(gt, results, with_masks=False)
    by_id = {i["image_id"]: o for i, o in zip(inputs, outputs, strict=True)}
    evaluator = COCOEvaluator("t", coco_json=str(path), metadata=_metadata(gt), tasks=["bbox"])
    with caplog.at_level(logging.INFO, logger="dt_eval.evaluator"):
        res = inference_on_dataset(
            lambda b: [by_id[x["image_id"]] for x in b], [[x] for x in inputs], [evaluator]
        )
    assert "bbox" in res
    assert any("s / img per device" in r.getMessage() for r in caplog.records)
    assert "inference" in capsys.readouterr().err  # the progress bar


def test_coco_api_from_dataset_dicts_round_trip(dataset):
    from dt_eval.coco_format import coco_api_from_dataset_dicts, convert_to_coco_dict

    gt, results = dataset
    meta = _metadata(gt)
    mapping = meta["thing_dataset_id_to_contiguous_id"]
    dicts = []
    for im in gt["images"]:
        anns = [
            {"bbox": [a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]],
             "bbox_mode": 0, "category_id": mapping[a["category_id"]], "iscrowd": a["iscrowd"],
             "segmentation": a["segmentation"]}
            for a in gt["annotations"] if a["image_id"] == im["id"]
        ]  # fmt: skip
        dicts.append(
            {"image_id": im["id"], "height": im["height"], "width": im["width"], "annotations": anns}
        )
    coco = coco_api_from_dataset_dicts(dicts, meta)
    assert sorted(coco.getCatIds()) == sorted(mapping)
    converted = convert_to_coco_dict(dicts, meta)
    for a, b in zip(converted["annotations"], gt["annotations"], strict=True):
        np.testing.assert_allclose(a["bbox"], b["bbox"], atol=1e-4)  # BoxMode.convert: float32, as detectron2
        assert a["category_id"] == b["category_id"]
    # polygon areas are shoelace areas, as detectron2 computes them
    E = COCOeval(
        coco,
        coco.loadRes([{k: r[k] for k in ("image_id", "category_id", "bbox", "score")} for r in results]),
        "bbox",
    )
    with contextlib.redirect_stdout(io.StringIO()):
        E.evaluate()
        E.accumulate()
        E.summarize()
    assert 0 < E.stats[0] < 1


def test_keypoints_from_model_outputs(dataset, tmp_path):
    gt, results = dataset
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    inputs, outputs = _outputs(gt, results, with_masks=False)
    by_image: dict = {}
    for r in results:
        by_image.setdefault(r["image_id"], []).append(r)
    for inp, out in zip(inputs, outputs, strict=True):
        kps = [
            np.asarray(r["keypoints"], dtype=np.float32).reshape(-1, 3)
            for r in by_image.get(inp["image_id"], [])
        ]
        kps = np.stack(kps) if kps else np.zeros((0, 17, 3), dtype=np.float32)
        kps[:, :, :2] += 0.5  # model outputs use pixel corners; the evaluator subtracts 0.5 again
        out["instances"].pred_keypoints = torch.from_numpy(kps)
    ev = COCOEvaluator(
        "kp", coco_json=str(path), output_dir=str(tmp_path), tasks=["keypoints"], metadata=_metadata(gt)
    )
    ev.process(inputs, outputs)
    res = ev.evaluate()["keypoints"]
    assert set(res) >= {"AP", "AP50", "AP75", "APm", "APl"}
    written = json.loads((tmp_path / "coco_instances_results.json").read_text())
    np.testing.assert_allclose(written[0]["keypoints"], results[0]["keypoints"], atol=1e-3)
    ref = _reference_stats(gt, written, "keypoints")
    assert res["AP"] == pytest.approx(ref[0] * 100)
    assert res["AP"] > 5
