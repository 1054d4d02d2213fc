import attrs
import pytest

from dt_data.config import CropConfig, DataConfig, InputConfig, LoaderConfig


def test_defaults_and_frozen():
    cfg = DataConfig()
    assert cfg.input.min_size_train == (800,)
    assert cfg.datasets.train == ("shapes_train",)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        cfg.input = InputConfig()


@pytest.mark.parametrize(
    "factory, match",
    [
        (lambda: InputConfig(format="XYZ"), "format"),
        (lambda: InputConfig(min_size_train=(), max_size_train=10), "min_size_train"),
        (lambda: InputConfig(min_size_train=(1, 2, 3), min_size_train_sampling="range"), "range"),
        (lambda: InputConfig(mask_format="rle"), "mask_format"),
        (lambda: CropConfig(type="relative", size=(1.5, 0.5)), "relative"),
        (lambda: CropConfig(type="absolute_range", size=(10, 5)), "absolute_range"),
        (lambda: LoaderConfig(num_workers=-1), "num_workers"),
        (lambda: LoaderConfig(sampler="RepeatFactorTrainingSampler"), "repeat_threshold"),
        (lambda: LoaderConfig(sampler="Nope"), "sampler"),
    ],
)
def test_validation_errors_name_the_field(factory, match):
    with pytest.raises((ValueError, TypeError), match=match):
        factory()


def test_lists_convert_to_tuples():
    cfg = InputConfig(
        min_size_train=[640, 800], min_size_train_sampling="range", crop=CropConfig(size=[0.5, 0.6])
    )
    assert cfg.min_size_train == (640, 800) and cfg.crop.size == (0.5, 0.6)


def test_single_values_become_one_tuples():
    from dt_data.config import DatasetsConfig

    assert DatasetsConfig(train="a", test=["b", "c"]).train == ("a",)
    assert InputConfig(min_size_train=640).min_size_train == (640,)
