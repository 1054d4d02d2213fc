"""Fuzzing the failure contract: mutated COCO JSON, images, checkpoints and dataset entries either
load or fail with ONE line of a known error type (``ConfigError``, ``InputError``) - never another
exception. In-process (the ``dt`` command maps exactly these types to exit 2); runs in the slow suite."""

from __future__ import annotations

import copy
import io
import itertools
import json
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from user_data_files import coco_json, write_image

from dt_config import ConfigError
from dt_engine.config.experiment import load_experiment
from dt_engine.defaults import register_config_datasets
from dt_engine.errors import InputError
from dt_engine.preflight import check_dataset
from dt_engine.weights import load_model_weights

pytestmark = pytest.mark.slow
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
_names = (f"fuzz_{i}" for i in itertools.count())

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 200),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.lists(st.integers(-3, 80), max_size=6),
    st.dictionaries(st.sampled_from(["id", "name", "counts", "size"]), st.integers(-2, 5), max_size=3),
)


def _check_one_line(action) -> None:
    try:
        action()
    except (ConfigError, InputError) as err:
        lines = err.problems if isinstance(err, ConfigError) else [str(err)]
        assert lines and all(line and "\n" not in line and "Traceback" not in line for line in lines)


def _project(root: Path, data: dict | bytes) -> Path:
    images = root / "images"
    if not images.is_dir():
        for i in range(2):
            write_image(images / f"img{i}.png", seed=i)
    ann = root / "train.json"
    ann.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
    name = next(_names)
    config = root / "cfg.yaml"
    config.write_text(f"datasets:\n  {name}: {{type: coco, json_file: train.json, image_root: images}}\n")
    return config


def _load_and_check(config: Path, read_images: bool = False) -> None:
    cfg = load_experiment(config)
    register_config_datasets(cfg)
    for name in cfg.datasets:
        check_dataset(name, read_images=read_images)


@SETTINGS
@given(
    part=st.sampled_from(["images", "annotations", "categories"]),
    index=st.integers(0, 3),
    key=st.sampled_from(
        [
            "id",
            "image_id",
            "category_id",
            "bbox",
            "segmentation",
            "file_name",
            "width",
            "height",
            "name",
            "iscrowd",
            "keypoints",
        ]
    ),
    value=values,
    delete=st.booleans(),
)
def test_mutated_annotation_fields(tmp_path_factory, part, index, key, value, delete):
    data = copy.deepcopy(coco_json(2))
    records = data[part]
    record = records[index % len(records)]
    if delete:
        record.pop(key, None)
    else:
        record[key] = value
    root = tmp_path_factory.mktemp("fuzz")
    _check_one_line(lambda: _load_and_check(_project(root, data)))


@SETTINGS
@given(cut=st.floats(0, 1), junk=st.binary(max_size=40), top=st.sampled_from([None, "images", "categories"]))
def test_truncated_or_broken_annotation_files(tmp_path_factory, cut, junk, top):
    data = coco_json(2)
    if top is not None:
        data[top] = junk.hex()  # the wrong type at the top level
    raw = json.dumps(data).encode()
    raw = raw[: int(len(raw) * cut)] + junk
    root = tmp_path_factory.mktemp("fuzz")
    _check_one_line(lambda: _load_and_check(_project(root, raw)))


@SETTINGS
@given(cut=st.floats(0, 1), junk=st.binary(max_size=64), which=st.integers(0, 1))
def test_broken_images_are_found_by_the_full_check(tmp_path_factory, cut, junk, which):
    root = tmp_path_factory.mktemp("fuzz")
    config = _project(root, coco_json(2))
    path = root / "images" / f"img{which}.png"
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * cut)] + junk)
    _check_one_line(lambda: _load_and_check(config, read_images=True))


def _checkpoint_bytes() -> bytes:
    buffer = io.BytesIO()
    torch.save({"model": torch.nn.Linear(3, 2).state_dict(), "iteration": 3}, buffer)
    return buffer.getvalue()


CHECKPOINT = _checkpoint_bytes()


@SETTINGS
@given(cut=st.floats(0, 1), junk=st.binary(max_size=64), suffix=st.sampled_from([".pth", ".pkl", ".pt"]))
def test_mutated_checkpoints(tmp_path_factory, cut, junk, suffix):
    path = tmp_path_factory.mktemp("fuzz") / f"weights{suffix}"
    path.write_bytes(CHECKPOINT[: int(len(CHECKPOINT) * cut)] + junk)
    _check_one_line(lambda: load_model_weights(torch.nn.Linear(3, 2), path))


@SETTINGS
@given(
    kind=st.sampled_from(["coco", "lvis", "sem_seg", "pascal_voc", "cityscapes", "coco_panoptic", "cocoo"]),
    fields=st.dictionaries(
        st.sampled_from(
            [
                "json_file",
                "image_root",
                "gt_root",
                "stuff_classes",
                "dirname",
                "split",
                "year",
                "image_dir",
                "gt_dir",
                "task",
                "panoptic_root",
                "panoptic_json",
                "ignore_label",
            ]
        ),
        values,
        max_size=5,
    ),
)
def test_mutated_dataset_entries(tmp_path_factory, kind, fields):
    root = tmp_path_factory.mktemp("fuzz")
    entry = json.dumps({"type": kind, **fields})  # JSON is YAML
    config = root / "cfg.yaml"
    config.write_text(f"datasets:\n  {next(_names)}: {entry}\n")
    _check_one_line(lambda: _load_and_check(config))
