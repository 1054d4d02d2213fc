"""``SemSegEvaluator``: mIoU, fwIoU, mACC, pACC and per-class IoU/accuracy (detectron2's metrics).

Ground truth comes from ``sem_seg_file_name`` of the dataset dicts passed to the constructor
(dt-eval does not import dt-data's catalog), matched to inputs by ``file_name``; or, when an input
carries it, from ``input["sem_seg_gt"]`` (an integer array at the prediction's resolution).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from dt_eval import comm
from dt_eval._table import metrics_table
from dt_eval.coco_format import _get
from dt_eval.evaluator import DatasetEvaluator

__all__ = ["SemSegEvaluator", "load_image_into_numpy_array", "sem_seg_metrics"]

logger = logging.getLogger(__name__)


def load_image_into_numpy_array(path: str, dtype: Any = np.int64) -> np.ndarray:
    """A label PNG as an array [H, W] (PIL, no conversion of the stored values)."""
    from PIL import Image

    with Image.open(path) as image:
        return np.array(image, dtype=dtype)


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def sem_seg_metrics(conf_matrix: np.ndarray, class_names: Sequence[str]) -> dict:
    """Metrics (percent) of a confusion matrix [C + 1, C + 1] (rows: prediction, columns: ground truth,
    last row/column: ignored pixels); classes absent from the ground truth get NaN IoU and accuracy."""
    num = conf_matrix.shape[0] - 1
    acc = np.full(num, np.nan, dtype=np.float64)
    iou = np.full(num, np.nan, dtype=np.float64)
    tp = conf_matrix.diagonal()[:-1].astype(np.float64)
    pos_gt = np.sum(conf_matrix[:-1, :-1], axis=0).astype(np.float64)
    pos_pred = np.sum(conf_matrix[:-1, :-1], axis=1).astype(np.float64)
    total_gt = np.sum(pos_gt)
    class_weights = pos_gt / total_gt if total_gt > 0 else np.zeros_like(pos_gt)
    acc_valid = pos_gt > 0
    acc[acc_valid] = tp[acc_valid] / pos_gt[acc_valid]
    union = pos_gt + pos_pred - tp
    iou_valid = np.logical_and(acc_valid, union > 0)
    iou[iou_valid] = tp[iou_valid] / union[iou_valid]
    nan = float("nan")
    res: dict = {
        "mIoU": 100 * np.nansum(iou) / np.sum(iou_valid) if iou_valid.any() else nan,
        "fwIoU": 100 * np.sum(iou[iou_valid] * class_weights[iou_valid]) if iou_valid.any() else nan,
    }
    for i, name in enumerate(class_names):
        res[f"IoU-{name}"] = 100 * iou[i]
    res["mACC"] = 100 * np.nansum(acc) / np.sum(acc_valid) if acc_valid.any() else nan
    res["pACC"] = 100 * np.sum(tp) / total_gt if total_gt > 0 else nan
    for i, name in enumerate(class_names):
        res[f"ACC-{name}"] = 100 * acc[i]
    return {k: float(v) for k, v in res.items()}


class SemSegEvaluator(DatasetEvaluator):
    """Semantic segmentation metrics from ``output["sem_seg"]`` (scores [C, H, W], argmax taken).

    Args:
        dataset_name: name for logs.
        distributed: sum confusion matrices over DDP ranks on rank 0.
        output_dir: where ``sem_seg_predictions.json`` (per-class RLE) is written.
        num_classes: number of classes (default: ``len(metadata.stuff_classes)``).
        ignore_label: ground-truth value ignored (default: ``metadata.ignore_label`` or 255).
        dataset_dicts: dataset dicts with ``file_name`` and ``sem_seg_file_name``.
        metadata: ``stuff_classes``, ``ignore_label``, ``stuff_dataset_id_to_contiguous_id``.
        sem_seg_loading_fn: ``(path, dtype) -> array`` reading a label image.
    """

    def __init__(
        self,
        dataset_name: str = "dataset",
        distributed: bool = True,
        output_dir: str | None = None,
        *,
        num_classes: int | None = None,
        ignore_label: int | None = None,
        dataset_dicts: Sequence[dict] | None = None,
        metadata: Any = None,
        sem_seg_loading_fn: Callable[..., np.ndarray] = load_image_into_numpy_array,
    ) -> None:
        classes = _get(metadata, "stuff_classes")
        if num_classes is None:
            if classes is None:
                raise ValueError("SemSegEvaluator needs num_classes or metadata.stuff_classes")
            num_classes = len(classes)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self._class_names = list(classes) if classes is not None else [str(i) for i in range(num_classes)]
        if len(self._class_names) != num_classes:
            raise ValueError(
                f"metadata.stuff_classes has {len(self._class_names)} names for {num_classes} classes"
            )
        self._num_classes = num_classes
        self._ignore_label = ignore_label if ignore_label is not None else _get(metadata, "ignore_label", 255)
        self._dataset_name = dataset_name
        self._distributed = distributed
        self._output_dir = output_dir
        self._loading_fn = sem_seg_loading_fn
        mapping = _get(metadata, "stuff_dataset_id_to_contiguous_id")
        self._contiguous_to_dataset = {v: k for k, v in mapping.items()} if mapping else None
        self._gt_files = {
            d["file_name"]: d["sem_seg_file_name"] for d in dataset_dicts or () if "sem_seg_file_name" in d
        }
        self.reset()

    def reset(self) -> None:
        n = self._num_classes + 1
        self._conf_matrix = np.zeros((n, n), dtype=np.int64)
        self._predictions: list[dict] = []

    def _ground_truth(self, inp: dict) -> np.ndarray:
        if "sem_seg_gt" in inp:
            return _numpy(inp["sem_seg_gt"]).astype(np.int64)
        name = inp.get("file_name")
        path = self._gt_files.get(name, inp.get("sem_seg_file_name"))
        if path is None:
            raise ValueError(
                f"no ground truth for input {name!r}: pass dataset_dicts with 'sem_seg_file_name'"
            )
        return np.asarray(self._loading_fn(path, dtype=np.int64))

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        """Accumulate the confusion matrix of each image ([H, W] prediction vs ground truth)."""
        n = self._num_classes
        for inp, out in zip(inputs, outputs, strict=True):
            pred = _numpy(out["sem_seg"]).argmax(axis=0).astype(np.int64)
            gt = self._ground_truth(inp).copy()
            if gt.shape != pred.shape:
                raise ValueError(
                    f"prediction {pred.shape} and ground truth {gt.shape} sizes differ "
                    f"for {inp.get('file_name')!r}"
                )
            gt[gt == self._ignore_label] = n
            if ((gt < 0) | (gt > n)).any():
                raise ValueError(
                    f"ground truth of {inp.get('file_name')!r} has labels outside [0, {n}) "
                    "and the ignore label"
                )
            self._conf_matrix += np.bincount(
                (n + 1) * pred.reshape(-1) + gt.reshape(-1), minlength=self._conf_matrix.size
            ).reshape(self._conf_matrix.shape)
            if self._output_dir:
                self._predictions.extend(self._encode_json(pred, inp.get("file_name")))

    def _encode_json(self, pred: np.ndarray, file_name: Any) -> list[dict]:
        out = []
        for label in np.unique(pred):
            category = (
                self._contiguous_to_dataset.get(int(label), int(label))
                if self._contiguous_to_dataset
                else int(label)
            )
            rle = mask_utils.encode(np.asfortranarray((pred == label)[:, :, None].astype(np.uint8)))[0]
            rle["counts"] = rle["counts"].decode("utf-8")
            out.append({"file_name": file_name, "category_id": category, "segmentation": rle})
        return out

    def evaluate(self) -> dict:
        """``{"sem_seg": {"mIoU", "fwIoU", "IoU-<c>", "mACC", "pACC", "ACC-<c>"}}`` in percent."""
        conf, predictions = self._conf_matrix, self._predictions
        if self._distributed:
            comm.synchronize()
            matrices = comm.gather(conf)
            predictions = list(itertools.chain(*comm.gather(predictions)))
            if not comm.is_main_process():
                return {}
            conf = np.sum(matrices, axis=0)
        if self._output_dir:
            os.makedirs(self._output_dir, exist_ok=True)
            with open(os.path.join(self._output_dir, "sem_seg_predictions.json"), "w") as f:
                json.dump(predictions, f)
        res = sem_seg_metrics(conf, self._class_names)
        summary = {k: res[k] for k in ("mIoU", "fwIoU", "mACC", "pACC")}
        logger.info("Semantic segmentation results on %s:\n%s", self._dataset_name, metrics_table(summary))
        return OrderedDict({"sem_seg": res})
