"""Metric writers: console progress, JSON lines (``metrics.jsonl``) and TensorBoard event files.

Each reads the current ``EventStorage`` in ``write()``; ``PeriodicWriter`` (a hook) calls them.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from .events import EventStorage, get_event_storage

__all__ = ["ConsoleWriter", "EventWriter", "JSONWriter", "TensorboardWriter", "max_memory_mb"]


class EventWriter:
    """Writes metrics from the active ``EventStorage``."""

    def write(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release files; the default has none."""


def _new_scalars(storage: EventStorage, window: int, written: dict[str, int]) -> dict[int, dict[str, float]]:
    """Scalars whose latest value is newer than the one last written (``written``: name -> iteration,
    updated), grouped by iteration and smoothed where hinted. Results recorded after the writer
    already wrote their iteration (a final evaluation) are still written, once."""
    by_iter: dict[int, dict[str, float]] = {}
    for name, (value, it) in storage.latest_with_smoothing_hint(window).items():
        if it > written.get(name, -1):
            by_iter.setdefault(it, {})[name] = value
            written[name] = it
    return by_iter


class JSONWriter(EventWriter):
    """Appends one JSON object per iteration to ``path``: ``{"iteration": 19, "total_loss": 0.5, ...}``.

    Lines are appended and flushed, so a resumed run continues the same file. An iteration can
    appear on two lines (a final evaluation recorded after its losses were written; a resumed
    run redoing iterations): readers merge them, the last value of a metric winning. Lines are
    strict JSON: a non-finite value (NaN, inf) is written as ``null``.
    """

    def __init__(self, path: str | os.PathLike[str], window_size: int = 20) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        self.window_size = window_size
        self._written: dict[str, int] = {}

    def write(self) -> None:
        by_iter = _new_scalars(get_event_storage(), self.window_size, self._written)
        for it in sorted(by_iter):
            values = {k: v if math.isfinite(v) else None for k, v in by_iter[it].items()}
            self._file.write(json.dumps({"iteration": it, **values}, sort_keys=True, allow_nan=False) + "\n")
        if by_iter:
            self._file.flush()

    def close(self) -> None:
        self._file.close()


class TensorboardWriter(EventWriter):
    """Scalars as TensorBoard event files in ``log_dir`` (``torch.utils.tensorboard.SummaryWriter``)."""

    def __init__(self, log_dir: str | os.PathLike[str], window_size: int = 20) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(log_dir=str(log_dir))
        self.window_size = window_size
        self._written: dict[str, int] = {}

    def write(self) -> None:
        by_iter = _new_scalars(get_event_storage(), self.window_size, self._written)
        for it in sorted(by_iter):
            for name, value in by_iter[it].items():
                self._writer.add_scalar(name, value, it)
        if by_iter:
            self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def max_memory_mb() -> float:
    """Peak memory of this process in MiB: CUDA allocations when CUDA is in use, else peak RSS."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class ConsoleWriter(EventWriter):
    """Progress: iteration, ETA, iterations per second, losses, LR, peak memory, and with a
    ``deadline`` (a ``clock()`` value) the time left before it.

    On a terminal one progress bar updates in place (tqdm); otherwise (log files, CI) each
    ``write`` prints one plain line.
    """

    def __init__(
        self,
        max_iter: int,
        window_size: int = 20,
        stream: IO[str] | None = None,
        interactive: bool | None = None,
        clock: Callable[[], float] = time.perf_counter,
        deadline: float | None = None,
    ) -> None:
        self.max_iter = max_iter
        self.deadline = deadline
        self.window_size = window_size
        self.stream = stream if stream is not None else sys.stdout
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self._clock = clock
        self._last: tuple[int, float] | None = None
        self._bar: Any = None

    def _rate(self, iteration: int) -> float | None:
        now = self._clock()
        rate = None
        if self._last is not None and iteration > self._last[0] and now > self._last[1]:
            rate = (iteration - self._last[0]) / (now - self._last[1])
        self._last = (iteration, now)
        return rate

    def _fields(self, storage: EventStorage) -> tuple[int, list[str]]:
        latest = storage.latest_with_smoothing_hint(self.window_size)
        iteration = storage.iter
        rate = self._rate(iteration)
        fields = []
        if "time" in latest:
            seconds_per_iter = storage.history("time").median(1000)
            rate = 1.0 / seconds_per_iter if seconds_per_iter > 0 else rate
        if rate:
            eta = datetime.timedelta(seconds=int((self.max_iter - iteration - 1) / rate))
            fields += [f"eta: {eta}", f"it/s: {rate:.2f}"]
        losses = sorted(k for k in latest if "loss" in k)
        fields += [f"{k}: {latest[k][0]:.4g}" for k in losses]
        if "lr" in latest:
            fields.append(f"lr: {latest['lr'][0]:.4g}")
        fields.append(f"max_mem: {max_memory_mb():.0f}M")
        if self.deadline is not None:
            left = max(0, int(self.deadline - self._clock()))
            fields.append(f"budget left: {left // 60}:{left % 60:02d}")
        return iteration, fields

    def write(self) -> None:
        iteration, fields = self._fields(get_event_storage())
        if self.interactive:
            from tqdm import tqdm

            if self._bar is None:
                self._bar = tqdm(total=self.max_iter, file=self.stream, dynamic_ncols=True, leave=True)
            self._bar.n = min(iteration + 1, self.max_iter)
            self._bar.set_postfix_str("  ".join(fields), refresh=False)
            self._bar.refresh()
        else:
            self.stream.write(f"iter: {iteration + 1}/{self.max_iter}  " + "  ".join(fields) + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
