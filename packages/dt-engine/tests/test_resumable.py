import pytest

from dt_engine.resumable import CountingLoader


def test_counting_loader_resumes_at_the_next_batch():
    loader = CountingLoader(range(10))
    it = iter(loader)
    assert [next(it) for _ in range(4)] == [0, 1, 2, 3]
    state = loader.state_dict()
    assert state == {"batches_consumed": 4}
    resumed = CountingLoader(range(10))
    resumed.load_state_dict(state)
    assert list(resumed) == [4, 5, 6, 7, 8, 9] and resumed.consumed == 10
    assert list(resumed) == list(range(10))  # a later iter() starts over: the skip applies once
    reseeded = CountingLoader(range(100, 103))
    reseeded.load_state_dict(state, skip=False)
    assert list(reseeded) == [100, 101, 102] and reseeded.consumed == 7
    with pytest.raises(ValueError, match="batches_consumed"):
        reseeded.load_state_dict({"batches_consumed": -1})
