"""``COCOeval``: a drop-in replacement for ``pycocotools.cocoeval.COCOeval``.

Same constructor, ``params``, ``evaluate()``, ``accumulate()``, ``summarize()``, ``stats`` and
``eval`` as pycocotools, with the same numbers (precision, recall and scores are equal to
pycocotools'), computed by dt-eval's native core: bounding-box IoU, mask IoU on RLE (with crowd
regions), polygon rasterization, keypoint OKS, greedy matching and accumulation run in C++ over
flat arrays on several threads. ``evalImgs`` and ``ious`` are built on first access.

This module needs numpy and the native core only: it imports neither torch nor dt-ops.

Example::

    from pycocotools.coco import COCO
    from dt_eval.coco import COCOeval

    gt = COCO("instances_val2017.json")
    dt = gt.loadRes("detections.json")
    E = COCOeval(gt, dt, "bbox")
    E.evaluate(); E.accumulate(); E.summarize()
    print(E.stats[0])  # AP@[.50:.95]
"""

from __future__ import annotations

import copy
import datetime
import os
import time
from typing import Any

import numpy as np

from dt_eval._native import load as _load_native

__all__ = ["COCOeval", "Params"]

_IOU_TYPES = {"bbox": 0, "segm": 1, "keypoints": 2}


class Params:
    """Evaluation parameters, with pycocotools' fields and defaults.

    Fields: ``imgIds``, ``catIds``, ``iouThrs`` (float64[T]), ``recThrs`` (float64[R]), ``maxDets``,
    ``areaRng`` ([[lo, hi], ...]), ``areaRngLbl``, ``useCats``, ``iouType``, ``useSegm`` (deprecated) and,
    for keypoints, ``kpt_oks_sigmas`` (float64[K]).
    """

    def setDetParams(self) -> None:
        self.imgIds: list = []
        self.catIds: list = []
        self.iouThrs = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
        self.recThrs = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
        self.maxDets = [1, 10, 100]
        self.areaRng = [[0**2, 1e5**2], [0**2, 32**2], [32**2, 96**2], [96**2, 1e5**2]]
        self.areaRngLbl = ["all", "small", "medium", "large"]
        self.useCats = 1

    def setKpParams(self) -> None:
        self.imgIds = []
        self.catIds = []
        self.iouThrs = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
        self.recThrs = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
        self.maxDets = [20]
        self.areaRng = [[0**2, 1e5**2], [32**2, 96**2], [96**2, 1e5**2]]
        self.areaRngLbl = ["all", "medium", "large"]
        self.useCats = 1
        self.kpt_oks_sigmas = (
            np.array(
                [
                    0.26,
                    0.25,
                    0.25,
                    0.35,
                    0.35,
                    0.79,
                    0.79,
                    0.72,
                    0.72,
                    0.62,
                    0.62,
                    1.07,
                    1.07,
                    0.87,
                    0.87,
                    0.89,
                    0.89,
                ]
            )
            / 10.0
        )

    def __init__(self, iouType: str = "segm") -> None:
        if iouType in ("segm", "bbox"):
            self.setDetParams()
        elif iouType == "keypoints":
            self.setKpParams()
        else:
            raise ValueError(f"iouType must be 'bbox', 'segm' or 'keypoints', got {iouType!r}")
        self.iouType = iouType
        self.useSegm = None


def _num_threads() -> int:
    value = os.environ.get("DT_EVAL_NUM_THREADS", "0")
    try:
        return max(int(value), 0)
    except ValueError:
        raise ValueError(f"DT_EVAL_NUM_THREADS must be an integer, got {value!r}") from None


