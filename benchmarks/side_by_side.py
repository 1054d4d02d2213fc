"""dt against detectron2 on this machine: the same model, weights and input, in two worker processes
(dt's, and detectron2's from its own venv) whose timed runs alternate (dt, detectron2, dt, ...), so
load changes hit both alike. Both use 2 threads. Prints JSON: per case the median wall and CPU
seconds of each, their ratio (dt / detectron2), the peak memory of each worker, whether the outputs
agree (golden cases: each side's outputs against the golden reference; full-width cases: dt's
detections against detectron2's, and for Panoptic FPN its semantic logits and panoptic segments;
training steps: each loss's difference, which only the families without random sampling, RetinaNet
and FCOS, must keep near 0) and the machine (CPU model, capability, kernel restrictions).

The cases are ``_cases.py``'s, every one by default: per family (Mask R-CNN, Keypoint R-CNN, Cascade
Mask R-CNN, Faster R-CNN C4, RetinaNet; FCOS and Panoptic FPN without golden) the golden narrow model,
the full-width zoo model at 800x800 and its training step. Both sides build the model from the same
detectron2 YAML (FCOS: detectron2 instantiates its zoo LazyConfig, dt builds its ``FCOSConfig``, whose
defaults are that LazyConfig's; the strict weight load checks that the two have the same layers).
Golden cases load the golden weights; the others use dt's random initialisation with frozen-BN
statistics set from the input, which dt's worker writes under detectron2's names
(``dt_models.checkpoint.detectron2_name``, the mapping dt uses to load detectron2 checkpoints) for
detectron2's worker to load strictly.

For the same torch on both sides, run this script with a python that has dt and torch 2.14.1, e.g.
detectron2's venv with dt installed into it:

    ../shared/detectron2/install-reference.sh /tmp/d2ref
    /tmp/d2ref/bin/pip install -c constraints-compat.txt packages/dt-ops packages/dt-config \\
        packages/dt-structures packages/dt-models scikit-image
    /tmp/d2ref/bin/python benchmarks/side_by_side.py [--cases golden,full,train_step,...] [--runs 5]

``--detectron2-python`` (default ``$DT_DETECTRON2_PYTHON``, else /tmp/d2ref/bin/python) names
detectron2's python. ``--profile K`` also runs one more call per side under ``torch.profiler`` and
reports its K ops with the most self CPU time (where the time goes when a ratio is off).
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
from _cases import CASES, build_dt, get_case, make_run, outputs_summary, raw_inputs  # noqa: E402
from _machine import machine_info  # noqa: E402

DEFAULT_DETECTRON2_PYTHON = "/tmp/d2ref/bin/python"


def dt_setup(name: str, folder: str):
    """The dt worker's side: the case's model on the coordinator's ``inputs.pt``; random weights are
    written to ``weights.pth`` under detectron2's names for detectron2's worker."""
    from dt_models.checkpoint import detectron2_name

    case, folder = get_case(name), Path(folder)
    model, inputs = build_dt(case, torch.load(folder / "inputs.pt", weights_only=True))
    if case.weights is None:
        state = {detectron2_name(k): v for k, v in model.state_dict().items()}
        torch.save({"model": state}, folder / "weights.pth")
    outputs: dict = {}
    run = make_run(case, model, inputs, outputs)
    return run, lambda: outputs_summary(case, outputs, folder / "dt_outputs.pt")


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


def _agreement(folder: Path) -> dict:
    """dt's last outputs against detectron2's: same detection count, largest box and score differences;
    where there are semantic logits, their largest difference and the share of pixels with the same
    argmax; where there is a panoptic segmentation, the same segments (category and is-thing, in id
    order) and the share of pixels with the same segment id."""
    dt, d2 = (torch.load(folder / f"{side}_outputs.pt", weights_only=True) for side in ("dt", "detectron2"))
    out: dict = {"same_count": len(dt["boxes"]) == len(d2["boxes"])}
    if out["same_count"] and len(dt["boxes"]):
        out["max_box_diff_px"] = round((dt["boxes"] - d2["boxes"]).abs().max().item(), 5)
        out["max_score_diff"] = round((dt["scores"] - d2["scores"]).abs().max().item(), 6)
        out["same_classes"] = bool(torch.equal(dt["classes"], d2["classes"]))
    if "sem_seg" in dt:
        out["max_sem_seg_logit_diff"] = round((dt["sem_seg"] - d2["sem_seg"]).abs().max().item(), 5)
        same_label = dt["sem_seg"].argmax(dim=0) == d2["sem_seg"].argmax(dim=0)  # [H, W]
        out["sem_seg_same_argmax"] = round(same_label.float().mean().item(), 6)
    if "panoptic_seg" in dt:
        out["same_segments"] = bool(torch.equal(dt["segments"], d2["segments"]))
        out["panoptic_same_id"] = round((dt["panoptic_seg"] == d2["panoptic_seg"]).float().mean().item(), 6)
    return out


def _loss_differences(dt: dict, d2: dict) -> dict:
    """The absolute difference of each loss both sides report, and whether they report the same ones."""
    common = [k for k in dt if k in d2]
    return {"same_losses": set(dt) == set(d2), "loss_diff": {k: round(abs(dt[k] - d2[k]), 4) for k in common}}


def run_case(name: str, detectron2_python: str, runs: int, warmup: int, folder: Path, top: int) -> dict:
    """Set both workers up on the case (dt first: it writes the random weights), alternate their
    ``warmup + runs`` calls and summarize the timed ones; with ``top`` > 0, then profile one more call
    of each side and report its ``top`` ops."""
    case = get_case(name)
    torch.save(raw_inputs(case), folder / "inputs.pt")
    detectron2 = Worker("detectron2", [detectron2_python, str(HERE / "_detectron2_worker.py")])
    dt = Worker("dt", [sys.executable, str(Path(__file__).resolve()), "--worker"])
    try:
        versions = {w.name: w.ask(cmd="setup", case=name, dir=str(folder))["torch"] for w in (dt, detectron2)}
        times: dict[str, list[dict]] = {"dt": [], "detectron2": []}
        for i in range(warmup + runs):
            for worker in (dt, detectron2):
                result = worker.ask(cmd="run")
                if i >= warmup:
                    times[worker.name].append(result)
        checks = {w.name: w.ask(cmd="check") for w in (dt, detectron2)}
        profiles = {w.name: w.ask(cmd="profile", top=top) for w in (dt, detectron2)} if top else None
    except RuntimeError as e:  # reported in the JSON; the other cases still run
        return {"case": name, "error": str(e)}
    finally:
        dt.close()
        detectron2.close()
    dt_median, d2_median = _medians(times["dt"]), _medians(times["detectron2"])
    result = {
        "case": name,
        "torch": versions,
        "dt_s": dt_median,
        "detectron2_s": d2_median,
        "ratio_wall": round(dt_median["wall"] / d2_median["wall"], 3),
        "ratio_cpu": round(dt_median["cpu"] / d2_median["cpu"], 3),
        "goal_ratio": case.goal,
        "dt_runs_s": [round(r["wall"], 4) for r in times["dt"]],
        "detectron2_runs_s": [round(r["wall"], 4) for r in times["detectron2"]],
        "dt": checks["dt"],
        "detectron2": checks["detectron2"],
    }
    if case.training:
        result["dt_vs_detectron2"] = _loss_differences(checks["dt"]["losses"], checks["detectron2"]["losses"])
    else:
        result["dt_vs_detectron2"] = _agreement(folder)
    if profiles is not None:
        result["profile"] = profiles
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--detectron2-python", default=os.environ.get("DT_DETECTRON2_PYTHON", DEFAULT_DETECTRON2_PYTHON)
    )
    parser.add_argument(
        "--profile", type=int, default=0, metavar="K", help="also profile: K top ops per side"
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
    names = args.cases.split(",")
    try:
        for name in names:
            get_case(name)
    except ValueError as e:
        parser.error(str(e))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            results.append(
                run_case(name, args.detectron2_python, args.runs, args.warmup, Path(tmp), args.profile)
            )
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)  # progress of a long run
    torch.set_num_threads(2)
    print(json.dumps({"benchmark": "side_by_side", "machine": machine_info(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
