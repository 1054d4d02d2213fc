"""``model.weights`` (detectron2's ``MODEL.WEIGHTS``): the weights ``dt train`` starts from, which
``--weights`` overrides; a bad path is one line before anything is written."""

from pathlib import Path

import torch
from engine_tiny_datasets import register_tiny_datasets

import dt_models
from dt_engine.checkpoint import Checkpointer
from dt_engine.cli import main
from dt_engine.config.experiment import load_experiment

CONFIG = str(Path(__file__).with_name("engine_tiny_rcnn.yaml"))
ONE_STEP = [
    "solver.max_iter=1", "solver.steps=[]", "solver.base_lr=1e-12", "solver.ema.enabled=false",
    "test.eval_period=0", "test.val_loss_period=0", "test.precise_bn.enabled=false",
]  # fmt: skip


def _initial_weights(path: Path) -> dict[str, torch.Tensor]:
    torch.manual_seed(123)
    model = dt_models.build_model(load_experiment(CONFIG).model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save({"model": state}, path)
    return dict(model.named_parameters())


def _final_parameters(out: Path) -> dict[str, torch.Tensor]:
    return Checkpointer.read(out / "model_final.pth")["model"]


def test_train_starts_from_model_weights_and_weights_option_overrides_it(tmp_path):
    register_tiny_datasets()
    init = _initial_weights(tmp_path / "init.pth")
    out = tmp_path / "from_config"
    assert (
        main(
            [
                "train",
                "--config",
                CONFIG,
                f"output_dir={out}",
                f"model.weights={tmp_path / 'init.pth'}",
                *ONE_STEP,
            ]
        )
        == 0
    )
    final = _final_parameters(out)
    assert all(torch.allclose(final[k], p.detach(), atol=1e-6) for k, p in init.items())
    assert load_experiment(out / "config.yaml").model.weights == str(tmp_path / "init.pth")

    out = tmp_path / "overridden"
    argv = ["train", "--config", CONFIG, f"output_dir={out}", "model.weights=missing.pth", *ONE_STEP]
    assert main([*argv, "--weights", str(tmp_path / "init.pth")]) == 0
    final = _final_parameters(out)
    assert all(torch.allclose(final[k], p.detach(), atol=1e-6) for k, p in init.items())


def test_a_missing_model_weights_file_is_one_line_and_writes_nothing(tmp_path, capsys):
    register_tiny_datasets()
    out = tmp_path / "run"
    assert main(["train", "--config", CONFIG, f"output_dir={out}", "model.weights=nope/R-50.pth"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope/R-50.pth" in err and "Traceback" not in err
    assert not out.exists()
