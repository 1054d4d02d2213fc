"""``COCOEvaluator``: COCO AP for boxes, masks and keypoints from model outputs or a results json,
and detectron2's box-proposal recall (``AR@100`` ... ``ARl@1000``) for outputs carrying ``proposals``.

dt-eval does not import dt-data: pass the ground truth as ``coco_json`` (a COCO json path), or as
``dataset_dicts`` (dt's standard dataset dicts, converted to COCO json once and cached in
``output_dir``), and the dataset's ``metadata`` (``thing_classes``,
``thing_dataset_id_to_contiguous_id``, optionally ``json_file``), e.g. with dt-data::

    COCOEvaluator(name, dataset_dicts=DatasetCatalog.get(name), metadata=MetadataCatalog.get(name),
                  output_dir="out")
"""

from __future__ import annotations

import contextlib
import copy
import io
import itertools
import json
import logging
import os
import pickle
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools.coco import COCO

from dt_eval import comm
from dt_eval._table import metrics_table, per_category_table
from dt_eval.coco import COCOeval
from dt_eval.coco_format import _get, convert_to_coco_json, instances_to_coco_json, validate_results
from dt_eval.evaluator import DatasetEvaluator

__all__ = ["COCOEvaluator", "derive_coco_results"]

logger = logging.getLogger(__name__)

METRICS = {
    "bbox": ["AP", "AP50", "AP75", "APs", "APm", "APl"],
    "segm": ["AP", "AP50", "AP75", "APs", "APm", "APl"],
    "keypoints": ["AP", "AP50", "AP75", "APm", "APl"],
}


def _quiet_coco(json_file: str) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(json_file)


