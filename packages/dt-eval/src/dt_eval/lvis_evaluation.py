"""``LVISEvaluator``: LVIS AP (with rare/common/frequent splits) through the ``lvis`` package.

Install with ``pip install dt-eval[lvis]``. The ground truth is an LVIS json (``lvis_json`` or
``metadata.json_file``); predicted contiguous class ids map back through
``metadata.thing_dataset_id_to_contiguous_id`` or, without it, to ``id + 1`` (LVIS ids are 1-based),
as detectron2 does.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import os
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from dt_eval import comm
from dt_eval._compat import legacy_numpy_names
from dt_eval._table import metrics_table
from dt_eval.coco_format import _get, instances_to_coco_json, validate_results
from dt_eval.evaluator import DatasetEvaluator

__all__ = ["LVISEvaluator"]

logger = logging.getLogger(__name__)

METRICS = ["AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf"]


def _lvis():
    try:
        import lvis
    except ImportError as exc:
        raise ImportError("LVISEvaluator needs the lvis package: pip install 'dt-eval[lvis]'") from exc
    return lvis


class LVISEvaluator(DatasetEvaluator):
    """LVIS box/mask AP (percent) of instance predictions.

    Args:
        dataset_name: name for logs.
        tasks: subset of ``("bbox", "segm")``; default: ``segm`` too when predictions have masks.
        distributed: gather predictions to rank 0.
        output_dir: where ``lvis_instances_results.json`` is written.
        max_dets_per_image: detections kept per image (LVIS' official 300).
        lvis_json: LVIS ground-truth json (else ``metadata.json_file``).
        metadata: ``thing_dataset_id_to_contiguous_id`` (optional), ``json_file``.
    """

    def __init__(
        self,
        dataset_name: str = "lvis",
        tasks: Sequence[str] | None = None,
        distributed: bool = True,
        output_dir: str | None = None,
        *,
        max_dets_per_image: int = 300,
        lvis_json: str | None = None,
        metadata: Any = None,
    ) -> None:
        if tasks is not None and any(t not in ("bbox", "segm") for t in tasks):
            raise ValueError(f"LVIS tasks must be among ('bbox', 'segm'), got {list(tasks)}")
        json_file = lvis_json or _get(metadata, "json_file")
        if json_file is None:
            raise ValueError("LVISEvaluator needs lvis_json or metadata.json_file")
        self._lvis_api = _lvis().LVIS(json_file)
        self._tasks = tuple(tasks) if tasks is not None else None
        self._distributed = distributed
        self._output_dir = output_dir
        self._max_dets = max_dets_per_image
        self._dataset_name = dataset_name
        mapping = _get(metadata, "thing_dataset_id_to_contiguous_id")
        self._reverse = {v: k for k, v in mapping.items()} if mapping else None
        self._predictions: list[dict] = []

    def reset(self) -> None:
        self._predictions = []

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        for inp, out in zip(inputs, outputs, strict=True):
            prediction: dict = {"image_id": inp["image_id"]}
            if "instances" in out:
                instances = out["instances"]
                if hasattr(instances, "to"):
                    instances = instances.to("cpu")
                prediction["instances"] = instances_to_coco_json(instances, inp["image_id"])
            self._predictions.append(prediction)

    def evaluate(self) -> dict:
        """``{"bbox": {"AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf"}, "segm": ...}``."""
        predictions = comm.gather_list(self._predictions, self._distributed)
        if predictions is None:
            return {}
        if not predictions:
            logger.warning("[LVISEvaluator] Did not receive valid predictions.")
            return {}
        results = list(itertools.chain(*[p.get("instances", []) for p in predictions]))
        for r in results:
            if self._reverse is None:
                r["category_id"] += 1
            elif r["category_id"] in self._reverse:
                r["category_id"] = self._reverse[r["category_id"]]
            else:
                raise ValueError(
                    f"predicted class {r['category_id']} is not in thing_dataset_id_to_contiguous_id"
                )
        return self.evaluate_results(results)

    def evaluate_results(self, results: Sequence[dict]) -> dict:
        """Evaluate an LVIS results list (dataset category ids). Empty results give NaN and a warning."""
        results = list(results)
        api = self._lvis_api
        validate_results(results, set(api.get_img_ids()), set(api.get_cat_ids()))
        if self._output_dir:
            os.makedirs(self._output_dir, exist_ok=True)
            with open(os.path.join(self._output_dir, "lvis_instances_results.json"), "w") as f:
                json.dump(results, f)
        tasks = self._tasks or (("bbox", "segm") if any("segmentation" in r for r in results) else ("bbox",))
        out: OrderedDict = OrderedDict()
        for task in tasks:
            out[task] = self._evaluate_task(results, task)
        return out

    def _evaluate_task(self, results: list[dict], task: str) -> dict:
        if not results:
            warnings.warn("[LVISEvaluator] no predictions: metrics are NaN", RuntimeWarning, stacklevel=3)
            return {m: float("nan") for m in METRICS}
        lvis = _lvis()
        results = copy.deepcopy(results)
        if task == "segm":
            for r in results:
                r.pop("bbox", None)
        dt = lvis.LVISResults(self._lvis_api, results, max_dets=self._max_dets)
        lvis_eval = lvis.LVISEval(self._lvis_api, dt, task)
        with legacy_numpy_names():
            lvis_eval.run()
        lvis_eval.print_results()
        raw = lvis_eval.get_results()
        res = {m: float(raw[m] * 100) if raw[m] >= 0 else float("nan") for m in METRICS}
        logger.info("LVIS %s results on %s:\n%s", task, self._dataset_name, metrics_table(res))
        return res
