"""``launch`` on 2 CPU processes: a process failing on the user's data or on a diverged loss makes the
launching process raise that very error (as a single process would), not ``ChildFailedError``."""

from __future__ import annotations

import time

import pytest
import torch
from engine_toys import ToyStream
from torch import nn

from dt_data import ImageError
from dt_engine import comm
from dt_engine.errors import InputError
from dt_engine.launch import ChildFailedError, launch
from dt_engine.train_loop import SimpleTrainer

BAD_IMAGE = "images/train/img1.png: not a complete image file (truncated); expected a complete image file"


class TwoPartError(InputError):
    """A user error whose constructor pickle cannot call again (two arguments)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")


def bad_image_on_rank_one() -> None:
    if comm.get_rank() == 1:
        raise ImageError(BAD_IMAGE)
    t = torch.ones(1)
    for _ in range(1000):
        torch.distributed.all_reduce(t)  # rank 0 blocks here until it is stopped


def unpicklable_error_on_rank_one() -> None:
    if comm.get_rank() == 1:
        raise TwoPartError("a.json", "broken")
    time.sleep(120)  # no collective: rank 0 cannot fail first (of a reset connection); it is stopped


class NaNOnRankOne(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, batch):
        scale = float("nan") if comm.get_rank() == 1 else 1.0
        return {"loss_cls": self.w * 0.5, "loss_mask": self.w * scale}


def nan_loss_on_rank_one() -> None:
    torch.set_num_threads(1)
    model = nn.parallel.DistributedDataParallel(NaNOnRankOne())
    SimpleTrainer(model, ToyStream(), torch.optim.SGD(model.parameters(), lr=0.0)).train(0, 3)


def test_bad_data_on_one_rank_is_raised_as_it_is():
    with pytest.raises(ImageError) as info:
        launch(bad_image_on_rank_one, num_gpus_per_machine=2)
    assert str(info.value) == BAD_IMAGE


def test_a_diverged_loss_names_the_term_as_in_a_single_process():
    with pytest.raises(FloatingPointError, match=r"^loss_mask = nan at iteration 0: training diverged"):
        launch(nan_loss_on_rank_one, num_gpus_per_machine=2)


def test_an_error_that_does_not_survive_pickling_is_a_child_failure():
    with pytest.raises(ChildFailedError, match=r"rank 1 .*TwoPartError: a.json: broken"):
        launch(unpicklable_error_on_rank_one, num_gpus_per_machine=2)
