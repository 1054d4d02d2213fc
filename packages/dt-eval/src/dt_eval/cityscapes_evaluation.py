"""Cityscapes instance and semantic segmentation evaluators through ``cityscapesscripts``.

Install with ``pip install dt-eval[cityscapes]``. Predictions are encoded as the official scripts
expect (per-instance mask PNGs plus a text list; label-id PNGs) and evaluated against every
``*_gtFine_instanceIds.png`` / ``*_gtFine_labelIds.png`` under ``gt_dir`` (``metadata.gt_dir``), as
detectron2 does. Prediction files travel to rank 0 in memory, so no shared filesystem is needed.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import logging
import os
import tempfile
from collections import OrderedDict
from typing import Any

import numpy as np

from dt_eval import comm
from dt_eval._compat import legacy_numpy_names
from dt_eval._table import metrics_table
from dt_eval.coco_format import _get
from dt_eval.evaluator import DatasetEvaluator

__all__ = ["CityscapesInstanceEvaluator", "CityscapesSemSegEvaluator"]

logger = logging.getLogger(__name__)


def _numpy(x: Any) -> np.ndarray:
    return np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _labels():
    try:
        from cityscapesscripts.helpers import labels
    except ImportError as exc:
        raise ImportError(
            "Cityscapes evaluation needs cityscapesscripts: pip install 'dt-eval[cityscapes]'"
        ) from exc
    return labels


def _quiet_args(cs_eval: Any, prediction_dir: str) -> Any:
    """cityscapesscripts' module-level ``args``, set to read predictions from ``prediction_dir``
    and to print and write nothing else."""
    args = cs_eval.args
    args.predictionPath = os.path.abspath(prediction_dir)
    args.predictionWalk = None
    args.JSONOutput = False
    args.colorized = False
    args.quiet = True
    return args


class _CityscapesEvaluator(DatasetEvaluator):
    def __init__(self, dataset_name: str, *, gt_dir: str | None, metadata: Any, distributed: bool) -> None:
        self._gt_dir = gt_dir or _get(metadata, "gt_dir")
        if self._gt_dir is None:
            raise ValueError(f"{type(self).__name__} needs gt_dir (or metadata.gt_dir)")
        self._metadata = metadata
        self._dataset_name = dataset_name
        self._distributed = distributed
        _labels()
        self._files: list[tuple[str, bytes]] = []

    def reset(self) -> None:
        self._files = []

    def _write_gathered(self, directory: str) -> bool:
        files = comm.gather_list(self._files, self._distributed)
        if files is None:
            return False
        for name, data in files:
            with open(os.path.join(directory, name), "wb") as f:
                f.write(data)
        return True

    def _ground_truth(self, pattern: str) -> list[str]:
        files = sorted(glob.glob(os.path.join(self._gt_dir, "*", pattern)))
        if not files:
            raise ValueError(f"no {pattern} files under {self._gt_dir}/<city>/")
        return files


def _write_gt_instances(gts: list[str], path: str) -> None:
    """The scripts' ground-truth instance cache, written with numpy scalars as plain numbers (their own
    writer fails on numpy 2 scalars)."""
    from cityscapesscripts.evaluation.instances2dict import instances2dict

    def default(o: Any) -> Any:
        return o.item() if isinstance(o, np.generic) else o.__dict__

    with open(path, "w") as f:
        json.dump(instances2dict(gts, False), f, default=default)


class CityscapesInstanceEvaluator(_CityscapesEvaluator):
    """Cityscapes instance-level AP and AP50 (percent) of ``output["instances"]`` with ``pred_masks``.

    ``metadata.thing_classes`` names the contiguous classes with Cityscapes label names.
    """

    def __init__(self, dataset_name: str = "cityscapes", *, gt_dir: str | None = None, metadata: Any = None,
                 distributed: bool = True) -> None:  # fmt: skip
        super().__init__(dataset_name, gt_dir=gt_dir, metadata=metadata, distributed=distributed)
        classes = _get(metadata, "thing_classes")
        if classes is None:
            raise ValueError("CityscapesInstanceEvaluator needs metadata.thing_classes")
        self._thing_classes = list(classes)

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        name2label = _labels().name2label
        for inp, out in zip(inputs, outputs, strict=True):
            base = os.path.splitext(os.path.basename(inp["file_name"]))[0]
            lines = []
            if "instances" in out:
                inst = out["instances"]
                classes, scores = _numpy(inst.pred_classes).tolist(), _numpy(inst.scores).tolist()
                masks = _numpy(inst.pred_masks).astype(np.uint8)
                for i, (cls, score) in enumerate(zip(classes, scores, strict=True)):
                    name = self._thing_classes[cls]
                    png = f"{base}_{i}_{name}.png"
                    self._files.append((png, _png(masks[i] * 255)))
                    lines.append(f"{png} {name2label[name].id} {score}\n")
            self._files.append((base + "_pred.txt", "".join(lines).encode()))

    def evaluate(self) -> dict:
        """``{"segm": {"AP", "AP50"}}``."""
        import cityscapesscripts.evaluation.evalInstanceLevelSemanticLabeling as cs_eval

        with tempfile.TemporaryDirectory(prefix="cityscapes_eval") as tmp:
            if not self._write_gathered(tmp):
                return {}
            args = _quiet_args(cs_eval, tmp)
            args.gtInstancesFile = os.path.join(tmp, "gtInstances.json")
            gts = self._ground_truth("*_gtFine_instanceIds.png")
            preds = [cs_eval.getPrediction(gt, args) for gt in gts]
            with contextlib.redirect_stdout(io.StringIO()), legacy_numpy_names():
                _write_gt_instances(gts, args.gtInstancesFile)
                # evaluateImgLists' steps, without its matches.json dump into the working directory
                cs_eval.setInstanceLabels(args)
                gt_instances = cs_eval.getGtInstances(gts, args)
                matches = cs_eval.matchGtWithPreds(preds, gts, gt_instances, args)
                averages = cs_eval.computeAverages(cs_eval.evaluateMatches(matches, args), args)
        res = {"AP": averages["allAp"] * 100, "AP50": averages["allAp50%"] * 100}
        logger.info("Cityscapes instance results on %s:\n%s", self._dataset_name, metrics_table(res))
        return OrderedDict({"segm": res})


class CityscapesSemSegEvaluator(_CityscapesEvaluator):
    """Cityscapes IoU / iIoU (classes and categories, percent) of ``output["sem_seg"]`` ([19, H, W]
    scores over the train ids)."""

    def __init__(self, dataset_name: str = "cityscapes", *, gt_dir: str | None = None, metadata: Any = None,
                 distributed: bool = True) -> None:  # fmt: skip
        super().__init__(dataset_name, gt_dir=gt_dir, metadata=metadata, distributed=distributed)

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        train_id_to_label = _labels().trainId2label
        for inp, out in zip(inputs, outputs, strict=True):
            base = os.path.splitext(os.path.basename(inp["file_name"]))[0]
            pred_train = _numpy(out["sem_seg"]).argmax(axis=0)
            pred = np.full(pred_train.shape, 255, dtype=np.uint8)
            for train_id, label in train_id_to_label.items():
                if label.ignoreInEval:
                    continue
                pred[pred_train == train_id] = label.id
            self._files.append((base + "_pred.png", _png(pred)))

    def evaluate(self) -> dict:
        """``{"sem_seg": {"IoU", "iIoU", "IoU_sup", "iIoU_sup"}}``."""
        import cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling as cs_eval

        with tempfile.TemporaryDirectory(prefix="cityscapes_eval") as tmp:
            if not self._write_gathered(tmp):
                return {}
            args = _quiet_args(cs_eval, tmp)
            gts = self._ground_truth("*_gtFine_labelIds.png")
            preds = [cs_eval.getPrediction(args, gt) for gt in gts]
            with contextlib.redirect_stdout(io.StringIO()), legacy_numpy_names():
                r = cs_eval.evaluateImgLists(preds, gts, args)
        res = {
            "IoU": 100.0 * r["averageScoreClasses"],
            "iIoU": 100.0 * r["averageScoreInstClasses"],
            "IoU_sup": 100.0 * r["averageScoreCategories"],
            "iIoU_sup": 100.0 * r["averageScoreInstCategories"],
        }
        logger.info("Cityscapes semantic results on %s:\n%s", self._dataset_name, metrics_table(res))
        return OrderedDict({"sem_seg": res})
