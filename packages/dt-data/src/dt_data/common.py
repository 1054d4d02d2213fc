"""Dataset wrappers: compact serialized dataset lists, per-sample mapping with per-worker seeded
generators, sampler-driven iterable datasets and aspect-ratio grouping."""

from __future__ import annotations

import copy
import inspect
import itertools
import logging
import os
import pickle
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils import data as torchdata

from dt_config import get_rank

__all__ = [
    "AspectRatioGroupedDataset",
    "DatasetFromList",
    "MapDataset",
    "SerializedList",
    "ToIterableDataset",
]

logger = logging.getLogger(__name__)


class SerializedList:
    """Read-only list stored as one numpy byte buffer of pickles plus an offsets array.

    Worker processes share the two arrays copy-on-write; reading an item unpickles a fresh copy and
    touches no Python object refcounts of the shared data, so worker memory does not grow (unlike a
    Python ``list[dict]``, whose pages are dirtied by refcounting).
    """

    def __init__(self, items: Sequence[Any]) -> None:
        blobs = [
            np.frombuffer(pickle.dumps(x, protocol=pickle.HIGHEST_PROTOCOL), dtype=np.uint8) for x in items
        ]
        self._addr = np.cumsum(np.asarray([len(b) for b in blobs], dtype=np.int64))
        self._data = np.concatenate(blobs) if blobs else np.zeros(0, dtype=np.uint8)

    def __len__(self) -> int:
        return len(self._addr)

    def __getitem__(self, idx: int) -> Any:
        if not -len(self) <= idx < len(self):
            raise IndexError(f"SerializedList index {idx} out of range for length {len(self)}")
        idx = idx % len(self)
        start = 0 if idx == 0 else int(self._addr[idx - 1])
        end = int(self._addr[idx])
        return pickle.loads(memoryview(self._data[start:end]))

    @property
    def nbytes(self) -> int:
        return self._data.nbytes + self._addr.nbytes


class DatasetFromList(torchdata.Dataset):
    """Map-style dataset over a list; ``serialize=True`` stores it as a :class:`SerializedList`.
    Items are returned as fresh copies (deep-copied when ``copy`` and not serialized)."""

    def __init__(self, items: Sequence[Any], copy: bool = True, serialize: bool = True) -> None:
        if not isinstance(items, Sequence) and not isinstance(items, SerializedList):
            raise TypeError(f"DatasetFromList: items must be a sequence, got {type(items).__name__}")
        self._copy = copy
        self._serialize = serialize
        if serialize and not isinstance(items, SerializedList):
            items = SerializedList(items)
            logger.info("Serialized dataset takes %.2f MiB", items.nbytes / 1024**2)
        self._lst = items

    def __len__(self) -> int:
        return len(self._lst)

    def __getitem__(self, idx: int) -> Any:
        item = self._lst[idx]
        if self._copy and not self._serialize:
            return copy.deepcopy(item)
        return item


class _WorkerGenerator:
    """A ``np.random.Generator`` per process, seeded from (seed, rank, worker id); recreated after fork."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._pid: int | None = None
        self._rng: np.random.Generator | None = None

    def get(self) -> np.random.Generator:
        if self._rng is None or self._pid != os.getpid():
            info = torchdata.get_worker_info()
            worker_id = info.id if info is not None else -1
            self._rng = np.random.default_rng(np.random.SeedSequence([self.seed, get_rank(), worker_id + 1]))
            self._pid = os.getpid()
        return self._rng


def _accepts_rng(func: Callable) -> bool:
    try:
        return "rng" in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


class MapDataset(torchdata.Dataset):
    """Apply ``map_func`` to each item. A map function taking an ``rng`` keyword gets a generator seeded
    from (``seed``, rank, worker id). When ``map_func`` returns None (e.g. an image left without
    annotations), another index is drawn for map-style datasets."""

    def __init__(self, dataset: Any, map_func: Callable[..., Any], seed: int = 0) -> None:
        self._dataset = dataset
        self._map_func = map_func
        self._pass_rng = _accepts_rng(map_func)
        self._generator = _WorkerGenerator(seed)

    def _map(self, item: Any) -> Any:
        if self._pass_rng:
            return self._map_func(item, rng=self._generator.get())
        return self._map_func(item)

    def __len__(self) -> int:
        return len(self._dataset)

    def __getitem__(self, idx: int) -> Any:
        cur = int(idx)
        for attempt in range(1, 101):
            out = self._map(self._dataset[cur])
            if out is not None:
                return out
            if attempt >= 3:
                logger.warning("map function returned None for index %d; %d attempts so far", idx, attempt)
            cur = int(self._generator.get().integers(len(self._dataset)))
        raise RuntimeError(f"MapDataset: map function returned None 100 times in a row (from index {idx})")

    def __iter__(self) -> Iterator[Any]:
        for item in self._dataset:
            out = self._map(item)
            if out is not None:
                yield out


class ToIterableDataset(torchdata.IterableDataset):
    """Iterate a map-style dataset in the order of ``sampler`` (already sharded across DDP ranks); each
    DataLoader worker takes every ``num_workers``-th index, so together they follow the sampler."""

    def __init__(self, dataset: torchdata.Dataset, sampler: Iterable[int]) -> None:
        if isinstance(dataset, torchdata.IterableDataset):
            raise TypeError("ToIterableDataset needs a map-style dataset")
        self.dataset = dataset
        self.sampler = sampler

    def __iter__(self) -> Iterator[Any]:
        info = torchdata.get_worker_info()
        indices: Iterable[int] = iter(self.sampler)
        if info is not None and info.num_workers > 1:
            indices = itertools.islice(indices, info.id, None, info.num_workers)
        for idx in indices:
            yield self.dataset[idx]

    def __len__(self) -> int:
        return len(self.sampler)  # type: ignore[arg-type]


class AspectRatioGroupedDataset(torchdata.IterableDataset):
    """Batch dicts of an iterable so each batch holds only landscape (w > h) or only portrait images
    (by the dicts' ``width``/``height``); yields ``list[dict]`` of length ``batch_size``."""

    def __init__(self, dataset: Iterable[dict], batch_size: int) -> None:
        if batch_size <= 0:
            raise ValueError(f"AspectRatioGroupedDataset: batch_size must be positive, got {batch_size}")
        self.dataset = dataset
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[list[dict]]:
        buckets: list[list[dict]] = [[], []]
        for d in self.dataset:
            w, h = d["width"], d["height"]
            bucket = buckets[0 if w > h else 1]
            bucket.append(d)
            if len(bucket) == self.batch_size:
                yield bucket[:]
                del bucket[:]


def worker_init_fn(seed: int) -> Callable[[int], None]:
    """A DataLoader ``worker_init_fn`` seeding torch, numpy's and Python's global generators from
    (seed, rank, worker id), for user map functions that use them."""
    return _SeedWorker(seed)


class _SeedWorker:
    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def __call__(self, worker_id: int) -> None:
        import random

        ss = np.random.SeedSequence([self.seed, get_rank(), worker_id + 1])
        s32 = int(ss.generate_state(1, dtype=np.uint32)[0])
        torch.manual_seed(s32)
        np.random.seed(s32)  # noqa: NPY002 (seeds legacy user code; dt itself uses explicit generators)
        random.seed(s32)
