"""What ``dt predict`` does with each field of a model's output: draw it and write it as results.

A ``PredictionOutput`` handles one output (``instances``, ``sem_seg``, ``panoptic_seg``, a project's
``densepose``): it says whether an output dict has it, draws it on the picture of the input, and
turns it into JSON records for its results file. ``dt predict`` runs, for every input, each handler
that applies (in ``layer`` order, lowest first, skipping those ``replaces`` names), and writes each
handler's records at the end. Built in:

============= ===== ============================ ====================================================
name          layer results file                 draws
============= ===== ============================ ====================================================
sem_seg       0     (none)                       the semantic map (argmax of ``sem_seg``)
panoptic_seg  0     (none)                       the panoptic segments; replaces sem_seg, instances
instances     20    coco_instances_results.json  boxes, classes, masks, keypoints of confident ones
============= ===== ============================ ====================================================

A package adds one by naming an object with the ``PredictionOutput`` shape in the entry-point group
``dt_engine.prediction_output`` (the same contract as ``dt_engine.commands``)::

    [project.entry-points."dt_engine.prediction_output"]
    densepose = "dt_densepose.visualize:DENSEPOSE_OUTPUT"
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import attrs
import numpy as np

from dt_config import load_entry_points
from dt_data import Metadata, Visualizer
from dt_eval.coco_format import instances_to_coco_json

from .checkpoint import atomic_write_text
from .errors import InputError

__all__ = [
    "PREDICTION_OUTPUTS",
    "PREDICTION_OUTPUT_GROUP",
    "PredictionContext",
    "PredictionOutput",
    "PredictionOutputRegistry",
    "PredictionRecorder",
]

PREDICTION_OUTPUT_GROUP = "dt_engine.prediction_output"


@attrs.frozen
class PredictionContext:
    """What every handler may need besides the outputs: the dataset ``metadata`` (class names,
    colours, dataset ids; None when unknown) and the minimum score drawn (``confidence``)."""

    metadata: Metadata | None = None
    confidence: float = 0.5

    def get(self, key: str, default: Any = None) -> Any:
        """A metadata value, ``default`` when there is no metadata or no such key."""
        value = self.metadata.get(key) if self.metadata is not None else None
        return default if value is None else value


@runtime_checkable
class PredictionOutput(Protocol):
    """How ``dt predict`` draws and records one field of the model's output dict (on the CPU).

    ``name`` is unique; ``layer`` orders drawing (lowest first); ``replaces`` names handlers not drawn
    when this one applies; ``results_file`` is the file in the output folder that receives the
    records (None: no records).
    """

    name: str
    layer: int
    replaces: tuple[str, ...]
    results_file: str | None

    def applies(self, outputs: Mapping[str, Any]) -> bool:
        """Whether ``outputs`` (one image's model output) holds this handler's field."""

    def draw(
        self, image_rgb: np.ndarray, outputs: Mapping[str, Any], context: PredictionContext
    ) -> np.ndarray:
        """``image_rgb`` (``uint8[H, W, 3]``, the input or what earlier layers drew) with the field
        drawn on it, as a new ``uint8[H, W, 3]`` RGB array."""

    def records(self, outputs: Mapping[str, Any], image_id: int, context: PredictionContext) -> list[dict]:
        """JSON-serialisable records of the field for the image numbered ``image_id``."""


class PredictionOutputRegistry:
    """``name`` -> ``PredictionOutput``: the built-in handlers plus those of the entry points of
    ``group``, loaded the first time the handlers are listed."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._outputs: dict[str, PredictionOutput] = {}
        self._entry_points_loaded = False

    def register(self, output: PredictionOutput, where: str | None = None) -> PredictionOutput:
        """Add ``output``; ``InputError`` (naming ``where`` it came from) if it lacks the
        ``PredictionOutput`` shape or its name is taken. Returns it unchanged."""
        where = where or repr(output)
        if not isinstance(output, PredictionOutput):
            needs = "name, layer, replaces, results_file, applies, draw, records"
            raise InputError(f"{where} is not a dt prediction output (it needs {needs})")
        if output.name in self._outputs:
            raise InputError(f"{where} defines prediction output {output.name!r}, which already exists")
        self._outputs[output.name] = output
        return output

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for where, output in load_entry_points(self.group, InputError):
            self.register(output, where)

    def get(self, name: str) -> PredictionOutput:
        """The handler named ``name``; ``KeyError`` if there is none."""
        self._load_entry_points()
        return self._outputs[name]

    def names(self) -> list[str]:
        """Every handler's name, entry points included."""
        self._load_entry_points()
        return sorted(self._outputs)

    def ordered(self) -> list[PredictionOutput]:
        """Every handler in drawing order (``layer``, then name)."""
        self._load_entry_points()
        return sorted(self._outputs.values(), key=lambda o: (o.layer, o.name))


PREDICTION_OUTPUTS = PredictionOutputRegistry(PREDICTION_OUTPUT_GROUP)


@attrs.frozen
class InstancesOutput:
    """``instances``: drawn with ``Visualizer.draw_instance_predictions`` (those scoring at least the
    confidence); recorded in COCO results format with the dataset's category ids and
    ``category_name`` when the metadata has them."""

    name: ClassVar[str] = "instances"
    layer: ClassVar[int] = 20
    replaces: ClassVar[tuple[str, ...]] = ()
    results_file: ClassVar[str | None] = "coco_instances_results.json"

    def applies(self, outputs: Mapping[str, Any]) -> bool:
        return "instances" in outputs

    def draw(
        self, image_rgb: np.ndarray, outputs: Mapping[str, Any], context: PredictionContext
    ) -> np.ndarray:
        instances = outputs["instances"]
        keep = instances[instances.scores >= context.confidence]
        return Visualizer(image_rgb, context.metadata).draw_instance_predictions(keep).get_image()

    def records(self, outputs: Mapping[str, Any], image_id: int, context: PredictionContext) -> list[dict]:
        id_map = context.get("thing_dataset_id_to_contiguous_id", {})
        to_dataset_id = {contiguous: dataset_id for dataset_id, contiguous in id_map.items()}
        class_names = context.get("thing_classes", [])
        records = instances_to_coco_json(outputs["instances"], image_id)
        for record in records:
            contiguous = record["category_id"]
            record["category_id"] = to_dataset_id.get(contiguous, contiguous)
            if contiguous < len(class_names):
                record["category_name"] = class_names[contiguous]
        return records


@attrs.frozen
class SemSegOutput:
    """``sem_seg`` (``[C, H, W]`` scores): the argmax map drawn with ``Visualizer.draw_sem_seg``."""

    name: ClassVar[str] = "sem_seg"
    layer: ClassVar[int] = 0
    replaces: ClassVar[tuple[str, ...]] = ()
    results_file: ClassVar[str | None] = None

    def applies(self, outputs: Mapping[str, Any]) -> bool:
        return "sem_seg" in outputs

    def draw(
        self, image_rgb: np.ndarray, outputs: Mapping[str, Any], context: PredictionContext
    ) -> np.ndarray:
        return Visualizer(image_rgb, context.metadata).draw_sem_seg(outputs["sem_seg"]).get_image()

    def records(self, outputs: Mapping[str, Any], image_id: int, context: PredictionContext) -> list[dict]:
        return []


@attrs.frozen
class PanopticSegOutput:
    """``panoptic_seg`` (``(segment ids [H, W], segments_info)``): drawn with
    ``Visualizer.draw_panoptic_seg`` instead of the semantic map and the instances."""

    name: ClassVar[str] = "panoptic_seg"
    layer: ClassVar[int] = 0
    replaces: ClassVar[tuple[str, ...]] = ("sem_seg", "instances")
    results_file: ClassVar[str | None] = None

    def applies(self, outputs: Mapping[str, Any]) -> bool:
        return "panoptic_seg" in outputs

    def draw(
        self, image_rgb: np.ndarray, outputs: Mapping[str, Any], context: PredictionContext
    ) -> np.ndarray:
        segments, segments_info = outputs["panoptic_seg"]
        return Visualizer(image_rgb, context.metadata).draw_panoptic_seg(segments, segments_info).get_image()

    def records(self, outputs: Mapping[str, Any], image_id: int, context: PredictionContext) -> list[dict]:
        return []


for _builtin in (InstancesOutput(), SemSegOutput(), PanopticSegOutput()):
    PREDICTION_OUTPUTS.register(_builtin, f"built-in {_builtin.name!r}")


def _to_cpu(outputs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.to("cpu") if hasattr(v, "to") else v for k, v in outputs.items()}


class PredictionRecorder:
    """Draws each input's outputs through the handlers that apply and collects their records.

    ``add`` per input, then ``write`` once: each handler's records go, atomically, to its results
    file (written for every handler that applied to some input; ``instances`` always, so a run whose
    inputs were all skipped still leaves its empty COCO results).
    """

    def __init__(
        self, context: PredictionContext, registry: PredictionOutputRegistry = PREDICTION_OUTPUTS
    ) -> None:
        self.context = context
        self.handlers = registry.ordered()
        self.records: dict[str, list[dict]] = {"instances": []}

    def add(
        self, image_bgr: np.ndarray, outputs: Mapping[str, Any], image_id: int, **extra: Any
    ) -> np.ndarray:
        """Draw ``outputs`` (the model's output for ``image_bgr``, ``uint8[H, W, 3]``) and keep their
        records, each with ``extra`` (``file_name=``, ``frame=``). Returns the RGB drawing."""
        outputs = _to_cpu(outputs)
        applying = [h for h in self.handlers if h.applies(outputs)]
        replaced = {name for h in applying for name in h.replaces}
        canvas = np.ascontiguousarray(image_bgr[:, :, ::-1])  # RGB
        for handler in applying:
            if handler.name not in replaced:
                canvas = handler.draw(canvas, outputs, self.context)
            if handler.results_file is not None:
                records = handler.records(outputs, image_id, self.context)
                self.records.setdefault(handler.name, []).extend({**r, **extra} for r in records)
        return canvas

    def results(self, name: str) -> list[dict]:
        """The records collected so far by the handler ``name``."""
        return self.records.get(name, [])

    def write(self, folder: str | Path) -> list[Path]:
        """Write every collected results file into ``folder``; returns their paths."""
        written = []
        for handler in self.handlers:
            if handler.results_file is not None and handler.name in self.records:
                path = Path(folder) / handler.results_file
                atomic_write_text(path, json.dumps(self.records[handler.name]))
                written.append(path)
        return written
