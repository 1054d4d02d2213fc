"""``download_file``: a verified local copy of a URL, downloaded once into the cache.

The steps, and what each one guarantees:

1. The cache path comes from the URL (``urls.cache_path``); the fetched URL is the mirror's
   (``$DT_ZOO_MIRROR``) when one is set.
2. A cached file is verified (``verify.verify_file``) and returned; nothing touches the network.
3. Offline (``offline=True`` or ``$DT_OFFLINE=1``) without the file: one line says which URL to
   fetch and the exact path to save it as.
4. Otherwise, under the file's lock (``lock.file_lock``): if another process finished the file
   meanwhile, it is verified and used; else the URL is fetched into ``<file>.part`` (resuming a
   partial one, ``transfer.transfer``), verified, and renamed into place, so the cache path never
   holds a partial or unverified file. Alternative URLs are tried in order when one fails.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import ZooError
from .env import OFFLINE_ENV, offline_mode
from .lock import file_lock
from .progress import progress_bar
from .transfer import DEFAULT_RETRY, RetryPolicy, transfer
from .urls import apply_mirror, cache_path
from .verify import NOTHING_EXPECTED, Expected, verify_file

__all__ = ["download_file", "part_path"]


def part_path(target: Path) -> Path:
    """The partial download of ``target``: ``<target>.part``."""
    return target.with_name(target.name + ".part")


def download_file(
    urls: str | Sequence[str],
    *,
    expected: Expected = NOTHING_EXPECTED,
    offline: bool | None = None,
    progress: bool = True,
    retry: RetryPolicy = DEFAULT_RETRY,
    target: Path | None = None,
    description: str | None = None,
) -> Path:
    """The verified cached file of ``urls`` (one URL, or alternatives for the same file).

    Args:
        urls: where the file is; the first URL decides the cache path.
        expected: sha256 / md5 prefix / size the file must have (see ``dt_zoo.download.verify``).
        offline: never use the network (``None``: ``$DT_OFFLINE``).
        progress: show a progress bar (only on a terminal).
        retry: attempts and backoff for each URL.
        target: cache the file here instead of under the zoo cache directory.
        description: the progress bar's label (default: the file name).

    Raises:
        ZooError: offline and not cached, download failed, or verification failed.
    """
    urls = [urls] if isinstance(urls, str) else list(urls)
    if not urls:
        raise ZooError("download_file needs at least one URL")
    target = target if target is not None else cache_path(urls[0])
    fetched = [apply_mirror(url) for url in urls]
    if target.exists():
        verify_file(target, target=target, expected=expected, url=fetched[0])
        return target
    if offline_mode(offline):
        raise ZooError(
            f"offline ({OFFLINE_ENV}=1 or offline=True) and {target.name} is not cached: "
            f"download {fetched[0]} and save it as {target}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(target):
        if target.exists():  # another process downloaded it while this one waited
            verify_file(target, target=target, expected=expected, url=fetched[0])
            return target
        failures: list[str] = []
        for url in fetched:
            try:
                _download(url, target, expected, progress, retry, description or target.name)
                return target
            except ZooError as e:
                failures.append(str(e))
        if len(failures) == 1:
            raise ZooError(failures[0])
        raise ZooError(f"every URL of {target.name} failed: " + "; ".join(failures))


def _download(
    url: str, target: Path, expected: Expected, progress: bool, retry: RetryPolicy, description: str
) -> None:
    part = part_path(target)
    with progress_bar(description, enabled=progress) as bar:
        transfer(url, part, retry=retry, bar=bar)
    verify_file(part, target=target, expected=expected, url=url)
    os.replace(part, target)