class COCOEvaluator(DatasetEvaluator):
    """COCO evaluation of instance predictions (detectron2's ``COCOEvaluator``).

    Subclasses change the box form with ``rotated`` (ground truth and results as XYWHA_ABS) and the
    matching through :meth:`_make_cocoeval` (``RotatedCOCOEvaluator``).

    Args:
        dataset_name: name used in logs and for the cached converted json.
        tasks: subset of ``("bbox", "segm", "keypoints")``; default: inferred from the predictions.
        distributed: gather predictions from every rank to rank 0 before evaluating.
        output_dir: where ``coco_instances_results.json`` (and a converted ground truth) is written.
        max_dets_per_image: last entry of ``maxDets`` for bbox/segm (default 100).
        kpt_oks_sigmas: per-keypoint OKS sigmas (default: COCO's 17).
        coco_json: path of the ground-truth COCO json (else ``metadata.json_file``).
        dataset_dicts: dataset dicts to convert when there is no COCO json.
        metadata: object or mapping with ``thing_classes`` and ``thing_dataset_id_to_contiguous_id``.
        allow_cached_coco: reuse a previously converted json in ``output_dir``.
    """

    rotated = False

    def __init__(
        self,
        dataset_name: str = "dataset",
        tasks: Sequence[str] | None = None,
        distributed: bool = True,
        output_dir: str | None = None,
        *,
        max_dets_per_image: int | None = None,
        kpt_oks_sigmas: Sequence[float] = (),
        coco_json: str | None = None,
        dataset_dicts: Sequence[dict] | None = None,
        metadata: Any = None,
        allow_cached_coco: bool = True,
    ) -> None:
        if tasks is not None:
            bad = [t for t in tasks if t not in METRICS]
            if bad:
                raise ValueError(f"tasks must be among {sorted(METRICS)}, got {bad}")
        if max_dets_per_image is not None and max_dets_per_image < 1:
            raise ValueError(f"max_dets_per_image must be >= 1, got {max_dets_per_image}")
        self._dataset_name = dataset_name
        self._tasks = tuple(tasks) if tasks is not None else None
        self._distributed = distributed
        self._output_dir = output_dir
        self._max_dets = [1, 10, 100 if max_dets_per_image is None else max_dets_per_image]
        self._kpt_oks_sigmas = np.asarray(kpt_oks_sigmas, dtype=np.float64)
        self._metadata = metadata
        json_file = coco_json or _get(metadata, "json_file")
        if json_file is None:
            if dataset_dicts is None:
                raise ValueError("COCOEvaluator needs coco_json, metadata.json_file or dataset_dicts")
            if output_dir is None:
                raise ValueError("COCOEvaluator needs output_dir to store the converted dataset_dicts")
            form = "_rotated" if self.rotated else ""
            json_file = os.path.join(output_dir, f"{dataset_name}{form}_coco_format.json")
            convert_to_coco_json(
                dataset_dicts, metadata, json_file, allow_cached=allow_cached_coco, rotated=self.rotated
            )
        self._coco_api = _quiet_coco(json_file)
        self._do_evaluation = "annotations" in self._coco_api.dataset
        self._predictions: list[dict] = []

    def reset(self) -> None:
        self._predictions = []

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        """Convert each output's ``instances`` to COCO result dicts for its input's ``image_id``, and
        keep its ``proposals`` (``proposal_boxes`` XYXY_ABS, ``objectness_logits``) when present."""
        for inp, out in zip(inputs, outputs, strict=True):
            prediction: dict = {"image_id": inp["image_id"]}
            if "instances" in out:
                instances = out["instances"]
                if hasattr(instances, "to"):
                    instances = instances.to("cpu")
                prediction["instances"] = instances_to_coco_json(instances, inp["image_id"])
            if "proposals" in out:
                from dt_eval.box_proposals import proposal_arrays

                prediction["proposals"] = proposal_arrays(out["proposals"], inp["image_id"])
            if len(prediction) > 1:
                self._predictions.append(prediction)

    def evaluate(self, img_ids: Sequence[Any] | None = None) -> dict:
        """Metrics in percent: ``{"box_proposals": {"AR@100", ..., "ARl@1000"}}`` when the outputs had
        proposals, ``{"bbox": {"AP": ..., "AP50": ..., "AP-<class>": ...}, "segm": ...}`` when they had
        instances. ``img_ids`` restricts the instance evaluation (not the proposals', as in detectron2)."""
        predictions = comm.gather_list(self._predictions, self._distributed)
        if predictions is None:
            return {}
        if len(predictions) == 0:
            logger.warning("[COCOEvaluator] Did not receive valid predictions.")
            return {}
        out: OrderedDict = OrderedDict()
        with_proposals = [p for p in predictions if "proposals" in p]
        if with_proposals:
            proposals = self._eval_box_proposals(with_proposals)
            if proposals is not None:
                out["box_proposals"] = proposals
        if any("instances" in p for p in predictions) or not with_proposals:
            results = list(itertools.chain(*[p.get("instances", []) for p in predictions]))
            out.update(self._evaluate(self._to_dataset_ids(results), img_ids))
        return out

    def _eval_box_proposals(self, predictions: list[dict]) -> dict | None:
        """detectron2's proposal recall; writes ``box_proposals.pkl`` (boxes XYXY_ABS, logits, ids)."""
        from dt_eval.box_proposals import proposal_metrics

        if self._output_dir:
            os.makedirs(self._output_dir, exist_ok=True)
            data = {
                "boxes": [p["proposals"]["boxes"].numpy() for p in predictions],
                "objectness_logits": [p["proposals"]["objectness_logits"].numpy() for p in predictions],
                "ids": [p["image_id"] for p in predictions],
                "bbox_mode": 0,  # BoxMode.XYXY_ABS
            }
            with open(os.path.join(self._output_dir, "box_proposals.pkl"), "wb") as f:
                pickle.dump(data, f)
        if not self._do_evaluation:
            logger.info("Annotations are not available for evaluation.")
            return None
        res = proposal_metrics(predictions, self._coco_api)
        logger.info("Proposal metrics:\n%s", metrics_table(res))
        return res

    def evaluate_results(self, results: Sequence[dict] | str, img_ids: Sequence[Any] | None = None) -> dict:
        """Evaluate a COCO results list (or json path) whose category ids are the dataset's ids.

        Bad entries raise ``ValueError`` naming them; an empty list gives zeros and a warning.
        """
        if isinstance(results, (str, os.PathLike)):
            with open(results) as f:
                results = json.load(f)
        if not isinstance(results, list):
            raise ValueError(f"results must be a list of dicts, got {type(results).__name__}")
        return self._evaluate(list(results), img_ids)

    def _to_dataset_ids(self, results: list[dict]) -> list[dict]:
        mapping = _get(self._metadata, "thing_dataset_id_to_contiguous_id")
        if not mapping:
            return results
        reverse = {v: k for k, v in mapping.items()}
        for r in results:
            if r["category_id"] not in reverse:
                raise ValueError(
                    f"predicted class {r['category_id']} (image_id={r['image_id']}) is not in "
                    f"thing_dataset_id_to_contiguous_id, which has {len(reverse)} classes"
                )
            r["category_id"] = reverse[r["category_id"]]
        return results

    def _evaluate(self, results: list[dict], img_ids: Sequence[Any] | None) -> dict:
        coco_gt = self._coco_api
        tasks = self._tasks or self._tasks_from(results)
        num_kpts = len(self._kpt_oks_sigmas) if len(self._kpt_oks_sigmas) else None
        validate_results(
            results, set(coco_gt.getImgIds()), set(coco_gt.getCatIds()), num_kpts, rotated=self.rotated
        )
        if self._output_dir:
            os.makedirs(self._output_dir, exist_ok=True)
            path = os.path.join(self._output_dir, "coco_instances_results.json")
            logger.info("Saving results to %s", path)
            with open(path, "w") as f:
                json.dump(results, f)
        if not self._do_evaluation:
            logger.info("Annotations are not available for evaluation.")
            return {}
        if not results:
            warnings.warn(
                f"[COCOEvaluator] no detections for {self._dataset_name}: every AP is 0",
                RuntimeWarning,
                stacklevel=2,
            )
        out: OrderedDict = OrderedDict()
        for task in sorted(tasks, key=list(METRICS).index):
            coco_eval = self._run_cocoeval(results, task, img_ids)
            classes = _get(self._metadata, "thing_classes")
            if classes is None:
                classes = [c["name"] for c in coco_gt.loadCats(coco_gt.getCatIds())]
            out[task] = derive_coco_results(coco_eval, task, class_names=classes)
        return copy.deepcopy(out)

    @staticmethod
    def _tasks_from(results: list[dict]) -> tuple[str, ...]:
        tasks = ["bbox"]
        if any("segmentation" in r for r in results):
            tasks.append("segm")
        if any("keypoints" in r for r in results):
            tasks.append("keypoints")
        return tuple(tasks)

    def _run_cocoeval(self, results: list[dict], task: str, img_ids: Sequence[Any] | None) -> COCOeval:
        coco_gt = self._coco_api
        results = copy.deepcopy(results)
        if task == "segm":
            for r in results:
                r.pop("bbox", None)  # loadRes then derives the box from the mask
        with contextlib.redirect_stdout(io.StringIO()):
            coco_dt = coco_gt.loadRes(results) if results else _empty_results(coco_gt)
        coco_eval = self._make_cocoeval(coco_gt, coco_dt, task)
        if task != "keypoints":
            coco_eval.params.maxDets = list(self._max_dets)
        if img_ids is not None:
            coco_eval.params.imgIds = list(img_ids)
        if task == "keypoints":
            if len(self._kpt_oks_sigmas):
                coco_eval.params.kpt_oks_sigmas = self._kpt_oks_sigmas
            if results:
                num_dt = len(results[0]["keypoints"]) // 3
                num_oks = len(coco_eval.params.kpt_oks_sigmas)
                if num_dt != num_oks:
                    raise ValueError(
                        f"predictions have {num_dt} keypoints but there are {num_oks} kpt_oks_sigmas; "
                        "pass kpt_oks_sigmas matching the dataset's keypoints"
                    )
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
        logger.info("Evaluation results for %s:\n%s", task, printed.getvalue())
        return coco_eval

    def _make_cocoeval(self, coco_gt: COCO, coco_dt: COCO, task: str) -> COCOeval:
        """The ``COCOeval`` of ``task`` (its AP@[.50:.95] at the custom detection limit, if any)."""
        custom_max_dets = task != "keypoints" and self._max_dets[2] != 100
        return (_COCOevalMaxDets if custom_max_dets else COCOeval)(coco_gt, coco_dt, task)


