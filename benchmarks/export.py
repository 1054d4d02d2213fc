"""Inference speed of an exported model against eager PyTorch on CPU at 2 threads (JSON).

The golden narrow Mask R-CNN R50-FPN (``packages/dt-export/tests/data/mask_rcnn_R_50_FPN``: its dt
config and weights) on the golden 384x384 image of dt-models' reference run, exported with dynamic
height and width by ``dt_export.export_model`` (each export checked against eager first):

- ``eager``: ``model.inference`` (dt's eager path), and ``eager_flat_graph``: the graph module the
  exports capture, run eagerly;
- ``compiled``: ``torch.compile(model.inference)`` (inductor; compile time reported apart);
- ``onnxruntime``: the ONNX file in onnxruntime (CPU provider, 2 intra-op threads);
- ``exported_program``: the ``.pt2`` loaded with ``torch.export.load(...).module()``;
- ``torchscript``: the traced ``.ts`` file.

Runs are interleaved (A, B, C, A, B, C, ...) so load changes on a shared machine hit all alike;
medians of ``--runs`` after ``--warmup`` calls, with the CPU seconds of the process.

    python benchmarks/export.py [--runs 5] [--warmup 2] [--skip-compile]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "packages" / "dt-export" / "tests" / "data" / "mask_rcnn_R_50_FPN"
IMAGE = ROOT / "packages" / "dt-models" / "tests" / "data" / "mask_rcnn_R_50_FPN" / "io.pt"
THREADS = 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--skip-compile", action="store_true", help="leave out torch.compile")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _machine import machine_info

    from dt_engine.config.experiment import load_experiment
    from dt_export import export_model, exportable_graph
    from dt_export.runtime import load_exported
    from dt_models import build_model, load_weights

    cfg = load_experiment(DATA / "config.yaml")
    model = build_model(cfg.model, torch.device("cpu")).eval()
    load_weights(model, DATA / "model_fp16.pth")
    image = torch.load(IMAGE, weights_only=True)["image"].float()  # [3, 384, 384] BGR
    names = ["boxes", "scores", "classes", "masks"]
    graph = exportable_graph(model, "onnx").eval()

    def eager():
        with torch.no_grad():
            return model.inference([{"image": image}])

    def eager_flat_graph():
        with torch.no_grad():
            return graph(image)

    variants = {"eager": eager, "eager_flat_graph": eager_flat_graph}
    report: dict = {
        "model": "golden narrow Mask R-CNN R50-FPN",
        "image": list(image.shape),
        "threads": THREADS,
    }
    export_seconds, compile_seconds = {}, None
    with tempfile.TemporaryDirectory(prefix="dt-export-bench-") as folder:
        for format, label in (("onnx", "onnxruntime"), ("exported-program", "exported_program"),
                              ("torchscript", "torchscript")):  # fmt: skip
            start = time.perf_counter()
            result = export_model(model, format, Path(folder) / format, image, dynamic=True)
            export_seconds[format] = round(time.perf_counter() - start, 1)
            variants[label] = (lambda run: lambda: run(image))(
                load_exported(result.model_file, format, names, threads=THREADS)
            )
        if not args.skip_compile:
            compiled_inference = torch.compile(model.inference)  # the eager path, graph breaks and all

            def compiled_run():
                with torch.no_grad():
                    return compiled_inference([{"image": image}])

            start = time.perf_counter()
            compiled_run()
            compile_seconds = round(time.perf_counter() - start, 1)
            variants["compiled"] = compiled_run
        for fn in variants.values():
            for _ in range(args.warmup):
                fn()
        times = {name: {"wall": [], "cpu": []} for name in variants}
        for _ in range(args.runs):
            for name, fn in variants.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                fn()
                times[name]["wall"].append(time.perf_counter() - start)
                times[name]["cpu"].append(time.process_time() - start_cpu)
    eager_median = statistics.median(times["eager"]["wall"])
    report["variants"] = {
        name: {
            "median_s": round(statistics.median(t["wall"]), 4),
            "min_s": round(min(t["wall"]), 4),
            "median_cpu_s": round(statistics.median(t["cpu"]), 4),
            "ratio_to_eager": round(statistics.median(t["wall"]) / eager_median, 3),
        }
        for name, t in times.items()
    }
    report["export_seconds"] = export_seconds
    report["compile_seconds"] = compile_seconds
    report["machine"] = machine_info()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
