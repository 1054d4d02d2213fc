"""``dt predict --backend {onnxruntime,exported-program,torchscript}`` on an exported narrow RetinaNet
writes the torch backend's results (same detections within the export tolerances) and drawings."""

from __future__ import annotations

import json

import attrs
import cv2
import pytest
import torch
from conftest import GOLDEN
from narrow_models import NARROW_MODELS, narrow_model

from dt_engine.cli import main
from dt_engine.config.experiment import dump_config, load_experiment
from dt_export.check import compare_detections
from dt_export.experiment import synthetic_sample
from dt_export.families import exportable_graph
from dt_export.predict_backend import _instances


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """A narrow RetinaNet experiment (config, weights) and a photo, in a temporary folder."""
    folder = tmp_path_factory.mktemp("retinanet")
    cfg = load_experiment(GOLDEN / "config.yaml")
    data = attrs.evolve(cfg.data, input=attrs.evolve(cfg.data.input, min_size_test=320, max_size_test=480))
    cfg = attrs.evolve(cfg, model=NARROW_MODELS["retinanet"](), data=data)
    (folder / "config.yaml").write_text(dump_config(cfg))
    torch.save(narrow_model("retinanet").state_dict(), folder / "model.pth")
    cv2.imwrite(str(folder / "photo.png"), synthetic_sample(300, 420))
    return folder


def _predict(experiment, output, *options: str) -> list[dict]:
    code = main([
        "predict", "--config", str(experiment / "config.yaml"), "--input", str(experiment / "photo.png"),
        "--output", str(output), "--confidence", "0.0", *options,
    ])  # fmt: skip
    assert code == 0
    assert (output / "photo.png").is_file()
    return json.loads((output / "coco_instances_results.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize(
    "format,backend", [("exported-program", "exported-program"), ("onnx", "onnxruntime")]
)
def test_predict_backend_writes_the_torch_backends_results(experiment, tmp_path, format, backend):
    assert main([
        "export", "--format", format, "--config", str(experiment / "config.yaml"),
        "--weights", str(experiment / "model.pth"), "--output", str(tmp_path / "exported"), "--dynamic",
    ]) == 0  # fmt: skip
    model_file = next(p for p in (tmp_path / "exported").iterdir() if not p.name.endswith(".json"))
    expected = _predict(experiment, tmp_path / "torch", "--weights", str(experiment / "model.pth"))
    actual = _predict(experiment, tmp_path / backend, "--weights", str(model_file), "--backend", backend)
    assert len(actual) == len(expected) > 0
    for got, want in zip(actual, expected, strict=True):
        assert got["category_id"] == want["category_id"]
        assert abs(got["score"] - want["score"]) <= 1e-4
        assert max(abs(a - b) for a, b in zip(got["bbox"], want["bbox"], strict=True)) <= 2e-2


def test_unknown_backend_and_a_model_file_without_its_json_are_one_line(experiment, tmp_path, capsys):
    options = [
        "predict",
        "--config",
        str(experiment / "config.yaml"),
        "--input",
        str(experiment / "photo.png"),
    ]
    code = main(
        [
            *options,
            "--output",
            str(tmp_path / "a"),
            "--weights",
            str(experiment / "model.pth"),
            "--backend",
            "tvm",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "'tvm' is unknown; expected one of torch, onnxruntime" in err[0]
    code = main([*options, "--output", str(tmp_path / "b"), "--weights", str(experiment / "model.pth"),
                 "--backend", "exported-program"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "model.pth.json" in err[0]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_rotated_boxes_are_rescaled_to_the_photo_as_the_eager_model_does():
    model = narrow_model("rotated_faster_rcnn")
    image = torch.from_numpy(synthetic_sample(300, 420)).permute(2, 0, 1).float()
    outputs = exportable_graph(model, "exported-program").named_outputs(image)
    height, width = 420, 700  # another aspect ratio: sides and angles change, some boxes get clipped
    actual = _instances(outputs, (300, 420), height, width)
    with torch.no_grad():
        expected = model([{"image": image, "height": height, "width": width}])[0]["instances"]

    def by_name(instances) -> dict:
        return {"rotated_boxes": instances.pred_boxes.tensor, "scores": instances.scores,
                "classes": instances.pred_classes}  # fmt: skip

    comparison = compare_detections(by_name(expected), by_name(actual), (height, width))
    assert len(expected) > 0 and comparison.ok, comparison.describe()