class _COCOevalMaxDets(COCOeval):
    """COCOeval whose AP@[.50:.95] uses ``maxDets[2]`` (the custom per-image limit) instead of 100,
    as detectron2's ``COCOevalMaxDets`` does."""

    def summarize(self) -> None:
        super().summarize()
        self.stats[0] = self._summarize(1, maxDets=self.params.maxDets[2])


def _empty_results(coco_gt: COCO) -> COCO:
    coco_dt = COCO()
    coco_dt.dataset = {"images": list(coco_gt.dataset["images"]), "annotations": []}
    coco_dt.dataset["categories"] = copy.deepcopy(coco_gt.dataset.get("categories", []))
    coco_dt.createIndex()
    return coco_dt


def derive_coco_results(
    coco_eval: COCOeval | None, iou_type: str, class_names: Sequence[str] | None = None
) -> dict:
    """Standard metrics (percent, NaN when undefined) plus ``AP-<class>`` per category."""
    metrics = METRICS[iou_type]
    if coco_eval is None:
        logger.warning("No predictions from the model!")
        return {m: float("nan") for m in metrics}
    stats = coco_eval.stats
    results = {m: float(stats[i] * 100) if stats[i] >= 0 else float("nan") for i, m in enumerate(metrics)}
    logger.info("Evaluation results for %s:\n%s", iou_type, metrics_table(results))
    if not np.isfinite(sum(results.values())):
        logger.info("Some metrics cannot be computed and are shown as NaN.")
    precisions = coco_eval.eval["precision"]  # [T, R, K, A, M]
    if class_names is None or len(class_names) <= 1 or len(class_names) != precisions.shape[2]:
        return results
    per_category = []
    for k, name in enumerate(class_names):
        p = precisions[:, :, k, 0, -1]
        p = p[p > -1]
        per_category.append((str(name), float(np.mean(p) * 100) if p.size else float("nan")))
    logger.info("Per-category %s AP:\n%s", iou_type, per_category_table(per_category))
    results.update({f"AP-{name}": ap for name, ap in per_category})
    return results
