"""``dt demo``: train a CPU-sized Mask R-CNN on the synthetic ``shapes`` set, evaluate it, show it.

The run is an ordinary ``dt train`` of the packaged ``configs/demo.yaml`` (``dt train --config`` takes
the same file), followed by the files a new user wants to look at; ``--task`` picks another family
and its packaged shapes config (``DEMO_TASKS``: ``panoptic`` Panoptic FPN, ``semantic`` Semantic FPN,
``rotated`` rotated Faster R-CNN), evaluated by the evaluator its dataset declares::

    <output>/config.yaml       the resolved config (feed it to dt train / eval / predict)
    <output>/metrics.jsonl     losses, learning rate and evaluation results per iteration
    <output>/model_final.pth   the trained weights (a dt checkpoint)
    <output>/curves.png        losses, learning rate and validation AP over iterations
    <output>/results.json      {"bbox": {"AP": ...}, "segm": {"AP": ...}} on the test set (or the
                               task's metrics: sem_seg mIoU, panoptic_seg PQ)
    <output>/predictions/      visualized predictions on a few validation images

and a summary (metric table, wall time of each phase, where the files are, a ``dt predict`` command).

With a budget (``--minutes``, the default), the demo times a few training steps and test images on
this machine after generating the data, and fixes ``solver.max_iter`` (the schedule scaled with it)
so that the whole command ends within the budget; the saved ``config.yaml`` holds that value, so
``dt train --config <output>/config.yaml`` repeats the run exactly.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.resources
import json
import os
import shlex
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dt_data import DatasetCatalog, MetadataCatalog

from .budget import Throughput
from .checkpoint import atomic_write_text
from .config.experiment import ExperimentConfig, load_experiment
from .cpu import configure_cpu
from .errors import InputError, check_writable_dir
from .plot import read_metrics

__all__ = [
    "DEFAULT_MINUTES",
    "DEMO_CONFIG",
    "DEMO_TASKS",
    "DemoTask",
    "demo_task",
    "configure_cpu",
    "demo_command",
    "demo_config_path",
    "final_results",
    "fit_to_budget",
    "plot_curves",
    "run_demo",
]

DEFAULT_MINUTES = 10.0
"""The budget of ``dt demo`` for the whole command: data, training, evaluation and pictures."""
RESERVE_FRACTION = 0.05
"""Part of the budget kept free for what the measurement cannot foresee (loader start, plots)."""
STEADY_STATE_SLOWDOWN = 1.4
"""How much slower a demo step is once training is under way than in the measurement's first steps
(the RPN starts finding objects: more foreground ROIs for the box and mask heads; the loader worker
competes for the cores). Measured on a 2-core AMD EPYC restricted to AVX2: 0.69 s measured, 0.95 s
per step from iteration 150 on."""

DEMO_CONFIG = "configs/demo.yaml"
"""The demo's config file, relative to the ``dt_engine`` package (shipped as package data)."""

SUMMARY_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
TASK_METRICS = {
    "bbox": SUMMARY_METRICS,
    "segm": SUMMARY_METRICS,
    "sem_seg": ("mIoU", "fwIoU", "mACC", "pACC"),
    "panoptic_seg": ("PQ", "SQ", "RQ", "PQ_th", "PQ_st"),
}
"""The metrics the summary table shows, per evaluation task."""
AP_CURVES = ("bbox/AP", "segm/AP", "bbox/AP50", "segm/AP50", "sem_seg/mIoU", "panoptic_seg/PQ")


@attrs.frozen
class DemoTask:
    """One ``dt demo --task``: its packaged config (relative to the ``dt_engine`` package), the model's
    name in the summary, and the evaluation tasks whose metrics the summary reports (in order)."""

    config: str
    model: str
    tasks: tuple[str, ...]


DEMO_TASKS = {
    "instances": DemoTask(DEMO_CONFIG, "Mask R-CNN", ("bbox", "segm")),
    "panoptic": DemoTask(
        "configs/shapes_panoptic_fpn.yaml", "Panoptic FPN", ("panoptic_seg", "sem_seg", "bbox", "segm")
    ),
    "semantic": DemoTask("configs/shapes_semantic_fpn.yaml", "Semantic FPN", ("sem_seg",)),
    "rotated": DemoTask("configs/shapes_rotated_faster_rcnn.yaml", "rotated Faster R-CNN", ("bbox",)),
}
"""``dt demo --task`` values; ``instances`` (today's Mask R-CNN demo) is the default."""


def demo_task(name: str) -> DemoTask:
    """The ``DemoTask`` called ``name``; ``InputError`` naming the choices otherwise."""
    if name not in DEMO_TASKS:
        raise InputError(f"--task must be one of {', '.join(DEMO_TASKS)}, got {name!r}")
    return DEMO_TASKS[name]


@contextlib.contextmanager
def demo_config_path(task: str = "instances") -> Iterator[Path]:
    """The packaged config of demo ``task`` (``demo.yaml`` by default) as a file path (copy it to
    start your own config)."""
    config = demo_task(task).config
    with importlib.resources.as_file(importlib.resources.files("dt_engine") / config) as path:
        yield path


