import json
import subprocess
import sys
from pathlib import Path

import pytest

from dt_engine.cli import main
from dt_engine.errors import InputError, check_writable_dir
from dt_engine.plot import plot_metrics, read_metrics

PNG = b"\x89PNG\r\n\x1a\n"


def write_metrics(path, lines):
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture
def metrics(tmp_path):
    lines = [
        {"iteration": i, "total_loss": 2.0 / (i + 1), "loss_cls": 1.0 / (i + 1), "lr": 0.01}
        for i in range(30)
    ]
    lines[9]["bbox/AP"] = 10.0
    lines[19]["bbox/AP"] = 20.0
    lines[19]["bbox/AP50"] = 35.0
    lines[19]["val_total_loss"] = 0.3
    path = write_metrics(tmp_path / "metrics.jsonl", lines)
    with path.open("a") as f:
        f.write(json.dumps({"iteration": 29, "total_loss": 0.5}) + "\n")  # a resumed run redid iteration 29
        f.write('{"iteration": 30, "total_lo')  # the run was killed mid-line
    return path


def test_read_metrics_last_line_wins_and_truncated_lines_skipped(metrics):
    series = read_metrics(metrics)
    assert series["total_loss"][-1] == (29, 0.5)
    assert len(series["total_loss"]) == 30
    assert series["bbox/AP"] == [(9, 10.0), (19, 20.0)]


def test_plot_metrics_writes_pngs(metrics, tmp_path):
    written = plot_metrics(metrics, tmp_path / "plots")
    assert [p.name for p in written] == ["losses.png", "lr.png", "eval_ap.png"]
    for path in written:
        assert path.read_bytes().startswith(PNG) and path.stat().st_size > 5000
    only_loss = write_metrics(tmp_path / "m2.jsonl", [{"iteration": 0, "total_loss": 1.0}])
    assert [p.name for p in plot_metrics(only_loss, tmp_path / "p2")] == ["losses.png"]
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match="no metrics"):
        plot_metrics(tmp_path / "empty.jsonl", tmp_path)


def test_dt_plot_command(metrics, tmp_path, capsys):
    assert main(["plot", "--metrics", str(metrics), "--output", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "out" / n) for n in ("losses.png", "lr.png", "eval_ap.png")]
    assert main(["plot", "--metrics", str(metrics)]) == 0
    assert (metrics.parent / "losses.png").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plot", "--metrics", "nowhere/metrics.jsonl"], "metrics file not found: nowhere/metrics.jsonl"),
        (["plot"], "give --metrics FILE or --config FILE"),
        (["plot", "--metrics", "{m}", "solver.base_lr=1"], "overrides apply to --config"),
        (["plot", "--metrics", "{m}", "--output", "{m}/sub"], "is not writable (Not a directory)"),
    ],
)
def test_bad_input_one_line_exit_2_nothing_lost(metrics, capsys, argv, message):
    before = metrics.read_bytes()
    argv = [a.replace("{m}", str(metrics)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dt plot: error: ") and message in err
    assert "Traceback" not in err
    assert metrics.read_bytes() == before


def test_help_lists_overrides_with_examples(capsys):
    for command in ("train", "eval", "predict", "plot"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert "--config FILE" in text and "key.path=value" in text
        assert "solver.base_lr=0.01" in text and "model.roi_heads.num_classes=3" in text
        assert "example:\n  dt " + command in text
    with pytest.raises(SystemExit) as exit_info:
        main(["nonsense"])
    assert exit_info.value.code == 2


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "dt"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "train" in result.stdout and "predict" in result.stdout


def test_check_writable_dir(tmp_path):
    assert check_writable_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert not list((tmp_path / "a" / "b").iterdir())
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not writable"):
        check_writable_dir(tmp_path / "file" / "sub")
