import gc

import pytest
import torch
from engine_toys import ToyRegressor, ToyStream, finite_batches
from torch import nn

from dt_engine.ema import ModelEMA
from dt_engine.events import EventStorage, HistoryBuffer, get_event_storage
from dt_engine.train_loop import AMPTrainer, GradClip, HookBase, SimpleTrainer, TrainerBase, TrainerState


class Recorder(HookBase):
    def __init__(self, name, log):
        self.name, self.log = name, log

    def before_train(self):
        self.log.append((self.name, "before_train", self.state.iter))

    def before_step(self):
        self.log.append((self.name, "before_step", self.state.iter))

    def after_step(self):
        self.log.append((self.name, "after_step", self.state.iter))

    def after_train(self):
        self.log.append((self.name, "after_train", self.state.iter))


class CountingTrainer(TrainerBase):
    def __init__(self, log, fail_at=None):
        super().__init__()
        self.log, self.fail_at = log, fail_at

    def run_step(self):
        if self.iter == self.fail_at:
            raise RuntimeError("boom")
        self.log.append(("trainer", "run_step", self.iter))


def test_hook_call_order():
    log = []
    trainer = CountingTrainer(log)
    trainer.register_hooks([Recorder("a", log), None, Recorder("b", log)])
    trainer.train(2, 4)
    assert log == [
        ("a", "before_train", 2),
        ("b", "before_train", 2),
        ("a", "before_step", 2),
        ("b", "before_step", 2),
        ("trainer", "run_step", 2),
        ("a", "after_step", 2),
        ("b", "after_step", 2),
        ("a", "before_step", 3),
        ("b", "before_step", 3),
        ("trainer", "run_step", 3),
        ("a", "after_step", 3),
        ("b", "after_step", 3),
        ("a", "after_train", 4),
        ("b", "after_train", 4),
    ]


def test_after_train_runs_when_a_step_raises():
    log = []
    trainer = CountingTrainer(log, fail_at=1)
    trainer.register_hooks([Recorder("a", log)])
    with pytest.raises(RuntimeError, match="boom"):
        trainer.train(0, 5)
    assert log[-1] == ("a", "after_train", 1)


def test_empty_range_and_bad_range():
    log = []
    trainer = CountingTrainer(log)
    trainer.register_hooks([Recorder("a", log)])
    trainer.train(3, 3)
    assert log == [("a", "before_train", 3), ("a", "after_train", 3)]
    with pytest.raises(ValueError, match="start_iter"):
        trainer.train(4, 3)


def test_hooks_hold_weak_reference_and_typed_state():
    hook = Recorder("a", [])
    with pytest.raises(RuntimeError, match="not registered"):
        _ = hook.trainer
    trainer = CountingTrainer([])
    trainer.register_hooks([hook])
    assert isinstance(hook.state, TrainerState)
    with pytest.raises(attrs_frozen_error()):
        hook.state.iter = 3  # a view, not a handle to mutate the trainer
    del trainer
    gc.collect()
    with pytest.raises(RuntimeError, match="live trainer"):
        _ = hook.trainer


def attrs_frozen_error():
    import attrs

    return attrs.exceptions.FrozenInstanceError


def test_register_rejects_non_hooks():
    with pytest.raises(TypeError, match="HookBase"):
        CountingTrainer([]).register_hooks([object()])


def _train(model, stream, steps, **kwargs):
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    trainer = SimpleTrainer(model, stream, opt, **kwargs)
    trainer.train(0, steps)
    return trainer


def test_simple_trainer_learns_and_records_metrics():
    torch.manual_seed(0)
    model = ToyRegressor(bn=False)
    trainer = _train(model, ToyStream(batch_size=16), 150)
    latest = trainer.storage.latest()
    assert set(latest) == {"total_loss", "loss_mse", "loss_l1", "data_time"}
    assert latest["total_loss"][1] == 149
    assert latest["loss_mse"][0] < 0.05
    assert torch.allclose(model.linear.weight[0], torch.tensor([1.0, 2.0, 3.0, 4.0]), atol=0.1)


def test_gradient_accumulation_equals_one_big_batch():
    batches = finite_batches(8, batch_size=4)
    big = [{k: torch.cat([a[k], b[k]]) for k in a} for a, b in zip(batches[::2], batches[1::2], strict=True)]
    torch.manual_seed(0)
    m1 = ToyRegressor(bn=False)
    m2 = ToyRegressor(bn=False)
    m2.load_state_dict(m1.state_dict())
    _train(m1, batches, 4, accumulate_steps=2)
    _train(m2, big, 4)
    for p1, p2 in zip(m1.parameters(), m2.parameters(), strict=True):
        torch.testing.assert_close(p1, p2, rtol=1e-5, atol=1e-6)


def test_accumulate_steps_validated():
    with pytest.raises(ValueError, match="accumulate_steps"):
        SimpleTrainer(
            ToyRegressor(), [], torch.optim.SGD(ToyRegressor().parameters(), lr=0.1), accumulate_steps=0
        )


