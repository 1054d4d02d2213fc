"""Make any deterministic loader resumable by counting the batches it handed out."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["CountingLoader"]

T = TypeVar("T")


class CountingLoader(Generic[T]):
    """Wraps an iterable of batches and counts those taken; ``state_dict`` holds the count.

    After ``load_state_dict`` the next ``iter()`` skips that many batches, so a loader that is
    deterministic for its seed (dt-data's, with its sampler and per-worker RNG seeded) resumes
    at exactly the batch where the checkpointed run was. Skipping still loads the skipped
    batches (data time, no model time). With ``skip=False`` in ``load_state_dict`` the count is
    kept but nothing is skipped (for a loader re-seeded instead).
    """

    def __init__(self, loader: Iterable[T]) -> None:
        self.loader = loader
        self.consumed = 0
        self._skip = 0

    def __iter__(self) -> Iterator[T]:
        iterator = iter(self.loader)
        skip, self._skip = self._skip, 0
        for _ in range(skip):
            next(iterator)
        for batch in iterator:
            self.consumed += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        return {"batches_consumed": self.consumed}

    def load_state_dict(self, state: dict[str, Any], skip: bool = True) -> None:
        consumed = int(state["batches_consumed"])
        if consumed < 0:
            raise ValueError(f"batches_consumed must be >= 0, got {consumed}")
        self.consumed = consumed
        self._skip = consumed if skip else 0
