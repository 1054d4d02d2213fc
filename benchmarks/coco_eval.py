"""COCO evaluation speed: pycocotools vs faster-coco-eval vs dt_eval.coco on synthetic 2,500-image sets.

For each iou type (bbox, segm with polygon ground truth and RLE detections, keypoints) every tool
loads the same ground-truth json and results list, then runs evaluate + accumulate + summarize.
Each run happens in a forked child so that its peak memory (RSS growth over the child's start)
is its own. Prints one JSON document: times in seconds, peak memory in MiB, the largest stats
difference to pycocotools, and dt's time relative to faster-coco-eval's (goal: <= 0.5 for bbox,
<= 0.43 for segm).

    python benchmarks/coco_eval.py [--images 2500] [--types bbox,segm,keypoints] [--repeat 1]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing as mp
import os
import tempfile
import threading
import time

import numpy as np
import psutil
from pycocotools import mask as mask_utils

NUM_CATS = 80
NUM_KPTS = 17


def _polygon(rng, x, y, w, h):
    n = int(rng.integers(6, 16))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radius = rng.uniform(0.35, 0.5, n)
    xs = x + w / 2 + np.cos(angles) * radius * w
    ys = y + h / 2 + np.sin(angles) * radius * h
    return np.round(np.stack([xs, ys], 1).reshape(-1), 2)


def make_data(num_images: int, iou_type: str, seed: int = 0) -> tuple[dict, list[dict]]:
    """COCO-like ground truth (about 7 objects per image, 80 categories, 1% crowd) and results
    (3 noisy detections per object plus up to 7 background detections per image)."""
    rng = np.random.default_rng(seed)
    cats = [{"id": c + 1, "name": f"c{c}"} for c in range(NUM_CATS)]
    if iou_type == "keypoints":
        cats = [{"id": 1, "name": "person", "keypoints": [f"k{i}" for i in range(NUM_KPTS)]}]
    images, anns, results = [], [], []
    for i in range(num_images):
        H, W = int(rng.integers(360, 641)), int(rng.integers(360, 641))
        images.append({"id": i + 1, "height": H, "width": W, "file_name": f"{i + 1:012d}.jpg"})
        img_cats = rng.choice(len(cats), size=min(len(cats), 4), replace=False)
        objects = []
        for _ in range(int(rng.poisson(7))):
            w, h = (
                np.exp(rng.uniform(np.log(8), np.log(W * 0.8))),
                np.exp(rng.uniform(np.log(8), np.log(H * 0.8))),
            )
            x, y = rng.uniform(0, W - w), rng.uniform(0, H - h)
            cat = cats[int(rng.choice(img_cats))]["id"]
            poly = _polygon(rng, x, y, w, h)
            ann = {"id": len(anns) + 1, "image_id": i + 1, "category_id": cat, "bbox": [x, y, w, h],
                   "area": float(w * h * 0.75), "iscrowd": int(rng.random() < 0.01)}  # fmt: skip
            if iou_type == "segm":
                ann["segmentation"] = [poly.tolist()]
            if iou_type == "keypoints":
                kx, ky = rng.uniform(x, x + w, NUM_KPTS), rng.uniform(y, y + h, NUM_KPTS)
                v = rng.choice([0, 1, 2], NUM_KPTS, p=[0.3, 0.1, 0.6])
                ann["keypoints"] = np.stack([kx, ky, v], 1).reshape(-1).round(2).tolist()
                ann["num_keypoints"] = int((v > 0).sum())
                objects.append((ann, poly, kx, ky))
            else:
                objects.append((ann, poly, None, None))
            anns.append(ann)
        per_image = 3 * len(objects) + int(rng.integers(0, 8))
        for j in range(per_image):
            score = float(rng.random())
            if objects and j < 3 * len(objects):
                g, poly, kx, ky = objects[j % len(objects)]
                s = rng.uniform(0.02, 0.25)
                x, y, w, h = (
                    np.array(g["bbox"]) + rng.normal(0, s, 4) * np.repeat(g["bbox"][2:], 2)
                ).tolist()
                w, h = abs(w) + 1, abs(h) + 1
                cat = g["category_id"] if rng.random() < 0.9 else cats[int(rng.integers(len(cats)))]["id"]
                shift = rng.normal(0, s * 10, 2)
                poly = (poly.reshape(-1, 2) + shift).reshape(-1)
            else:
                w, h = rng.uniform(8, W / 2), rng.uniform(8, H / 2)
                x, y = rng.uniform(0, W - w), rng.uniform(0, H - h)
                cat = cats[int(rng.choice(img_cats))]["id"]
                poly, kx, ky = _polygon(rng, x, y, w, h), None, None
                score *= 0.5
            r = {"image_id": i + 1, "category_id": cat, "bbox": [x, y, w, h], "score": score}
            if iou_type == "segm":
                rle = mask_utils.frPyObjects([poly.tolist()], H, W)[0]
                r["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()}
            if iou_type == "keypoints":
                if kx is None:
                    kx, ky = rng.uniform(x, x + w, NUM_KPTS), rng.uniform(y, y + h, NUM_KPTS)
                noise = rng.normal(0, 4, (2, NUM_KPTS))
                r["keypoints"] = (
                    np.stack([kx + noise[0], ky + noise[1], np.ones(NUM_KPTS)], 1).reshape(-1).tolist()
                )
            results.append(r)
    return {"images": images, "annotations": anns, "categories": cats}, results


class PeakRss:
    """Peak resident memory growth (MiB) of this process while the block runs, sampled every 5 ms."""

    def __enter__(self):
        self.proc = psutil.Process()
        self.start = self.peak = self.proc.memory_info().rss
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while not self.stop.wait(0.005):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        self.mib = (self.peak - self.start) / 2**20


def _run_tool(tool: str, iou_type: str, gt_path: str, results: list, queue) -> None:
    quiet = contextlib.redirect_stdout(io.StringIO())
    with PeakRss() as mem, quiet:
        t0 = time.perf_counter()
        if tool == "faster_coco_eval":
            from faster_coco_eval import COCO, COCOeval_faster

            gt = COCO(gt_path)
            dt = gt.loadRes(results)
            t1 = time.perf_counter()
            E = COCOeval_faster(gt, dt, iou_type, print_function=lambda *a, **k: None)
        else:
            from pycocotools.coco import COCO

            gt = COCO(gt_path)
            dt = gt.loadRes(results)
            t1 = time.perf_counter()
            if tool == "dt":
                from dt_eval.coco import COCOeval
            else:
                from pycocotools.cocoeval import COCOeval
            E = COCOeval(gt, dt, iou_type)
        E.evaluate()
        E.accumulate()
        E.summarize()
        t2 = time.perf_counter()
    queue.put(
        {"load_s": t1 - t0, "eval_s": t2 - t1, "peak_mib": mem.mib, "stats": np.asarray(E.stats).tolist()}
    )


def run_tool(tool: str, iou_type: str, gt_path: str, results: list) -> dict:
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_run_tool, args=(tool, iou_type, gt_path, results, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2500)
    parser.add_argument("--types", default="bbox,segm,keypoints")
    parser.add_argument("--tools", default="pycocotools,faster_coco_eval,dt")
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool; the fastest is reported")
    args = parser.parse_args()
    report: dict = {"images": args.images, "cpu_count": os.cpu_count(), "results": {}}
    tools = args.tools.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        for iou_type in args.types.split(","):
            gt, results = make_data(args.images, iou_type)
            gt_path = os.path.join(tmp, f"gt_{iou_type}.json")
            with open(gt_path, "w") as f:
                json.dump(gt, f)
            entry: dict = {"gt_annotations": len(gt["annotations"]), "detections": len(results)}
            for tool in tools:
                runs = [run_tool(tool, iou_type, gt_path, results) for _ in range(args.repeat)]
                entry[tool] = min(runs, key=lambda r: r["eval_s"])
            if "pycocotools" in entry:
                ref = np.asarray(entry["pycocotools"]["stats"])
                for tool in tools:
                    entry[tool]["max_stats_diff_vs_pycocotools"] = float(
                        np.abs(np.asarray(entry[tool]["stats"]) - ref).max()
                    )
            if "dt" in entry and "faster_coco_eval" in entry:
                entry["dt_over_faster_coco_eval"] = (
                    entry["dt"]["eval_s"] / entry["faster_coco_eval"]["eval_s"]
                )
            for tool in tools:
                entry[tool]["AP"] = entry[tool].pop("stats")[0]
                entry[tool] = {
                    k: (round(v, 4) if isinstance(v, float) else v) for k, v in entry[tool].items()
                }
            report["results"][iou_type] = entry
    report["goals"] = {"bbox": "dt_over_faster_coco_eval <= 0.5", "segm": "dt_over_faster_coco_eval <= 0.43"}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
