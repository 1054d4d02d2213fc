"""Optimizer step speed on CPU: torch's per-parameter loop, ``foreach`` and ``fused`` kernels, for the
optimizers dt builds (AdamW and SGD with momentum), over the trainable parameters of a dt config's model
(default: the ``dt demo`` Mask R-CNN, 12.4 M parameters) with random gradients.

Each step is timed ``--runs`` times after one warm-up, the variants interleaved so that load changes hit
them alike; prints JSON with the median CPU and wall milliseconds per step and the ratio to the loop.
``dt_engine.optim.build_torch_optimizer`` picks the fused AdamW kernel from these numbers.

    python benchmarks/optimizer.py [--config demo.yaml] [--runs 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from _machine import machine_info

VARIANTS = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
OPTIMIZERS = {
    "AdamW": lambda params, kw: torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05, **kw),
    "SGD": lambda params, kw: torch.optim.SGD(params, lr=1e-2, momentum=0.9, weight_decay=1e-4, **kw),
}


def trainable_parameters(config: str) -> list[torch.nn.Parameter]:
    """The trainable parameters of the model of config ``config``, each with a random gradient."""
    from dt_engine.config.experiment import load_experiment, resolve_config_path
    from dt_models import build_model

    torch.manual_seed(0)
    model = build_model(load_experiment(resolve_config_path(config), []).model)
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    return params


def time_steps(params: list[torch.nn.Parameter], name: str, runs: int) -> dict[str, dict]:
    """Median CPU and wall ms of one ``name`` step per variant, interleaved over ``runs`` rounds."""
    optimizers = {variant: OPTIMIZERS[name](params, kw) for variant, kw in VARIANTS.items()}
    cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
    wall: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for round_ in range(runs + 1):
        for variant, optimizer in optimizers.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            optimizer.step()
            if round_:  # the first round warms up
                wall[variant].append(time.perf_counter() - start)
                cpu[variant].append(time.process_time() - start_cpu)
    loop_cpu = statistics.median(cpu["loop"])
    return {
        v: {
            "cpu_ms": round(statistics.median(cpu[v]) * 1e3, 1),
            "wall_ms": round(statistics.median(wall[v]) * 1e3, 1),
            "cpu_vs_loop": round(statistics.median(cpu[v]) / loop_cpu, 2),
        }
        for v in VARIANTS
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="demo.yaml", help="a dt config file or packaged name")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as DefaultTrainer.train does
    params = trainable_parameters(args.config)
    result = {
        "benchmark": "optimizer",
        **machine_info(),
        "config": args.config,
        "parameters": sum(p.numel() for p in params),
        "steps": {name: time_steps(params, name, args.runs) for name in OPTIMIZERS},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
