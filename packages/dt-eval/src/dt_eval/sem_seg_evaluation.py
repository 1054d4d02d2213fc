"""``SemSegEvaluator``: mIoU, fwIoU, mACC, pACC, per-class IoU/accuracy and boundary IoU
(detectron2's metrics).

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

__all__ = ["SemSegEvaluator", "load_image_into_numpy_array", "mask_to_boundary", "sem_seg_metrics"]

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


def mask_to_boundary(mask: np.ndarray, dilation_ratio: float = 0.02) -> np.ndarray:
    """detectron2's boundary of a label map: ``mask - erode(mask)`` [H, W] uint8.

    The erosion is a 3x3 minimum filter applied ``max(1, round(dilation_ratio * diagonal))`` times,
    with pixels outside the image counted as 0. On a binary mask this is the band of foreground
    pixels within that distance of the background; on a label map each pixel gets its label minus the
    smallest label around it (0 in the interior of a region), which is what detectron2 counts.
    """
    if not isinstance(mask, np.ndarray) or mask.dtype != np.uint8:
        raise TypeError(f"mask must be a uint8 numpy array, got {getattr(mask, 'dtype', type(mask))}")
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-dimensional [H, W], got shape {mask.shape}")
    if mask.size == 0:
        return mask.copy()
    import cv2

    h, w = mask.shape
    dilation = max(1, int(round(dilation_ratio * np.sqrt(h**2 + w**2))))
    padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)  # [H + 2, W + 2]
    eroded = cv2.erode(padded, np.ones((3, 3), dtype=np.uint8), iterations=dilation)[1:-1, 1:-1]
    return mask - eroded


def _boundary_iou(b_conf_matrix: np.ndarray) -> np.ndarray:
    """Per-class boundary IoU [C] of a boundary confusion matrix; NaN where the union is empty."""
    num = b_conf_matrix.shape[0] - 1
    b_iou = np.full(num, np.nan, dtype=np.float64)
    tp = b_conf_matrix.diagonal()[:-1].astype(np.float64)
    pos_gt = np.sum(b_conf_matrix[:-1, :-1], axis=0).astype(np.float64)
    pos_pred = np.sum(b_conf_matrix[:-1, :-1], axis=1).astype(np.float64)
    union = pos_gt + pos_pred - tp
    valid = union > 0
    b_iou[valid] = tp[valid] / union[valid]
    return b_iou


def sem_seg_metrics(
    conf_matrix: np.ndarray, class_names: Sequence[str], b_conf_matrix: np.ndarray | None = None
) -> dict:
    """Metrics (percent) of a confusion matrix [C + 1, C + 1] (rows: prediction, columns: ground truth,
    last row/column: ignored pixels); classes absent from the ground truth get NaN IoU and accuracy.

    With the boundary confusion matrix ``b_conf_matrix`` [C + 1, C + 1] (of ``mask_to_boundary``
    maps), also ``mBIoU`` (mean over classes whose boundary union is not empty), and per class
    detectron2's ``BoundaryIoU-<c>`` and ``min(IoU, B-Iou)-<c>`` (Python's ``min``, as detectron2).
    """
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
    b_iou = _boundary_iou(b_conf_matrix) if b_conf_matrix is not None else None
    if b_iou is not None:
        res["mBIoU"] = 100 * np.nanmean(b_iou) if not np.isnan(b_iou).all() else nan
    for i, name in enumerate(class_names):
        res[f"IoU-{name}"] = 100 * iou[i]
        if b_iou is not None:
            res[f"BoundaryIoU-{name}"] = 100 * b_iou[i]
            res[f"min(IoU, B-Iou)-{name}"] = 100 * min(iou[i], b_iou[i])
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
        compute_boundary_iou: also compute boundary IoU (``mask_to_boundary``, dilation ratio 0.02)
            as detectron2 does; turned off with a warning for 255 classes or more (uint8 label maps).
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
        compute_boundary_iou: bool = True,
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
        self._compute_boundary_iou = compute_boundary_iou
        if compute_boundary_iou and num_classes >= np.iinfo(np.uint8).max:
            logger.warning(
                "SemSegEvaluator: boundary IoU needs fewer than 255 classes (uint8 label maps), "
                "%s has %d; B-IoU metrics are not computed",
                dataset_name,
                num_classes,
            )
            self._compute_boundary_iou = False
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
        self._b_conf_matrix = np.zeros((n, n), dtype=np.int64)
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
            if self._compute_boundary_iou:
                b_gt = mask_to_boundary(gt.astype(np.uint8)).astype(np.int64)
                b_pred = mask_to_boundary(pred.astype(np.uint8)).astype(np.int64)
                self._b_conf_matrix += np.bincount(
                    (n + 1) * b_pred.reshape(-1) + b_gt.reshape(-1), minlength=self._b_conf_matrix.size
                ).reshape(self._b_conf_matrix.shape)
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
        """``{"sem_seg": {"mIoU", "fwIoU", "IoU-<c>", "mACC", "pACC", "ACC-<c>"}}`` in percent, plus
        ``mBIoU``, ``BoundaryIoU-<c>`` and ``min(IoU, B-Iou)-<c>`` with ``compute_boundary_iou``."""
        conf, b_conf, predictions = self._conf_matrix, self._b_conf_matrix, self._predictions
        if self._distributed:
            comm.synchronize()
            matrices = comm.gather(conf)
            b_matrices = comm.gather(b_conf)
            predictions = list(itertools.chain(*comm.gather(predictions)))
            if not comm.is_main_process():
                return {}
            conf = np.sum(matrices, axis=0)
            b_conf = np.sum(b_matrices, axis=0)
        if self._output_dir:
            os.makedirs(self._output_dir, exist_ok=True)
            with open(os.path.join(self._output_dir, "sem_seg_predictions.json"), "w") as f:
                json.dump(predictions, f)
        res = sem_seg_metrics(conf, self._class_names, b_conf if self._compute_boundary_iou else None)
        summary = {k: res[k] for k in ("mIoU", "fwIoU", "mBIoU", "mACC", "pACC") if k in res}
        logger.info("Semantic segmentation results on %s:\n%s", self._dataset_name, metrics_table(summary))
        return OrderedDict({"sem_seg": res})
