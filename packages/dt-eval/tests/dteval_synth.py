"""Synthetic COCO ground truth and detections for comparing dt_eval.coco with pycocotools."""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

NUM_KPTS = 17


def _polygon(rng: np.random.Generator, x: float, y: float, w: float, h: float) -> list[float]:
    n = int(rng.integers(3, 9))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radius = rng.uniform(0.3, 0.5, n)
    cx, cy = x + w / 2, y + h / 2
    xs = cx + np.cos(angles) * radius * w
    ys = cy + np.sin(angles) * radius * h
    return np.round(np.stack([xs, ys], 1).reshape(-1), 2).tolist()


def _keypoints(rng: np.random.Generator, x: float, y: float, w: float, h: float, noise: float = 0.0):
    kx = rng.uniform(x, x + w, NUM_KPTS) + rng.normal(0, noise, NUM_KPTS)
    ky = rng.uniform(y, y + h, NUM_KPTS) + rng.normal(0, noise, NUM_KPTS)
    v = rng.choice([0, 1, 2], NUM_KPTS, p=[0.3, 0.2, 0.5])
    return kx, ky, v


def make_dataset(
    seed: int = 0,
    num_images: int = 30,
    num_cats: int = 4,
    max_gt: int = 8,
    dets_per_gt: float = 2.0,
    crowd_prob: float = 0.1,
    score_levels: int | None = 10,
    with_keypoints: bool = True,
    rle_gt_prob: float = 0.1,
) -> tuple[dict, list[dict]]:
    """Ground-truth dict (COCO json) and a results list with boxes, masks (RLE) and keypoints."""
    rng = np.random.default_rng(seed)
    images, anns, results = [], [], []
    cats = [
        {"id": 3 * c + 1, "name": f"c{c}", "keypoints": [f"k{i}" for i in range(NUM_KPTS)]}
        for c in range(num_cats)
    ]
    ann_id = 1
    for i in range(num_images):
        img_id = 1000 + 7 * i
        H, W = int(rng.integers(40, 400)), int(rng.integers(40, 400))
        images.append({"id": img_id, "height": H, "width": W, "file_name": f"{img_id}.jpg"})
        n_gt = int(rng.integers(0, max_gt + 1)) if i % 9 != 0 else 0  # some images without gt
        gts = []
        for _ in range(n_gt):
            w, h = rng.uniform(2, W / 1.5), rng.uniform(2, H / 1.5)
            x, y = rng.uniform(0, W - w), rng.uniform(0, H - h)
            cat = cats[int(rng.integers(num_cats))]["id"]
            crowd = int(rng.random() < crowd_prob)
            poly = _polygon(rng, x, y, w, h)
            if crowd or rng.random() < rle_gt_prob:
                rle = mask_utils.merge(mask_utils.frPyObjects([poly], H, W))
                segm = {"size": rle["size"], "counts": rle["counts"].decode()}
                if rng.random() < 0.5:  # uncompressed RLE
                    m = mask_utils.decode(rle).reshape(-1, order="F")
                    change = np.flatnonzero(np.diff(np.concatenate([[0], m, [1 - m[-1]]])))
                    segm = {"size": [H, W], "counts": np.diff(np.concatenate([[0], change])).tolist()}
            else:
                segm = [poly]
                if rng.random() < 0.2:
                    segm.append(_polygon(rng, x, y, w / 2, h / 2))
            kx, ky, v = _keypoints(rng, x, y, w, h)
            area = float(w * h) if rng.random() < 0.7 else float(rng.uniform(0, 120**2))
            ann = {
                "id": ann_id, "image_id": img_id, "category_id": cat, "bbox": [x, y, w, h], "area": area,
                "iscrowd": crowd, "segmentation": segm,
                "keypoints": np.stack([kx, ky, v], 1).reshape(-1).tolist(),
                "num_keypoints": int((v > 0).sum()),
            }  # fmt: skip
            ann_id += 1
            anns.append(ann)
            gts.append((ann, poly, kx, ky))
        if i % 11 == 5:
            continue  # an image without detections
        n_dt = int(len(gts) * dets_per_gt + rng.integers(0, 4))
        for _ in range(n_dt):
            near = None
            if gts and rng.random() < 0.7:
                g, near_poly, near_kx, near_ky = gts[int(rng.integers(len(gts)))]
                jitter = rng.uniform(0.02, 0.2)
                x, y, w, h = (
                    np.array(g["bbox"]) + rng.normal(0, jitter, 4) * np.repeat(g["bbox"][2:], 2)
                ).tolist()
                w, h = abs(w), abs(h)
                cat = g["category_id"] if rng.random() < 0.85 else cats[int(rng.integers(num_cats))]["id"]
                near = g
            else:
                w, h = rng.uniform(1, W / 2), rng.uniform(1, H / 2)
                x, y = rng.uniform(0, W - w), rng.uniform(0, H - h)
                cat = cats[int(rng.integers(num_cats))]["id"]
            if rng.random() < 0.03:
                w = 0.0  # zero-area box
            score = float(rng.random())
            if score_levels:
                score = round(score * score_levels) / score_levels  # many equal scores
            if near is not None:
                shift = rng.normal(0, jitter * 10, 2)
                poly = (np.array(near_poly).reshape(-1, 2) + shift).reshape(-1).tolist()
                kx = near_kx + rng.normal(0, jitter * 20, NUM_KPTS)
                ky = near_ky + rng.normal(0, jitter * 20, NUM_KPTS)
            else:
                poly = _polygon(rng, x, y, max(w, 1), max(h, 1))
                kx, ky, _ = _keypoints(rng, x, y, max(w, 1), max(h, 1))
            rle = mask_utils.merge(mask_utils.frPyObjects([poly], H, W))
            rle["counts"] = rle["counts"].decode()
            results.append(
                {
                    "image_id": img_id,
                    "category_id": cat,
                    "bbox": [x, y, w, h],
                    "score": score,
                    "segmentation": rle,
                    "keypoints": np.stack([kx, ky, np.ones(NUM_KPTS)], 1).reshape(-1).tolist(),
                }  # fmt: skip
            )
    gt = {"images": images, "annotations": anns, "categories": cats}
    return gt, results


def load(gt: dict, results: list[dict], iou_type: str) -> tuple[COCO, COCO]:
    """pycocotools COCO objects for gt and the results of one iou type (fields of other types dropped)."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        keep = {"bbox": ["bbox"], "segm": ["segmentation"], "keypoints": ["keypoints"]}[iou_type]
        res = [
            {k: v for k, v in r.items() if k in ("image_id", "category_id", "score", *keep)} for r in results
        ]
        coco_dt = coco_gt.loadRes(copy.deepcopy(res)) if res else _empty_results(coco_gt)
    return coco_gt, coco_dt


def _empty_results(coco_gt: COCO) -> COCO:
    coco_dt = COCO()
    coco_dt.dataset["images"] = list(coco_gt.dataset["images"])
    coco_dt.dataset["categories"] = copy.deepcopy(coco_gt.dataset["categories"])
    coco_dt.dataset["annotations"] = []
    coco_dt.createIndex()
    return coco_dt
