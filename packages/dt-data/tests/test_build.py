import itertools

import pytest

from dt_data import DatasetCatalog, MetadataCatalog, RandomSubsetTrainingSampler, RepeatFactorTrainingSampler
from dt_data.build import build_mapper, build_test_loader, build_train_loader, build_train_sampler
from dt_data.config import CropConfig, DataConfig, DatasetsConfig, InputConfig, LoaderConfig
from dt_data.datasets import register_shapes


@pytest.fixture(scope="module")
def tiny_names(shapes_root):
    names = register_shapes("unit_build", num_train=6, num_val=3, image_size=64, seed=2, root=shapes_root)
    yield names
    for n in names:
        DatasetCatalog.remove(n)
        MetadataCatalog.remove(n)


def _config(**loader):
    return DataConfig(
        datasets=DatasetsConfig(train=("unit_build_train",), test=("unit_build_val",)),
        input=InputConfig(
            min_size_train=(48, 64),
            min_size_train_sampling="range",
            max_size_train=96,
            min_size_test=64,
            max_size_test=96,
            crop=CropConfig(type="relative", size=(0.8, 0.8)),
        ),
        loader=LoaderConfig(num_workers=0, **loader),
    )


def test_build_mapper_follows_config():
    mapper = build_mapper(_config(), True, mask_on=True)
    assert [type(a).__name__ for a in mapper.augmentations.augs] == [
        "RandomCrop",
        "ResizeShortestEdge",
        "RandomFlip",
    ]
    assert mapper.recompute_boxes and mapper.use_instance_mask and mapper.image_format == "BGR"
    test = build_mapper(_config(), False)
    assert [type(a).__name__ for a in test.augmentations.augs] == ["ResizeShortestEdge"] and not test.is_train


def test_build_train_sampler_by_name(tiny_shapes):
    cfg = LoaderConfig(sampler="RepeatFactorTrainingSampler", repeat_threshold=0.5)
    assert isinstance(build_train_sampler(cfg, tiny_shapes, seed=0), RepeatFactorTrainingSampler)
    cfg = LoaderConfig(sampler="RandomSubsetTrainingSampler", random_subset_ratio=0.5)
    sampler = build_train_sampler(cfg, tiny_shapes, seed=0)
    assert isinstance(sampler, RandomSubsetTrainingSampler)
    assert len(set(itertools.islice(iter(sampler), 40))) == 4


def test_build_train_and_test_loaders(tiny_names):
    loader = build_train_loader(_config(), total_batch_size=2, mask_on=True, seed=0)
    batch = next(iter(loader))
    assert len(batch) == 2
    for d in batch:
        assert d["instances"].has("gt_masks") and max(d["image"].shape[1:]) <= 96
    test = build_test_loader(_config(), "unit_build_val")
    outs = [d for b in test for d in b]
    assert len(outs) == 3 and all(min(d["image"].shape[1:]) == 64 for d in outs)
    with pytest.raises(KeyError, match="unit_build_val"):
        build_test_loader(_config(), "unit_build_vall")
