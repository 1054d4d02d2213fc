import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from engine_toys import ToyRegressor
from torch import nn

from dt_engine.checkpoint import (
    Checkpointer,
    CheckpointError,
    atomic_torch_save,
    capture_rng_state,
    restore_rng_state,
)

HERE = Path(__file__).parent


def test_atomic_save_leaves_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pth"
    atomic_torch_save({"a": torch.ones(2)}, path)

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_torch_save({"a": torch.zeros(2)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pth"]  # no temporary file left


def test_rng_state_round_trip():
    state = capture_rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    torch.rand(5), np.random.rand(7), random.random()  # noqa: NPY002
    restore_rng_state(state)
    got = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1]) and expected[2] == got[2]


def _setup(tmp_path, **kwargs):
    torch.manual_seed(0)
    model = ToyRegressor()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, opt, Checkpointer(model, tmp_path, optimizer=opt, config="a: 1\n", **kwargs)


def test_save_load_and_keep_last(tmp_path):
    model, opt, ckpt = _setup(tmp_path)
    model(dict(x=torch.randn(4, 4), y=torch.randn(4)))["loss_mse"].backward()
    opt.step()
    for it in (4, 9, 14, 19):
        ckpt.save(f"model_{it:07d}", iteration=it)
        ckpt.prune(keep=2)
    assert [p.name for p in ckpt.periodic_checkpoints()] == ["model_0000014.pth", "model_0000019.pth"]
    assert ckpt.last_checkpoint() == tmp_path / "model_0000019.pth"
    assert not any(p.name.startswith(".tmp") for p in tmp_path.iterdir())
    data = Checkpointer.read(ckpt.last_checkpoint())
    assert data["iteration"] == 19 and data["config"] == "a: 1\n" and len(data["rng"]) == 1

    model2, opt2, ckpt2 = _setup(tmp_path)
    with torch.no_grad():
        model2.linear.weight.zero_()
    assert ckpt2.resume_or_load(None, resume=True) == 20
    for a, b in zip(model.state_dict().values(), model2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert opt2.state_dict()["state"][0]["momentum_buffer"].equal(
        opt.state_dict()["state"][0]["momentum_buffer"]
    )


def test_resume_falls_back_to_newest_periodic_and_weights(tmp_path):
    model, _, ckpt = _setup(tmp_path)
    assert ckpt.last_checkpoint() is None
    assert ckpt.resume_or_load(None, resume=True) == 0
    ckpt.save("model_0000004", iteration=4)
    (tmp_path / "last_checkpoint").write_text("model_gone.pth")
    assert ckpt.last_checkpoint() == tmp_path / "model_0000004.pth"
    weights = tmp_path / "weights.pth"
    torch.save(
        {"model": {k: v + 1 for k, v in model.state_dict().items() if k.startswith("linear")}}, weights
    )
    model2, _, ckpt2 = _setup(tmp_path / "other")
    assert ckpt2.resume_or_load(weights, resume=True) == 0  # nothing to resume: load weights, start at 0
    assert torch.equal(model2.linear.bias, model.linear.bias + 1)


def test_load_rejects_code_and_mismatches(tmp_path):
    model, _, ckpt = _setup(tmp_path)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    evil = tmp_path / "evil.pth"
    with evil.open("wb") as f:
        pickle.dump({"model": Evil()}, f)
    with pytest.raises(CheckpointError, match="UnpicklingError: Weights only load failed"):
        ckpt.load(evil)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        ckpt.load(tmp_path / "missing.pth")
    torch.save({"weights": {}}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not a dt checkpoint"):
        ckpt.load(tmp_path / "other.pth")
    torch.save({"model": {"linear.weight": torch.zeros(2, 2)}}, tmp_path / "shape.pth")
    with pytest.raises(ValueError, match=r"linear.weight: checkpoint \(2, 2\) vs model \(1, 4\)"):
        ckpt.load(tmp_path / "shape.pth", resume=False, strict=False)
    ckpt.save("partial", iteration=0)
    _, _, needs_more = _setup(tmp_path, scheduler=nn.Module())
    with pytest.raises(KeyError, match="scheduler"):
        needs_more.load(tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="reserved"):
        Checkpointer(model, tmp_path, rng=nn.Module())


def _run(out, max_iter, *extra, check=True):
    env = {**os.environ, "PYTHONPATH": str(HERE), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(HERE / "engine_resume_script.py"), str(out), str(max_iter), *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=check, timeout=300)


def _final(out):
    return torch.load(out / "final_weights.pt", weights_only=True)


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    _run(tmp_path / "straight", 30)
    killed = _run(tmp_path / "killed", 30, "--kill-at", "17", check=False)
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "final_weights.pt").exists()
    resumed = _run(tmp_path / "killed", 30, "--resume")
    assert "start_iter=15" in resumed.stdout
    straight, again = _final(tmp_path / "straight"), _final(tmp_path / "killed")
    for name in straight:
        assert torch.equal(straight[name], again[name]), name
    lines = [json.loads(line) for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert [d["iteration"] for d in lines] == [*range(18), *range(15, 30)]  # nothing written is lost


@pytest.mark.slow
def test_sigkill_at_random_times_always_resumes_exactly(tmp_path):
    _run(tmp_path / "straight", 200, "--period", "1")
    rng = np.random.default_rng(0)
    out = tmp_path / "killed"
    for _ in range(3):
        env = {**os.environ, "PYTHONPATH": str(HERE), "OMP_NUM_THREADS": "1"}
        cmd = [
            sys.executable,
            str(HERE / "engine_resume_script.py"),
            str(out),
            "200",
            "--period",
            "1",
            "--resume",
        ]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not (out / "last_checkpoint").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(float(rng.uniform(0.0, 0.5)))  # checkpoints are written every iteration: kill mid-write
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    _run(out, 200, "--period", "1", "--resume")
    straight, again = _final(tmp_path / "straight"), _final(out)
    for name in straight:
        assert torch.equal(straight[name], again[name]), name
