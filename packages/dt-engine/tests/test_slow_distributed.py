"""Long runs (``nox -s slow``): plain torchrun, ``dt train --num-gpus 2``, ``dt train`` killed and resumed."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dt_engine.launch import find_free_port

HERE = Path(__file__).parent


@pytest.mark.slow
def test_plain_torchrun_job(tmp_path):
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
        str(find_free_port()), str(HERE / "engine_torchrun_script.py"), str(tmp_path),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(HERE), "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd, env=env, check=True, timeout=300, capture_output=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["world"] == 2 and r1["rank"] == 1
    for name in r0["weights"]:
        assert torch.equal(r0["weights"][name], r1["weights"][name])


@pytest.mark.slow
def test_dt_train_on_two_cpu_processes(tmp_path):
    out = tmp_path / "out"
    cmd = [
        str(Path(sys.executable).parent / "dt"), "train", "--config", str(HERE / "engine_tiny_rcnn.yaml"),
        "--num-gpus", "2", f"output_dir={out}", "data.datasets.train=[shapes_train]",
        "data.datasets.test=[shapes_val]", "solver.max_iter=2", "test.eval_period=0",
        "test.val_loss_period=0", "test.precise_bn.enabled=false",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    data = torch.load(out / "model_final.pth", weights_only=True)
    assert data["iteration"] == 1 and len(data["rng"]) == 2
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("bbox/AP" in line for line in lines)


def _final_weights(out):
    return torch.load(out / "model_final.pth", weights_only=True)["model"]


@pytest.mark.slow
def test_dt_train_killed_then_resumed_equals_uninterrupted(tmp_path):
    dt = str(Path(sys.executable).parent / "dt")
    env = {**os.environ, "PYTHONPATH": str(HERE), "OMP_NUM_THREADS": "1"}
    common = [
        "--config", str(HERE / "engine_tiny_config.py"), "solver.max_iter=8", "solver.checkpoint_period=2",
        "test.eval_period=0", "test.val_loss_period=0", "test.precise_bn.enabled=false",
    ]  # fmt: skip
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run([dt, "train", *common, f"output_dir={straight}"], env=env, check=True, timeout=900)
    proc = subprocess.Popen([dt, "train", *common, f"output_dir={killed}"], env=env)
    deadline = time.monotonic() + 600
    while not (killed / "last_checkpoint").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not (killed / "model_final.pth").exists()
    subprocess.run(
        [dt, "train", *common, f"output_dir={killed}", "--resume"], env=env, check=True, timeout=900
    )
    a, b = _final_weights(straight), _final_weights(killed)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
