"""``densepose``: how ``dt predict`` draws and records DensePose outputs (entry point of the group
``dt_engine.prediction_output``).

It applies to outputs whose ``instances`` carry ``pred_densepose``. Drawing, under the boxes and
labels of the ``instances`` handler, for the detections scoring at least ``--confidence``: the part
labels as a colour map (:func:`~dt_densepose.visualize.draw_fine_segmentation`) and the U, V
iso-lines (:func:`~dt_densepose.visualize.draw_uv_contours`).

Records, one per detection, in ``densepose_results.json``: the COCO fields of ``instances`` without
masks (``image_id``, ``category_id`` and ``category_name`` as in ``coco_instances_results.json``,
``bbox`` XYWH, ``score``, ``file_name``; ``frame`` for a video) and ``densepose``:
``{"size": [h, w], "iuv_png": ...}``, the box's part labels and U, V at its pixel size
(:func:`~dt_densepose.chart_to_box_iuv`) as a base64 PNG, decoded by
:func:`~dt_densepose.visualize.decode_iuv_png` to ``uint8[3, h, w]`` (I, 255 U, 255 V).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
import numpy as np

from dt_engine.prediction_outputs import PREDICTION_OUTPUTS, PredictionContext
from dt_structures import Instances

from .iuv import chart_to_box_iuv
from .visualize import draw_fine_segmentation, draw_uv_contours, encode_iuv_png

__all__ = ["DENSEPOSE_OUTPUT", "DensePoseOutput"]


@attrs.frozen
class DensePoseOutput:
    """The ``PredictionOutput`` of DensePose (see the module docstring)."""

    name: ClassVar[str] = "densepose"
    layer: ClassVar[int] = 10  # over semantic maps, under the instances' boxes and labels
    replaces: ClassVar[tuple[str, ...]] = ()
    results_file: ClassVar[str | None] = "densepose_results.json"

    def applies(self, outputs: Mapping[str, Any]) -> bool:
        instances = outputs.get("instances")
        return instances is not None and instances.has("pred_densepose")

    def draw(
        self, image_rgb: np.ndarray, outputs: Mapping[str, Any], context: PredictionContext
    ) -> np.ndarray:
        instances = outputs["instances"]
        keep = instances[instances.scores >= context.confidence]
        boxes = keep.pred_boxes.tensor
        bgr = draw_fine_segmentation(np.ascontiguousarray(image_rgb[:, :, ::-1]), keep.pred_densepose, boxes)
        bgr = draw_uv_contours(bgr, keep.pred_densepose, boxes)
        return np.ascontiguousarray(bgr[:, :, ::-1])

    def records(self, outputs: Mapping[str, Any], image_id: int, context: PredictionContext) -> list[dict]:
        instances = outputs["instances"]
        detections = Instances(
            instances.image_size,
            pred_boxes=instances.pred_boxes,
            scores=instances.scores,
            pred_classes=instances.pred_classes,
        )
        records = PREDICTION_OUTPUTS.get("instances").records({"instances": detections}, image_id, context)
        for i, record in enumerate(records):
            labels, uv = chart_to_box_iuv(instances.pred_densepose[i], instances.pred_boxes.tensor[i])
            record["densepose"] = {"size": list(labels.shape), "iuv_png": encode_iuv_png(labels, uv)}
        return records


DENSEPOSE_OUTPUT = DensePoseOutput()
