"""``dt predict --backend {onnxruntime,exported-program,torchscript}``: an exported file and its JSON
as a model that ``dt predict`` runs like the eager one (registered in the ``dt_engine.predict_backend``
entry-point group, so dt-engine needs no import of dt-export).

``ExportedModel([{"image", "height", "width"}])`` runs the file on each resized image (through
:func:`dt_export.runtime.load_exported`; a batched export on each group of same-size images at
once; an AOTInductor ``.pt2`` with ``--backend exported-program``, as its JSON says) and returns the
eager model's output dicts at the original ``height``/``width``: ``instances`` (boxes and keypoints
scaled; rotated boxes scaled, clipped and the empty ones dropped, as the eager model does; masks
resized with nearest neighbours: the eager model pastes them at the original size, so edge pixels
may differ), ``sem_seg`` (bilinear, as the eager ``sem_seg_postprocess``) and ``panoptic_seg`` (ids
resized with nearest neighbours, with the segments of its ``segments`` table).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from dt_structures import Boxes, Instances, RotatedBoxes

from .runtime import load_exported

__all__ = ["BACKEND_FORMATS", "ExportedModel", "load_backend"]

BACKEND_FORMATS = {
    "onnxruntime": "onnx",
    "exported-program": "exported-program",
    "torchscript": "torchscript",
}


def _instances(outputs: dict[str, torch.Tensor], size: tuple[int, int], height: int, width: int) -> Instances:
    scale_x, scale_y = width / size[1], height / size[0]
    result = Instances((height, width))
    result.scores = outputs["scores"]
    result.pred_classes = outputs["classes"].long()
    if "rotated_boxes" in outputs:  # as the eager detector_postprocess: scaled, clipped, empty ones dropped
        boxes = RotatedBoxes(outputs["rotated_boxes"]).scaled(scale_x, scale_y)
        boxes.clip((height, width))
        result.pred_boxes = boxes
        return result[boxes.nonempty()]
    result.pred_boxes = Boxes(outputs["boxes"] * torch.tensor([scale_x, scale_y, scale_x, scale_y]))
    if "masks" in outputs:
        masks = outputs["masks"].to(torch.uint8)[:, None]  # [R, 1, H', W']
        resized = F.interpolate(masks, size=(height, width), mode="nearest") if len(masks) else masks
        result.pred_masks = (
            resized[:, 0].bool() if len(masks) else torch.zeros((0, height, width), dtype=torch.bool)
        )
    if "keypoints" in outputs:
        result.pred_keypoints = outputs["keypoints"] * torch.tensor([scale_x, scale_y, 1.0])
    return result


def _segments(table: torch.Tensor) -> list[dict[str, Any]]:
    """The eager ``segments_info`` of a ``segments`` table ``[S, 4]``."""
    segments = []
    for segment_id, isthing, category, extra in table.tolist():
        info = {"id": segment_id, "isthing": bool(isthing), "category_id": category}
        info.update({"instance_id": extra} if isthing else {"area": extra})
        segments.append(info)
    return segments


class ExportedModel(nn.Module):
    """An exported model (``path``, ``format``) with the eager model's call: ``list[dict]`` in (``image``
    ``Tensor[C, H', W']`` resized, ``height``/``width`` of the original), output dicts out."""

    def __init__(self, path: str | os.PathLike[str], format: str) -> None:
        super().__init__()
        self.path = Path(path)
        spec_path = self.path.with_name(self.path.name + ".json")
        try:
            self.spec = json.loads(spec_path.read_text())
            names = [output["name"] for output in self.spec["outputs"]]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(
                f"cannot read {spec_path}, the JSON dt export writes next to {self.path.name}: {err}"
            ) from None
        if self.spec.get("format") != format:
            raise ValueError(
                f"{self.path} is a {self.spec.get('format')} export (its JSON says), not {format}"
            )
        self.input_format = self.spec["input"]["channel_format"]
        self.batched = bool(self.spec["input"].get("batched"))
        self.run = load_exported(self.path, format, names, aot_inductor=bool(self.spec.get("aot_inductor")))

    def _outputs(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """The file's outputs on each of ``images`` ``Tensor[C, H, W]``: one run per image, or for a
        batched export one run per group of same-size images."""
        if not self.batched:
            return [self.run(image) for image in images]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(tuple(image.shape), []).append(i)
        outputs: list[dict[str, torch.Tensor]] = [{} for _ in images]
        for indices in groups.values():
            batch = self.run(torch.stack([images[i] for i in indices]))
            for k, i in enumerate(indices):
                outputs[i] = {name: output[k] for name, output in batch.items()}
        return outputs

    def forward(self, batched_inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        images = [item["image"].to(torch.float32) for item in batched_inputs]
        results = []
        for item, image, outputs in zip(batched_inputs, images, self._outputs(images), strict=True):
            size = tuple(image.shape[-2:])
            height, width = item.get("height", size[0]), item.get("width", size[1])
            result: dict[str, Any] = {}
            if "boxes" in outputs or "rotated_boxes" in outputs:
                result["instances"] = _instances(outputs, size, height, width)
            if "sem_seg" in outputs:
                sem_seg = outputs["sem_seg"][None].float()
                result["sem_seg"] = F.interpolate(
                    sem_seg, size=(height, width), mode="bilinear", align_corners=False
                )[0]
            if "panoptic_seg" in outputs:
                ids = outputs["panoptic_seg"][None, None].float()
                ids = F.interpolate(ids, size=(height, width), mode="nearest")[0, 0].to(
                    outputs["panoptic_seg"].dtype
                )
                segments = _segments(outputs["segments"]) if "segments" in outputs else None
                result["panoptic_seg"] = (ids, segments)
            results.append(result)
        return results


def load_backend(backend: str, path: str | os.PathLike[str]) -> ExportedModel:
    """The ``dt_engine.predict_backend`` hook: ``backend`` (``onnxruntime``, ``exported-program``,
    ``torchscript``) run on the exported file ``path``; ``ValueError`` (one line) for a bad file."""
    return ExportedModel(path, BACKEND_FORMATS[backend])
