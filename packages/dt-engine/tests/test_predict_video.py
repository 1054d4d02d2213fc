"""``dt predict --video``: the real command on a short video the test writes, with a tiny Mask R-CNN
on random weights; an annotated video of the same frames, size and rate, per-frame results, progress;
unreadable videos are one line, exit 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from user_data_files import error_lines, run_dt, snapshot, write_project

from dt_engine.config.experiment import load_experiment
from dt_models import build_model

FRAMES, SIZE, FPS = 5, 64, 10.0


def write_video(path: Path) -> None:
    """``FRAMES`` frames of ``SIZE`` x ``SIZE``: a red square and a green disc moving on grey."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (SIZE, SIZE))
    assert writer.isOpened()
    for i in range(FRAMES):
        frame = np.full((SIZE, SIZE, 3), 90, np.uint8)  # BGR
        cv2.rectangle(frame, (4 + 3 * i, 8), (28 + 3 * i, 30), (40, 40, 220), -1)
        cv2.circle(frame, (44, 40 + 2 * i), 10, (40, 200, 40), -1)
        writer.write(frame)
    writer.release()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A user's folder (tiny Mask R-CNN config with a cat/dog dataset), random weights and a video."""
    root = tmp_path_factory.mktemp("video")
    config = write_project(root)
    torch.manual_seed(0)
    model = build_model(load_experiment(str(config)).model)
    torch.save({"model": model.state_dict()}, root / "random.pth")
    write_video(root / "clip.mp4")
    return root


PREDICT = ("predict", "--config", "cfg.yaml", "--weights", "random.pth")


@pytest.mark.slow
def test_video_in_annotated_video_and_per_frame_results_out(project):
    result = run_dt(*PREDICT, "--video", "clip.mp4", "--output", "preds", "--confidence", "0", cwd=project)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert f"{FRAMES}/{FRAMES}" in result.stderr  # the progress bar reached the total
    assert result.stdout.strip() == f"{FRAMES} frames of clip.mp4 -> preds/clip.mp4"
    written = project / "preds" / "clip.mp4"

    capture = cv2.VideoCapture(str(written))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS)
    capture.release()
    assert len(frames) == FRAMES and all(f.shape == (SIZE, SIZE, 3) for f in frames)
    assert sorted(p.name for p in (project / "preds").iterdir()) == [
        "clip.mp4",
        "coco_instances_results.json",
    ]

    records = json.loads((project / "preds" / "coco_instances_results.json").read_text())
    assert records and {r["frame"] for r in records} <= set(range(FRAMES))
    assert all(r["image_id"] == r["frame"] and r["file_name"] == "clip.mp4" for r in records)
    assert {"bbox", "score", "segmentation"} <= set(records[0])
    assert {(r["category_id"], r["category_name"]) for r in records} <= {(3, "cat"), (7, "dog")}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda p: p.write_text("this is not a video\n"),
            "cannot read video notavideo.mp4: expected a video file",
        ),
        (lambda p: None, "video not found: notavideo.mp4"),
    ],
    ids=["text-file", "missing"],
)
def test_unreadable_video_is_one_line_exit_2_and_writes_nothing(project, tmp_path, make, message):
    video = project / "notavideo.mp4"
    video.unlink(missing_ok=True)
    make(video)
    out = tmp_path / "preds"
    out.mkdir()
    (out / "earlier.json").write_text("[]")
    before = snapshot(out)
    result = run_dt(*PREDICT, "--video", "notavideo.mp4", "--output", str(out), cwd=project)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    (line,) = error_lines(result)
    assert line.startswith("dt predict: error: ") and message in line
    assert snapshot(out) == before
