"""``dt demo --task``: each task picks its packaged shapes config and reports its own metrics; a bad
task is one line and exit code 2."""

import json

import pytest

import dt_engine.demo as demo
from dt_engine.cli import main
from dt_engine.config.experiment import load_experiment

# task -> (training set of its config, evaluator_type-driven tasks in the summary)
EXPECTED = {
    "instances": ("shapes_train", ("bbox", "segm")),
    "panoptic": ("shapes_train_panoptic_separated", ("panoptic_seg", "sem_seg", "bbox", "segm")),
    "semantic": ("shapes_train_sem_seg", ("sem_seg",)),
    "rotated": ("shapes_train_rotated", ("bbox",)),
}


@pytest.mark.parametrize("task", sorted(EXPECTED))
def test_task_picks_its_packaged_config(task, tmp_path, monkeypatch):
    seen = {}

    def fake_run_demo(cfg, *, config_source, task, start, minutes):
        seen.update(cfg=cfg, source=config_source, task=task, minutes=minutes)

    monkeypatch.setattr(demo, "run_demo", fake_run_demo)
    args = ["demo", "--output", str(tmp_path), "--max-iter", "3"]
    assert main([*args, "--task", task] if task != "instances" else args) == 0
    train, tasks = EXPECTED[task]
    assert seen["task"] == task and seen["cfg"].data.datasets.train == (train,)
    assert seen["cfg"].solver.max_iter == 3 and seen["minutes"] is None
    assert seen["source"] == f"dt_engine/{demo.DEMO_TASKS[task].config}"
    assert demo.DEMO_TASKS[task].tasks == tasks
    with demo.demo_config_path(task) as path:
        assert load_experiment(path).data.datasets.train == (train,)


def test_a_bad_task_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["demo", "--task", "rotatd", "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "dt demo: error: --task must be one of instances, panoptic, semantic, rotated, got 'rotatd'"
    ]
    assert list(tmp_path.iterdir()) == []


def test_summary_reports_the_task_metrics(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    records = [
        {"iteration": 9, "total_loss": 1.0, "lr": 0.001},
        {
            "iteration": 9,
            "panoptic_seg/PQ": 31.5,
            "panoptic_seg/SQ": 70.0,
            "sem_seg/mIoU": 55.0,
            "bbox/AP": 20.0,
        },
    ]
    metrics.write_text("".join(json.dumps(r) + "\n" for r in records))
    tasks = demo.DEMO_TASKS["panoptic"].tasks
    results = demo.final_results(metrics, tasks)
    assert results == {
        "panoptic_seg": {"PQ": 31.5, "SQ": 70.0},
        "sem_seg": {"mIoU": 55.0},
        "bbox": {"AP": 20.0},
    }
    table = demo._table(results, tasks).splitlines()
    assert table[0].split() == ["PQ", "SQ", "RQ", "PQ_th", "PQ_st"]
    assert table[1].split() == ["panoptic_seg", "31.5", "70.0", "nan", "nan", "nan"]
    assert table[2].split() == ["mIoU", "fwIoU", "mACC", "pACC"] and table[3].split()[:2] == [
        "sem_seg",
        "55.0",
    ]
    assert table[4].split()[0] == "AP" and table[5].split()[:2] == ["bbox", "20.0"]
    metrics.write_text('{"iteration": 1, "total_loss": 1.0}\n')
    with pytest.raises(ValueError, match="no sem_seg evaluation"):
        demo.final_results(metrics, ("sem_seg",))
