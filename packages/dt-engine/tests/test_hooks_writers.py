import io
import json

import pytest
import torch
from engine_toys import ToyRegressor, ToyStream, finite_batches
from torch import nn

from dt_engine.checkpoint import Checkpointer
from dt_engine.events import EventStorage
from dt_engine.hooks import (
    BestCheckpointer,
    EvalHook,
    IterationTimer,
    LRScheduler,
    PeriodicCheckpointer,
    PeriodicWriter,
    PreciseBN,
    ValidationLoss,
    flatten_results,
    update_bn_stats,
)
from dt_engine.train_loop import SimpleTrainer
from dt_engine.writers import ConsoleWriter, JSONWriter, TensorboardWriter


def _trainer(seed=0, bn=True):
    torch.manual_seed(seed)
    model = ToyRegressor(bn=bn)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return SimpleTrainer(model, ToyStream(), opt)


def test_eval_hook_periods_and_results():
    trainer = _trainer()
    calls = []

    def evaluate():
        calls.append(trainer.iter)
        return {"bbox": {"AP": float(len(calls)), "AP50": 2.0}}

    hook = EvalHook(4, evaluate)
    trainer.register_hooks([hook])
    trainer.train(0, 10)
    assert calls == [3, 7, 10]  # every 4 iterations, then after training
    assert [it for it, _ in hook.results] == [3, 7, 9]
    assert trainer.storage.latest()["bbox/AP"] == (3.0, 9)
    assert trainer.storage.smoothing_hints()["bbox/AP50"] is False


def test_eval_hook_not_run_after_failed_training_and_bad_results():
    trainer = _trainer()
    calls = []
    trainer.register_hooks([EvalHook(0, lambda: calls.append(1))])
    trainer.data_loader = iter([])  # exhausted loader: the first step raises
    with pytest.raises(StopIteration):
        trainer.train(0, 5)
    assert calls == []
    with pytest.raises(TypeError, match="bbox/AP"):
        flatten_results({"bbox": {"AP": "high"}})
    assert flatten_results({"a": 1, "b": {"c": {"d": 2.5}}}) == {"a": 1.0, "b/c/d": 2.5}
    with pytest.raises(ValueError, match="eval_period"):
        EvalHook(-1, dict)


def test_best_checkpointer_saves_on_improvement(tmp_path):
    trainer = _trainer()
    scores = iter([1.0, 3.0, 2.0, 0.5])
    checkpointer = Checkpointer(trainer.model, tmp_path)
    best = BestCheckpointer(2, checkpointer, "bbox/AP")
    trainer.register_hooks([EvalHook(2, lambda: {"bbox": {"AP": next(scores)}}), best])
    trainer.train(0, 8)
    assert (best.best_metric, best.best_iter) == (3.0, 3)
    assert Checkpointer.read(tmp_path / "model_best.pth")["iteration"] == 3
    assert checkpointer.last_checkpoint() is None  # the best checkpoint is not a resume point
    assert trainer.state_dict()["hooks"]["BestCheckpointer"] == {"best_metric": 3.0, "best_iter": 3}
    low = BestCheckpointer(2, checkpointer, "loss", mode="min")
    low.load_state_dict({"best_metric": 1.0, "best_iter": 5})
    assert low._better(0.5) and not low._better(2.0)
    with pytest.raises(ValueError, match="mode"):
        BestCheckpointer(2, checkpointer, "x", mode="up")


def test_periodic_checkpointer_and_lr_hook(tmp_path):
    trainer = _trainer()
    sched = torch.optim.lr_scheduler.StepLR(trainer.optimizer, step_size=5, gamma=0.5)
    checkpointer = Checkpointer(trainer.model, tmp_path, optimizer=trainer.optimizer, trainer=trainer)
    trainer.register_hooks([LRScheduler(sched), PeriodicCheckpointer(checkpointer, 3, max_to_keep=2)])
    trainer.train(0, 10)
    names = sorted(p.name for p in tmp_path.glob("*.pth"))
    assert names == ["model_0000005.pth", "model_0000008.pth", "model_final.pth"]
    assert Checkpointer.read(tmp_path / "model_final.pth")["iteration"] == 9
    lrs = [v for v, _ in trainer.storage.history("lr").values()]
    assert lrs == [0.01] * 5 + [0.005] * 5
    with pytest.raises(ValueError, match="period"):
        PeriodicCheckpointer(checkpointer, 0)


