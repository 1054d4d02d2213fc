"""``dt train --num-gpus 2`` (gloo on CPU): a bad training image found mid-training, with
``data.loader.skip_bad_images`` false, is the single-process line and exit 2, not a rank's traceback."""

from __future__ import annotations

import pytest
from user_data_files import error_lines, run_dt, write_project

TRAIN = ("train", "--config", "cfg.yaml", "solver.max_iter=4", "solver.steps=[]")


@pytest.mark.slow
def test_a_bad_image_on_two_processes_is_the_single_process_line(tmp_path):
    write_project(tmp_path)
    image = tmp_path / "images" / "train" / "img1.png"
    image.write_bytes(image.read_bytes()[:100])  # truncated: found only when the loader decodes it

    single = run_dt(*TRAIN, cwd=tmp_path, timeout=600)
    two = run_dt(*TRAIN, "--num-gpus", "2", "--overwrite", cwd=tmp_path, timeout=900)

    for result in (single, two):
        assert result.returncode == 2, result.stderr[-3000:]
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(error_lines(two)) == 1, two.stderr[-3000:]
    assert error_lines(two) == error_lines(single)
    assert "img1.png" in error_lines(two)[0] and "data.loader.skip_bad_images=true" in error_lines(two)[0]
