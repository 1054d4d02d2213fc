"""``dt zoo list|info|download`` through ``dt``'s entry point, and the ``zoo:`` weights of ``dt`` commands."""

import hashlib
import shlex
from pathlib import Path

import pytest
from zoo_server import MODEL

import dt_zoo
from dt_engine.cli import COMMANDS, build_parser, main
from dt_engine.config.experiment import load_experiment
from dt_engine.errors import InputError
from dt_engine.weights import resolve_weights

R50 = "/detectron2/ImageNetPretrained/MSRA/R-50.pkl"


def test_list_shows_every_entry_with_its_reported_metrics(capsys):
    assert main(["zoo", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["name", "task", "box", "AP"]
    assert len(lines) == 2 + len(dt_zoo.list_models())
    row = next(line for line in lines if line.startswith("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x "))
    assert row.split() == [
        "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x", "instance-segmentation",
        "41", "37.2", "0.261", "0.043", "3.4", "yes",
    ]  # fmt: skip
    assert main(["zoo", "list", "--task", "panoptic-segmentation"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2 + 4


def test_info_prints_the_entry_and_unknown_names_are_one_line(capsys):
    assert main(["zoo", "info", "COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x"]) == 0
    out = capsys.readouterr().out
    assert "metrics: box_ap 55.4, keypoint_ap 65.5" in out and "classes coco_person" in out
    assert "dt config: " in out and out.count("\n") >= 8
    assert main(["zoo", "info", "keypoint_rcnn_R_50_FPN_3X"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dt zoo: error: unknown zoo model 'keypoint_rcnn_R_50_FPN_3X' (did you mean")
    assert err.count("\n") == 1


def test_download_through_a_mirror_then_offline_from_the_cache(server, monkeypatch, capsys, cache):
    server.files[R50] = MODEL
    monkeypatch.setenv("DT_ZOO_MIRROR", server.base)
    assert main(["zoo", "download", "ImageNetPretrained/MSRA/R-50"]) == 0
    path = capsys.readouterr().out.strip()
    assert path == str(cache / "zoo" / "detectron2/ImageNetPretrained/MSRA/R-50.pkl")
    assert hashlib.sha256(Path(path).read_bytes()).digest() == hashlib.sha256(MODEL).digest()
    monkeypatch.setenv("DT_OFFLINE", "1")
    assert main(["zoo", "download", "ImageNetPretrained/MSRA/R-50"]) == 0
    assert capsys.readouterr().out.strip() == path
    assert server.gets(R50) == 1
    assert resolve_weights("zoo:ImageNetPretrained/MSRA/R-50") == path  # what `--weights zoo:NAME` loads


def test_offline_without_cache_names_url_and_target_and_exits_2(capsys, cache):
    assert main(["zoo", "download", "ImageNetPretrained/MSRA/R-101", "--offline"]) == 2
    err = capsys.readouterr().err
    url = "https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/MSRA/R-101.pkl"
    target = cache / "zoo" / "detectron2/ImageNetPretrained/MSRA/R-101.pkl"
    expected = (
        "offline (DT_OFFLINE=1 or offline=True) and R-101.pkl is not cached: download {} and save it as {}"
    )
    assert err == "dt zoo: error: " + expected.format(url, target) + "\n"


def test_weights_of_dt_commands_take_zoo_names(monkeypatch, capsys, cache):
    monkeypatch.setenv("DT_OFFLINE", "1")
    config = "COCO-Detection/faster_rcnn_R_50_FPN_3x"
    assert main(["train", "--config", config, "--weights", "zoo:ImageNetPretrained/MSRA/R-50"]) == 2
    assert (
        "download https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/MSRA/R-50.pkl"
        in capsys.readouterr().err
    )
    with pytest.raises(InputError, match="did you mean 'ImageNetPretrained/MSRA/R-50'"):
        resolve_weights("zoo:ImageNetPretrained/MSRA/R50")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_help_example_parses_and_names_configs_and_weights_that_exist(command):
    """Each ``dt <command> --help`` example: its options parse, its ``--config`` loads, and its
    ``--weights`` is a zoo entry (the examples themselves train on COCO, which is not here)."""
    argv = shlex.split(COMMANDS[command][1])[1:]
    args = build_parser().parse_args(argv)
    if getattr(args, "config", None) is not None:
        assert load_experiment(args.config).model is not None
    weights = getattr(args, "weights", None)
    if weights is not None and weights.startswith("zoo:"):
        assert dt_zoo.info(weights.removeprefix("zoo:")).weights.urls


def test_the_zoo_commands_own_example_runs(capsys):
    from dt_zoo.cli import COMMAND

    assert main(shlex.split(COMMAND.example)[1:]) == 0
    assert "COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x" in capsys.readouterr().out


def test_predict_model_is_the_zoo_config_and_its_weights(monkeypatch, capsys, tmp_path):
    """``dt predict --model NAME`` loads NAME's config and fetches ``zoo:NAME``: offline and uncached,
    the one line names that entry's weights URL."""
    monkeypatch.setenv("DT_OFFLINE", "1")
    name = "COCO-Detection/faster_rcnn_R_50_FPN_3x"
    argv = ["predict", "--model", name, "--input", str(tmp_path), "--output", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and dt_zoo.info(name).weights.urls[0] in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            ["--model", "COCO-Detection/faster_rcnn_R_50_FPN_3x", "--weights", "w.pth"],
            "--model NAME replaces",
        ),
        (["--config", "COCO-Detection/faster_rcnn_R_50_FPN_3x"], "needs --weights, or --model NAME"),
    ],
)
def test_predict_needs_config_and_weights_or_model(options, expected, capsys, tmp_path):
    assert main(["predict", *options, "--input", str(tmp_path), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dt predict: error: {expected}") and err.count("\n") == 1
