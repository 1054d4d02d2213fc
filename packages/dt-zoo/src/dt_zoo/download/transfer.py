"""``transfer``: fetch a URL into a ``.part`` file over HTTP, resuming with ``Range`` and retrying.

Each attempt asks for ``Range: bytes=<size of .part>-`` when the ``.part`` is not empty:

* ``206 Partial Content`` starting at that offset: the bytes are appended;
* ``200 OK`` (the server ignores ``Range``) or a 206 at another offset: the ``.part`` is rewritten;
* ``416 Range Not Satisfiable``: the ``.part`` is complete if its size is the reported total,
  else it is discarded and the next attempt starts over.

Connection errors, timeouts, a body shorter than announced, and HTTP 408/429/5xx are retried with
exponential backoff (``RetryPolicy``); other HTTP errors (404, 403, ...) fail at once. Only
``urllib`` from the standard library is used.
"""

from __future__ import annotations

import http.client
import re
import time
import urllib.error
import urllib.request
from importlib.metadata import version
from pathlib import Path
from typing import Any

import attrs

from dt_config import validators

from ..errors import ZooError

__all__ = ["DEFAULT_RETRY", "RetryPolicy", "transfer"]

_CHUNK = 1 << 16
_RETRIED_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes \*/(\d+)")


@attrs.define(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently a download is retried.

    The wait after the k-th failure (k = 1, 2, ...) is ``min(max_delay, base_delay * 2 ** (k - 1))``.
    """

    attempts: int = attrs.field(default=5, validator=validators.at_least(1))
    base_delay: float = attrs.field(default=0.5, validator=validators.at_least(0.0))
    max_delay: float = attrs.field(default=8.0, validator=validators.at_least(0.0))
    timeout: float = attrs.field(default=30.0, validator=validators.greater_than(0.0))
    """Seconds a connection or a read may stall before the attempt fails."""

    def delay(self, failures: int) -> float:
        return min(self.max_delay, self.base_delay * 2 ** (failures - 1))


DEFAULT_RETRY = RetryPolicy()
"""Five attempts, waiting 0.5, 1, 2 and 4 s between them."""


class _Retry(Exception):
    """An attempt failed in a way that another attempt may fix."""


def transfer(url: str, part: Path, *, retry: RetryPolicy, bar: Any) -> None:
    """Download ``url`` into ``part`` (resuming what ``part`` already holds), advancing ``bar``.

    Raises:
        ZooError: after ``retry.attempts`` failed attempts, or at once for a non-retried HTTP error.
    """
    for failures in range(1, retry.attempts + 1):
        try:
            _attempt(url, part, retry.timeout, bar)
            return
        except _Retry as e:
            if failures == retry.attempts:
                raise ZooError(f"could not download {url} after {failures} attempts: {e}") from None
            time.sleep(retry.delay(failures))


def _attempt(url: str, part: Path, timeout: float, bar: Any) -> None:
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": f"dt-zoo/{version('dt-zoo')}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and offset:
            match = _UNSATISFIED_RANGE.fullmatch(e.headers.get("Content-Range", ""))
            if match and int(match.group(1)) == offset:
                return  # the .part already holds the whole file
            part.unlink()
            raise _Retry("the server rejected the resume range; starting over") from None
        if e.code in _RETRIED_STATUS:
            raise _Retry(f"HTTP {e.code} {e.reason}") from None
        raise ZooError(f"could not download {url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        raise _Retry(_reason(e)) from None
    with response:
        start, total = _start_and_total(response, part, offset)
        bar.reset(total=total)
        bar.update(start)
        received = start
        try:
            with open(part, "ab" if start else "wb") as f:
                while chunk := response.read(_CHUNK):
                    f.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        except (http.client.HTTPException, OSError) as e:
            raise _Retry(f"connection lost after {received} bytes: {_reason(e)}") from None
    if total is not None and received < total:
        raise _Retry(f"connection closed after {received} of {total} bytes")


def _start_and_total(response: Any, part: Path, offset: int) -> tuple[int, int | None]:
    """Where the body starts in the file (``offset`` or 0) and the file's total size if known."""
    length = response.headers.get("Content-Length")
    if (response.status or 200) != 206:  # a file:// response has no status
        return 0, int(length) if length else None
    match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
    if not match or int(match.group(1)) != offset:
        part.unlink()
        raise _Retry("the server answered the resume with another range; starting over")
    if match.group(2) != "*":
        return offset, int(match.group(2))
    return offset, offset + int(length) if length else None


def _reason(error: BaseException) -> str:
    reason = getattr(error, "reason", None) or error
    return f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__
