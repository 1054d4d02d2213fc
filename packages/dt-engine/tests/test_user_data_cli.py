"""End to end, as a new user: the real ``dt`` command on a COCO dataset of their own, declared in the
config's ``datasets:`` section, and every way that data, checkpoints and run folders go wrong.

Every failure must be exit 2 (1 for a predict that skipped inputs), one ``error:`` line naming the
file and what was expected, no traceback, and earlier files unchanged.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from user_data_files import (
    coco_json,
    error_lines,
    run_dt,
    snapshot,
    write_image,
    write_project,
)

ONE_ITER = ("solver.max_iter=1", "solver.steps=[]")


def assert_one_line_failure(result, code: int, *fragments: str) -> str:
    assert result.returncode == code, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_project(tmp_path)
    return tmp_path


def test_data_check_prints_the_summary_table(project):
    result = run_dt("data", "check", "--config", "cfg.yaml", cwd=project)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[2:4]}
    assert rows == {"my_train": ["4", "8", "2", "0"], "my_val": ["2", "4", "2", "0"]}
    assert "2 datasets, 0 problems" in result.stdout


def test_num_classes_not_matching_the_training_data_fails_at_load(project):
    result = run_dt("train", "--config", "cfg.yaml", "model.roi_heads.num_classes=1", cwd=project)
    assert_one_line_failure(result, 2, "dataset 'my_train' has 2 classes, model.roi_heads.num_classes is 1")
    assert not (project / "out").exists()


def _mutate_json(project: Path, change) -> None:
    path = project / "ann" / "train.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _set(data: dict, part: str, index: int, key: str, value) -> None:
    data[part][index][key] = value


BAD_DATA = {
    "unknown category_id": (
        lambda p: _mutate_json(p, lambda d: _set(d, "annotations", 1, "category_id", 5)),
        ["train.json: annotation id=11 of image id=1", "category_id=5 does not exist", "[3, 7]"],
    ),
    "negative box width": (
        lambda p: _mutate_json(p, lambda d: _set(d, "annotations", 2, "bbox", [1, 2, -3, 4])),
        ["annotation id=20", "negative width", "w, h >= 0"],
    ),
    "not JSON": (
        lambda p: (p / "ann" / "train.json").write_text("{'images': oops"),
        ["train.json: not valid JSON", "expected a COCO-format JSON file"],
    ),
    "empty dataset": (
        lambda p: _mutate_json(p, lambda d: d.update(images=[], annotations=[])),
        ["dataset 'my_train' is empty", "train.json", "expected at least one"],
    ),
    "missing image": (
        lambda p: (p / "images" / "train" / "img2.png").unlink(),
        ["train.json: image id=3", "img2.png does not exist", "expected an existing file"],
    ),
    "image size differs from the JSON": (
        lambda p: write_image(p / "images" / "train" / "img3.png", width=50, height=48),
        ["train.json: image id=4", "img3.png is 50x48 (w x h) but the annotation says 64x48"],
    ),
    "missing annotation file": (
        lambda p: (p / "ann" / "train.json").unlink(),
        ["$.datasets.my_train: annotation file not found", "train.json"],
    ),
}


FAST_CASES = {"unknown category_id"}  # every case costs a dt start-up (~5-10 s): the rest run in nox -s slow


@pytest.mark.parametrize(
    "case", [c if c in FAST_CASES else pytest.param(c, marks=pytest.mark.slow) for c in sorted(BAD_DATA)]
)
def test_bad_data_is_one_line_before_anything_is_written(project, case):
    mutate, fragments = BAD_DATA[case]
    (project / "out").mkdir()
    (project / "out" / "notes.txt").write_text("mine")
    mutate(project)
    before = snapshot(project)
    result = run_dt("train", "--config", "cfg.yaml", cwd=project)
    assert_one_line_failure(result, 2, *fragments)
    assert snapshot(project) == before


@pytest.mark.slow
def test_data_check_reads_every_image_and_lists_every_problem(project):
    (project / "images" / "train" / "img1.png").write_bytes(b"not a png at all")
    truncated = (project / "images" / "train" / "img2.png").read_bytes()
    (project / "images" / "train" / "img2.png").write_bytes(truncated[: len(truncated) // 2])
    write_image(project / "images" / "train" / "img3.png", width=50, height=48)
    result = run_dt("data", "check", "--config", "cfg.yaml", cwd=project)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = error_lines(result)
    assert len(lines) == 3, result.stderr
    assert "image id=2" in lines[0] and "img1.png cannot be read" in lines[0]
    assert "image id=3" in lines[1] and "expected a complete image file" in lines[1]
    assert "img3.png is 50x48 (w x h) but the annotation says 64x48" in lines[2]
    assert "my_train  4       8            2        3" in result.stdout
    assert "2 datasets, 3 problems" in result.stdout


@pytest.mark.slow
def test_debug_shows_the_traceback(project):
    result = run_dt("train", "--config", "cfg.yaml", "model.roi_heads.num_classes=1", "--debug", cwd=project)
    assert result.returncode != 0 and "Traceback" in result.stderr and "InputError" in result.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A user's project after ``dt train`` (2 iterations; checkpoints at 0, 1 and final)."""
    root = tmp_path_factory.mktemp("trained")
    write_project(root)
    result = run_dt("train", "--config", "cfg.yaml", cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    return root


@pytest.mark.slow
def test_config_datasets_train_and_eval_with_their_real_ids(trained):
    saved = (trained / "out" / "config.yaml").read_text()
    assert f"json_file: {trained}/ann/train.json" in saved  # absolute: the saved config works anywhere
    results = json.loads(
        (trained / "out" / "inference" / "my_val" / "coco_instances_results.json").read_text()
    )
    assert results and {r["category_id"] for r in results} <= {3, 7}
    result = run_dt("eval", "--config", "cfg.yaml", "--weights", "out/model_final.pth", cwd=trained)
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(json.loads(result.stdout)) == {"bbox", "segm"}


@pytest.mark.slow
def test_two_processes_register_the_config_datasets(tmp_path):
    write_project(tmp_path)
    result = run_dt(
        "train",
        "--config",
        "cfg.yaml",
        "--num-gpus",
        "2",
        "solver.max_iter=1",
        "solver.steps=[]",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "out" / "model_final.pth").is_file()


@pytest.mark.slow
def test_an_existing_run_is_never_overwritten_silently(trained, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(trained, run)
    before = snapshot(run / "out")
    result = run_dt("train", "--config", "cfg.yaml", cwd=run)
    assert_one_line_failure(result, 2, "already holds a run", "--resume", "--overwrite")
    assert snapshot(run / "out") == before
    result = run_dt("train", "--config", "cfg.yaml", "--resume", "--overwrite", cwd=run)
    assert_one_line_failure(result, 2, "--resume and --overwrite exclude each other")
    assert snapshot(run / "out") == before

    # a truncated latest checkpoint: --resume falls back to the newest intact one, with a warning
    final = (run / "out" / "model_final.pth").read_bytes()
    (run / "out" / "model_final.pth").write_bytes(final[: len(final) // 3])
    result = run_dt("train", "--config", "cfg.yaml", "--resume", cwd=run)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "model_final.pth: not a readable checkpoint" in result.stderr
    assert "falling back to the previous checkpoint" in result.stderr
    assert (
        "--resume: resumed from" in result.stderr
        and "model_0000001.pth; starting at iteration 2" in result.stderr
    )

    result = run_dt("train", "--config", "cfg.yaml", "--overwrite", *ONE_ITER, cwd=run)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = [json.loads(line) for line in (run / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [m["iteration"] for m in metrics if "total_loss" in m] == [0]  # one run, not two appended
    assert not (run / "out" / "model_0000001.pth").exists()


@pytest.mark.slow
def test_resume_without_a_checkpoint_says_it_starts_at_zero(project):
    result = run_dt("train", "--config", "cfg.yaml", "--resume", *ONE_ITER, cwd=project)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--resume: no intact checkpoint in out; starting at iteration 0" in result.stderr


@pytest.mark.slow
def test_bad_checkpoints_are_one_line(trained, tmp_path):
    final = (trained / "out" / "model_final.pth").read_bytes()
    (tmp_path / "truncated.pth").write_bytes(final[: len(final) // 2])
    (tmp_path / "text.pth").write_text("this is not a checkpoint\n")
    for name in ("truncated.pth", "text.pth"):
        weights = str(tmp_path / name)
        for command in (["eval"], ["predict", "--input", "images/val", "--output", str(tmp_path / "p")]):
            result = run_dt(
                command[0], "--config", "cfg.yaml", "--weights", weights, *command[1:], cwd=trained
            )
            assert_one_line_failure(result, 2, f"{weights}: not a readable checkpoint", "torch.save")
        result = run_dt("train", "--config", "cfg.yaml", "--weights", weights, "output_dir=new", cwd=trained)
        assert_one_line_failure(result, 2, f"{weights}: not a readable checkpoint")
        assert not (trained / "new").exists()


@pytest.mark.slow
def test_weights_of_another_model_are_refused_unless_allowed(trained, tmp_path):
    state = torch.load(trained / "out" / "model_final.pth", weights_only=True)["model"]
    del state["roi_heads.box_predictor.cls_score.weight"]
    torch.save({"model": state}, tmp_path / "partial.pth")
    argv = ["eval", "--config", "cfg.yaml", "--weights", str(tmp_path / "partial.pth")]
    result = run_dt(*argv, cwd=trained)
    assert_one_line_failure(result, 2, "leaves 1 model tensors unset", "--allow-partial-weights")
    assert "roi_heads.box_predictor.cls_score.weight" in result.stderr  # the load table
    result = run_dt(*argv, "--allow-partial-weights", cwd=trained)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_predict_skips_unreadable_inputs_mirrors_folders_and_writes_real_ids(trained, tmp_path):
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    shutil.copy(trained / "images" / "val" / "img0.png", photos / "img0.png")
    shutil.copy(trained / "images" / "val" / "img1.png", photos / "sub" / "img0.png")  # same name
    (photos / "broken.png").write_text("not an image")
    import numpy as np
    from PIL import Image

    Image.fromarray((np.arange(48 * 64).reshape(48, 64) * 20).astype(np.uint16)).save(photos / "deep.png")
    Image.fromarray(np.zeros((3, 2000, 3), np.uint8)).save(photos / "thin.png")
    out = tmp_path / "preds"
    argv = ["predict", "--config", "cfg.yaml", "--weights", "out/model_final.pth", "--confidence", "0"]
    result = run_dt(*argv, "--input", str(photos), "--output", str(out), cwd=trained)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    skipped = [line for line in result.stderr.splitlines() if line.startswith("dt predict: skipped")]
    assert len(skipped) == 2
    assert "broken.png: cannot read image" in skipped[0] and "thin.png: cannot run the model" in skipped[1]
    assert "I;16 image scaled to 8-bit" in result.stderr
    assert {p.relative_to(out).as_posix() for p in out.rglob("*.png")} == {
        "img0.png",
        "sub/img0.png",
        "deep.png",
    }
    records = json.loads((out / "coco_instances_results.json").read_text())
    assert {r["category_id"] for r in records} <= {3, 7}
    assert {r["category_name"] for r in records} <= {"cat", "dog"}
    assert {(r["category_id"], r["category_name"]) for r in records} <= {(3, "cat"), (7, "dog")}
    assert {Path(r["file_name"]).name for r in records} <= {"img0.png", "deep.png"}


@pytest.mark.slow
def test_skip_bad_images_trains_with_a_counted_warning(project):
    truncated = (project / "images" / "train" / "img1.png").read_bytes()
    (project / "images" / "train" / "img1.png").write_bytes(truncated[:100])
    argv = ["train", "--config", "cfg.yaml", "solver.max_iter=4", "solver.steps=[]"]
    result = run_dt(*argv, "data.loader.num_workers=1", cwd=project)  # raised in a loader worker
    line = assert_one_line_failure(result, 2, "img1.png", "data.loader.skip_bad_images=true")
    assert "expected a complete image file" in line and "Caught" not in line
    result = run_dt(
        "train",
        "--config",
        "cfg.yaml",
        "--overwrite",
        "solver.max_iter=4",
        "solver.steps=[]",
        "data.loader.skip_bad_images=true",
        cwd=project,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skipped bad training image 1 of this process" in result.stderr


def test_coco_json_helper_is_what_the_tests_mutate():
    data = coco_json(2)
    assert [a["id"] for a in data["annotations"]] == [10, 11, 20, 21]
