"""The load-time check that every head predicts as many classes as the training data has, for the
meta-architectures beyond R-CNN: RetinaNet and FCOS (``model.num_classes``), SemanticSegmentor
(``model.sem_seg_head.num_classes`` against ``stuff_classes``, and its ``ignore_value`` against the
data's ``ignore_label``) and Panoptic FPN (both heads)."""

from __future__ import annotations

from pathlib import Path

import pytest
from user_data_files import error_lines, run_dt

import dt_engine
from dt_engine.config.experiment import load_experiment
from dt_engine.config.model_facts import model_facts
from dt_engine.defaults import DefaultTrainer
from dt_engine.errors import InputError

CONFIGS = Path(dt_engine.__file__).parent / "configs"

PANOPTIC_FPN = """\
model:
  name: PanopticFPN
  roi_heads: {name: StandardROIHeads, num_classes: 5, branches: {mask: {name: MaskBranch}}}
  sem_seg_head: {num_classes: 3}
data: {datasets: {train: [shapes_train_panoptic_separated], test: []}}
test: {eval_period: 0, val_loss_period: 0}
"""


def _check(config: Path, *overrides: str) -> None:
    DefaultTrainer(load_experiment(config, list(overrides))).check()


@pytest.fixture
def panoptic_fpn(tmp_path: Path) -> Path:
    path = tmp_path / "panoptic_fpn.yaml"
    path.write_text(PANOPTIC_FPN)
    return path


@pytest.mark.parametrize("config", ["shapes_retinanet.yaml", "shapes_fcos.yaml", "shapes_semantic_fpn.yaml"])
def test_the_shipped_configs_match_their_data(config):
    _check(CONFIGS / config)


@pytest.mark.parametrize(
    ("config", "override", "message"),
    [
        (
            "shapes_retinanet.yaml",
            "model.num_classes=4",
            "dataset 'shapes_train' has 5 classes, model.num_classes is 4 (set model.num_classes=5)",
        ),
        (
            "shapes_fcos.yaml",
            "model.num_classes=6",
            "dataset 'shapes_train' has 5 classes, model.num_classes is 6 (set model.num_classes=5)",
        ),
        (
            "shapes_semantic_fpn.yaml",
            "model.sem_seg_head.num_classes=5",
            "dataset 'shapes_train_sem_seg' has 7 stuff classes (semantic labels), "
            "model.sem_seg_head.num_classes is 5 (set model.sem_seg_head.num_classes=7)",
        ),
        (
            "shapes_semantic_fpn.yaml",
            "model.sem_seg_head.ignore_value=0",
            "dataset 'shapes_train_sem_seg' marks unlabelled pixels with ignore_label 255, "
            "model.sem_seg_head.ignore_value is 0 (set model.sem_seg_head.ignore_value=255)",
        ),
    ],
)
def test_a_head_that_does_not_match_the_training_data_is_named(config, override, message):
    with pytest.raises(InputError) as info:
        _check(CONFIGS / config, override)
    assert str(info.value) == message


def test_panoptic_fpn_checks_both_heads(panoptic_fpn):
    facts = model_facts(load_experiment(panoptic_fpn).model)
    assert [(c.kind, c.key) for c in facts.class_counts] == [
        ("thing", "model.roi_heads.num_classes"),
        ("stuff", "model.sem_seg_head.num_classes"),
    ]
    _check(panoptic_fpn)
    with pytest.raises(InputError, match=r"has 5 classes, model.roi_heads.num_classes is 80"):
        _check(panoptic_fpn, "model.roi_heads.num_classes=80")
    with pytest.raises(InputError, match=r"has 3 stuff classes .*model.sem_seg_head.num_classes is 54"):
        _check(panoptic_fpn, "model.sem_seg_head.num_classes=54")


def test_panoptic_fpn_refuses_semantic_labels_per_category(panoptic_fpn):
    with pytest.raises(InputError) as info:
        _check(
            panoptic_fpn, "data.datasets.train=[shapes_train_panoptic]", "model.sem_seg_head.num_classes=7"
        )
    assert str(info.value) == (
        "dataset 'shapes_train_panoptic' does not label all things as semantic class 0: PanopticFPN's "
        "semantic head needs the separated panoptic form (things 0, stuff classes from 1), "
        "e.g. shapes_train_panoptic_separated"
    )


def test_a_test_dataset_may_have_fewer_classes_but_not_more():
    config = CONFIGS / "shapes_retinanet.yaml"
    _check(config, "model.num_classes=5", "data.datasets.train=[]")
    with pytest.raises(InputError, match="dataset 'shapes_val' has 5 classes, model.num_classes is 4"):
        _check(config, "model.num_classes=4", "data.datasets.train=[]")


def test_dt_train_reports_it_in_one_line_before_writing(tmp_path):
    out = tmp_path / "out"
    result = run_dt(
        "train", "--config", str(CONFIGS / "shapes_semantic_fpn.yaml"), f"output_dir={out}",
        "model.sem_seg_head.num_classes=8", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert error_lines(result) == [
        "dt train: error: dataset 'shapes_train_sem_seg' has 7 stuff classes (semantic labels), "
        "model.sem_seg_head.num_classes is 8 (set model.sem_seg_head.num_classes=7)"
    ]
    assert not out.exists()
