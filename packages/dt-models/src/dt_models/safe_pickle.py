"""A restricted unpickler for checkpoint ``.pkl`` files: plain containers, numbers, strings, numpy arrays.

The whole stream is scanned before anything is unpickled: a pickle that references any other
callable (``os.system``, ``builtins.eval``, a class of some library, ...) is rejected without
running a single opcode. Unpickling itself is done by an ``Unpickler`` whose ``find_class`` admits
the same short list, so the scan is not the only line of defence.
"""

from __future__ import annotations

import codecs
import io
import pickle
import pickletools
from collections import OrderedDict
from typing import Any

import numpy as np

__all__ = ["UnsafePickleError", "safe_load_pickle"]


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle references something other than plain data and numpy arrays."""


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    # Python 3 writes ``bytes`` at protocol 2 as ``_codecs.encode(text, "latin1")``.
    if encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return codecs.encode(text, "latin1")


def _numpy_core():
    try:
        from numpy._core import multiarray, numeric  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray, numeric
    return multiarray, numeric


def _allowed() -> dict[tuple[str, str], Any]:
    multiarray, numeric = _numpy_core()
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("collections", "OrderedDict"): OrderedDict,
        ("_codecs", "encode"): _latin1_encode,
    }
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer  # pickle protocol 5 arrays
    return allowed


_STRING_OPS = {
    "SHORT_BINUNICODE",
    "BINUNICODE",
    "UNICODE",
    "BINUNICODE8",
    "STRING",
    "BINSTRING",
    "SHORT_BINSTRING",
}
_GET_OPS = {"GET", "BINGET", "LONG_BINGET"}
_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}


def _referenced_globals(data: bytes) -> list[tuple[str, str]]:
    """Every ``(module, name)`` the pickle would import, found without executing it."""
    found = []
    memo: dict[int, Any] = {}
    pushed: list[Any] = []  # recent values pushed on the stack (strings tracked, others None)
    for opcode, arg, _ in pickletools.genops(data):
        name = opcode.name
        if name in _STRING_OPS:
            pushed.append(arg)
        elif name in _GET_OPS:
            pushed.append(memo.get(arg))
        elif name in _PUT_OPS:
            memo[arg] = pushed[-1] if pushed else None
        elif name == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        elif name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            found.append((module, attr))
            pushed.append(None)
        elif name == "STACK_GLOBAL":
            module, attr = (pushed[-2], pushed[-1]) if len(pushed) >= 2 else (None, None)
            if not isinstance(module, str) or not isinstance(attr, str):
                raise UnsafePickleError("pickle computes an import name dynamically; refusing to load it")
            found.append((module, attr))
            pushed.append(None)
        elif name in ("EXT1", "EXT2", "EXT4"):
            raise UnsafePickleError("pickle uses the copyreg extension registry; refusing to load it")
        else:
            pushed.append(None)
    return found


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, allowed: dict[tuple[str, str], Any]) -> None:
        super().__init__(file, encoding="latin1")
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"pickle references {module}.{name}, which is not allowed") from None


def safe_load_pickle(data: bytes) -> Any:
    """Unpickle ``data`` if it only holds dicts, lists, tuples, numbers, strings and numpy arrays.

    Raises:
        UnsafePickleError: if the pickle references anything else; nothing has been executed.
    """
    allowed = _allowed()
    bad = sorted({f"{m}.{n}" for m, n in _referenced_globals(data) if (m, n) not in allowed})
    if bad:
        raise UnsafePickleError(
            f"pickle references disallowed callables: {', '.join(bad)}; refusing to load it"
        )
    return _RestrictedUnpickler(io.BytesIO(data), allowed).load()
