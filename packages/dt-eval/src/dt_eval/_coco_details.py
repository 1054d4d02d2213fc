"""Building pycocotools' ``evalImgs`` list and ``ious`` dict from the native core's detail output.

Used only when a caller reads ``COCOeval.evalImgs`` or ``COCOeval.ious``; the evaluation itself never
needs these per-image Python objects.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["build_eval_imgs", "build_ious"]


def _cells(params: Any) -> tuple[list, list]:
    img_ids = list(params.imgIds)
    cat_ids = list(params.catIds) if params.useCats else [-1]
    return img_ids, cat_ids


def build_eval_imgs(detail: Any, params: Any, gt_set: Any, dt_set: Any) -> list:
    """``evalImgs`` in pycocotools' order: category, then area range, then image."""
    img_ids, cat_ids = _cells(params)
    num_k = len(cat_ids)
    num_a, num_t = len(params.areaRng), len(params.iouThrs)
    max_det = params.maxDets[-1]
    gt_ids, dt_ids = gt_set.ids, dt_set.ids
    dt_off, dt_index, dt_score = detail.dt_offsets, detail.dt_index, detail.dt_score
    gt_off, gt_index = detail.gt_offsets, detail.gt_index
    ngt, nkept = len(gt_index), len(dt_index)
    gt_order = detail.gt_order.reshape(num_a, ngt)
    gt_ignore = detail.gt_ignore.reshape(num_a, ngt)
    match = detail.match.reshape(num_a, nkept, num_t)
    codes = detail.codes
    out: list = []
    for k, cat in enumerate(cat_ids):
        for a, rng in enumerate(params.areaRng):
            for i, img in enumerate(img_ids):
                c = i * num_k + k
                g0, g1 = gt_off[c], gt_off[c + 1]
                d0, d1 = dt_off[c], dt_off[c + 1]
                if g0 == g1 and d0 == d1:
                    out.append(None)
                    continue
                cell_gt = gt_index[g0:g1]
                order = gt_order[a, g0:g1]
                sorted_gt_ids = gt_ids[cell_gt[order]]
                rank = np.empty(len(order), dtype=np.int64)
                rank[order] = np.arange(len(order))
                m = match[a, d0:d1].T  # [T, D] positions in the cell's gt list
                dt_matches = np.where(m >= 0, gt_ids[cell_gt[np.maximum(m, 0)]] if len(cell_gt) else 0, 0)
                cell_dt_ids = dt_ids[dt_index[d0:d1]]
                gt_matches = np.zeros((num_t, g1 - g0))
                for t in range(num_t):
                    for d in range(d1 - d0):
                        if m[t, d] >= 0:
                            gt_matches[t, rank[m[t, d]]] = cell_dt_ids[d]
                out.append(
                    {
                        "image_id": img,
                        "category_id": cat,
                        "aRng": rng,
                        "maxDet": max_det,
                        "dtIds": cell_dt_ids.tolist(),
                        "gtIds": sorted_gt_ids.tolist(),
                        "dtMatches": dt_matches.astype(np.float64),
                        "gtMatches": gt_matches,
                        "dtScores": dt_score[d0:d1].tolist(),
                        "gtIgnore": gt_ignore[a, g0:g1].astype(np.int64),
                        "dtIgnore": codes[a, d0:d1].T == 2,
                    }
                )
    return out


def build_ious(detail: Any, params: Any) -> dict:
    """``{(imgId, catId): float64[D, G]}`` with ``[]`` where a side is empty, as pycocotools stores it."""
    img_ids, cat_ids = _cells(params)
    num_k = len(cat_ids)
    off, ious = detail.iou_offsets, detail.ious
    dt_off, gt_off = detail.dt_offsets, detail.gt_offsets
    out: dict = {}
    for i, img in enumerate(img_ids):
        for k, cat in enumerate(cat_ids):
            c = i * num_k + k
            if off[c] == off[c + 1]:
                out[img, cat] = []
                continue
            d, g = dt_off[c + 1] - dt_off[c], gt_off[c + 1] - gt_off[c]
            out[img, cat] = ious[off[c] : off[c + 1]].reshape(d, g)
    return out
