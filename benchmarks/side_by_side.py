"""dt against detectron2 on this machine: the same model, weights and input, in two worker processes
(dt's, and detectron2's from its own venv) whose timed runs alternate (dt, detectron2, dt, ...), so
load changes hit both alike. Both use 2 threads. Prints JSON: per case the median wall and CPU
seconds of each, their ratio (dt / detectron2), the peak memory of each worker, whether the outputs
agree (golden case: dt's outputs against the golden reference) and the machine (CPU model,
capability, kernel restrictions).

Cases: ``golden`` (the golden narrow Mask R-CNN R50-FPN at 384 px, 100 detections), ``full``
(full-width Mask R-CNN R50-FPN, 80 classes, detectron2-initialised random weights with frozen-BN
statistics from the input, scikit-image's astronaut at 800x800), ``train_step`` (one SGD step of
that model at batch 2 on 512x512 images with 3 box + polygon instances each).

For the same torch on both sides, run this script with a python that has dt and torch 2.14.1, e.g.
detectron2's venv with dt installed into it:

    ../shared/detectron2/install-reference.sh /tmp/d2ref
    /tmp/d2ref/bin/pip install -c constraints-compat.txt packages/dt-ops packages/dt-config \\
        packages/dt-structures packages/dt-models scikit-image
    /tmp/d2ref/bin/python benchmarks/side_by_side.py [--cases golden,full,train_step] [--runs 5]

``--detectron2-python`` (default ``$DT_DETECTRON2_PYTHON``, else /tmp/d2ref/bin/python) names
detectron2's python.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _machine import machine_info  # noqa: E402
from inference import GOALS, GOLDEN, _golden_matches, astronaut_bgr  # noqa: E402
from train_step import OBJECTS, _octagon  # noqa: E402

DEFAULT_DETECTRON2_PYTHON = "/tmp/d2ref/bin/python"


def shared_inputs(folder: Path) -> None:
    """``inputs.pt``: the 800 px image of ``full`` and the training batch of ``train_step``."""
    image = astronaut_bgr(512)
    boxes = torch.tensor([b for _, b in OBJECTS])
    mirrored = torch.stack([512 - boxes[:, 2], boxes[:, 1], 512 - boxes[:, 0], boxes[:, 3]], dim=1)
    torch.save(
        {
            "image": astronaut_bgr(800),
            "images": [image, image.flip(-1)],
            "boxes": [boxes, mirrored],
            "polygons": [[_octagon(*b.tolist()) for b in bs] for bs in (boxes, mirrored)],
            "classes": torch.tensor([c for c, _ in OBJECTS]),
        },
        folder / "inputs.pt",
    )


def dt_setup(case: str, folder: str):
    """The dt worker's side: the case's model built from detectron2's config dump and weights."""
    from dt_models import build_model, detectron2_model_config, load_weights
    from dt_structures import Boxes, Instances, PolygonMasks

    torch.manual_seed(0)
    if case == "golden":
        model = build_model(detectron2_model_config(GOLDEN / "config.yaml")).eval()
        weights = GOLDEN / "model_final.pkl"
    else:
        model = build_model(detectron2_model_config(Path(folder) / "detectron2_config.yaml")).eval()
        weights = Path(folder) / "detectron2_weights.pth"
    report = load_weights(model, weights)
    if report.missing or report.shape_mismatch:
        raise RuntimeError(f"weights do not fit dt's model:\n{report.table()}")
    outputs: dict = {}
    if case in ("golden", "full"):
        if case == "golden":
            io = torch.load(GOLDEN / "io.pt", weights_only=True)
            inputs = [{"image": io["image"], "height": io["height"], "width": io["width"]}]
        else:
            inputs = [{"image": torch.load(Path(folder) / "inputs.pt", weights_only=True)["image"]}]

        def run():
            with torch.inference_mode():
                outputs["instances"] = model(inputs)[0]["instances"]

        def summary() -> dict:
            extra = _golden_matches(outputs["instances"], io) if case == "golden" else {}
            return {"detections": len(outputs["instances"]), **extra}

        return run, summary

    shared = torch.load(Path(folder) / "inputs.pt", weights_only=True)
    batch = []
    for image, boxes, polygons in zip(shared["images"], shared["boxes"], shared["polygons"], strict=True):
        instances = Instances(tuple(image.shape[1:]))
        instances.gt_boxes = Boxes(boxes)
        instances.gt_classes = shared["classes"]
        instances.gt_masks = PolygonMasks([[p] for p in polygons])
        batch.append({"image": image, "instances": instances})
    model.train()
    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.002, momentum=0.9, weight_decay=1e-4
    )

    def step():
        optimizer.zero_grad(set_to_none=True)
        losses = model(batch)
        sum(losses.values()).backward()
        optimizer.step()
        outputs["losses"] = {k: round(v.item(), 4) for k, v in losses.items()}

    return step, lambda: {"losses": outputs["losses"]}


class Worker:
    """A worker process speaking ``_worker``'s line protocol."""

    def __init__(self, name: str, command: list[str]) -> None:
        self.name = name
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, **command) -> dict:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.name} worker exited (its stderr is above)")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{self.name} worker: {reply['error']}")
        return reply

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.process.stdin.flush()
            self.process.wait(timeout=60)


def _medians(runs: list[dict]) -> dict:
    return {k: round(statistics.median(r[k] for r in runs), 4) for k in ("wall", "cpu")}


def run_case(case: str, detectron2_python: str, runs: int, warmup: int, folder: Path) -> dict:
    detectron2 = Worker("detectron2", [detectron2_python, str(HERE / "_detectron2_worker.py")])
    dt = Worker("dt", [sys.executable, str(Path(__file__).resolve()), "--worker"])
    try:
        versions = {w.name: w.ask(cmd="setup", case=case, dir=str(folder))["torch"] for w in (detectron2, dt)}
        times: dict[str, list[dict]] = {"dt": [], "detectron2": []}
        for i in range(warmup + runs):
            for worker in (dt, detectron2):
                result = worker.ask(cmd="run")
                if i >= warmup:
                    times[worker.name].append(result)
        checks = {w.name: w.ask(cmd="check") for w in (dt, detectron2)}
    finally:
        dt.close()
        detectron2.close()
    dt_median, d2_median = _medians(times["dt"]), _medians(times["detectron2"])
    return {
        "case": case,
        "torch": versions,
        "dt_s": dt_median,
        "detectron2_s": d2_median,
        "ratio_wall": round(dt_median["wall"] / d2_median["wall"], 3),
        "ratio_cpu": round(dt_median["cpu"] / d2_median["cpu"], 3),
        "goal_ratio": GOALS[case],
        "dt_runs_s": [round(r["wall"], 4) for r in times["dt"]],
        "detectron2_runs_s": [round(r["wall"], 4) for r in times["detectron2"]],
        "dt": checks["dt"],
        "detectron2": checks["detectron2"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="golden,full,train_step")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--detectron2-python", default=os.environ.get("DT_DETECTRON2_PYTHON", DEFAULT_DETECTRON2_PYTHON)
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        from _worker import serve

        serve(dt_setup)
        return
    if not os.path.exists(args.detectron2_python):
        parser.exit(2, f"side_by_side.py: no detectron2 python at {args.detectron2_python} (make it with "
                    "../shared/detectron2/install-reference.sh, or pass --detectron2-python)\n")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shared_inputs(folder)
        results = [
            run_case(case, args.detectron2_python, args.runs, args.warmup, folder)
            for case in args.cases.split(",")
        ]
    torch.set_num_threads(2)
    print(json.dumps({"benchmark": "side_by_side", "machine": machine_info(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
