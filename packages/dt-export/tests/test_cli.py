"""``dt export`` refuses bad input with one line and exit code 2, before writing anything."""

from __future__ import annotations

import pytest
import torch
import yaml
from conftest import FAMILIES, GOLDEN

from dt_engine.cli import main

CONFIG, WEIGHTS, _ = FAMILIES["mask_rcnn_R_50_FPN"]


def _run(capsys, *options: str) -> tuple[int, list[str]]:
    code = main(["export", *options])
    return code, capsys.readouterr().err.strip().splitlines()


def _options(output, **changes) -> list[str]:
    values = {"--format": "onnx", "--config": str(CONFIG), "--weights": str(WEIGHTS), "--output": str(output)}
    values.update(changes)
    return [item for pair in values.items() for item in pair]


def test_unknown_format(tmp_path, capsys):
    code, err = _run(capsys, *_options(tmp_path / "out", **{"--format": "tflite"}))
    assert code == 2 and len(err) == 1
    assert "'tflite' is unknown; expected one of onnx, exported-program, torchscript" in err[0]
    assert not (tmp_path / "out").exists()


def test_output_that_is_a_file(tmp_path, capsys):
    output = tmp_path / "taken"
    output.write_text("not a folder")
    code, err = _run(capsys, *_options(output))
    assert code == 2 and len(err) == 1 and "is a file, expected a folder" in err[0]
    assert output.read_text() == "not a folder"


@pytest.mark.parametrize("content", [None, b"GIF89a but not really an image"])
def test_unreadable_sample_image(tmp_path, capsys, content):
    image = tmp_path / "photo.jpg"
    if content is not None:
        image.write_bytes(content)
    code, err = _run(capsys, *_options(tmp_path / "out"), "--sample-image", str(image))
    assert code == 2 and len(err) == 1 and "photo.jpg" in err[0]
    assert not (tmp_path / "out").exists()


def test_weights_of_another_model(tmp_path, capsys):
    weights = tmp_path / "other.pth"
    state = torch.load(WEIGHTS, weights_only=True)
    state["roi_heads.box_predictor.cls_score.weight"] = torch.zeros(3, 256)  # 2 classes, not 10
    torch.save(state, weights)
    code, err = _run(capsys, *_options(tmp_path / "out", **{"--weights": str(weights)}))
    assert code == 2 and len(err) == 1
    assert "do not match the config's model" in err[0] and "1 of another shape" in err[0]
    assert not (tmp_path / "out").exists()


def test_unsupported_family_names_what_is_supported(tmp_path, capsys):
    data = yaml.safe_load((GOLDEN / "config.yaml").read_text())
    data["model"]["name"] = "ProposalNetwork"
    del data["model"]["roi_heads"]
    config = tmp_path / "rpn.yaml"
    config.write_text(yaml.safe_dump(data))
    code, err = _run(capsys, *_options(tmp_path / "out", **{"--config": str(config)}))
    assert code == 2 and len(err) == 1
    assert "does not support ProposalNetwork; supported: GeneralizedRCNN" in err[0]
    assert "onnx, exported-program, torchscript" in err[0]
    assert not (tmp_path / "out").exists()