def test_grad_clip_by_norm_and_value():
    p = nn.Parameter(torch.zeros(4))
    p.grad = torch.tensor([3.0, 4.0, 0.0, 0.0])
    norm = GradClip(mode="norm", max_value=1.0).apply([p])
    assert norm == pytest.approx(5.0)
    torch.testing.assert_close(p.grad.norm(), torch.tensor(1.0), rtol=1e-4, atol=1e-4)
    p.grad = torch.tensor([3.0, -4.0, 0.5, 0.0])
    assert GradClip(mode="value", max_value=1.0).apply([p]) is None
    torch.testing.assert_close(p.grad, torch.tensor([1.0, -1.0, 0.5, 0.0]))
    with pytest.raises(ValueError, match="mode"):
        GradClip(mode="bogus", max_value=1.0)
    with pytest.raises(ValueError):
        GradClip(max_value=0.0)


def test_trainer_records_grad_norm_when_clipping():
    torch.manual_seed(0)
    trainer = _train(ToyRegressor(), ToyStream(), 3, clip_grad=GradClip(mode="norm", max_value=0.5))
    assert "grad_norm" in trainer.storage.latest()


def test_nonfinite_loss_raises():
    class NaNModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(1))

        def forward(self, batch):
            return {"loss": self.w.sum() * float("nan")}

    with pytest.raises(FloatingPointError, match="iteration 0"):
        _train(NaNModel(), ToyStream(), 2)


def test_model_must_return_loss_dict_and_be_in_train_mode():
    model = ToyRegressor()
    model.forward = lambda batch: torch.tensor(1.0)  # type: ignore[method-assign]
    with pytest.raises(TypeError, match="loss dict"):
        _train(model, ToyStream(), 1)
    with pytest.raises(RuntimeError, match="eval mode"):
        _train(ToyRegressor().eval(), ToyStream(), 1)


def test_amp_trainer_cpu_bfloat16():
    torch.manual_seed(0)
    model = ToyRegressor(bn=False)
    seen = []
    model.linear.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    trainer = AMPTrainer(model, ToyStream(batch_size=16), opt)
    assert trainer.precision == torch.bfloat16 and trainer.grad_scaler is None
    trainer.train(0, 50)
    assert seen[0] == torch.bfloat16
    assert model.linear.weight.dtype == torch.float32
    assert trainer.storage.latest()["loss_mse"][0] < 1.0
    with pytest.raises(ValueError, match="CUDA-only"):
        AMPTrainer(model, ToyStream(), opt, precision=torch.float16)
    with pytest.raises(ValueError, match="precision"):
        AMPTrainer(model, ToyStream(), opt, precision=torch.float64)


def test_ema_update_math_and_apply():
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = ModelEMA(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)
    ema.update(model)
    expected = 1 - 0.9**2
    torch.testing.assert_close(ema.averaged_state_dict()["weight"], torch.full((1, 2), expected))
    with ema.apply_to(model):
        torch.testing.assert_close(model.weight.detach(), torch.full((1, 2), expected))
    torch.testing.assert_close(model.weight.detach(), torch.ones(1, 2))
    restored = ModelEMA(model, decay=0.5)
    restored.load_state_dict(ema.state_dict())
    assert restored.decay == 0.9 and restored.num_updates == 2
    with pytest.raises(ValueError, match="decay"):
        ModelEMA(model, decay=1.0)


def test_trainer_with_ema_updates_average():
    torch.manual_seed(0)
    model = ToyRegressor(bn=False)
    ema = ModelEMA(model, decay=0.5)
    trainer = _train(model, ToyStream(), 5, ema=ema)
    assert ema.num_updates == 5
    assert not torch.equal(ema.averaged_state_dict()["linear.weight"], model.linear.weight)
    assert trainer.ema is ema


def test_event_storage_and_history():
    buf = HistoryBuffer(max_length=3)
    for i, v in enumerate([1.0, 2.0, 10.0, 4.0]):
        buf.update(v, i)
    assert buf.values() == [(2.0, 1), (10.0, 2), (4.0, 3)]
    assert buf.median(3) == 4.0 and buf.avg(2) == 7.0
    assert buf.global_avg() == pytest.approx(17 / 4)
    with pytest.raises(IndexError):
        HistoryBuffer().latest()
    with pytest.raises(RuntimeError, match="EventStorage"):
        get_event_storage()
    with EventStorage(5) as storage:
        assert get_event_storage() is storage
        storage.put_scalar("loss", 3.0)
        storage.step()
        storage.put_scalar("loss", 1.0)
        storage.put_scalar("loss", 2.0)
        storage.put_scalar("lr", 0.1, smoothing_hint=False)
        assert storage.latest()["loss"] == (2.0, 6)
        assert storage.latest_with_smoothing_hint(3)["loss"] == (2.0, 6)
        assert storage.latest_with_smoothing_hint(2)["loss"] == (1.5, 6)
        with pytest.raises(ValueError, match="smoothing_hint"):
            storage.put_scalar("lr", 0.2)
        with pytest.raises(KeyError):
            storage.history("nope")
