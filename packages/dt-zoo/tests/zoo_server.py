"""A local HTTP file server for the download tests (no test touches the network), and a manifest it serves.

``server.files[path] = bytes`` publishes a file. Faults for the next n requests to a path:
``server.failures[path] = n`` (HTTP 500), ``server.drops[path] = n`` (headers and half the body, then
the connection is closed). ``ignore_range`` answers every request with the whole file (200),
``delay`` sleeps before each body. ``server.requests`` logs ``(path, Range header or None)`` per GET.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class FileServer:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.failures: dict[str, int] = {}
        self.drops: dict[str, int] = {}
        self.ignore_range = False
        self.delay = 0.0
        self.requests: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()
        self.base = ""

    def url(self, path: str) -> str:
        return self.base + path

    def gets(self, path: str) -> int:
        """How many GETs asked for ``path``."""
        return sum(p == path for p, _ in self.requests)


def _handler(server: FileServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep the test output clean
            pass

        def do_GET(self) -> None:
            path, wanted = self.path, self.headers.get("Range")
            with server.lock:
                server.requests.append((path, wanted))
                fail = server.failures.get(path, 0) > 0
                drop = not fail and server.drops.get(path, 0) > 0
                if fail:
                    server.failures[path] -= 1
                if drop:
                    server.drops[path] -= 1
            data = server.files.get(path)
            if data is None or fail:
                self.send_error(404 if data is None else 500)
                return
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", wanted or "")
            if match and not server.ignore_range:
                start = int(match.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            time.sleep(server.delay)
            if drop:
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


@contextmanager
def serving() -> Iterator[FileServer]:
    """A running ``FileServer`` on 127.0.0.1 (a free port), shut down at the end of the block."""
    files = FileServer()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(files))
    httpd.daemon_threads = True
    files.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield files
    finally:
        httpd.shutdown()
        httpd.server_close()


MODEL = bytes(range(256)) * 800
"""The weights file every test entry serves (200 kB)."""


def _entry(name: str, task: str, path: str, **weights: object) -> dict[str, object]:
    return {
        "name": name,
        "task": task,
        "label": name.rsplit("/", 1)[-1],
        "section": "tests",
        "weights": {"urls": [path], **weights},
    }


def write_manifest(server: FileServer, path: Path) -> Path:
    """A manifest of four entries served by ``server`` (one without sha256, with an md5 prefix)."""
    sha, md5 = hashlib.sha256(MODEL).hexdigest(), hashlib.md5(MODEL).hexdigest()
    paths = [
        f"/d2/Test-Detection/faster_tiny_1x/1/model_final_{md5[:6]}.pkl",
        f"/d2/Test-InstanceSegmentation/mask_tiny_3x/2/model_final_{md5[:6]}.pkl",
        "/d2/Test-Keypoints/keypoint_tiny_3x/3/model_final.pkl",
        "/d2/ImageNetPretrained/Test/R-1.pkl",
    ]
    for file in paths:
        server.files[file] = MODEL
    entries = [
        _entry("Test-Detection/faster_tiny_1x", "detection", server.url(paths[0]), sha256=sha),
        _entry(
            "Test-InstanceSegmentation/mask_tiny_3x",
            "instance-segmentation",
            server.url(paths[1]),
            md5_prefix=md5[:6],
        ),
        _entry(
            "Test-Keypoints/keypoint_tiny_3x", "keypoints", server.url(paths[2]), sha256=sha, size=len(MODEL)
        ),
        _entry("ImageNetPretrained/Test/R-1", "backbone", server.url(paths[3])),
    ]
    path.write_text(json.dumps({"version": 1, "entries": entries}))
    return path
