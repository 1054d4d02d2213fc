"""Throughput and memory of the dt-data training loader on the built-in shapes dataset.

Prints JSON: images/s with 2 workers (after a warm-up of 100 iterations), and resident memory (RSS and
unique set size) of the main process and its workers at iteration 100 and at the last iteration; the
target is growth under 50 MB (dataset dicts are held serialized, so workers do not copy-on-write them).

    python benchmarks/data_loader.py [--iters 5000] [--batch 2] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import psutil

from dt_data import DatasetCatalog, DatasetMapper, build_detection_train_loader
from dt_data import transforms as T

MB = 1024 * 1024


def memory() -> dict:
    main = psutil.Process(os.getpid())
    procs = [main, *main.children(recursive=True)]
    rss = [p.memory_info().rss for p in procs]
    uss = [p.memory_full_info().uss for p in procs]
    return {
        "processes": len(procs),
        "rss_main_mb": round(rss[0] / MB, 1),
        "rss_workers_mb": [round(r / MB, 1) for r in rss[1:]],
        "rss_total_mb": round(sum(rss) / MB, 1),
        "uss_total_mb": round(sum(uss) / MB, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    t0 = time.perf_counter()
    dicts = DatasetCatalog.get("shapes_train")
    load_s = time.perf_counter() - t0
    mapper = DatasetMapper(
        True,
        augmentations=[T.ResizeShortestEdge((224, 320), 512, "range"), T.RandomFlip()],
        use_instance_mask=True,
    )
    loader = build_detection_train_loader(
        dicts, mapper=mapper, total_batch_size=args.batch, num_workers=args.workers, seed=0
    )
    it = iter(loader)
    at_100 = None
    start = None
    for i in range(1, args.iters + 1):
        next(it)
        if i == 100:
            at_100 = memory()
            start = time.perf_counter()
    elapsed = time.perf_counter() - start
    at_end = memory()
    images = (args.iters - 100) * args.batch
    growth_rss = at_end["rss_total_mb"] - at_100["rss_total_mb"]
    growth_uss = at_end["uss_total_mb"] - at_100["uss_total_mb"]
    print(
        json.dumps(
            {
                "benchmark": "data_loader",
                "dataset": "shapes_train",
                "num_images": len(dicts),
                "dataset_load_or_generate_s": round(load_s, 2),
                "workers": args.workers,
                "batch_size": args.batch,
                "iterations": args.iters,
                "images_per_s": round(images / elapsed, 1),
                "memory_at_iter_100": at_100,
                f"memory_at_iter_{args.iters}": at_end,
                "rss_growth_mb": round(growth_rss, 1),
                "uss_growth_mb": round(growth_uss, 1),
                "target_growth_mb": 50,
                "ok": growth_rss < 50,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
