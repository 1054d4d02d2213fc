"""Run by test_slow_distributed.py under ``torchrun --nproc-per-node 2``: ``launch`` joins the job."""

import sys

from engine_ddp_workers import train_ddp

from dt_engine.launch import launch

if __name__ == "__main__":
    launch(train_ddp, num_gpus_per_machine=2, args=(sys.argv[1],))
