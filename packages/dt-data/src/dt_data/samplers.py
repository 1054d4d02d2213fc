"""Samplers (detectron2 semantics): infinite seeded training streams sharded across DDP ranks, and a
finite inference sampler giving each rank a contiguous shard."""

from __future__ import annotations

import itertools
import logging
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from dt_config import get_rank, get_world_size

__all__ = [
    "InferenceSampler",
    "RandomSubsetTrainingSampler",
    "RepeatFactorTrainingSampler",
    "TrainingSampler",
    "shared_random_seed",
]

logger = logging.getLogger(__name__)


def shared_random_seed() -> int:
    """A random seed, the same on every DDP rank (rank 0's)."""
    seed = int(np.random.SeedSequence().generate_state(1, dtype=np.uint32)[0] >> 1)
    if get_world_size() > 1:
        holder = [seed]
        dist.broadcast_object_list(holder, src=0)
        seed = int(holder[0])
    return seed


def _check_size(name: str, size: int) -> None:
    if not isinstance(size, int) or size <= 0:
        raise ValueError(f"{name}: size must be a positive int, got {size!r}")


class _ShardedInfinite(Sampler[int]):
    def __init__(self, seed: int | None) -> None:
        self._seed = shared_random_seed() if seed is None else int(seed)
        self._rank = get_rank()
        self._world_size = get_world_size()

    def _infinite_indices(self) -> Iterator[int]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[int]:
        yield from itertools.islice(self._infinite_indices(), self._rank, None, self._world_size)


class TrainingSampler(_ShardedInfinite):
    """Infinite stream of indices in ``[0, size)``: successive permutations drawn from a torch generator
    seeded with ``seed`` (identical on all ranks); rank r takes every world_size-th index from r."""

    def __init__(self, size: int, shuffle: bool = True, seed: int | None = None) -> None:
        _check_size("TrainingSampler", size)
        super().__init__(seed)
        self._size = size
        self._shuffle = shuffle

    def _infinite_indices(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self._seed)
        while True:
            if self._shuffle:
                yield from torch.randperm(self._size, generator=g).tolist()
            else:
                yield from range(self._size)


class RandomSubsetTrainingSampler(TrainingSampler):
    """TrainingSampler over a fixed random subset of ``int(subset_ratio * size)`` indices, chosen with
    ``seed_subset``; the stream is shuffled with ``seed_shuffle``."""

    def __init__(
        self,
        size: int,
        subset_ratio: float,
        shuffle: bool = True,
        seed_shuffle: int | None = None,
        seed_subset: int | None = None,
    ) -> None:
        if not 0.0 < subset_ratio <= 1.0:
            raise ValueError(
                f"RandomSubsetTrainingSampler: subset_ratio must be in (0, 1], got {subset_ratio}"
            )
        super().__init__(size, shuffle, seed_shuffle)
        self._size_subset = int(size * subset_ratio)
        if self._size_subset == 0:
            raise ValueError(
                f"RandomSubsetTrainingSampler: subset_ratio {subset_ratio} of {size} selects nothing"
            )
        seed_subset = shared_random_seed() if seed_subset is None else int(seed_subset)
        g = torch.Generator()
        g.manual_seed(seed_subset)
        self._indexes_subset = torch.randperm(self._size, generator=g)[: self._size_subset]

    def _infinite_indices(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self._seed)
        while True:
            if self._shuffle:
                perm = torch.randperm(self._size_subset, generator=g)
                yield from self._indexes_subset[perm].tolist()
            else:
                yield from self._indexes_subset.tolist()


class RepeatFactorTrainingSampler(_ShardedInfinite):
    """Infinite stream where image i appears ``repeat_factors[i]`` times per epoch on average
    (stochastic rounding of the fractional part each epoch), as for LVIS (Gupta et al. 2019)."""

    def __init__(
        self, repeat_factors: torch.Tensor | Sequence[float], shuffle: bool = True, seed: int | None = None
    ) -> None:
        super().__init__(seed)
        rf = torch.as_tensor(repeat_factors, dtype=torch.float32)
        if rf.ndim != 1 or len(rf) == 0:
            raise ValueError(
                f"RepeatFactorTrainingSampler: repeat_factors must be a non-empty 1-D, got {rf.shape}"
            )
        if bool((rf < 0).any()) or not bool(torch.isfinite(rf).all()):
            raise ValueError("RepeatFactorTrainingSampler: repeat_factors must be finite and >= 0")
        self._shuffle = shuffle
        self._int_part = torch.trunc(rf)
        self._frac_part = rf - self._int_part

    @staticmethod
    def repeat_factors_from_category_frequency(
        dataset_dicts: Sequence[dict], repeat_thresh: float, sqrt: bool = True
    ) -> torch.Tensor:
        """Per image: max over its categories c of ``max(1, sqrt(t / f(c)))`` (or ``t / f(c)`` when not
        ``sqrt``), where f(c) is the fraction of images containing c; 1.0 for images with none.
        Returns ``Tensor[N]`` float32."""
        category_freq: dict[int, float] = defaultdict(int)
        for d in dataset_dicts:
            for cat_id in {ann["category_id"] for ann in d.get("annotations", [])}:
                category_freq[cat_id] += 1
        num_images = len(dataset_dicts)
        for k in category_freq:
            category_freq[k] /= num_images
        category_rep = {
            c: max(1.0, (math.sqrt(repeat_thresh / f) if sqrt else repeat_thresh / f))
            for c, f in category_freq.items()
        }
        rep_factors = []
        for d in dataset_dicts:
            cat_ids = {ann["category_id"] for ann in d.get("annotations", [])}
            rep_factors.append(max({category_rep[c] for c in cat_ids}, default=1.0))
        return torch.tensor(rep_factors, dtype=torch.float32)

    def _get_epoch_indices(self, generator: torch.Generator) -> torch.Tensor:
        rands = torch.rand(len(self._frac_part), generator=generator)
        rep = self._int_part + (rands < self._frac_part).float()
        indices = torch.repeat_interleave(torch.arange(len(rep)), rep.long())
        return indices

    def _infinite_indices(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self._seed)
        while True:
            indices = self._get_epoch_indices(g)
            if self._shuffle:
                perm = torch.randperm(len(indices), generator=g)
                yield from indices[perm].tolist()
            else:
                yield from indices.tolist()


class InferenceSampler(Sampler[int]):
    """Each index of ``[0, size)`` exactly once across ranks: rank r gets a contiguous shard; the first
    ``size % world_size`` ranks get one extra index."""

    def __init__(self, size: int) -> None:
        if not isinstance(size, int) or size < 0:
            raise ValueError(f"InferenceSampler: size must be a non-negative int, got {size!r}")
        self._size = size
        rank, world = get_rank(), get_world_size()
        self._local_indices = self._get_local_indices(size, world, rank)

    @staticmethod
    def _get_local_indices(total_size: int, world_size: int, rank: int) -> range:
        shard_size = total_size // world_size
        left = total_size % world_size
        shard_sizes = [shard_size + int(r < left) for r in range(world_size)]
        begin = sum(shard_sizes[:rank])
        return range(begin, begin + shard_sizes[rank])

    def __iter__(self) -> Iterator[int]:
        yield from self._local_indices

    def __len__(self) -> int:
        return len(self._local_indices)
