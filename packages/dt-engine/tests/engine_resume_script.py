"""A small CPU training run used by test_resume.py (run as a subprocess).

    python engine_resume_script.py OUT_DIR MAX_ITER [--kill-at ITER] [--resume] [--period P]

Uses every RNG the checkpoint restores (torch: dropout; numpy and Python: loss jitter) and a
resumable data stream, and writes the final weights to OUT_DIR/final_weights.pt.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
from pathlib import Path

import numpy as np
import torch
from engine_toys import ToyRegressor, ToyStream
from torch import nn

from dt_engine.build import build_lr_scheduler, build_optimizer
from dt_engine.checkpoint import Checkpointer
from dt_engine.config.solver import SolverConfig
from dt_engine.hooks import IterationTimer, LRScheduler, PeriodicCheckpointer, PeriodicWriter
from dt_engine.train_loop import HookBase, SimpleTrainer
from dt_engine.writers import JSONWriter


class NoisyRegressor(ToyRegressor):
    def __init__(self) -> None:
        super().__init__()
        self.dropout = nn.Dropout(0.2)

    def forward(self, batch):
        batch = {"x": self.dropout(batch["x"]), "y": batch["y"]}
        losses = super().forward(batch)
        jitter = 1.0 + 0.01 * float(np.random.rand()) + 0.01 * random.random()  # noqa: NPY002
        return {k: v * jitter for k, v in losses.items()}


class KillAt(HookBase):
    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def after_step(self) -> None:
        if self.state.iter == self.iteration:
            os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("max_iter", type=int)
    parser.add_argument("--kill-at", type=int, default=None)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--period", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002
    random.seed(0)
    model = NoisyRegressor()
    solver = SolverConfig(base_lr=0.01, max_iter=args.max_iter, steps=(args.max_iter // 2,), warmup_iters=5)
    optimizer = build_optimizer(model, solver)
    scheduler = build_lr_scheduler(optimizer, solver)
    trainer = SimpleTrainer(model, ToyStream(batch_size=8), optimizer)
    checkpointer = Checkpointer(
        model, args.out_dir, config="solver: {}\n", optimizer=optimizer, scheduler=scheduler, trainer=trainer
    )
    trainer.register_hooks(
        [
            IterationTimer(),
            LRScheduler(scheduler),
            PeriodicCheckpointer(checkpointer, args.period, max_to_keep=2),
            PeriodicWriter([JSONWriter(args.out_dir / "metrics.jsonl")], period=1),
            KillAt(args.kill_at) if args.kill_at is not None else None,
        ]
    )
    start_iter = checkpointer.resume_or_load(None, resume=args.resume)
    print(f"start_iter={start_iter}", flush=True)
    trainer.train(start_iter, args.max_iter)
    torch.save(model.state_dict(), args.out_dir / "final_weights.pt")


if __name__ == "__main__":
    sys.exit(main())
