import numpy as np
import pytest
import torch

from dt_data import DatasetMapper, build_detection_test_loader, build_detection_train_loader
from dt_data import transforms as T
from dt_data.common import AspectRatioGroupedDataset, MapDataset


def _mapper(train=True):
    return DatasetMapper(train, augmentations=[T.ResizeShortestEdge((48, 64), 100), T.RandomFlip()])


def _signature(batches):
    return [
        [(b["image_id"], tuple(b["image"].shape), int(b["image"].float().sum())) for b in batch]
        for batch in batches
    ]


@pytest.mark.parametrize("grouping", [True, False])
def test_train_loader_is_reproducible_with_two_workers(tiny_shapes, grouping):
    def run():
        loader = build_detection_train_loader(
            tiny_shapes,
            mapper=_mapper(),
            total_batch_size=2,
            num_workers=2,
            seed=11,
            aspect_ratio_grouping=grouping,
        )
        it = iter(loader)
        return [next(it) for _ in range(6)]

    a, b = run(), run()
    assert _signature(a) == _signature(b)
    assert all(len(batch) == 2 for batch in a)
    assert all(isinstance(x["instances"].gt_classes, torch.Tensor) for batch in a for x in batch)
    # workers draw different augmentations: not every image has the same size
    assert len({x["image"].shape for batch in a for x in batch}) > 1


def test_train_loader_validation(tiny_shapes):
    with pytest.raises(ValueError, match="total_batch_size"):
        build_detection_train_loader(tiny_shapes, mapper=None, total_batch_size=0)
    with pytest.raises(TypeError, match="dataset"):
        build_detection_train_loader(3, mapper=None, total_batch_size=1)


def test_test_loader_visits_each_image_once_in_order(tiny_shapes):
    loader = build_detection_test_loader(tiny_shapes, mapper=_mapper(False), batch_size=3)
    batches = list(loader)
    assert [len(b) for b in batches] == [3, 3, 2]
    ids = [d["image_id"] for b in batches for d in b]
    assert ids == [d["image_id"] for d in tiny_shapes]
    assert "instances" not in batches[0][0] and batches[0][0]["height"] == 64


def test_map_dataset_retries_none_and_passes_rng():
    calls = []

    def fn(x, rng):
        calls.append(x)
        assert isinstance(rng, np.random.Generator)
        return None if x == 0 else x

    ds = MapDataset([0, 1, 2], fn, seed=0)
    assert ds[0] in (1, 2)
    assert list(iter(MapDataset([0, 1], lambda x: x or None))) == [1]


def test_aspect_ratio_grouping():
    items = [
        {"width": 10, "height": 5, "i": i} if i % 3 else {"width": 5, "height": 10, "i": i} for i in range(12)
    ]
    batches = list(AspectRatioGroupedDataset(items, 2))
    for batch in batches:
        assert len({d["width"] > d["height"] for d in batch}) == 1
    assert sum(len(b) for b in batches) == 12


def test_proposal_files_load_safely(tmp_path):
    import os
    import pickle

    from dt_data.proposals import load_proposals_into_dataset

    path = tmp_path / "props.pkl"
    boxes = [np.array([[0, 0, 5, 5], [1, 1, 9, 9]], np.float32), np.zeros((0, 4), np.float32)]
    with open(path, "wb") as f:
        pickle.dump({"indexes": [7, "8"], "boxes": boxes, "scores": [np.array([0.1, 0.9]), np.zeros(0)]}, f)
    out = load_proposals_into_dataset([{"image_id": 7}, {"image_id": 8}], str(path))
    np.testing.assert_array_equal(out[0]["proposal_boxes"], boxes[0][::-1])
    np.testing.assert_array_equal(out[0]["proposal_objectness_logits"], [0.9, 0.1])
    assert out[1]["proposal_boxes"].shape == (0, 4)
    with pytest.raises(ValueError, match="image_id=9"):
        load_proposals_into_dataset([{"image_id": 9}], str(path))

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with open(path, "wb") as f:
        pickle.dump({"ids": [1], "boxes": [Evil()], "objectness_logits": [np.zeros(1)]}, f)
    with pytest.raises(ValueError, match="not allowed"):
        load_proposals_into_dataset([{"image_id": 1}], str(path))
