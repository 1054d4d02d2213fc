"""The safetensors format, read and written without a dependency: tensors and string metadata, no code.

A file is an 8-byte little-endian header length ``N``, ``N`` bytes of JSON
(``{name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {str: str}}``,
offsets relative to the data that follows, padded with spaces to a multiple of 8), then the tensors'
little-endian bytes back to back. Reading checks every entry (known dtype, a size that matches the
shape, offsets that tile the data exactly), so a truncated or forged file is one clear error.
"""

from __future__ import annotations

import json
import math
import struct
import sys
from collections.abc import Callable, Mapping

import torch

__all__ = ["SafetensorsError", "decode", "encode"]

_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_NAMES = {dtype: name for name, dtype in _DTYPES.items()}
_MAX_HEADER = 100 * 1024 * 1024


class SafetensorsError(ValueError):
    """A file that is not a valid safetensors file (the message says what is wrong)."""


def _bytes(tensor: torch.Tensor) -> bytes:
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    if flat.numel() == 0:
        return b""
    data = flat.view(torch.uint8).numpy().tobytes()
    if sys.byteorder == "big" and flat.element_size() > 1:
        raise SafetensorsError("writing safetensors on a big-endian machine is not supported")
    return data


def encode(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> bytes:
    """The safetensors bytes of ``tensors`` (any device; stored on the CPU) and ``metadata``."""
    header: dict[str, object] = {}
    if metadata:
        bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            raise SafetensorsError(f"metadata must map strings to strings; {bad[0]!r} does not")
        header["__metadata__"] = dict(metadata)
    chunks, offset = [], 0
    for name, tensor in tensors.items():
        if tensor.dtype not in _NAMES:
            raise SafetensorsError(f"tensor {name!r}: dtype {tensor.dtype} cannot be stored in safetensors")
        data = _bytes(tensor)
        header[name] = {
            "dtype": _NAMES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def decode(data: bytes, source: str = "safetensors data") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors (CPU, in file order) and metadata of safetensors ``data``.

    Raises:
        SafetensorsError: naming ``source`` and the first thing that is wrong.
    """

    def fail(what: str) -> SafetensorsError:
        return SafetensorsError(f"{source}: not a valid safetensors file ({what})")

    if len(data) < 8:
        raise fail("shorter than its 8-byte header length")
    (length,) = struct.unpack("<Q", data[:8])
    if length > min(_MAX_HEADER, len(data) - 8):
        raise fail(f"header length {length} exceeds the file")
    try:
        header = json.loads(data[8 : 8 + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise fail(f"header is not JSON: {err}") from None
    if not isinstance(header, dict):
        raise fail("header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise fail("__metadata__ must map strings to strings")
    body = memoryview(data)[8 + length :]
    entries = sorted(header.items(), key=lambda item: _offsets(item, fail)[0])
    tensors, end = {}, 0
    for name, entry in entries:
        begin, stop = _offsets((name, entry), fail)
        if stop > len(body):
            raise fail(f"truncated: tensor {name!r} ends at byte {stop} of {len(body)}")
        dtype = _DTYPES.get(entry.get("dtype"))
        shape = entry.get("shape")
        if dtype is None:
            raise fail(f"tensor {name!r} has unknown dtype {entry.get('dtype')!r}")
        if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise fail(f"tensor {name!r} has shape {shape!r}")
        itemsize = torch.empty((), dtype=dtype).element_size()
        if begin != end or stop - begin != math.prod(shape) * itemsize:
            raise fail(
                f"tensor {name!r}: data_offsets [{begin}, {stop}] do not match its shape or neighbours"
            )
        end = stop
        raw = bytearray(body[begin:stop])
        flat = torch.frombuffer(raw, dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
        tensors[name] = flat.view(dtype).reshape(shape)
    if end != len(body):
        raise fail(f"{len(body) - end} bytes after the last tensor (or the file is truncated)")
    return {name: tensors[name] for name in header}, metadata


def _offsets(item: tuple[str, object], fail: Callable[[str], SafetensorsError]) -> tuple[int, int]:
    name, entry = item
    offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
        raise fail(f"tensor {name!r} has no [begin, end] data_offsets")
    if not 0 <= offsets[0] <= offsets[1]:
        raise fail(f"tensor {name!r} has data_offsets {offsets}")
    return offsets[0], offsets[1]
