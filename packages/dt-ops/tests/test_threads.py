"""The CPU kernels' threads: torch's own OpenMP team where torch runs on OpenMP (Linux wheels), the
same results with one thread or several."""

import sys

import pytest
import torch

import dt_ops
from dt_ops import _native


@pytest.mark.skipif(
    sys.platform != "linux" or "parallel backend: OpenMP" not in torch.__config__.parallel_info(),
    reason="torch's OpenMP runtime is looked up among the libraries of a Linux process",
)
def test_kernels_share_torchs_openmp_team():
    assert _native.SHARES_TORCH_OPENMP


def test_results_do_not_depend_on_the_thread_count():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(2, 64, 60, 60, generator=generator, requires_grad=True)
    rois = torch.cat([torch.randint(0, 2, (300, 1), generator=generator).float(),
                      torch.rand(300, 2, generator=generator) * 100,
                      torch.rand(300, 2, generator=generator) * 100 + 110], dim=1)  # fmt: skip
    threads = torch.get_num_threads()
    results = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            out = dt_ops.roi_align(features, rois, (7, 7), 0.5, 2, True)
            (grad,) = torch.autograd.grad(out.square().sum(), features)
            results.append((out, grad))
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=0)


def _flushes_on_every_thread() -> bool:
    # a denormal product on both threads of an elementwise op large enough to be split
    x = torch.full((1 << 20,), 1e-20)
    return bool(((x * 1e-20) == 0).all())


def test_set_flush_denormal_reaches_the_openmp_workers():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        (torch.ones(1 << 20) * 2).sum()  # the OpenMP team exists before the setting changes
        assert dt_ops.set_flush_denormal(True)
        flushed = _flushes_on_every_thread()
        dt_ops.set_flush_denormal(False)
        assert flushed and not _flushes_on_every_thread()
    finally:
        torch.set_num_threads(threads)
