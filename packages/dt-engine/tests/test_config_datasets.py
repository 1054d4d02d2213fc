"""The ``datasets:`` section: one config class per loader type, paths relative to the config file,
registration with metadata (idempotent), and the in-process parts of the failure contract."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import pytest
import torch
from torch import nn
from user_data_files import write_dataset

from dt_config import ConfigError
from dt_data import DatasetCatalog, MetadataCatalog
from dt_engine.checkpoint import Checkpointer, atomic_write_text
from dt_engine.config.datasets import DATASET_TYPES, register_datasets
from dt_engine.config.experiment import dump_config, load_experiment
from dt_engine.errors import InputError
from dt_engine.events import EventStorage
from dt_engine.preflight import check_dataset
from dt_engine.run_folder import claim_run_folder
from dt_engine.writers import JSONWriter


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_every_loader_type_has_a_config_class():
    assert set(DATASET_TYPES) == {"coco", "coco_panoptic", "sem_seg", "lvis", "pascal_voc", "cityscapes"}


def test_paths_are_relative_to_the_config_file_and_the_saved_config_round_trips(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")  # not the config's folder
    path = _config(
        tmp_path,
        "datasets:\n"
        "  a: {type: coco, json_file: ann/a.json, image_root: img}\n"
        "  s: {type: sem_seg, image_root: /abs/img, gt_root: ~/labels, stuff_classes: [sky, road]}\n"
        "  v: {type: pascal_voc, dirname: VOC2012, split: val, year: 2012}\n",
    )
    cfg = load_experiment(path)
    assert cfg.datasets["a"].json_file == str(tmp_path / "ann" / "a.json")
    assert cfg.datasets["s"].image_root == "/abs/img"
    assert cfg.datasets["s"].gt_root == str(Path("~/labels").expanduser())
    assert cfg.datasets["v"].dirname == str(tmp_path / "VOC2012")
    saved = tmp_path / "saved.yaml"
    saved.write_text(dump_config(cfg))
    assert load_experiment(saved) == cfg and saved.read_text() == dump_config(load_experiment(saved))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "{type: cooc, json_file: a, image_root: b}",
            "$.datasets.x.type: unknown dataset type 'cooc' (did you",
        ),
        ("{json_file: a, image_root: b}", "$.datasets.x.type: missing required key (one of cityscapes"),
        ("{type: coco, json_file: a}", "$.datasets.x.image_root: missing required key"),
        ("{type: coco, json_file: a, image_root: b, jsn: 1}", "$.datasets.x.jsn: unknown key"),
        ("{type: sem_seg, image_root: a, gt_root: b, stuff_classes: []}", "$.datasets.x.stuff_classes: "),
        ("{type: pascal_voc, dirname: d, split: s, year: 2010}", "$.datasets.x.year: "),
        ("3", "$.datasets.x: expected a mapping with a 'type' key"),
    ],
)
def test_bad_entries_are_one_line_at_their_path(tmp_path, entry, message):
    with pytest.raises(ConfigError) as info:
        load_experiment(_config(tmp_path, f"datasets:\n  x: {entry}\n"))
    assert len(info.value.problems) == 1 and info.value.problems[0].startswith(message), info.value.problems


def test_registration_sets_metadata_before_loading_and_is_idempotent(tmp_path):
    write_dataset(tmp_path, "train", 2)
    cfg = load_experiment(
        _config(
            tmp_path,
            "datasets:\n  cfgds_train: {type: coco, json_file: ann/train.json, image_root: images/train}\n",
        )
    )
    register_datasets(cfg.datasets)
    register_datasets(cfg.datasets)  # unchanged: nothing happens
    meta = MetadataCatalog.get("cfgds_train")
    assert meta.thing_classes == ["cat", "dog"] and meta.thing_dataset_id_to_contiguous_id == {3: 0, 7: 1}
    assert meta.evaluator_type == "coco"
    assert check_dataset("cfgds_train").images == 2
    assert [a["category_id"] for a in DatasetCatalog.get("cfgds_train")[0]["annotations"]] == [0, 1]
    (tmp_path / "other.json").write_text(json.dumps({"images": [], "categories": [{"id": 1, "name": "x"}]}))
    changed = load_experiment(
        _config(
            tmp_path, "datasets:\n  cfgds_train: {type: coco, json_file: other.json, image_root: images}\n"
        )
    )
    register_datasets(changed.datasets)  # a changed entry replaces the earlier registration
    assert MetadataCatalog.get("cfgds_train").thing_classes == ["x"]
    with pytest.raises(InputError, match=r"dataset 'cfgds_train' is empty: .*other.json gives no images"):
        check_dataset("cfgds_train")
    taken = load_experiment(
        _config(tmp_path, "datasets:\n  shapes_train: {type: coco, json_file: a, image_root: b}\n")
    )
    with pytest.raises(
        ValueError, match=r"\$.datasets.shapes_train: a dataset named 'shapes_train' is already"
    ):
        register_datasets(taken.datasets)


def test_panoptic_and_semantic_metadata(tmp_path):
    cats = [{"id": 1, "name": "person", "isthing": 1}, {"id": 5, "name": "sky", "isthing": 0}]
    (tmp_path / "pan.json").write_text(json.dumps({"annotations": [], "categories": cats}))
    cfg = load_experiment(
        _config(
            tmp_path,
            "datasets:\n"
            "  cfgds_pan: {type: coco_panoptic, image_root: i, panoptic_root: p, panoptic_json: pan.json}\n"
            "  cfgds_sem: {type: sem_seg, image_root: i, gt_root: g, stuff_classes: [a, b],\n"
            "              ignore_label: 0}\n"
            "  cfgds_city: {type: cityscapes, image_dir: i, gt_dir: g, task: sem_seg}\n",
        )
    )
    register_datasets(cfg.datasets)
    pan = MetadataCatalog.get("cfgds_pan")
    assert pan.thing_classes == ["person"] and pan.stuff_classes == ["person", "sky"]
    assert pan.thing_dataset_id_to_contiguous_id == {1: 0} and pan.stuff_dataset_id_to_contiguous_id == {5: 1}
    assert pan.evaluator_type == "coco_panoptic_seg"
    sem = MetadataCatalog.get("cfgds_sem")
    assert sem.stuff_classes == ["a", "b"] and sem.ignore_label == 0 and sem.evaluator_type == "sem_seg"
    assert MetadataCatalog.get("cfgds_city").evaluator_type == "cityscapes_sem_seg"


def test_run_folder_is_claimed_only_when_told(tmp_path):
    claim_run_folder(tmp_path / "new", resume=False, overwrite=False)
    (tmp_path / "notes.txt").write_text("mine")
    claim_run_folder(tmp_path, resume=False, overwrite=False)  # not a run folder
    for name in ("config.yaml", "metrics.jsonl", "model_0000009.pth", "last_checkpoint"):
        (tmp_path / name).write_text("x")
    with pytest.raises(InputError, match="already holds a run .*--resume.*--overwrite"):
        claim_run_folder(tmp_path, resume=False, overwrite=False)
    claim_run_folder(tmp_path, resume=True, overwrite=False)
    claim_run_folder(tmp_path, resume=False, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_resume_falls_back_past_a_truncated_checkpoint(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    model = nn.Linear(2, 2)
    ckpt = Checkpointer(model, tmp_path)
    ckpt.save("model_0000004", iteration=4, collective=False)
    ckpt.save("model_0000009", iteration=9, collective=False)
    data = (tmp_path / "model_0000009.pth").read_bytes()
    (tmp_path / "model_0000009.pth").write_bytes(data[: len(data) // 2])
    assert ckpt.resume_or_load(None, resume=True) == 5
    assert "model_0000009.pth: not a readable checkpoint" in caplog.text
    assert "--resume: resumed from" in caplog.text


def test_metrics_lines_are_strict_json_and_files_follow_the_umask(tmp_path):
    writer = JSONWriter(tmp_path / "metrics.jsonl")
    with EventStorage(0) as storage:
        storage.put_scalar("loss_cls", math.nan, smoothing_hint=False)
        storage.put_scalar("lr", math.inf, smoothing_hint=False)
        storage.put_scalar("loss_box", 0.5, smoothing_hint=False)
        writer.write()
    writer.close()
    line = (tmp_path / "metrics.jsonl").read_text().strip()
    assert json.loads(line) == {"iteration": 0, "loss_cls": None, "lr": None, "loss_box": 0.5}
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        torch.save({}, tmp_path / "plain.pth")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640
