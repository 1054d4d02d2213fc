"""The prediction-output seam of ``dt predict``: built-in handlers draw exactly what ``Visualizer`` draws
(instances unchanged from before the seam), panoptic maps replace the semantic map and instances,
plugins come in through the ``dt_engine.prediction_output`` entry points, bad plugins are one line."""

from __future__ import annotations

import json
from typing import ClassVar

import attrs
import cv2
import numpy as np
import pytest
import torch

from dt_data import Metadata, Visualizer
from dt_engine.errors import InputError
from dt_engine.prediction_outputs import (
    PREDICTION_OUTPUT_GROUP,
    PREDICTION_OUTPUTS,
    PredictionContext,
    PredictionOutputRegistry,
    PredictionRecorder,
)
from dt_engine.run import predict_files
from dt_eval.coco_format import instances_to_coco_json
from dt_structures import Boxes, Instances

H, W = 40, 60


def _image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)  # BGR


def _instances() -> Instances:
    masks = torch.zeros(3, H, W, dtype=torch.bool)
    masks[0, 5:20, 5:25] = masks[1, 10:35, 30:55] = masks[2, 0:5, 0:5] = True
    return Instances(
        (H, W),
        pred_boxes=Boxes(
            torch.tensor([[5.0, 5.0, 25.0, 20.0], [30.0, 10.0, 55.0, 35.0], [0.0, 0.0, 5.0, 5.0]])
        ),
        scores=torch.tensor([0.9, 0.6, 0.2]),
        pred_classes=torch.tensor([0, 1, 1]),
        pred_masks=masks,
    )