def test_validation_loss_does_not_change_training():
    held_out = finite_batches(3, seed=7)
    plain, observed = _trainer(), _trainer()
    plain.train(0, 6)
    hook = ValidationLoss(2, held_out)
    observed.register_hooks([hook])
    observed.train(0, 6)
    for a, b in zip(plain.model.state_dict().values(), observed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    history = observed.storage.history("val_total_loss").values()
    assert [it for _, it in history] == [1, 3, 5]
    expected = hook.compute(observed.model)
    assert observed.storage.latest()["val_loss_mse"][0] == pytest.approx(expected["val_loss_mse"])
    assert expected["val_total_loss"] == pytest.approx(expected["val_loss_mse"] + expected["val_loss_l1"])
    with pytest.raises(ValueError, match="no batch"):
        ValidationLoss(1, []).compute(observed.model)


def test_update_bn_stats_gives_population_statistics():
    torch.manual_seed(0)
    model = ToyRegressor()
    batches = finite_batches(5, batch_size=16)
    update_bn_stats(model, iter(batches), num_iter=5)
    xs = torch.stack([b["x"] for b in batches])  # [5, 16, 4]
    torch.testing.assert_close(model.norm.running_mean, xs.mean(dim=1).mean(0))
    torch.testing.assert_close(model.norm.running_var, xs.var(dim=1, unbiased=True).mean(0))
    assert model.norm.momentum == 0.1
    with pytest.raises(ValueError, match="needed 10"):
        update_bn_stats(model, iter(batches), num_iter=10)


def test_precise_bn_hook_runs_at_period():
    trainer = _trainer()
    batches = finite_batches(4, batch_size=16, seed=3)
    hook = PreciseBN(5, trainer.model, batches, num_iter=4)
    trainer.register_hooks([hook])
    trainer.train(0, 5)
    xs = torch.stack([b["x"] for b in batches])
    torch.testing.assert_close(trainer.model.norm.running_mean, xs.mean(dim=1).mean(0))
    assert PreciseBN(5, nn.Linear(2, 2), batches, 4)._disabled


def test_json_and_tensorboard_writers(tmp_path):
    trainer = _trainer()
    json_path = tmp_path / "out" / "metrics.jsonl"
    writers = [JSONWriter(json_path), TensorboardWriter(tmp_path / "tb")]
    final_eval = EvalHook(0, lambda: {"bbox": {"AP": 12.5}})  # runs after the writers wrote iteration 9
    trainer.register_hooks([IterationTimer(), final_eval, PeriodicWriter(writers, period=4)])
    trainer.train(0, 10)
    lines = [json.loads(line) for line in json_path.read_text().splitlines()]
    assert [d["iteration"] for d in lines] == [3, 7, 9, 9]
    assert {"total_loss", "loss_mse", "time", "data_time"} <= set(lines[0])
    assert lines[-1] == {"iteration": 9, "bbox/AP": 12.5}
    events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert len(events) == 1
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("total_loss")] == [3, 7, 9]
    assert [(e.step, e.value) for e in acc.Scalars("bbox/AP")] == [(9, 12.5)]


def test_console_writer_plain_lines_and_tty():
    with EventStorage(0) as storage:
        stream = io.StringIO()
        clock = iter([0.0, 2.0])
        writer = ConsoleWriter(max_iter=100, stream=stream, interactive=False, clock=lambda: next(clock))
        storage.iter = 9
        storage.put_scalars(total_loss=1.5, loss_cls=0.5)
        storage.put_scalar("lr", 0.02, smoothing_hint=False)
        writer.write()
        storage.iter = 19
        storage.put_scalars(total_loss=1.0, loss_cls=0.25)
        writer.write()
        lines = stream.getvalue().splitlines()
        assert lines[0].startswith("iter: 10/100  loss_cls: 0.5  total_loss: 1.5  lr: 0.02  max_mem: ")
        assert lines[1].startswith("iter: 20/100  eta: 0:00:16  it/s: 5.00")
        assert "loss_cls: 0.375" in lines[1] and "lr: 0.02" in lines[1] and "max_mem:" in lines[1]
        tty = io.StringIO()
        bar = ConsoleWriter(max_iter=100, stream=tty, interactive=True)
        bar.write()
        bar.write()
        bar.close()
        assert "\r" in tty.getvalue() and "20/100" in tty.getvalue()