def final_results(
    metrics_path: str | os.PathLike[str], tasks: Sequence[str] = ("bbox", "segm")
) -> dict[str, dict[str, float]]:
    """The last evaluation of ``tasks`` in ``metrics.jsonl`` as ``{"bbox": {"AP": ...}, "segm": {...}}``.

    Evaluation metrics are the flattened ``<task>/<metric>`` keys written by the ``EvalHook``.
    """
    prefixes = tuple(f"{t}/" for t in tasks)
    last: dict[str, float] = {}
    with Path(metrics_path).open(encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            flat = {k: v for k, v in record.items() if k.startswith(prefixes)}
            if flat:
                last = flat
    if not last:
        raise ValueError(f"{metrics_path} holds no {'/'.join(tasks)} evaluation")
    nested: dict[str, dict[str, float]] = {}
    for key, value in last.items():
        task, metric = key.split("/", 1)
        nested.setdefault(task, {})[metric] = value
    return nested


def plot_curves(metrics_path: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """One PNG with three panels: losses (log scale), learning rate, and validation metrics (AP, mIoU,
    PQ), per iteration."""
    series = read_metrics(metrics_path)
    fig = Figure(figsize=(15, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    panels = (
        ("losses", sorted(n for n in series if "loss" in n), True),
        ("learning rate", [n for n in ("lr",) if n in series], False),
        ("validation metrics", [n for n in AP_CURVES if n in series], False),
    )
    for index, (title, names, log_y) in enumerate(panels):
        ax = fig.add_subplot(1, 3, index + 1)
        for name in names:
            xs, ys = zip(*series[name], strict=True)
            ax.plot(xs, ys, label=name, marker="o" if len(xs) < 20 else None)
        if log_y and names and all(y > 0 for n in names for _, y in series[n]):
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("iteration")
        ax.grid(True, alpha=0.3)
        if names:
            ax.legend(fontsize="small")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    return out


def _val_images(dataset: str, count: int) -> list[str]:
    dicts = DatasetCatalog.get(dataset)
    return [d["file_name"] for d in dicts[:count]]


def _table(results: Mapping[str, Mapping[str, float | None]], tasks: Sequence[str] = ("bbox", "segm")) -> str:
    """The metric table of ``tasks`` (``TASK_METRICS`` columns; a header per group of tasks with the
    same columns); a metric that is missing or undefined (``None``: NaN in strict JSON, e.g. APs
    without small objects) prints as ``nan``."""
    rows, columns = [], None
    for task in tasks:
        if task not in results:
            continue
        if TASK_METRICS[task] != columns:
            columns = TASK_METRICS[task]
            rows.append(" " * 14 + "".join(f"{m:>8}" for m in columns))
        values = [results[task].get(m) for m in columns]
        cells = "".join(f"{float('nan') if v is None else v:8.1f}" for v in values)
        rows.append(f"  {task:<12}{cells}")
    return "\n".join(rows)


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


def fit_to_budget(
    cfg: ExperimentConfig, *, deadline: float, num_images: int
) -> tuple[ExperimentConfig, Throughput]:
    """``cfg`` with the ``solver.max_iter`` (schedule scaled) that ends training, the final evaluation
    and ``num_images`` pictures by ``deadline`` (a ``time.perf_counter()`` value), measured here; the
    throughput it planned with (the measured step time times ``STEADY_STATE_SLOWDOWN``)."""
    from .budget import fit_max_iter, measure_throughput
    from .defaults import build_workflow

    measured = measure_throughput(build_workflow(cfg))
    throughput = attrs.evolve(measured, seconds_per_iter=measured.seconds_per_iter * STEADY_STATE_SLOWDOWN)
    seconds_left = deadline - time.perf_counter()
    test_images = sum(len(DatasetCatalog.get(name)) for name in cfg.data.datasets.test)
    try:
        fitted, _ = fit_max_iter(
            cfg,
            throughput,
            seconds_left,
            num_test_images=test_images + num_images,
            reserve_seconds=RESERVE_FRACTION * seconds_left,
        )
    except ValueError as err:
        raise InputError(f"the budget is too small: {err}; give more --minutes or --max-iter N") from None
    return fitted, throughput


def run_demo(
    cfg: ExperimentConfig,
    *,
    config_source: str,
    task: str = "instances",
    num_images: int = 6,
    confidence: float = 0.5,
    start: float | None = None,
    minutes: float | None = None,
) -> dict[str, Any]:
    """Generate the data (if needed), train, evaluate and visualize; returns the summary values.

    Writes everything listed in the module docstring to ``cfg.output_dir`` and prints the summary.
    The wall time is counted from ``start`` (a ``time.perf_counter()`` value; default: now). With
    ``minutes``, ``solver.max_iter`` is fixed from this machine's throughput so that everything
    ends ``minutes`` after ``start`` (``fit_to_budget``). ``task`` (a ``DEMO_TASKS`` name) decides
    the metrics reported and the model named in the summary.
    """
    demo = demo_task(task)
    from .defaults import build_workflow
    from .predictor import Predictor
    from .run import predict_files

    start = time.perf_counter() if start is None else start
    out = check_writable_dir(cfg.output_dir)
    (out / "metrics.jsonl").unlink(missing_ok=True)  # a fresh run, not appended to an earlier one
    for name in cfg.data.datasets.train + cfg.data.datasets.test:
        DatasetCatalog.get(name)  # generates the shapes sets on first use
    data_seconds = time.perf_counter() - start

    deadline = None
    if minutes is not None:
        deadline = start + 60.0 * minutes
        cfg, throughput = fit_to_budget(cfg, deadline=deadline, num_images=num_images)
        print(
            f"dt demo: planning {throughput.seconds_per_iter:.2f} s per iteration and "
            f"{throughput.seconds_per_test_image:.2f} s per test image on this machine: training "
            f"{cfg.solver.max_iter} iterations to end within {minutes:g} min "
            f"(solver.max_iter={cfg.solver.max_iter} is saved in {out / 'config.yaml'})",
            flush=True,
        )
    workflow = build_workflow(cfg)
    workflow.deadline = deadline
    workflow.train()  # trains, evaluates on data.datasets.test, saves
    trained = time.perf_counter()
    results = final_results(out / "metrics.jsonl", demo.tasks)
    atomic_write_text(out / "results.json", json.dumps(results, indent=2, sort_keys=True) + "\n")
    plot_curves(out / "metrics.jsonl", out / "curves.png")

    weights = out / "model_final.pth"
    predictor = Predictor(cfg, weights=weights, use_ema=cfg.solver.ema.enabled)
    val = cfg.data.datasets.test[0]
    predictions = check_writable_dir(out / "predictions")
    predict_files(
        predictor,
        _val_images(val, num_images),
        predictions,
        metadata=MetadataCatalog.get(val),
        confidence=confidence,
    )
    end = time.perf_counter()
    total = end - start

    budget = f" of a {minutes:g} min budget" if minutes is not None else ""
    config, weights_arg = shlex.quote(str(out / "config.yaml")), shlex.quote(str(weights))
    ema = " --ema" if cfg.solver.ema.enabled else ""
    my_output = shlex.quote(str(out / "my_predictions"))
    predict_cmd = f"dt predict --config {config} --weights {weights_arg}{ema} --input 'my_images/*.jpg'"
    predict_cmd += f" --output {my_output}"
    lines = [
        "",
        f"dt demo: {demo.model} trained from scratch on {', '.join(cfg.data.datasets.train)} "
        f"({cfg.solver.max_iter} iterations of {cfg.solver.ims_per_batch} images, config {config_source})",
        f"evaluation on {', '.join(cfg.data.datasets.test)} (%):",
        _table(results, demo.tasks),
        f"wall time: {_minutes(total)} min:s{budget} (data {data_seconds:.1f} s, train + eval "
        f"{trained - start - data_seconds:.1f} s, visualize {end - trained:.1f} s)",
        f"files in {out}: config.yaml metrics.jsonl model_final.pth curves.png results.json predictions/",
        "try it on your own images:",
        f"  {predict_cmd}",
    ]
    print("\n".join(lines))
    return {"results": results, "wall_time": total, "data_time": data_seconds}


def demo_command(args: argparse.Namespace) -> int:
    """``dt demo [--task T] [--config FILE] [--output DIR] [--minutes M | --max-iter N] [--threads T]
    [overrides]``: ``--task`` picks the packaged config (``DEMO_TASKS``), which ``--config`` replaces."""
    from .defaults import build_workflow

    start = time.perf_counter()
    task = demo_task(args.task)
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads must be >= 1, got {args.threads}")
    overrides: Sequence[str] = list(args.overrides)
    minutes = args.minutes
    if args.max_iter is not None:
        if args.max_iter < 1:
            raise InputError(f"--max-iter must be >= 1, got {args.max_iter}")
        if minutes is not None:
            raise InputError("give --minutes (a time budget) or --max-iter (a fixed length), not both")
        overrides = [*overrides, f"solver.max_iter={args.max_iter}"]
    elif minutes is None:
        minutes = DEFAULT_MINUTES
    if minutes is not None and not minutes > 0:
        raise InputError(f"--minutes must be > 0, got {minutes:g}")
    with contextlib.ExitStack() as stack:
        path = (
            args.config if args.config is not None else str(stack.enter_context(demo_config_path(args.task)))
        )
        cfg = load_experiment(path, overrides)
    cfg = attrs.evolve(cfg, output_dir=args.output)
    build_workflow(cfg).check()
    source = args.config or f"dt_engine/{task.config}"
    with configure_cpu(args.threads):
        run_demo(cfg, config_source=source, task=args.task, start=start, minutes=minutes)
    return 0
