"""Start a function on several processes with PyTorch's own distributed runtime.

``launch`` spawns one process per device on this machine (``torch.multiprocessing``), like
detectron2's ``launch``; under ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set) it joins
the process group from the environment instead. CUDA runs use NCCL, CPU runs gloo. A process
group ``timeout`` bounds every collective, and the parent watches its children: when one dies,
the others are terminated and ``launch`` raises ``ChildFailedError`` naming the rank, or, when that
process failed on the user's input (``USER_ERRORS``: bad data or input, a diverged loss), that
very error, so the ``dt`` command reports it exactly as it does for a single process.
"""

from __future__ import annotations

import datetime
import os
import pickle
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dt_data import DataError

from .comm import _set_local_rank
from .errors import InputError

__all__ = ["DEFAULT_TIMEOUT", "USER_ERRORS", "ChildFailedError", "find_free_port", "launch"]

DEFAULT_TIMEOUT = datetime.timedelta(minutes=30)
USER_ERRORS: tuple[type[Exception], ...] = (DataError, InputError, FloatingPointError)
"""Errors a launched process raises about the user's data or input, or a diverged loss: re-raised as
they are by ``launch`` (when they survive pickling unchanged), instead of ``ChildFailedError``."""


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
    error_dir: str,
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
    except USER_ERRORS as err:
        _save_error(Path(error_dir), rank, err)
        raise
    finally:
        dist.destroy_process_group()


def _error_file(error_dir: Path, rank: int) -> Path:
    return error_dir / f"rank{rank}.pickle"


def _save_error(error_dir: Path, rank: int, err: Exception) -> None:
    """Leave ``err`` for the launching process: written whole, or not at all when it does not come back
    from pickling as the same type and message (the parent then reports ``ChildFailedError``)."""
    try:
        data = pickle.dumps(err)
        copy = pickle.loads(data)
    except Exception:  # unpicklable state, or a constructor that pickle cannot call again
        return
    if type(copy) is not type(err) or str(copy) != str(err):
        return
    partial = error_dir / f".rank{rank}.partial"
    partial.write_bytes(data)
    partial.replace(_error_file(error_dir, rank))


def _saved_error(error_dir: Path, failed_rank: int) -> Exception | None:
    """The user error a process left: the failed rank's, else any other rank's (a rank whose peer died
    of bad data may fail first, of a broken connection)."""
    files = [_error_file(error_dir, failed_rank), *sorted(error_dir.glob("rank*.pickle"))]
    for path in files:
        if path.is_file():
            return pickle.loads(path.read_bytes())  # written by our own child processes
    return None


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
    with tempfile.TemporaryDirectory(prefix="dt-launch-errors-") as error_dir:
        context = mp.start_processes(
            _worker,
            nprocs=num_gpus_per_machine,
            args=(
                main_func, world_size, num_gpus_per_machine, machine_rank, dist_url, tuple(args), timeout,
                error_dir,
            ),
            daemon=False,
            join=False,
            start_method="spawn",
        )  # fmt: skip
        _watch(context, machine_rank * num_gpus_per_machine, Path(error_dir))


def _watch(context: mp.ProcessContext, first_rank: int, error_dir: Path) -> None:
    """Wait for every child; as soon as one fails, terminate the rest (grace period 5 s) and raise the
    user error it left (``USER_ERRORS``) or ``ChildFailedError``."""
    try:
        while not context.join(timeout=1.0, grace_period=5.0):
            pass
    except (mp.ProcessRaisedException, mp.ProcessExitedException) as err:
        rank = first_rank + err.error_index
        user_error = _saved_error(error_dir, rank)
        if user_error is not None:
            raise user_error from err
        detail = str(err).strip().splitlines()
        last = detail[-1] if detail else type(err).__name__
        message = f"process of rank {rank} failed ({last}); the other processes were stopped"
        raise ChildFailedError(message) from err
