"""Checkpoints that are written atomically, resume exactly, and never execute code when loaded.

A checkpoint is one ``torch.save`` file holding plain tensors and containers only:
``model`` (state dict), one entry per checkpointable (optimizer, scheduler, trainer, EMA, ...),
``iteration``, ``rng`` (the torch, CUDA, numpy and Python RNG states of every process) and
``config`` (the resolved YAML text). Files are written to a temporary file in the same
directory (with the mode the user's umask gives), fsynced, renamed over the target and the
directory fsynced, so a crash leaves either the old file or the complete new one. Loading uses
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import logging
import os
import random
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import safetensors
import safetensors.torch
import torch
from torch import nn

from .comm import all_gather_object, get_rank, get_world_size, is_main_process
from .ema import unwrap_model

__all__ = [
    "CheckpointError",
    "Checkpointer",
    "Stateful",
    "atomic_torch_save",
    "atomic_write_text",
    "capture_rng_state",
    "restore_rng_state",
    "save_safetensors",
    "torch_load_checked",
    "unreadable_checkpoint",
]

logger = logging.getLogger(__name__)

_PERIODIC = re.compile(r"^model_(\d+)\.pth$")
LAST_CHECKPOINT = "last_checkpoint"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read (truncated, not a ``torch.save`` file, not a dt checkpoint)."""