def _run_native(
    native,
    gt_set,
    dt_set,
    iou_type,
    use_cats,
    num_images,
    num_cats,
    iou_thrs,
    area_rng,
    max_det,
    sigmas,
    detail,
):
    """Native evaluate(); for keypoints the OKS exponentials go through numpy's exp, as in pycocotools."""
    oks_exp = oks_offsets = None
    threads = _num_threads()
    if iou_type == 2 and use_cats:
        terms, oks_offsets = native.oks_terms(gt_set, dt_set, num_images, num_cats, max_det, sigmas, threads)
        oks_exp = np.exp(np.negative(terms, out=terms), out=terms)  # in place: same values as np.exp(-e)
    return native.evaluate(
        gt_set, dt_set, iou_type, use_cats, num_images, num_cats, iou_thrs, area_rng, max_det, sigmas, detail,
        oks_exp, oks_offsets, threads,
    )  # fmt: skip


class COCOeval:
    """COCO detection, segmentation and keypoint evaluation, numerically equal to pycocotools.

    Args:
        cocoGt: ground truth, a ``pycocotools.coco.COCO`` (or any object with its ``imgs``,
            ``imgToAnns``, ``getImgIds`` and ``getCatIds``).
        cocoDt: detections, usually ``cocoGt.loadRes(results)``.
        iouType: ``"bbox"``, ``"segm"`` or ``"keypoints"``.

    After ``evaluate()`` and ``accumulate()``: ``eval["precision"]`` float64[T, R, K, A, M],
    ``eval["recall"]`` float64[T, K, A, M], ``eval["scores"]`` float64[T, R, K, A, M] (-1 where
    undefined); after ``summarize()``: ``stats`` (12 numbers, 10 for keypoints).
    """

    def __init__(self, cocoGt: Any = None, cocoDt: Any = None, iouType: str = "segm") -> None:
        if not iouType:
            print("iouType not specified. use default iouType segm")
            iouType = "segm"
        self.cocoGt = cocoGt
        self.cocoDt = cocoDt
        self.params = Params(iouType=iouType)
        self._paramsEval: Any = {}
        self.eval: dict = {}
        self.stats: Any = []
        self._result = None
        self._gt_set = None
        self._dt_set = None
        self._evalImgs: list | None = None
        self._ious: dict | None = None
        if cocoGt is not None:
            self.params.imgIds = sorted(cocoGt.getImgIds())
            self.params.catIds = sorted(cocoGt.getCatIds())

    # ------------------------------------------------------------------ evaluate
    def evaluate(self) -> None:
        """Match detections to ground truth per image and category (all area ranges, IoU thresholds)."""
        if self.cocoGt is None or self.cocoDt is None:
            raise ValueError("COCOeval needs cocoGt and cocoDt to evaluate")
        native = _load_native()
        tic = time.time()
        print("Running per image evaluation...")
        p = self.params
        if p.useSegm is not None:
            p.iouType = "segm" if p.useSegm == 1 else "bbox"
            print(f"useSegm (deprecated) is not None. Running {p.iouType} evaluation")
        print(f"Evaluate annotation type *{p.iouType}*")
        if p.iouType not in _IOU_TYPES:
            raise ValueError(f"params.iouType must be 'bbox', 'segm' or 'keypoints', got {p.iouType!r}")
        p.imgIds = list(np.unique(p.imgIds))
        if p.useCats:
            p.catIds = list(np.unique(p.catIds))
        p.maxDets = sorted(p.maxDets)
        self.params = p
        if len(p.maxDets) == 0:
            raise ValueError("params.maxDets must not be empty")

        iou_type = _IOU_TYPES[p.iouType]
        img_ids = np.asarray(p.imgIds).tolist()
        cat_ids = np.asarray(p.catIds).tolist()
        cat_index: dict = {}
        for n, c in enumerate(cat_ids):
            cat_index.setdefault(c, n)
        sigmas = np.ascontiguousarray(getattr(p, "kpt_oks_sigmas", np.zeros(0)), dtype=np.float64).reshape(-1)
        num_kpts = len(sigmas) if iou_type == 2 else 0
        area_rng = np.ascontiguousarray(np.asarray(p.areaRng, dtype=np.float64))
        if area_rng.ndim != 2 or area_rng.shape[1] != 2:
            raise ValueError(f"params.areaRng must be [[lo, hi], ...], got {p.areaRng!r}")
        iou_thrs = np.ascontiguousarray(np.asarray(p.iouThrs, dtype=np.float64).reshape(-1))
        if any(int(m) != m or m < 0 for m in p.maxDets):
            raise ValueError(f"params.maxDets must be non-negative integers, got {p.maxDets!r}")

        sides = []
        for coco, is_dt, side in ((self.cocoGt, False, "cocoGt"), (self.cocoDt, True, "cocoDt")):
            imgs = getattr(coco, "imgs", None) if iou_type == 1 else None
            sides.append(
                native.extract(img_ids, coco.imgToAnns, imgs, cat_index, iou_type, is_dt, side, num_kpts)
            )
        self._gt_set, self._dt_set = sides
        self._result = _run_native(
            native, self._gt_set, self._dt_set, iou_type, bool(p.useCats), len(img_ids), len(cat_ids),
            iou_thrs, area_rng, int(p.maxDets[-1]), sigmas, detail=False,
        )  # fmt: skip
        self._evalImgs = None
        self._ious = None
        self.eval = {}
        self._paramsEval = copy.deepcopy(self.params)
        print(f"DONE (t={time.time() - tic:0.2f}s).")

    # ------------------------------------------------------------------ accumulate
    def accumulate(self, p: Params | None = None) -> None:
        """Accumulate the matches into ``eval['precision']``, ``eval['recall']`` and ``eval['scores']``."""
        print("Accumulating evaluation results...")
        tic = time.time()
        if self._result is None:
            print("Please run evaluate() first")
            raise RuntimeError("COCOeval.accumulate() needs evaluate() first")
        native = _load_native()
        if p is None:
            p = self.params
        p.catIds = p.catIds if p.useCats == 1 else [-1]
        T = len(p.iouThrs)
        K = len(p.catIds) if p.useCats else 1
        A = len(p.areaRng)
        M = len(p.maxDets)
        pe = self._paramsEval
        cat_ids = pe.catIds if pe.useCats else [-1]
        set_k = set(np.asarray(cat_ids).tolist())
        set_a = set(map(tuple, np.asarray(pe.areaRng).tolist()))
        set_m = set(pe.maxDets)
        set_i = set(np.asarray(pe.imgIds).tolist())
        k_list = [n for n, k in enumerate(np.asarray(p.catIds).tolist()) if k in set_k]
        m_list = [int(m) for m in p.maxDets if m in set_m]
        a_list = [n for n, a in enumerate(map(tuple, np.asarray(p.areaRng).tolist())) if a in set_a]
        i_list = [n for n, i in enumerate(np.asarray(p.imgIds).tolist()) if i in set_i]
        rec_thrs = np.ascontiguousarray(np.asarray(p.recThrs, dtype=np.float64).reshape(-1))
        precision, recall, scores = native.accumulate(
            self._result, k_list, a_list, m_list, i_list, rec_thrs, T, K, A, M, _num_threads()
        )
        self.eval = {
            "params": p,
            "counts": [T, len(rec_thrs), K, A, M],
            "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
            "precision": precision,
            "recall": recall,
            "scores": scores,
        }
        print(f"DONE (t={time.time() - tic:0.2f}s).")

    # ------------------------------------------------------------------ summarize
    def _summarize(
        self, ap: int = 1, iouThr: float | None = None, areaRng: str = "all", maxDets: int = 100
    ) -> float:
        p = self.params
        i_str = " {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}"
        title = "Average Precision" if ap == 1 else "Average Recall"
        kind = "(AP)" if ap == 1 else "(AR)"
        iou_str = f"{p.iouThrs[0]:0.2f}:{p.iouThrs[-1]:0.2f}" if iouThr is None else f"{iouThr:0.2f}"
        aind = [i for i, lbl in enumerate(p.areaRngLbl) if lbl == areaRng]
        mind = [i for i, m in enumerate(p.maxDets) if m == maxDets]
        if ap == 1:
            s = self.eval["precision"]
            if iouThr is not None:
                s = s[np.where(iouThr == p.iouThrs)[0]]
            s = s[:, :, :, aind, mind]
        else:
            s = self.eval["recall"]
            if iouThr is not None:
                s = s[np.where(iouThr == p.iouThrs)[0]]
            s = s[:, :, aind, mind]
        mean_s = -1 if len(s[s > -1]) == 0 else np.mean(s[s > -1])
        print(i_str.format(title, kind, iou_str, areaRng, maxDets, mean_s))
        return mean_s

    def summarize(self) -> None:
        """Print the 12 standard metrics (10 for keypoints) and store them in ``stats``."""
        if not self.eval:
            raise RuntimeError("Please run accumulate() first")
        s = self._summarize
        m = self.params.maxDets
        if self.params.iouType in ("segm", "bbox"):
            stats = np.zeros((12,))
            stats[0] = s(1)
            stats[1] = s(1, iouThr=0.5, maxDets=m[2])
            stats[2] = s(1, iouThr=0.75, maxDets=m[2])
            stats[3] = s(1, areaRng="small", maxDets=m[2])
            stats[4] = s(1, areaRng="medium", maxDets=m[2])
            stats[5] = s(1, areaRng="large", maxDets=m[2])
            stats[6] = s(0, maxDets=m[0])
            stats[7] = s(0, maxDets=m[1])
            stats[8] = s(0, maxDets=m[2])
            stats[9] = s(0, areaRng="small", maxDets=m[2])
            stats[10] = s(0, areaRng="medium", maxDets=m[2])
            stats[11] = s(0, areaRng="large", maxDets=m[2])
        else:
            stats = np.zeros((10,))
            stats[0] = s(1, maxDets=20)
            stats[1] = s(1, maxDets=20, iouThr=0.5)
            stats[2] = s(1, maxDets=20, iouThr=0.75)
            stats[3] = s(1, maxDets=20, areaRng="medium")
            stats[4] = s(1, maxDets=20, areaRng="large")
            stats[5] = s(0, maxDets=20)
            stats[6] = s(0, maxDets=20, iouThr=0.5)
            stats[7] = s(0, maxDets=20, iouThr=0.75)
            stats[8] = s(0, maxDets=20, areaRng="medium")
            stats[9] = s(0, maxDets=20, areaRng="large")
        self.stats = stats

    def __str__(self) -> str:
        self.summarize()
        return ""

    # ------------------------------------------------------------------ per-image details
    def _detail(self):
        if self._result is None:
            raise RuntimeError("run evaluate() first")
        pe = self._paramsEval
        iou_type = _IOU_TYPES[pe.iouType]
        sigmas = np.ascontiguousarray(getattr(pe, "kpt_oks_sigmas", np.zeros(0)), dtype=np.float64).reshape(
            -1
        )
        return _run_native(
            _load_native(), self._gt_set, self._dt_set, iou_type, bool(pe.useCats), len(pe.imgIds),
            len(pe.catIds) if pe.useCats else 1,
            np.ascontiguousarray(np.asarray(pe.iouThrs, dtype=np.float64).reshape(-1)),
            np.ascontiguousarray(np.asarray(pe.areaRng, dtype=np.float64).reshape(-1, 2)),
            int(pe.maxDets[-1]), sigmas, detail=True,
        )  # fmt: skip

    @property
    def evalImgs(self) -> list:
        """Per category x area range x image results (dicts as pycocotools makes them, or None)."""
        if self._evalImgs is None:
            from dt_eval._coco_details import build_eval_imgs

            self._evalImgs = build_eval_imgs(self._detail(), self._paramsEval, self._gt_set, self._dt_set)
        return self._evalImgs

    @property
    def ious(self) -> dict:
        """``{(imgId, catId): float64[D, G]}`` IoU (or OKS) matrices, or ``[]`` where there is none."""
        if self._ious is None:
            from dt_eval._coco_details import build_ious

            self._ious = build_ious(self._detail(), self._paramsEval)
        return self._ious
