"""Functions run by ``dt_engine.launch.launch`` in test_launch.py (importable by spawned processes)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist
from engine_toys import ToyRegressor, ToyStream
from torch import nn

from dt_engine import comm
from dt_engine.train_loop import SimpleTrainer

STEPS = 5


def initial_model() -> ToyRegressor:
    torch.manual_seed(0)
    return ToyRegressor(bn=False)


def rank_batches(rank: int, steps: int = STEPS) -> list[dict[str, torch.Tensor]]:
    stream = iter(ToyStream(batch_size=8, seed=rank))
    return [next(stream) for _ in range(steps)]


def train_ddp(out_dir: str) -> None:
    torch.set_num_threads(1)
    rank = comm.get_rank()
    model = nn.parallel.DistributedDataParallel(initial_model())
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    trainer = SimpleTrainer(model, rank_batches(rank), opt)
    trainer.train(0, STEPS)
    loss = trainer.storage.latest()["total_loss"][0]
    torch.save(
        {"weights": model.module.state_dict(), "loss": loss, "world": comm.get_world_size(), "rank": rank},
        Path(out_dir) / f"rank{rank}.pt",
    )


def die_on_rank_one(out_dir: str) -> None:
    rank = comm.get_rank()
    Path(out_dir, f"started{rank}").touch()
    if rank == 1:
        os._exit(3)
    t = torch.ones(1)
    for _ in range(1000):
        dist.all_reduce(t)  # rank 0 blocks here waiting for the dead rank
