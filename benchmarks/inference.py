"""dt-models inference speed on CPU (torch at 2 threads): median of 5 timed runs after 2 warm-ups.

(a) ``golden``: the narrow Mask R-CNN R50-FPN of ``packages/dt-models/tests/data/mask_rcnn_R_50_FPN`` (its
    detectron2 config, weights and ``io.pt`` image, 100 detections); also checks that the outputs
    equal detectron2's within the golden README tolerances.
(b) ``full``: the full-width Mask R-CNN R50-FPN (detectron2's mask_rcnn_R_50_FPN_3x architecture, 80
    classes), random weights whose frozen-BN statistics are set to their inputs' per-channel mean and
    variance in one forward pass, on scikit-image's astronaut resized to 800x800.

Each case runs in its own spawned process so its peak memory (max RSS) is its own. Prints JSON
with wall and CPU seconds. ``--ablation`` also times, interleaved with dt's runs, the same model
executed as detectron2 executes it (each FrozenBN a separate op, NCHW features), which isolates
what dt's execution changes bring on a machine too noisy for absolute comparisons.

    python benchmarks/inference.py [--cases golden,full] [--runs 5] [--warmup 2] [--ablation]
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
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "packages" / "dt-models" / "tests" / "data" / "mask_rcnn_R_50_FPN"
DETECTRON2_SECONDS = {"golden": (0.20, 0.33), "full": (3.4, 3.9), "train_step": (6.1, 8.0)}
GOALS = {"golden": 0.7, "full": 0.7, "train_step": 0.8}


def full_width_config():
    """detectron2's mask_rcnn_R_50_FPN_3x architecture (80 classes) as a dt ``ModelConfig``."""
    from dt_models.config import GeneralizedRCNNConfig, StandardROIHeadsConfig
    from dt_models.roi_heads import MaskBranchConfig

    return GeneralizedRCNNConfig(roi_heads=StandardROIHeadsConfig(branches={"mask": MaskBranchConfig()}))


def astronaut_bgr(size: int) -> torch.Tensor:
    """scikit-image's astronaut as a BGR ``Tensor[3, size, size]`` uint8."""
    from skimage import data

    rgb = torch.from_numpy(np.ascontiguousarray(data.astronaut())).permute(2, 0, 1).float()[None]
    rgb = torch.nn.functional.interpolate(rgb, size=(size, size), mode="bilinear", align_corners=False)
    return rgb[0].flip(0).round().clamp(0, 255).to(torch.uint8)


@torch.no_grad()
def calibrate_frozen_bn(
    model, batched_inputs, conv_type: type | None = None, norm_type: type | None = None
) -> None:
    """Set each FrozenBN's statistics to its input's per-channel mean/variance in one forward pass.

    dt folds a FrozenBN into the convolution before it, so the statistics are taken on that
    convolution's raw output, just before they are used. ``conv_type``/``norm_type``: the
    convolution-with-norm and FrozenBN classes (default dt's; ``_detectron2_worker`` passes
    detectron2's, whose model has the same ``preprocess_image``/``backbone``/``conv.norm`` layout).
    """
    if conv_type is None or norm_type is None:
        from dt_models.layers import Conv2d, FrozenBatchNorm2d

        conv_type, norm_type = Conv2d, FrozenBatchNorm2d

    def hook(conv, args):
        y = torch.nn.functional.conv2d(
            args[0], conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups
        )
        conv.norm.running_mean.copy_(y.mean(dim=(0, 2, 3)))
        conv.norm.running_var.copy_(y.var(dim=(0, 2, 3), unbiased=False))

    convs = [m for m in model.modules() if isinstance(m, conv_type) and isinstance(m.norm, norm_type)]
    handles = [conv.register_forward_pre_hook(hook) for conv in convs]
    try:
        model.backbone(model.preprocess_image(batched_inputs).tensor)
    finally:
        for h in handles:
            h.remove()


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


def summarize(times: dict[str, dict], case: str) -> dict:
    """Medians, all runs, and the ratio of dt to the detectron2-style execution of the same model."""
    median = statistics.median(times["dt"]["wall"])
    low, high = DETECTRON2_SECONDS[case]
    out = {
        "case": case,
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
        detectron2_s=[low, high],
        ratio_to_detectron2=[round(median / high, 3), round(median / low, 3)],
        min_ratio_to_detectron2=[
            round(min(times["dt"]["wall"]) / high, 3),
            round(min(times["dt"]["wall"]) / low, 3),
        ],
        goal_ratio=GOALS[case],
    )
    return out


def _golden_matches(instances, io) -> dict:
    shape = tuple(io["pred_masks_shape"])
    expected = np.unpackbits(io["pred_masks_packed"].numpy(), axis=1)[:, : int(np.prod(shape[1:]))]
    expected = torch.from_numpy(expected.reshape(shape).astype(bool))
    same_count = len(instances) == len(io["pred_boxes"])
    checks = {"count": same_count}
    if same_count:
        checks["boxes"] = bool((instances.pred_boxes.tensor - io["pred_boxes"]).abs().max() <= 1e-2)
        checks["scores"] = bool((instances.scores - io["scores"]).abs().max() <= 1e-4)
        checks["classes"] = bool(torch.equal(instances.pred_classes, io["pred_classes"]))
        checks["masks"] = bool((instances.pred_masks == expected).float().mean() >= 0.999)
    return {"outputs_equal_detectron2": all(checks.values()), "checks": checks}


def run_case(case: str, runs: int, warmup: int, ablation: bool) -> dict:
    torch.set_num_threads(2)
    from dt_models import build_model, detectron2_model_config, load_weights

    torch.manual_seed(0)
    if case == "golden":
        model = build_model(detectron2_model_config(GOLDEN / "config.yaml")).eval()
        report = load_weights(model, GOLDEN / "model_final.pkl")
        if not report.ok:
            raise RuntimeError(report.table())
        io = torch.load(GOLDEN / "io.pt", weights_only=True)
        inputs = [{"image": io["image"], "height": io["height"], "width": io["width"]}]
    elif case == "full":
        model = build_model(full_width_config()).eval()
        inputs = [{"image": astronaut_bgr(800)}]
        calibrate_frozen_bn(model, inputs)
    else:
        raise ValueError(f"unknown case {case!r}")
    run = lambda: model(inputs)  # noqa: E731
    variants = {"dt": run, "detectron2_style": with_detectron2_execution(run)} if ablation else {"dt": run}
    with torch.inference_mode():
        times = time_runs(variants, runs, warmup)
        instances = model(inputs)[0]["instances"]
    extra = _golden_matches(instances, io) if case == "golden" else {}
    return {**summarize(times, case), "detections": len(instances), **extra}


def _child(case, runs, warmup, ablation, queue):
    try:
        queue.put(run_case(case, runs, warmup, ablation))
    except Exception as e:  # reported in the JSON, not swallowed
        queue.put({"case": case, "error": f"{type(e).__name__}: {e}"})


def run_isolated(case: str, runs: int, warmup: int, ablation: bool) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(case, runs, warmup, ablation, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="golden,full")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--ablation", action="store_true", help="also time detectron2-style execution (unfolded BN, NCHW)"
    )
    args = parser.parse_args()
    results = [run_isolated(c, args.runs, args.warmup, args.ablation) for c in args.cases.split(",")]
    print(
        json.dumps(
            {"benchmark": "inference", "torch": torch.__version__, "threads": 2, "results": results}, indent=2
        )
    )


if __name__ == "__main__":
    main()