def _sem_seg() -> torch.Tensor:
    scores = torch.zeros(3, H, W)
    scores[1, :, : W // 2] = scores[2, :, W // 2 :] = 1.0
    return scores


def _panoptic() -> tuple[torch.Tensor, list[dict]]:
    ids = torch.zeros(H, W, dtype=torch.int32)
    ids[10:30, 10:30] = 1
    ids[:, 40:] = 2
    info = [
        {"id": 1, "category_id": 0, "isthing": True, "score": 0.8},
        {"id": 2, "category_id": 1, "isthing": False},
    ]
    return ids, info


METADATA = Metadata(
    name="seam_test",
    thing_classes=["cat", "dog"],
    thing_dataset_id_to_contiguous_id={3: 0, 7: 1},
    stuff_classes=["sky", "grass", "road"],
)


def _run(tmp_path, outputs: dict, confidence: float = 0.5):
    path = tmp_path / "in" / "photo.png"
    path.parent.mkdir()
    cv2.imwrite(str(path), _image())
    results, skipped = predict_files(
        lambda image: outputs, [path], tmp_path / "out", metadata=METADATA, confidence=confidence
    )
    assert not skipped
    drawn = cv2.imread(str(tmp_path / "out" / "photo.png"))[:, :, ::-1]  # RGB
    return drawn, results, path


def test_builtin_handlers_and_their_order():
    assert {"instances", "sem_seg", "panoptic_seg"} <= set(PREDICTION_OUTPUTS.names())
    order = [h.name for h in PREDICTION_OUTPUTS.ordered()]
    assert order.index("sem_seg") < order.index("instances") and order.index("panoptic_seg") < order.index(
        "instances"
    )


def test_instances_are_drawn_and_recorded_as_before_the_seam(tmp_path):
    instances = _instances()
    drawn, results, path = _run(tmp_path, {"instances": instances})
    keep = instances[instances.scores >= 0.5]
    expected = Visualizer(_image()[:, :, ::-1], METADATA).draw_instance_predictions(keep).get_image()
    np.testing.assert_array_equal(drawn, expected)
    expected_records = instances_to_coco_json(instances, 0)
    for record in expected_records:
        record["category_name"] = METADATA.thing_classes[record["category_id"]]
        record["category_id"] = {0: 3, 1: 7}[record["category_id"]]
        record["file_name"] = str(path)
    assert results == expected_records and len(results) == 3  # every instance, not just the drawn ones
    assert json.loads((tmp_path / "out" / "coco_instances_results.json").read_text()) == expected_records


def test_semantic_map_under_the_instances(tmp_path):
    drawn, results, _ = _run(tmp_path, {"sem_seg": _sem_seg(), "instances": _instances()[:0]})
    expected = Visualizer(_image()[:, :, ::-1], METADATA).draw_sem_seg(_sem_seg()).get_image()
    np.testing.assert_array_equal(drawn, expected)
    assert results == []


def test_panoptic_replaces_the_semantic_map_and_the_instances(tmp_path):
    ids, info = _panoptic()
    outputs = {"sem_seg": _sem_seg(), "instances": _instances(), "panoptic_seg": (ids, info)}
    drawn, results, _ = _run(tmp_path, outputs)
    expected = Visualizer(_image()[:, :, ::-1], METADATA).draw_panoptic_seg(ids, info).get_image()
    np.testing.assert_array_equal(drawn, expected)
    assert len(results) == 3  # the instances are still recorded


@attrs.frozen
class StripeOutput:
    """A plugin handler: paints row 0 of the picture white and records the number of rows."""

    name: ClassVar[str] = "stripe"
    layer: ClassVar[int] = 30
    replaces: ClassVar[tuple[str, ...]] = ()
    results_file: ClassVar[str | None] = "stripe_results.json"

    def applies(self, outputs):
        return "stripe" in outputs

    def draw(self, image_rgb, outputs, context):
        image = image_rgb.copy()
        image[0] = 255
        return image

    def records(self, outputs, image_id, context):
        return [{"image_id": image_id, "rows": int(outputs["stripe"]), "confidence": context.confidence}]


@attrs.frozen
class FakeEntryPoint:
    name: str
    value: str
    target: object

    def load(self):
        if isinstance(self.target, Exception):
            raise self.target
        return self.target


def _registry(monkeypatch, *points: FakeEntryPoint) -> PredictionOutputRegistry:
    def fake_entry_points(group):
        assert group == PREDICTION_OUTPUT_GROUP
        return list(points)

    monkeypatch.setattr("dt_config.registry.entry_points", fake_entry_points)
    registry = PredictionOutputRegistry(PREDICTION_OUTPUT_GROUP)
    for name in ("instances", "sem_seg"):
        registry.register(PREDICTION_OUTPUTS.get(name))
    return registry


def test_a_plugin_from_an_entry_point_draws_last_and_writes_its_results(monkeypatch, tmp_path):
    registry = _registry(monkeypatch, FakeEntryPoint("stripe", "my_pkg.vis:STRIPE", StripeOutput()))
    assert registry.names() == ["instances", "sem_seg", "stripe"]
    recorder = PredictionRecorder(PredictionContext(METADATA, 0.7), registry)
    image = _image()
    drawn = recorder.add(image, {"stripe": 7, "instances": _instances()[:0]}, 4, file_name="a.png")
    assert (drawn[0] == 255).all() and np.array_equal(drawn[1:], image[1:, :, ::-1])
    recorder.add(image, {"instances": _instances()[:0]}, 5, file_name="b.png")  # stripe does not apply
    written = recorder.write(tmp_path)
    assert sorted(p.name for p in written) == ["coco_instances_results.json", "stripe_results.json"]
    assert json.loads((tmp_path / "stripe_results.json").read_text()) == [
        {"image_id": 4, "rows": 7, "confidence": 0.7, "file_name": "a.png"}
    ]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (ImportError("No module named 'my_pkg'"), "failed to load: ImportError: No module named 'my_pkg'"),
        (object(), "is not a dt prediction output (it needs name, layer, replaces, results_file"),
        (PREDICTION_OUTPUTS.get("sem_seg"), "defines prediction output 'sem_seg', which already exists"),
    ],
    ids=["import-error", "wrong-shape", "duplicate"],
)
def test_bad_plugins_are_one_line_naming_the_entry_point(monkeypatch, target, message):
    registry = _registry(monkeypatch, FakeEntryPoint("bad", "my_pkg.vis:BAD", target))
    with pytest.raises(InputError) as info:
        registry.names()
    assert str(info.value).startswith(
        f"entry point 'bad' = 'my_pkg.vis:BAD' of group '{PREDICTION_OUTPUT_GROUP}'"
    ) and message in str(info.value)
    assert "\n" not in str(info.value)
