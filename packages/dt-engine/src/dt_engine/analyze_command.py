"""``dt analyze``: a config's model per module: parameters, FLOPs and activations of one inference.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts as 2 FLOPs, as
torch counts them; detectron2's fvcore counts 1), activations are the output elements of the leaf
modules (convolutions, linear layers, ...), both for one image of ``--height`` x ``--width`` run in
eval mode. Rows are modules up to ``--depth`` levels below the model. Installed through dt-engine's
own ``dt_engine.command`` entry point.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from typing import Any

__all__ = ["COMMAND", "AnalyzeCommand", "ModuleStats", "analyze_model"]

ModuleStats = dict[str, dict[str, int]]
"""Module name (``""`` for the whole model) -> ``{"params", "flops", "activations"}``."""


def _prefixes(name: str, depth: int) -> list[str]:
    """``""`` and the dotted prefixes of ``name`` up to ``depth`` components."""
    parts = name.split(".") if name else []
    return [""] + [".".join(parts[: i + 1]) for i in range(min(depth, len(parts)))]


def _numel(value: Any) -> int:
    import torch

    if isinstance(value, torch.Tensor):
        return value.numel()
    if isinstance(value, (list, tuple)):
        return sum(_numel(v) for v in value)
    if isinstance(value, dict):
        return sum(_numel(v) for v in value.values())
    return 0


def analyze_model(model: Any, inputs: list[dict[str, Any]], depth: int) -> ModuleStats:
    """Parameters, FLOPs and leaf activations of ``model(inputs)`` per module prefix up to ``depth``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    stats: ModuleStats = defaultdict(lambda: {"params": 0, "flops": 0, "activations": 0})
    for name, param in model.named_parameters():
        for prefix in _prefixes(name.rsplit(".", 1)[0] if "." in name else "", depth):
            stats[prefix]["params"] += param.numel()

    def count_activations(name: str) -> Any:
        def hook(_module: Any, _inputs: Any, output: Any) -> None:
            for prefix in _prefixes(name, depth):
                stats[prefix]["activations"] += _numel(output)

        return hook

    handles = [
        module.register_forward_hook(count_activations(name))
        for name, module in model.named_modules()
        if name and not any(True for _ in module.children())
    ]
    counter = FlopCounterMode(display=False, depth=depth + 1)
    try:
        with torch.no_grad(), counter:
            model.eval()(inputs)
    finally:
        for handle in handles:
            handle.remove()
    root = type(model).__name__
    for key, per_op in counter.get_flop_counts().items():
        if key == "Global":
            name = ""
        elif key == root or key.startswith(root + "."):
            name = key[len(root) + 1 :]
        else:
            continue
        if name in stats or name == "":
            stats[name]["flops"] = sum(per_op.values())
    return dict(stats)


def _human(value: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= size:
            return f"{value / size:.2f}{unit}"
    return str(value)


class AnalyzeCommand:
    """``dt analyze --config C``: the parameter/FLOP/activation table of the config's model."""

    name = "analyze"
    summary = "per-module parameters, FLOPs (torch.utils.flop_counter) and activations of a config's model"
    example = "dt analyze --config output/demo/config.yaml --height 800 --width 1216 --depth 2"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--config", required=True, metavar="FILE", help="experiment config (YAML or .py)")
        parser.add_argument("overrides", nargs="*", metavar="key.path=value", help="config overrides")
        parser.add_argument("--height", type=int, default=800, metavar="PX", help="input height (e.g. 800)")
        parser.add_argument("--width", type=int, default=1216, metavar="PX", help="input width (e.g. 1216)")
        parser.add_argument("--depth", type=int, default=2, metavar="D", help="module levels shown (e.g. 2)")
        parser.add_argument("--debug", action="store_true", help="show the traceback of an input error")

    def run(self, args: argparse.Namespace) -> int:
        import torch

        from dt_models import build_model

        from .config.experiment import load_experiment
        from .data_command import format_table
        from .errors import InputError

        if args.height < 1 or args.width < 1 or args.depth < 0:
            raise InputError("--height and --width must be >= 1 and --depth >= 0")
        cfg = load_experiment(args.config, args.overrides)
        model = build_model(cfg.model, torch.device("cpu"))
        image = torch.zeros(3, args.height, args.width, dtype=torch.uint8)  # [C, H, W]
        inputs = [{"image": image, "height": args.height, "width": args.width}]
        stats = analyze_model(model, inputs, args.depth)
        rows = [
            (name or "(model)", _human(s["params"]), _human(s["flops"]), _human(s["activations"]))
            for name, s in sorted(stats.items())
        ]
        print(format_table(rows, ("module", "params", "FLOPs", "activations")))
        print(f"one {args.width}x{args.height} image, eval mode; FLOPs count a multiply-add as 2")
        return 0


COMMAND = AnalyzeCommand()
