"""dt-ops' Winograd F(4x4, 3x3) convolution against torch's direct one (oneDNN, channels-last), at the
3x3 shapes of an R50-FPN detector at 800x800: backbone stages, FPN outputs and RPN/RetinaNet heads, and
the 14x14 ROI heads of Mask and Keypoint R-CNN (100 ROIs).

    python benchmarks/conv3x3.py [--repeat 5]

Prints one JSON object: per shape the best-of-N seconds of each, ``speedup`` (direct / Winograd) and
the largest difference relative to the output's magnitude; on an AVX-512 CPU also the AVX2 kernel's
time. Restrict torch's kernels (``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2``) to compare on
AVX2: the Winograd kernel follows torch's capability.
"""

from __future__ import annotations

import argparse
import json

import torch
from _machine import machine_info
from _timing import best_time
from torch.nn import functional as F

from dt_ops import winograd as wino

THREADS = 2
# (name, batch, channels, height = width): channels in = out
SHAPES = [
    ("res2 3x3", 1, 64, 200),
    ("res3 3x3", 1, 128, 100),
    ("res4 3x3", 1, 256, 50),
    ("res5 3x3", 1, 512, 25),
    ("FPN P2 output / RPN P2", 1, 256, 200),
    ("RetinaNet P3 tower", 1, 256, 100),
    ("mask head (100 ROIs)", 100, 256, 14),
    ("keypoint head (100 ROIs)", 100, 512, 14),
]


def measure(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, repeat: int, best_isa: int) -> dict:
    """Best-of-``repeat`` seconds of the direct and the Winograd convolution, and the latter's error."""
    packed = wino.winograd_weight(weight)
    with torch.no_grad():
        direct = best_time(lambda: F.conv2d(x, weight, bias, padding=1), repeat)
        winograd = best_time(lambda: wino.conv3x3_winograd(x, packed, bias), repeat)
        expected = F.conv2d(x.double(), weight.double(), bias.double(), padding=1)
        error = (
            wino.conv3x3_winograd(x, packed, bias).double() - expected
        ).abs().max() / expected.abs().max()
        row = {
            "direct_s": round(direct, 5),
            "winograd_s": round(winograd, 5),
            "speedup": round(direct / winograd, 2),
            "relative_error": float(f"{error.item():.2e}"),
        }
        if best_isa == 2:  # the AVX2 kernel too, on this AVX-512 CPU
            original, wino._isa = wino._isa, lambda: 1
            try:
                row["winograd_avx2_kernel_s"] = round(
                    best_time(lambda: wino.conv3x3_winograd(x, packed, bias), repeat), 5
                )
            finally:
                wino._isa = original
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per implementation (best kept)")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    generator = torch.Generator().manual_seed(0)
    best_isa = wino._isa()
    results = []
    for name, batch, channels, side in SHAPES:
        x = torch.randn(batch, channels, side, side, generator=generator)
        x = x.contiguous(memory_format=torch.channels_last)
        weight = torch.randn(channels, channels, 3, 3, generator=generator) / (3 * channels**0.5)
        bias = torch.randn(channels, generator=generator)
        row = {"shape": name, "input": [batch, channels, side, side]}
        results.append({**row, **measure(x, weight, bias, args.repeat, best_isa)})
    isa_name = {0: "generic", 1: "AVX2", 2: "AVX-512"}[best_isa]
    report = {
        "benchmark": "conv3x3 Winograd vs direct",
        "machine": machine_info(),
        "winograd_isa": isa_name,
        "threads": THREADS,
        "results": results,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
