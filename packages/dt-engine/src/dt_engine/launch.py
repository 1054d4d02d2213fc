"""Start a function on several processes with PyTorch's own distributed runtime.

``launch`` spawns one process per device on this machine (``torch.multiprocessing``), like
detectron2's ``launch``; under ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set) it joins
the process group from the environment instead. CUDA runs use NCCL, CPU runs gloo. A process
group ``timeout`` bounds every collective, and the parent watches its children: when one dies,
the others are terminated and ``launch`` raises ``ChildFailedError`` naming the rank.
"""

from __future__ import annotations

import datetime
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from .comm import _set_local_rank

__all__ = ["DEFAULT_TIMEOUT", "ChildFailedError", "find_free_port", "launch"]

DEFAULT_TIMEOUT = datetime.timedelta(minutes=30)


class ChildFailedError(RuntimeError):
    """A launched process exited with an error; the others were terminated."""


def find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _backend() -> str:
    return "nccl" if torch.cuda.is_available() else "gloo"


def _under_torchrun() -> bool:
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"))


def _watch_parent(parent_pid: int, rank: int) -> None:
    """Exit this worker if the launching process disappears (it can no longer stop us on failure)."""

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                sys.stderr.write(f"dt launch: rank {rank}: the launching process died; exiting\n")
                os._exit(1)

    threading.Thread(target=watch, name="dt-parent-watchdog", daemon=True).start()


def _worker(
    local_rank: int,
    main_func: Callable[..., Any],
    world_size: int,
    num_per_machine: int,
    machine_rank: int,
    dist_url: str,
    args: Sequence[Any],
    timeout: datetime.timedelta,
) -> None:
    rank = machine_rank * num_per_machine + local_rank
    _watch_parent(os.getppid(), rank)
    backend = _backend()
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend, init_method=dist_url, world_size=world_size, rank=rank, timeout=timeout)
    _set_local_rank(local_rank)
    try:
        dist.barrier()
        main_func(*args)
    finally:
        dist.destroy_process_group()


def launch(
    main_func: Callable[..., Any],
    num_gpus_per_machine: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    dist_url: str | None = None,
    args: Sequence[Any] = (),
    timeout: datetime.timedelta = DEFAULT_TIMEOUT,
) -> None:
    """Run ``main_func(*args)`` on ``num_machines * num_gpus_per_machine`` processes.

    ``num_gpus_per_machine`` is the number of processes on this machine (one per GPU; on a
    CPU-only machine, CPU processes using gloo). ``dist_url`` is ``tcp://host:port`` of machine 0
    (``"auto"`` or ``None`` picks a free local port when ``num_machines == 1``). Under ``torchrun``
    the environment decides and this process runs ``main_func`` directly.
    """
    if _under_torchrun():
        _set_local_rank(int(os.environ["LOCAL_RANK"]))
        if _backend() == "nccl":
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        owned = not dist.is_initialized()
        if owned:
            dist.init_process_group(_backend(), init_method="env://", timeout=timeout)
        try:
            main_func(*args)
        finally:
            if owned:
                dist.destroy_process_group()
        return
    if num_gpus_per_machine < 1 or num_machines < 1:
        raise ValueError(f"need >= 1 process and machine, got {num_gpus_per_machine} and {num_machines}")
    if not 0 <= machine_rank < num_machines:
        raise ValueError(f"machine_rank must be in [0, {num_machines}), got {machine_rank}")
    world_size = num_gpus_per_machine * num_machines
    if world_size == 1:
        main_func(*args)
        return
    if dist_url in (None, "auto"):
        if num_machines > 1:
            raise ValueError("dist_url must be tcp://<machine 0 host>:<port> when num_machines > 1")
        dist_url = f"tcp://127.0.0.1:{find_free_port()}"
    context = mp.start_processes(
        _worker,
        nprocs=num_gpus_per_machine,
        args=(main_func, world_size, num_gpus_per_machine, machine_rank, dist_url, tuple(args), timeout),
        daemon=False,
        join=False,
        start_method="spawn",
    )
    _watch(context, machine_rank * num_gpus_per_machine)


def _watch(context: mp.ProcessContext, first_rank: int) -> None:
    """Wait for every child; as soon as one fails, terminate the rest (grace period 5 s) and raise."""
    try:
        while not context.join(timeout=1.0, grace_period=5.0):
            pass
    except (mp.ProcessRaisedException, mp.ProcessExitedException) as err:
        rank = first_rank + err.error_index
        detail = str(err).strip().splitlines()
        last = detail[-1] if detail else type(err).__name__
        message = f"process of rank {rank} failed ({last}); the other processes were stopped"
        raise ChildFailedError(message) from err
