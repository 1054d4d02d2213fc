"""Training curves from ``metrics.jsonl`` as PNG files (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["plot_metrics", "read_metrics"]

Series = dict[str, list[tuple[int, float]]]


def read_metrics(path: str | os.PathLike[str]) -> Series:
    """``name -> [(iteration, value), ...]`` sorted by iteration.

    When an iteration appears more than once (a resumed run re-did it), the last line wins.
    A truncated or malformed line (a killed run) is skipped.
    """
    by_name: dict[str, dict[int, float]] = {}
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
                iteration = int(record["iteration"])
            except (ValueError, KeyError, TypeError):
                continue
            for name, value in record.items():
                if name != "iteration" and isinstance(value, int | float) and not isinstance(value, bool):
                    by_name.setdefault(name, {})[iteration] = float(value)
    return {name: sorted(points.items()) for name, points in by_name.items()}


def _is_ap(name: str) -> bool:
    return "/" in name and name.rsplit("/", 1)[1].startswith("AP")


def _save(series: Series, names: Sequence[str], title: str, ylabel: str, path: Path, log_y: bool) -> None:
    fig = Figure(figsize=(8, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name in names:
        xs, ys = zip(*series[name], strict=True)
        ax.plot(xs, ys, label=name, marker="o" if len(xs) < 20 else None)
    ax.set_title(title)
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    if log_y and all(y > 0 for name in names for _, y in series[name]):
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path)


def plot_metrics(metrics_path: str | os.PathLike[str], output_dir: str | os.PathLike[str]) -> list[Path]:
    """Write ``losses.png``, ``lr.png`` and ``eval_ap.png`` (each when its metrics exist); returns the paths.

    Losses are every metric whose name contains ``loss``; evaluation curves are flattened
    results whose last component starts with ``AP`` (``bbox/AP``, ``segm/AP50``).
    """
    series = read_metrics(metrics_path)
    if not series:
        raise ValueError(f"{metrics_path} holds no metrics")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    plots = [
        ("losses.png", sorted(n for n in series if "loss" in n), "losses", "loss", True),
        ("lr.png", [n for n in ("lr",) if n in series], "learning rate", "lr", False),
        ("eval_ap.png", sorted(n for n in series if _is_ap(n)), "evaluation", "AP", False),
    ]
    for filename, names, title, ylabel, log_y in plots:
        if names:
            _save(series, names, title, ylabel, out / filename, log_y)
            written.append(out / filename)
    return written
