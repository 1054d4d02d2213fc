"""Fixtures: a local HTTP file server (``zoo_server``), a manifest it serves, and a clean cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from zoo_server import FileServer, serving, write_manifest


@pytest.fixture
def server() -> Iterator[FileServer]:
    with serving() as files:
        yield files


@pytest.fixture
def manifest_file(server: FileServer, tmp_path: Path) -> Path:
    return write_manifest(server, tmp_path / "manifest.json")


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets an empty ``$DT_CACHE``, online, with no mirror."""
    root = tmp_path / "cache"
    monkeypatch.setenv("DT_CACHE", str(root))
    monkeypatch.delenv("DT_OFFLINE", raising=False)
    monkeypatch.delenv("DT_ZOO_MIRROR", raising=False)
    return root
