import itertools
from collections import Counter

import pytest
import torch

from dt_data import (
    InferenceSampler,
    RandomSubsetTrainingSampler,
    RepeatFactorTrainingSampler,
    TrainingSampler,
)
from dt_data.common import SerializedList


def _take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_training_sampler_is_seeded_permutations():
    a = _take(TrainingSampler(10, seed=4), 30)
    assert a == _take(TrainingSampler(10, seed=4), 30)
    assert a != _take(TrainingSampler(10, seed=5), 30)
    for epoch in range(3):
        assert sorted(a[10 * epoch : 10 * epoch + 10]) == list(range(10))
    g = torch.Generator().manual_seed(4)
    assert a[:10] == torch.randperm(10, generator=g).tolist()
    assert _take(TrainingSampler(3, shuffle=False, seed=0), 5) == [0, 1, 2, 0, 1]
    with pytest.raises(ValueError, match="size"):
        TrainingSampler(0)


def test_training_sampler_shards_across_ranks():
    sampler = TrainingSampler(10, seed=1)
    full = _take(sampler, 40)
    sampler._rank, sampler._world_size = 1, 2
    assert _take(sampler, 20) == full[1::2]


def test_random_subset_sampler():
    s = RandomSubsetTrainingSampler(20, 0.25, seed_shuffle=1, seed_subset=2)
    out = _take(s, 50)
    assert len(set(out)) == 5
    assert set(out) == set(_take(RandomSubsetTrainingSampler(20, 0.25, seed_shuffle=9, seed_subset=2), 50))
    with pytest.raises(ValueError):
        RandomSubsetTrainingSampler(20, 0.0)


def test_repeat_factors_and_sampler():
    dicts = [{"annotations": [{"category_id": 0}]}] * 9 + [
        {"annotations": [{"category_id": 1}]},
        {"annotations": []},
    ]
    rf = RepeatFactorTrainingSampler.repeat_factors_from_category_frequency(dicts, repeat_thresh=0.5)
    # f(0) = 9/11 -> 1; f(1) = 1/11 -> sqrt(0.5 * 11) ; empty image -> 1
    torch.testing.assert_close(rf[-2], torch.tensor((0.5 * 11) ** 0.5))
    assert rf[0] == 1.0 and rf[-1] == 1.0
    counts = Counter(_take(RepeatFactorTrainingSampler(rf, seed=0), 5000))
    ratio = counts[9] / counts[0]
    assert abs(ratio - float(rf[-2])) < 0.3
    with pytest.raises(ValueError, match="finite"):
        RepeatFactorTrainingSampler([1.0, -1.0])


@pytest.mark.parametrize("size, world", [(10, 3), (2, 4), (0, 2)])
def test_inference_sampler_covers_each_index_once(size, world):
    shards = [list(InferenceSampler._get_local_indices(size, world, r)) for r in range(world)]
    assert sum(shards, []) == list(range(size))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_serialized_list_round_trips():
    items = [{"a": i, "b": [i] * i} for i in range(5)] + [{}]
    s = SerializedList(items)
    assert len(s) == 6 and [s[i] for i in range(6)] == items and s[-1] == {}
    s[2]["a"] = 100
    assert s[2]["a"] == 2
    with pytest.raises(IndexError):
        s[6]
    assert len(SerializedList([])) == 0
