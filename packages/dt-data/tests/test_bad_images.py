"""Bad images: one-line ``ImageError``s naming the file, 16-bit/float images scaled to 8-bit, and the
mapper's ``skip_bad_images`` switch (counted, the dict replaced by None so another is drawn)."""

import io
import logging

import numpy as np
import pytest
from PIL import Image

from dt_data import DataConfig, DataError, ImageError, build
from dt_data import detection_utils as utils
from dt_data.config import LoaderConfig
from dt_data.dataset_mapper import DatasetMapper


def _png(path, array, mode=None):
    Image.fromarray(array, mode=mode).save(path)
    return str(path)


def test_truncated_and_non_images_are_image_errors(tmp_path):
    good = io.BytesIO()
    Image.fromarray(np.full((40, 50, 3), 90, np.uint8)).save(good, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    (tmp_path / "text.jpg").write_text("hello")
    for name in ("cut.jpg", "text.jpg"):
        with pytest.raises(ImageError, match=rf"{name}.*expected a complete image file") as info:
            utils.read_image(str(tmp_path / name), "BGR")
        assert isinstance(info.value, DataError) and "\n" not in str(info.value)


def test_16_bit_and_float_images_are_scaled_to_8_bit(tmp_path, caplog):
    ramp = (np.arange(20 * 30).reshape(20, 30) * 100).astype(np.uint16)  # up to 59900
    path = _png(tmp_path / "deep.png", ramp)
    with caplog.at_level(logging.WARNING):
        bgr = utils.read_image(path, "BGR")
    assert bgr.dtype == np.uint8 and bgr.shape == (20, 30, 3)
    np.testing.assert_array_equal(bgr[:, :, 0], np.round(ramp / 257.0).astype(np.uint8))
    assert len(np.unique(bgr)) > 100  # not all white, as a plain convert("RGB") gives
    floats = Image.fromarray(np.linspace(0, 1, 600, dtype=np.float32).reshape(20, 30), mode="F")
    scaled = utils.to_8bit(floats)
    assert scaled.mode == "L" and np.asarray(scaled).max() == 255 and np.asarray(scaled).min() == 0
    labels = utils.read_image(path, "L")  # label maps are never rescaled
    assert labels.dtype == np.uint8


def test_mapper_skips_bad_images_only_when_asked(tmp_path):
    good = _png(tmp_path / "good.png", np.zeros((20, 30, 3), np.uint8))
    (tmp_path / "bad.png").write_text("not a png")
    record = {"file_name": str(tmp_path / "bad.png"), "image_id": 1, "height": 20, "width": 30}
    with pytest.raises(ImageError, match="bad.png"):
        DatasetMapper(True, augmentations=[])(record)
    mapper = DatasetMapper(True, augmentations=[], skip_bad_images=True)
    assert mapper(record) is None and mapper(dict(record, file_name=str(tmp_path / "gone.png"))) is None
    assert mapper(dict(record, file_name=good, width=31)) is None  # size differs from the annotation
    assert mapper.skipped_images == 3
    assert mapper(dict(record, file_name=good, annotations=[]))["image"].shape == (3, 20, 30)


def test_loader_config_switch_reaches_the_training_mapper_only():
    config = DataConfig(loader=LoaderConfig(skip_bad_images=True))
    assert build.build_mapper(config, True).skip_bad_images
    assert not build.build_mapper(config, False).skip_bad_images
    assert not build.build_mapper(DataConfig(), True).skip_bad_images
