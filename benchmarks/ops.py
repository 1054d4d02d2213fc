"""dt-ops CPU kernels against torchvision's, side by side in one process, torch at 2 threads.

Needs torchvision next to dt-ops (the ``compat`` environment: torch 2.14.1 + torchvision 0.29.1):

    nox -s bench-ops            # or: python benchmarks/ops.py in an env with dt-ops and torchvision

Prints one JSON object: best-of-N wall times in seconds per op and implementation, the speedup
(torchvision time / dt-ops time), the targets of issue #3 and whether each is met.
"""

from __future__ import annotations

import json
import sys

import torch
from _timing import best_time

import dt_ops

try:
    import torchvision
    from torchvision import ops as tv
except ImportError:  # the default nox env pins torch 2.13, for which no torchvision imports here
    skipped = {"benchmark": "dt-ops vs torchvision", "skipped": "torchvision missing: run nox -s bench-ops"}
    print(json.dumps(skipped))
    sys.exit(0)

THREADS = 2


def detector_boxes(n: int, objects: int, image: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """``Tensor[n, 4]`` XYXY boxes jittered around ``objects`` ground-truth boxes, like detector outputs."""
    height, width = image
    centers = torch.rand(objects, 2, generator=generator) * torch.tensor([width, height])
    sizes = torch.rand(objects, 2, generator=generator) * 200 + 16
    which = torch.randint(0, objects, (n,), generator=generator)
    c = centers[which] + torch.randn(n, 2, generator=generator) * sizes[which] * 0.1
    s = sizes[which] * (1 + torch.randn(n, 2, generator=generator) * 0.1).clamp(min=0.5)
    return torch.cat([c - s / 2, c + s / 2], dim=1)


def bench_roi_align(g: torch.Generator) -> dict:
    features = torch.randn(2, 256, 200, 272, generator=g)
    boxes = detector_boxes(1000, 100, (800, 1088), g)
    rois = torch.cat([torch.randint(0, 2, (1000, 1), generator=g).float(), boxes], dim=1)
    args = dict(output_size=(7, 7), spatial_scale=0.25, sampling_ratio=2, aligned=True)
    grad = torch.randn(1000, 256, 7, 7, generator=g)
    result = {}
    outputs = {}
    for name, fn in (("dt", dt_ops.roi_align), ("torchvision", tv.roi_align)):
        x = features.clone().requires_grad_()

        def forward(fn=fn, x=x):
            with torch.no_grad():
                return fn(x, rois, **args)

        def forward_backward(fn=fn, x=x):
            x.grad = None
            fn(x, rois, **args).backward(grad)

        result[f"{name}_fwd_s"] = best_time(forward, 5)
        result[f"{name}_fwd_bwd_s"] = best_time(forward_backward, 3)
        outputs[name] = (forward(), x.grad.clone())
    result["speedup_fwd"] = result["torchvision_fwd_s"] / result["dt_fwd_s"]
    result["speedup_fwd_bwd"] = result["torchvision_fwd_bwd_s"] / result["dt_fwd_bwd_s"]
    result["max_abs_diff_output"] = (outputs["dt"][0] - outputs["torchvision"][0]).abs().max().item()
    result["max_abs_diff_grad"] = (outputs["dt"][1] - outputs["torchvision"][1]).abs().max().item()
    return result


def bench_nms(g: torch.Generator, batched: bool) -> dict:
    boxes = detector_boxes(20000, 500, (800, 1088), g)
    scores = torch.rand(20000, generator=g)
    idxs = torch.randint(0, 80, (20000,), generator=g)
    if batched:
        impls = {
            "dt": lambda: dt_ops.batched_nms(boxes, scores, idxs, 0.5),
            "torchvision": lambda: tv.batched_nms(boxes, scores, idxs, 0.5),
        }
    else:
        impls = {
            "dt": lambda: dt_ops.nms(boxes, scores, 0.5),
            "torchvision": lambda: tv.nms(boxes, scores, 0.5),
        }
    result = {f"{name}_s": best_time(fn, 5) for name, fn in impls.items()}
    result["speedup"] = result["torchvision_s"] / result["dt_s"]
    keep_dt, keep_tv = impls["dt"](), impls["torchvision"]()
    result["kept"] = len(keep_dt)
    result["same_result"] = bool(torch.equal(keep_dt, keep_tv))
    return result


def bench_deform_conv(g: torch.Generator) -> dict:
    x = torch.randn(2, 64, 100, 136, generator=g)
    weight = torch.randn(64, 64, 3, 3, generator=g) * 0.05
    bias = torch.randn(64, generator=g)
    offset = torch.randn(2, 18, 100, 136, generator=g) * 2
    mask = torch.rand(2, 9, 100, 136, generator=g)
    grad = torch.randn(2, 64, 100, 136, generator=g)
    result = {}
    outputs = {}
    for name, fn in (("dt", dt_ops.deform_conv2d), ("torchvision", tv.deform_conv2d)):
        leaves = [t.clone().requires_grad_() for t in (x, offset, weight, bias, mask)]

        def forward(fn=fn, leaves=leaves):
            with torch.no_grad():
                return fn(leaves[0], leaves[1], leaves[2], leaves[3], padding=(1, 1), mask=leaves[4])

        def forward_backward(fn=fn, leaves=leaves):
            for t in leaves:
                t.grad = None
            fn(leaves[0], leaves[1], leaves[2], leaves[3], padding=(1, 1), mask=leaves[4]).backward(grad)

        result[f"{name}_fwd_s"] = best_time(forward, 3)
        result[f"{name}_fwd_bwd_s"] = best_time(forward_backward, 3)
        outputs[name] = [forward()] + [t.grad.clone() for t in leaves]
    result["speedup_fwd"] = result["torchvision_fwd_s"] / result["dt_fwd_s"]
    result["speedup_fwd_bwd"] = result["torchvision_fwd_bwd_s"] / result["dt_fwd_bwd_s"]
    names = ["output", "grad_input", "grad_offset", "grad_weight", "grad_bias", "grad_mask"]
    result["max_rel_diff"] = {
        n: ((a - b).abs().max() / b.abs().max().clamp(min=1e-12)).item()
        for n, a, b in zip(names, outputs["dt"], outputs["torchvision"], strict=True)
    }
    return result


def main() -> None:
    torch.set_num_threads(THREADS)
    g = torch.Generator().manual_seed(0)
    results = {
        "roi_align": bench_roi_align(g),
        "nms": bench_nms(g, batched=False),
        "batched_nms": bench_nms(g, batched=True),
        "deform_conv2d_v2": bench_deform_conv(g),
    }
    targets = {
        "roi_align fwd+bwd >= 1.5x torchvision": results["roi_align"]["speedup_fwd_bwd"] >= 1.5,
        "deform_conv2d fwd >= 1.5x torchvision": results["deform_conv2d_v2"]["speedup_fwd"] >= 1.5,
        "deform_conv2d fwd+bwd >= 1.5x torchvision": results["deform_conv2d_v2"]["speedup_fwd_bwd"] >= 1.5,
        "nms no slower than torchvision": results["nms"]["speedup"] >= 1.0,
        "batched_nms no slower than torchvision": results["batched_nms"]["speedup"] >= 1.0,
    }
    report = {
        "benchmark": "dt-ops vs torchvision CPU kernels",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "dt_ops": dt_ops.__version__,
        "threads": torch.get_num_threads(),
        "results": results,
        "targets_met": targets,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
