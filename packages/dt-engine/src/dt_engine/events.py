"""Scalar metrics recorded during training: ``EventStorage`` and its ``HistoryBuffer``.

Same model as detectron2's ``utils/events.py``: code running inside a trainer calls
``get_event_storage().put_scalar("loss_cls", 0.3)``; writers read the storage periodically,
optionally smoothing each scalar over a window (median) when its ``smoothing_hint`` is True.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

import numpy as np

__all__ = ["EventStorage", "HistoryBuffer", "get_event_storage"]

_STORAGE_STACK: list[EventStorage] = []


class HistoryBuffer:
    """The last ``max_length`` values of one scalar, each with the iteration it was recorded at.

    The global average covers every value ever added, not only the kept ones.
    """

    def __init__(self, max_length: int = 1_000_000) -> None:
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self._data: deque[tuple[float, int]] = deque(maxlen=max_length)
        self._count = 0
        self._sum = 0.0

    def update(self, value: float, iteration: int) -> None:
        """Append ``value`` recorded at ``iteration``."""
        self._data.append((float(value), int(iteration)))
        self._count += 1
        self._sum += float(value)

    def latest(self) -> float:
        if not self._data:
            raise IndexError("the history is empty")
        return self._data[-1][0]

    def median(self, window: int) -> float:
        """Median of the last ``window`` values."""
        return float(np.median([v for v, _ in list(self._data)[-window:]]))

    def avg(self, window: int) -> float:
        """Mean of the last ``window`` values."""
        return float(np.mean([v for v, _ in list(self._data)[-window:]]))

    def global_avg(self) -> float:
        """Mean of every value ever added."""
        if self._count == 0:
            raise IndexError("the history is empty")
        return self._sum / self._count

    def values(self) -> list[tuple[float, int]]:
        """The kept ``(value, iteration)`` pairs, oldest first."""
        return list(self._data)

    def __len__(self) -> int:
        return len(self._data)


class EventStorage:
    """Scalars keyed by name, recorded at the current training iteration.

    Use as a context manager so ``get_event_storage()`` finds it::

        with EventStorage(start_iter=0) as storage:
            storage.iter = 5
            storage.put_scalar("loss", 0.1)
    """

    def __init__(self, start_iter: int = 0, max_length: int = 1_000_000) -> None:
        self.iter = start_iter
        self._max_length = max_length
        self._history: dict[str, HistoryBuffer] = {}
        self._smoothing_hints: dict[str, bool] = {}
        self._latest: dict[str, tuple[float, int]] = {}

    def put_scalar(self, name: str, value: float, smoothing_hint: bool = True) -> None:
        """Record ``value`` under ``name`` at the current iteration.

        ``smoothing_hint`` tells writers whether a windowed median is meaningful (losses) or
        the raw latest value should be reported (learning rate, evaluation results).
        """
        value = float(value)
        history = self._history.get(name)
        if history is None:
            history = self._history[name] = HistoryBuffer(self._max_length)
            self._smoothing_hints[name] = smoothing_hint
        elif self._smoothing_hints[name] != smoothing_hint:
            raise ValueError(f"scalar {name!r} was first recorded with smoothing_hint={not smoothing_hint}")
        history.update(value, self.iter)
        self._latest[name] = (value, self.iter)

    def put_scalars(self, *, smoothing_hint: bool = True, **scalars: float) -> None:
        for name, value in scalars.items():
            self.put_scalar(name, value, smoothing_hint=smoothing_hint)

    def history(self, name: str) -> HistoryBuffer:
        if name not in self._history:
            raise KeyError(f"no scalar named {name!r} has been recorded")
        return self._history[name]

    def histories(self) -> Mapping[str, HistoryBuffer]:
        return dict(self._history)

    def latest(self) -> dict[str, tuple[float, int]]:
        """``name -> (latest value, iteration it was recorded at)``."""
        return dict(self._latest)

    def latest_with_smoothing_hint(self, window: int = 20) -> dict[str, tuple[float, int]]:
        """Like ``latest`` but scalars with ``smoothing_hint`` are the median of the last ``window``."""
        out = {}
        for name, (value, it) in self._latest.items():
            if self._smoothing_hints[name]:
                value = self._history[name].median(window)
            out[name] = (value, it)
        return out

    def smoothing_hints(self) -> dict[str, bool]:
        return dict(self._smoothing_hints)

    def step(self) -> None:
        """Advance the current iteration by one."""
        self.iter += 1

    def __enter__(self) -> EventStorage:
        _STORAGE_STACK.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if not _STORAGE_STACK or _STORAGE_STACK[-1] is not self:
            raise RuntimeError("EventStorage contexts exited out of order")
        _STORAGE_STACK.pop()


def get_event_storage() -> EventStorage:
    """The innermost active ``EventStorage``; raises if none is active."""
    if not _STORAGE_STACK:
        raise RuntimeError("get_event_storage() must be called inside an `with EventStorage(...)` block")
    return _STORAGE_STACK[-1]
