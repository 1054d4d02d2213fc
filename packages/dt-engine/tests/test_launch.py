import time

import pytest
import torch
from engine_ddp_workers import STEPS, die_on_rank_one, initial_model, rank_batches, train_ddp

from dt_engine.launch import ChildFailedError, launch
from dt_engine.train_loop import SimpleTrainer


def test_two_cpu_processes_match_single_process_on_the_same_total_batch(tmp_path):
    launch(train_ddp, num_gpus_per_machine=2, dist_url="auto", args=(str(tmp_path),))
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["world"] == r1["world"] == 2
    for name in r0["weights"]:
        assert torch.equal(r0["weights"][name], r1["weights"][name]), name
    assert r0["loss"] == r1["loss"]  # metrics are averaged over processes

    model = initial_model()
    both = [
        {k: torch.cat([a[k], b[k]]) for k in a} for a, b in zip(rank_batches(0), rank_batches(1), strict=True)
    ]
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    SimpleTrainer(model, both, opt).train(0, STEPS)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(r0["weights"][name], value, rtol=1e-5, atol=1e-6)


def test_a_dying_rank_stops_the_others_with_a_clear_error(tmp_path):
    start = time.monotonic()
    with pytest.raises(ChildFailedError, match="rank 1 .*exit code 3"):
        launch(die_on_rank_one, num_gpus_per_machine=2, args=(str(tmp_path),))
    assert time.monotonic() - start < 60
    assert (tmp_path / "started0").exists()


def test_launch_validation_and_single_process(tmp_path):
    with pytest.raises(ValueError, match="machine_rank"):
        launch(print, 1, num_machines=2, machine_rank=2)
    with pytest.raises(ValueError, match="dist_url"):
        launch(print, 2, num_machines=2, machine_rank=0)
    seen = []
    launch(seen.append, 1, args=("ran",))
    assert seen == ["ran"]
