"""dt-models inference speed on CPU (torch at 2 threads): median of 5 timed runs after 2 warm-ups.

The cases are ``_cases.py``'s (one per model family: Mask R-CNN R50-FPN, Keypoint R-CNN R50-FPN,
Cascade Mask R-CNN R50-FPN, Faster R-CNN R50-C4, RetinaNet R50-FPN, FCOS R50-FPN, Panoptic FPN R50),
by kind:

(a) ``golden`` (``keypoint_golden``, ``cascade_golden``, ``c4_golden``, ``retinanet_golden``): the
    family's narrow golden reference of ``packages/dt-models/tests/data/<name>`` (its detectron2 config,
    weights and ``io.pt`` image); also checks that the outputs equal detectron2's within the golden
    README tolerances (masks and keypoints included where the reference has them).
(b) ``full`` (``keypoint_full``, ..., ``fcos_full``, ``panoptic_full``): the full-width model of
    detectron2's zoo config (``mask_rcnn_R_50_FPN_3x``, ``keypoint_rcnn_R_50_FPN_3x``,
    ``cascade_mask_rcnn_R_50_FPN_3x``, ``faster_rcnn_R_50_C4_3x``, ``retinanet_R_50_FPN_3x``,
    ``panoptic_fpn_R_50_3x``; FCOS: dt's ``FCOSConfig``, whose defaults are detectron2's LazyConfig
    ``fcos_R_50_FPN_1x``), random weights whose frozen-BN statistics are set to their inputs'
    per-channel mean and variance in one forward pass, on scikit-image's astronaut resized to 800x800.
    Panoptic FPN's outputs are its instances, semantic logits and panoptic segmentation. FCOS and
    Panoptic FPN have no golden case.

Training steps are ``train_step.py``'s (this script runs them too when named). Each case runs in its
own spawned process so its peak memory (max RSS) is its own. Prints JSON with wall and CPU seconds;
``golden``, ``full`` and ``train_step`` also carry the detectron2 times measured once on this machine
(``detectron2_s``; ``side_by_side.py`` measures every case against detectron2 directly).
``--ablation`` also times, interleaved with dt's runs, the same model executed as detectron2 executes
it (each FrozenBN a separate op, NCHW features), which isolates what dt's execution changes bring on a
machine too noisy for absolute comparisons.

    python benchmarks/inference.py [--cases golden,full,keypoint_full,...] [--runs 5] [--warmup 2]
        [--ablation]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import resource
import statistics
import time
from collections.abc import Callable

import torch
from _cases import INFERENCE_CASES, build_dt, get_case, make_run, outputs_summary

# detectron2's seconds (low, high) for the first three cases, measured once on this machine
DETECTRON2_SECONDS = {"golden": (0.20, 0.33), "full": (3.4, 3.9), "train_step": (6.1, 8.0)}


def time_runs(variants: dict[str, Callable[[], object]], runs: int, warmup: int) -> dict[str, dict]:
    """Time each variant ``runs`` times after ``warmup`` calls, interleaved (variant A, B, A, B, ...)
    so that load changes on a shared machine hit all variants alike.

    Returns per variant the wall-clock and process CPU (all threads) seconds of every run.
    """
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    times: dict[str, dict] = {name: {"wall": [], "cpu": []} for name in variants}
    for _ in range(runs):
        for name, fn in variants.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            times[name]["wall"].append(time.perf_counter() - start)
            times[name]["cpu"].append(time.process_time() - start_cpu)
    return times


@contextlib.contextmanager
def detectron2_execution():
    """Execute dt's model the way detectron2 executes the same network: every FrozenBN as its own
    op after its convolution, NCHW feature maps and mask-head inputs. Used to measure what dt's
    changes bring."""
    from dt_models.layers import Conv2d
    from dt_models.meta_arch import ImageModel
    from dt_models.roi_heads import MaskRCNNConvUpsampleHead

    def conv_forward(self, x):
        x = torch.nn.functional.conv2d(
            x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )
        if self.norm is not None:
            x = self.norm(x)
        return x if self.activation is None else self.activation(x)

    def mask_layers(self, x):
        for conv in self.conv_norm_relus:
            x = conv(x)
        return self.predictor(torch.relu(self.deconv(x)))

    saved = Conv2d.forward, ImageModel.extract_features, MaskRCNNConvUpsampleHead.layers
    Conv2d.forward = conv_forward
    ImageModel.extract_features = lambda self, images: self.backbone(images.tensor)
    MaskRCNNConvUpsampleHead.layers = mask_layers
    try:
        yield
    finally:
        Conv2d.forward, ImageModel.extract_features, MaskRCNNConvUpsampleHead.layers = saved


def with_detectron2_execution(fn: Callable[[], object]) -> Callable[[], object]:
    def run():
        with detectron2_execution():
            return fn()

    return run


def summarize(times: dict[str, dict], name: str) -> dict:
    """Medians, all runs, and the ratio of dt to the detectron2-style execution of the same model."""
    case = get_case(name)
    median = statistics.median(times["dt"]["wall"])
    out = {
        "case": name,
        "median_s": round(median, 4),
        "min_s": round(min(times["dt"]["wall"]), 4),
        "runs_s": [round(t, 4) for t in times["dt"]["wall"]],
        "median_cpu_s": round(statistics.median(times["dt"]["cpu"]), 4),
    }
    if "detectron2_style" in times:
        d2 = times["detectron2_style"]
        out["detectron2_style_median_s"] = round(statistics.median(d2["wall"]), 4)
        out["detectron2_style_min_s"] = round(min(d2["wall"]), 4)
        out["detectron2_style_median_cpu_s"] = round(statistics.median(d2["cpu"]), 4)
        out["ratio_to_detectron2_style_cpu"] = round(
            statistics.median(times["dt"]["cpu"]) / statistics.median(d2["cpu"]), 3
        )
    out.update(
        load_average_1min=round(os.getloadavg()[0], 2),
        peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    )
    if name in DETECTRON2_SECONDS:
        low, high = DETECTRON2_SECONDS[name]
        fastest = min(times["dt"]["wall"])
        out.update(
            detectron2_s=[low, high],
            ratio_to_detectron2=[round(median / high, 3), round(median / low, 3)],
            min_ratio_to_detectron2=[round(fastest / high, 3), round(fastest / low, 3)],
        )
    out["goal_ratio"] = case.goal
    return out


def run_case(name: str, runs: int, warmup: int, ablation: bool) -> dict:
    """Time one case (inference or training step) in this process; its JSON result."""
    torch.set_num_threads(2)
    case = get_case(name)
    model, inputs = build_dt(case)
    outputs: dict = {}
    run = make_run(case, model, inputs, outputs)
    variants = {"dt": run, "detectron2_style": with_detectron2_execution(run)} if ablation else {"dt": run}
    times = time_runs(variants, runs, warmup)
    if ablation:
        run()  # report the outputs of dt's own execution, not the ablation's
    return {**summarize(times, name), **outputs_summary(case, outputs)}


def _child(name, runs, warmup, ablation, queue):
    try:
        queue.put(run_case(name, runs, warmup, ablation))
    except Exception as e:  # reported in the JSON, not swallowed
        queue.put({"case": name, "error": f"{type(e).__name__}: {e}"})


def run_isolated(name: str, runs: int, warmup: int, ablation: bool) -> dict:
    """:func:`run_case` in a spawned process, so that the peak memory is the case's own."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(name, runs, warmup, ablation, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main(
    benchmark: str = "inference", default_cases: list[str] = INFERENCE_CASES, doc: str = __doc__
) -> None:
    """Command line of this script and of ``train_step.py`` (which passes its name and cases)."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--cases", default=",".join(default_cases), help="comma-separated case names")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--ablation", action="store_true", help="also time detectron2-style execution (unfolded BN, NCHW)"
    )
    args = parser.parse_args()
    names = args.cases.split(",")
    try:
        for name in names:
            get_case(name)  # an unknown name fails before anything runs
    except ValueError as e:
        parser.error(str(e))
    results = [run_isolated(name, args.runs, args.warmup, args.ablation) for name in names]
    print(
        json.dumps(
            {"benchmark": benchmark, "torch": torch.__version__, "threads": 2, "results": results}, indent=2
        )
    )


if __name__ == "__main__":
    main()
