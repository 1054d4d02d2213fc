"""Speed of the `dt demo` training step (its packaged config, the shapes data) on this CPU.

Times ``--iterations`` training steps after ``--warmup`` untimed ones, with the demo's own model,
optimizer, loader and trainer (``dt_engine.budget.measure_throughput``), and inference on
``--test-images`` validation images, in a spawned process (so the peak memory is the run's own).
With ``--full`` it then runs the whole ``dt demo`` (its default 10-minute budget, or ``--minutes``)
and reports its wall time, iterations and AP. Prints JSON with the machine's CPU capability.

    python benchmarks/demo.py [--iterations 20] [--warmup 3] [--threads T] [--full [--minutes M]]

To mimic an AVX2-only CPU on an AVX-512 one, run it with
``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _machine import machine_info


def training_speed(iterations: int, warmup: int, test_images: int, threads: int | None) -> dict:
    from dt_data import DatasetCatalog
    from dt_engine.budget import measure_throughput
    from dt_engine.config.experiment import load_experiment
    from dt_engine.cpu import configure_cpu
    from dt_engine.defaults import build_workflow
    from dt_engine.demo import demo_config_path

    with demo_config_path() as path:
        cfg = load_experiment(path, ["data.loader.num_workers=1"])
    for name in cfg.data.datasets.train + cfg.data.datasets.test:
        DatasetCatalog.get(name)  # generate the shapes sets before timing
    with configure_cpu(threads) as used_threads:
        throughput = measure_throughput(
            build_workflow(cfg), iterations=iterations, warmup=warmup, test_images=test_images
        )
        info = machine_info()
    return {
        **info,
        "threads": used_threads,
        "ims_per_batch": cfg.solver.ims_per_batch,
        "timed_iterations": throughput.timed_iterations,
        "s_per_iter": round(throughput.seconds_per_iter, 4),
        "s_per_test_image": round(throughput.seconds_per_test_image, 4),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _child(args: tuple, queue) -> None:
    try:
        queue.put(training_speed(*args))
    except Exception as e:  # reported in the JSON, not swallowed
        queue.put({"error": f"{type(e).__name__}: {e}"})


def full_demo(minutes: float | None, threads: int | None) -> dict:
    """Run ``dt demo`` in a fresh process into a temporary folder: wall time, iterations, AP."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "dt_engine.cli", "demo", "--output", out]
        if minutes is not None:
            command += ["--minutes", str(minutes)]
        if threads is not None:
            command += ["--threads", str(threads)]
        start = time.perf_counter()
        run = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if run.returncode != 0:
            return {"error": run.stderr.strip().splitlines()[-1:], "wall_s": round(wall, 1)}
        results = json.loads((Path(out) / "results.json").read_text())
        config = yaml.safe_load((Path(out) / "config.yaml").read_text())
    max_iter = config["solver"]["max_iter"]
    return {
        "wall_s": round(wall, 1),
        "minutes_budget": minutes if minutes is not None else 10.0,
        "max_iter": max_iter,
        "bbox_AP": round(results["bbox"]["AP"], 2),
        "segm_AP": round(results["segm"]["AP"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--test-images", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="default: every core, as dt demo")
    parser.add_argument("--full", action="store_true", help="also run the whole dt demo and report its AP")
    parser.add_argument("--minutes", type=float, default=None, help="with --full: the demo's budget")
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    speed_args = (args.iterations, args.warmup, args.test_images, args.threads)
    proc = ctx.Process(target=_child, args=(speed_args, queue))
    proc.start()
    result = {"benchmark": "demo", "training_step": queue.get()}
    proc.join()
    if args.full:
        result["full_demo"] = full_demo(args.minutes, args.threads)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