def _reason(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def unreadable_checkpoint(path: str | os.PathLike[str], err: BaseException) -> CheckpointError:
    """The one-line error for a checkpoint file that failed to load with ``err``."""
    return CheckpointError(
        f"{path}: not a readable checkpoint ({_reason(err)}); expected a complete file written by "
        "torch.save or a detectron2 .pkl (truncated or not a checkpoint?)"
    )


def torch_load_checked(path: str | os.PathLike[str]) -> Any:
    """``torch.load(path, weights_only=True)`` onto the CPU; any failure is one ``CheckpointError`` line.

    A ``.safetensors`` file (``save_safetensors``) is read as ``{"model": tensors, "iteration", "config"}``.
    """
    if Path(path).suffix == ".safetensors":
        return _read_safetensors(Path(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {path}") from None
    except Exception as err:  # truncated zips, text files, foreign pickles: all fail differently
        raise unreadable_checkpoint(path, err) from None


def _read_safetensors(path: Path) -> dict[str, Any]:
    try:
        with safetensors.safe_open(path, framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {path}") from None
    except (safetensors.SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a valid safetensors file ({_reason(err)})") from None
    iteration = metadata.get("iteration")
    return {
        "format": metadata.get("format", "safetensors"),
        "model": tensors,
        "iteration": int(iteration) if iteration is not None and iteration.isdigit() else None,
        "config": metadata.get("config"),
    }


def save_safetensors(
    model: nn.Module, path: str | os.PathLike[str], *, iteration: int | None = None, config: str | None = None
) -> Path:
    """Write ``model``'s weights (unwrapped from DDP/EMA wrappers) as safetensors, atomically, with the
    iteration and resolved config text as metadata. Every loader of dt checkpoints reads the file."""
    path = Path(path)
    metadata = {"format": "dt-weights-v1"}
    if iteration is not None:
        metadata["iteration"] = str(int(iteration))
    if config is not None:
        metadata["config"] = config
    # copies on the CPU: safetensors refuses tensors that share memory (tied or viewed parameters)
    tensors = {
        name: t.detach().to("cpu", copy=True).contiguous()
        for name, t in unwrap_model(model).state_dict().items()
    }
    data = safetensors.torch.save(tensors, metadata)
    _atomic_write(path, lambda f: f.write(data))
    return path


class Stateful(Protocol):
    def state_dict(self) -> Mapping[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any], /) -> Any: ...


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _user_file_mode() -> int:
    """The mode ``open()`` gives a new file under this process's umask (``0o666 & ~umask``); read from
    ``/proc`` where it can be (setting the umask to read it would race with other threads)."""
    try:
        status = Path("/proc/self/status").read_text()
        umask = next(int(line.split()[1], 8) for line in status.splitlines() if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def _atomic_write(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}-")
    try:
        os.fchmod(fd, _user_file_mode())  # mkstemp makes 0600 files; keep the user's umask instead
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file + fsync + rename + directory fsync."""
    _atomic_write(Path(path), lambda f: f.write(text.encode("utf-8")))


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save(obj, path)`` through a temporary file + fsync + rename + directory fsync."""
    _atomic_write(Path(path), lambda f: torch.save(obj, f))


def capture_rng_state() -> dict[str, Any]:
    """This process's RNG states as plain tensors and numbers (loadable with ``weights_only``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (the global RNG is what code uses)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of ``capture_rng_state``."""
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            np_state["kind"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Checkpointer:
    """Saves and loads ``model`` and named checkpointables (with ``state_dict``/``load_state_dict``).

    ``save`` is collective under DDP (every process calls it: the RNG states of all ranks are
    gathered) and only the main process writes. ``config`` is the resolved config text saved
    into every checkpoint.
    """

    def __init__(
        self,
        model: nn.Module,
        save_dir: str | os.PathLike[str],
        *,
        config: str | None = None,
        **checkpointables: Stateful | None,
    ) -> None:
        for name in checkpointables:
            if name in ("model", "iteration", "rng", "config", "format"):
                raise ValueError(f"checkpointable name {name!r} is reserved")
        self.model = unwrap_model(model)
        self.save_dir = Path(save_dir)
        self.config = config
        self.checkpointables = {k: v for k, v in checkpointables.items() if v is not None}

    def save(self, name: str, *, iteration: int, collective: bool = True, mark_last: bool = True) -> Path:
        """Write ``<save_dir>/<name>.pth`` and (``mark_last``) point ``last_checkpoint`` at it.

        ``collective=False`` (a call made by the main process alone) stores only its RNG state.
        Returns the path.
        """
        rng = all_gather_object(capture_rng_state()) if collective else [capture_rng_state()]
        path = self.save_dir / f"{name}.pth"
        if not is_main_process():
            return path
        data: dict[str, Any] = {
            "format": "dt-checkpoint-v1",
            "model": self.model.state_dict(),
            "iteration": int(iteration),
            "rng": rng,
            "config": self.config,
        }
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        atomic_torch_save(data, path)
        if mark_last:
            atomic_write_text(self.save_dir / LAST_CHECKPOINT, path.name)
        logger.info("saved checkpoint %s (iteration %d)", path, iteration)
        return path

    def periodic_checkpoints(self) -> list[Path]:
        """``model_<iteration>.pth`` files in ``save_dir``, oldest iteration first."""
        if not self.save_dir.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.save_dir.iterdir() if (m := _PERIODIC.match(p.name))]
        return [p for _, p in sorted(found)]

    def prune(self, keep: int) -> None:
        """Delete all but the newest ``keep`` periodic checkpoints (main process only)."""
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        if is_main_process():
            for path in self.periodic_checkpoints()[:-keep]:
                path.unlink(missing_ok=True)

    def last_checkpoint(self) -> Path | None:
        """The newest checkpoint: ``last_checkpoint``'s target, else the newest periodic one."""
        candidates = self.resume_candidates()
        return candidates[0] if candidates else None

    def resume_candidates(self) -> list[Path]:
        """Checkpoints to resume from, newest first: ``last_checkpoint``'s target, then the periodic
        ones by iteration (a fallback when a newer file turns out truncated)."""
        found: list[Path] = []
        marker = self.save_dir / LAST_CHECKPOINT
        if marker.is_file():
            target = self.save_dir / marker.read_text().strip()
            if target.is_file():
                found.append(target)
        found += [p for p in reversed(self.periodic_checkpoints()) if p not in found]
        return found

    @staticmethod
    def read(path: str | os.PathLike[str]) -> dict[str, Any]:
        """The checkpoint's content, loaded with ``torch.load(weights_only=True)`` onto the CPU."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        data = torch_load_checked(path)
        if not isinstance(data, dict) or "model" not in data:
            raise CheckpointError(f"{path} is not a dt checkpoint (no 'model' entry)")
        return data

    def load(
        self,
        path: str | os.PathLike[str],
        *,
        resume: bool = True,
        strict: bool = True,
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Load a checkpoint; with ``resume`` also every checkpointable and this rank's RNG state.

        Returns the checkpoint content (``iteration``, ``config``, ...). Without ``resume`` only
        the model weights are loaded (fine-tuning); ``strict=False`` then tolerates missing
        and unexpected keys but never a shape mismatch. ``data``: the content, if already read.
        """
        if data is None:
            data = self.read(path)
        self._load_model(data["model"], strict=strict)
        if resume:
            for key, obj in self.checkpointables.items():
                if key not in data:
                    raise KeyError(f"checkpoint {path} has no state for {key!r}")
                obj.load_state_dict(data[key])
            rng = data.get("rng") or []
            if len(rng) == get_world_size():
                restore_rng_state(rng[get_rank()])
            else:
                logger.warning(
                    "checkpoint %s holds RNG states of %d processes, this run has %d: RNG not restored",
                    path,
                    len(rng),
                    get_world_size(),
                )
        return data

    def _load_model(self, state: Mapping[str, torch.Tensor], *, strict: bool) -> None:
        own = self.model.state_dict()
        mismatched = [
            f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
            for k, v in state.items()
            if k in own and tuple(v.shape) != tuple(own[k].shape)
        ]
        if mismatched:
            raise ValueError("checkpoint shapes do not match the model: " + "; ".join(mismatched))
        result = self.model.load_state_dict(state, strict=strict)
        if result.missing_keys:
            logger.warning("keys missing from the checkpoint: %s", ", ".join(result.missing_keys))
        if result.unexpected_keys:
            logger.warning("checkpoint keys not in the model: %s", ", ".join(result.unexpected_keys))

    def resume_or_load(self, weights: str | os.PathLike[str] | None, *, resume: bool) -> int:
        """The iteration to start at: after the last checkpoint when ``resume`` finds one, else 0
        (after loading ``weights`` into the model, if given)."""
        if resume:
            for path in self.resume_candidates():
                try:
                    data = self.read(path)
                except CheckpointError as err:
                    logger.warning("%s; falling back to the previous checkpoint", err)
                    continue
                start = int(self.load(path, resume=True, data=data)["iteration"]) + 1
                if is_main_process():
                    logger.info("--resume: resumed from %s; starting at iteration %d", path, start)
                return start
            if is_main_process():
                logger.info("--resume: no intact checkpoint in %s; starting at iteration 0", self.save_dir)
        if weights is not None:
            self.load(weights, resume=False, strict=False)
        return 0
