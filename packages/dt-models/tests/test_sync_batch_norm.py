"""SyncBN and naive SyncBN: BatchNorm on one process, full-batch statistics across two gloo processes."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from dt_models.layers import NaiveSyncBatchNorm, SyncBatchNorm, get_norm

CHANNELS = 3


def _full_batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(5, CHANNELS, 4, 6, generator=g) * 3 + 1, torch.randn(5, CHANNELS, 4, 6, generator=g)


def _reference(x, grad_out):
    """BatchNorm2d on the whole batch: output, input gradient, weight gradient, running stats."""
    torch.manual_seed(1)
    bn = nn.BatchNorm2d(CHANNELS)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    x = x.clone().requires_grad_()
    out = bn(x)
    out.backward(grad_out)
    return out.detach(), x.grad, bn.weight.grad, bn.running_mean, bn.running_var


def _make(kind):
    torch.manual_seed(1)
    bn = SyncBatchNorm(CHANNELS) if kind == "SyncBN" else NaiveSyncBatchNorm(CHANNELS, stats_mode=kind[5:])
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    return bn


@pytest.mark.parametrize("kind", ["SyncBN", "naive", "naiveN"])
def test_one_process_is_batch_norm(kind):
    x, grad_out = _full_batch()
    expected = _reference(x, grad_out)
    bn = _make(kind)
    leaf = x.clone().requires_grad_()
    out = bn(leaf)
    out.backward(grad_out)
    for got, want in zip(
        (out.detach(), leaf.grad, bn.weight.grad, bn.running_mean, bn.running_var), expected, strict=True
    ):
        torch.testing.assert_close(got, want)


CASES = {  # kind: per-process batch slices
    "SyncBN": ((0, 2), (2, 5)),  # batch sizes 2 and 3
    "naiveN": ((0, 2), (2, 5)),
    "naive": ((0, 2), (2, 4)),  # equal averaging of per-process statistics needs equal sizes
}


def _worker(rank, port, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        torch.set_num_threads(1)
        x, grad_out = _full_batch()
        for kind, splits in CASES.items():
            lo, hi = splits[rank]
            bn = _make(kind)
            leaf = x[lo:hi].clone().requires_grad_()
            out = bn(leaf)
            out.backward(grad_out[lo:hi])
            weight_grad = bn.weight.grad.clone()
            dist.all_reduce(weight_grad)  # as DistributedDataParallel sums parameter gradients
            results[kind, rank] = (
                out.detach(), leaf.grad, weight_grad, bn.running_mean.clone(), bn.running_var.clone()
            )  # fmt: skip
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_process_results():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_worker, args=(port, results), nprocs=2, join=True)
        return dict(results)


@pytest.mark.parametrize("kind", list(CASES))
def test_two_gloo_processes_use_full_batch_statistics(kind, two_process_results):
    x, grad_out = _full_batch()
    size = CASES[kind][1][1]
    out_ref, grad_ref, weight_grad_ref, mean_ref, var_ref = _reference(x[:size], grad_out[:size])
    results = [two_process_results[kind, rank] for rank in (0, 1)]
    torch.testing.assert_close(torch.cat([r[0] for r in results]), out_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.cat([r[1] for r in results]), grad_ref, rtol=1e-5, atol=1e-5)
    count = size * 4 * 6
    # running_var starts at 1 and moves by momentum 0.1 towards the batch variance: BatchNorm's (and
    # SyncBN's) is unbiased, naive SyncBN's biased
    naive_var = 0.9 + (var_ref - 0.9) * (count - 1) / count
    for r in results:
        torch.testing.assert_close(r[2], weight_grad_ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(r[3], mean_ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(r[4], var_ref if kind == "SyncBN" else naive_var, rtol=1e-5, atol=1e-5)


def test_norm_names():
    assert isinstance(get_norm("SyncBN", 4), SyncBatchNorm) and isinstance(
        get_norm("SyncBN", 4), nn.SyncBatchNorm
    )
    assert get_norm("naiveSyncBN_N", 4).stats_mode == "N" and get_norm("naiveSyncBN", 4).stats_mode == ""
    assert type(get_norm("nnSyncBN", 4)) is nn.SyncBatchNorm
