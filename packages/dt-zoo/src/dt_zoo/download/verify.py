"""Checking a file before use: size, sha256, md5 prefix, and the sha256 sidecar of first downloads.

What a file is checked against, in order of trust:

1. the manifest's ``sha256``;
2. else the sidecar ``<file>.sha256`` (``sha256sum`` format) recorded when the file was first
   verified, so a file changed later in the cache is caught;
3. else the ``md5_prefix`` (detectron2 puts one in its file names), and then the sidecar is written.

A known ``size`` is checked first. A file that fails is deleted and ``ZooError`` says expected vs got.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import attrs

from ..errors import ZooError

__all__ = [
    "NOTHING_EXPECTED",
    "Expected",
    "file_digests",
    "read_sidecar",
    "sidecar_path",
    "verify_file",
    "write_sidecar",
]

_CHUNK = 1 << 20


@attrs.define(frozen=True, kw_only=True)
class Expected:
    """What the manifest knows of a file; any may be ``None``."""

    sha256: str | None = None
    md5_prefix: str | None = None
    size: int | None = None


NOTHING_EXPECTED = Expected()
"""No digest or size known: the first download is trusted and its sha256 recorded."""


def file_digests(path: Path, *, md5: bool) -> tuple[str, str | None]:
    """``(sha256, md5 or None)`` hex digests of ``path``, in one pass over the file."""
    sha = hashlib.sha256()
    md = hashlib.md5(usedforsecurity=False) if md5 else None
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            sha.update(chunk)
            if md is not None:
                md.update(chunk)
    return sha.hexdigest(), md.hexdigest() if md is not None else None


def sidecar_path(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def read_sidecar(target: Path) -> str | None:
    """The sha256 recorded for ``target`` at its first verified download, if any."""
    try:
        text = sidecar_path(target).read_text().split()
    except FileNotFoundError:
        return None
    return text[0].lower() if text else None


def write_sidecar(target: Path, sha256: str) -> None:
    """Record ``sha256`` for ``target`` (atomically; readable by ``sha256sum -c``)."""
    path = sidecar_path(target)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{sha256}  {target.name}\n")
    os.replace(tmp, path)


def verify_file(path: Path, *, target: Path, expected: Expected, url: str) -> None:
    """Check ``path`` (``target`` itself or its ``.part``) against what is expected of ``target``.

    Records the sidecar when neither the manifest nor an earlier download gave a sha256.

    Raises:
        ZooError: on a mismatch, after deleting ``path``.
    """

    def reject(what: str, want: object, got: object) -> ZooError:
        path.unlink(missing_ok=True)
        return ZooError(f"{what} mismatch for {url}: expected {want}, got {got}; deleted {path}")

    if expected.size is not None and (size := path.stat().st_size) != expected.size:
        raise reject("size", f"{expected.size} bytes", f"{size} bytes")
    recorded = None if expected.sha256 else read_sidecar(target)
    trusted = expected.sha256 or recorded
    check_md5 = trusted is None and expected.md5_prefix is not None
    sha256, md5 = file_digests(path, md5=check_md5)
    if trusted is not None and sha256 != trusted:
        origin = "" if expected.sha256 else f" (recorded in {sidecar_path(target)} at the first download)"
        raise reject("sha256", f"{trusted}{origin}", sha256)
    if check_md5 and md5 is not None and not md5.startswith(expected.md5_prefix.lower()):
        raise reject("md5", f"a digest starting {expected.md5_prefix}", md5)
    if trusted is None:
        write_sidecar(target, sha256)
