import hashlib
import io
import os
import time
from pathlib import Path

import pytest

from dt_zoo import ZooError
from dt_zoo.download import (
    Expected,
    RetryPolicy,
    apply_mirror,
    cache_path,
    download_file,
    part_path,
    sidecar_path,
)

DATA = os.urandom(300_000)
SHA = hashlib.sha256(DATA).hexdigest()
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02, timeout=5.0)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def published(server):
    server.files["/files/model_final_abc.pkl"] = DATA
    return server.url("/files/model_final_abc.pkl")


def test_download_lands_in_the_cache_with_a_progress_bar(server, published, cache, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    path = download_file(published, expected=Expected(sha256=SHA), retry=FAST)
    assert path == cache / "zoo" / "files" / "model_final_abc.pkl"
    assert path.read_bytes() == DATA
    assert not part_path(path).exists()
    bar = terminal.getvalue()
    assert "model_final_abc.pkl" in bar and "100%" in bar and "293k/293k" in bar and "B/s" in bar


@pytest.mark.parametrize("tty, progress", [(False, True), (True, False)])
def test_no_progress_bar_off_a_terminal_or_when_asked(server, published, monkeypatch, tty, progress):
    stream = Terminal() if tty else io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    download_file(published, progress=progress, retry=FAST)
    assert stream.getvalue() == ""


def test_dropped_connection_resumes_with_range(server, published):
    server.drops["/files/model_final_abc.pkl"] = 1
    path = download_file(published, expected=Expected(sha256=SHA), retry=FAST)
    assert server.requests == [
        ("/files/model_final_abc.pkl", None),
        ("/files/model_final_abc.pkl", "bytes=150000-"),
    ]
    assert path.read_bytes() == DATA


def test_partial_download_of_an_earlier_run_is_resumed(server, published):
    target = cache_path(published)
    target.parent.mkdir(parents=True)
    part_path(target).write_bytes(DATA[:1000])
    download_file(published, expected=Expected(sha256=SHA), retry=FAST)
    assert server.requests == [("/files/model_final_abc.pkl", "bytes=1000-")]
    assert target.read_bytes() == DATA


def test_server_ignoring_range_gets_the_part_rewritten(server, published):
    server.ignore_range = True
    target = cache_path(published)
    target.parent.mkdir(parents=True)
    part_path(target).write_bytes(b"x" * 1000)  # not even a prefix of the file
    download_file(published, expected=Expected(sha256=SHA), retry=FAST)
    assert server.requests == [("/files/model_final_abc.pkl", "bytes=1000-")]
    assert target.read_bytes() == DATA


def test_complete_part_answered_416_is_used(server, published):
    target = cache_path(published)
    target.parent.mkdir(parents=True)
    part_path(target).write_bytes(DATA)
    download_file(published, expected=Expected(sha256=SHA), retry=FAST)
    assert server.gets("/files/model_final_abc.pkl") == 1
    assert target.read_bytes() == DATA


def test_server_error_is_retried(server, published):
    server.failures["/files/model_final_abc.pkl"] = 2
    path = download_file(published, expected=Expected(sha256=SHA), retry=FAST)
    assert server.gets("/files/model_final_abc.pkl") == 3
    assert path.read_bytes() == DATA


def test_retries_are_bounded_and_back_off(server, published):
    server.failures["/files/model_final_abc.pkl"] = 10
    start = time.monotonic()
    with pytest.raises(ZooError) as err:
        download_file(published, retry=RetryPolicy(attempts=3, base_delay=0.1, max_delay=1.0))
    assert time.monotonic() - start >= 0.3  # waited 0.1 s, then 0.2 s
    assert (
        str(err.value) == f"could not download {published} after 3 attempts: HTTP 500 Internal Server Error"
    )
    assert server.gets("/files/model_final_abc.pkl") == 3


def test_connection_refused_is_retried_then_reported(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    with pytest.raises(ZooError, match=r"after 3 attempts: ConnectionRefusedError"):
        download_file(f"http://127.0.0.1:{port}/x.pkl", retry=FAST)


def test_not_found_fails_at_once(server):
    with pytest.raises(ZooError) as err:
        download_file(server.url("/missing.pkl"), retry=FAST)
    assert str(err.value) == f"could not download {server.url('/missing.pkl')}: HTTP 404 Not Found"
    assert server.gets("/missing.pkl") == 1


def test_alternative_urls_are_tried_in_order(server, published):
    path = download_file([server.url("/gone/model_final_abc.pkl"), published], retry=FAST)
    assert path == cache_path(server.url("/gone/model_final_abc.pkl"))
    assert path.read_bytes() == DATA
    assert [p for p, _ in server.requests] == ["/gone/model_final_abc.pkl", "/files/model_final_abc.pkl"]


def test_sha256_mismatch_deletes_the_download_and_says_expected_and_got(server, published):
    wrong = "0" * 64
    with pytest.raises(ZooError) as err:
        download_file(published, expected=Expected(sha256=wrong), retry=FAST)
    target = cache_path(published)
    message = str(err.value)
    assert message == (
        f"sha256 mismatch for {published}: expected {wrong}, got {SHA}; deleted {part_path(target)}"
    )
    assert "\n" not in message
    assert not target.exists() and not part_path(target).exists()


def test_md5_prefix_and_size_are_checked(server, published):
    md5 = hashlib.md5(DATA).hexdigest()
    with pytest.raises(ZooError, match=f"md5 mismatch for .*: expected a digest starting 123456, got {md5}"):
        download_file(published, expected=Expected(md5_prefix="123456"), retry=FAST)
    with pytest.raises(ZooError, match="size mismatch for .*: expected 5 bytes, got 300000 bytes"):
        download_file(published, expected=Expected(size=5), retry=FAST)
    path = download_file(published, expected=Expected(md5_prefix=md5[:6], size=len(DATA)), retry=FAST)
    assert path.read_bytes() == DATA


def test_first_download_records_its_sha256_and_later_tampering_is_caught(server, published):
    path = download_file(published, retry=FAST)
    sidecar = sidecar_path(path)
    assert sidecar.read_text() == f"{SHA}  model_final_abc.pkl\n"  # sha256sum -c format
    assert download_file(published, retry=FAST) == path  # verified against the record
    path.write_bytes(DATA[:-1] + b"!")
    with pytest.raises(ZooError, match=f"sha256 mismatch .*: expected {SHA} \\(recorded in {sidecar} at"):
        download_file(published, retry=FAST)
    assert not path.exists()
    server.files["/files/model_final_abc.pkl"] = b"changed on the server"
    with pytest.raises(ZooError, match="sha256 mismatch"):
        download_file(published, retry=FAST)  # the record outlives the file
    server.files["/files/model_final_abc.pkl"] = DATA
    assert download_file(published, retry=FAST).read_bytes() == DATA
    assert server.gets("/files/model_final_abc.pkl") == 3


def test_offline_with_the_file_cached_makes_no_request(server, published, monkeypatch):
    path = download_file(published, expected=Expected(sha256=SHA), retry=FAST)
    server.requests.clear()
    monkeypatch.setenv("DT_OFFLINE", "1")
    assert download_file(published, expected=Expected(sha256=SHA)) == path
    monkeypatch.delenv("DT_OFFLINE")
    assert download_file(published, expected=Expected(sha256=SHA), offline=True) == path
    assert server.requests == []


@pytest.mark.parametrize("how", ["env", "argument"])
def test_offline_without_the_file_says_what_to_fetch_and_where(server, published, monkeypatch, how):
    if how == "env":
        monkeypatch.setenv("DT_OFFLINE", "yes")
    with pytest.raises(ZooError) as err:
        download_file(published, offline=True if how == "argument" else None)
    assert str(err.value) == (
        "offline (DT_OFFLINE=1 or offline=True) and model_final_abc.pkl is not cached: "
        f"download {published} and save it as {cache_path(published)}"
    )
    assert server.requests == []


def test_offline_env_must_be_a_boolean(monkeypatch, published):
    monkeypatch.setenv("DT_OFFLINE", "maybe")
    with pytest.raises(ZooError, match="^DT_OFFLINE must be 1 or 0, got 'maybe'$"):
        download_file(published)


def test_mirror_replaces_scheme_and_host(server, monkeypatch, cache):
    server.files["/mirror/detectron2/x/model_final_abc.pkl"] = DATA
    monkeypatch.setenv("DT_ZOO_MIRROR", server.url("/mirror/"))
    path = download_file("https://dl.example.invalid/detectron2/x/model_final_abc.pkl", retry=FAST)
    assert server.requests == [("/mirror/detectron2/x/model_final_abc.pkl", None)]
    assert path == cache / "zoo" / "detectron2" / "x" / "model_final_abc.pkl"  # same file as unmirrored


def test_mirror_rule():
    url = "https://dl.fbaipublicfiles.com/detectron2/a/b.pkl?v=2"
    assert apply_mirror(url, "http://m.lan:8080/zoo/") == "http://m.lan:8080/zoo/detectron2/a/b.pkl?v=2"
    assert apply_mirror(url, "file:///srv/zoo") == "file:///srv/zoo/detectron2/a/b.pkl?v=2"
    assert apply_mirror(url, "") == url
    with pytest.raises(ZooError, match="^DT_ZOO_MIRROR must be an http://, https:// or file:// base URL"):
        apply_mirror(url, "mirror.lan/zoo")


def test_file_mirror_serves_a_local_directory(tmp_path, monkeypatch):
    local = tmp_path / "mirror" / "detectron2" / "model_final_abc.pkl"
    local.parent.mkdir(parents=True)
    local.write_bytes(DATA)
    monkeypatch.setenv("DT_ZOO_MIRROR", (tmp_path / "mirror").as_uri())
    path = download_file(
        "https://dl.example.invalid/detectron2/model_final_abc.pkl", expected=Expected(sha256=SHA)
    )
    assert path.read_bytes() == DATA


@pytest.mark.parametrize("url", ["ftp://host/a.pkl", "https://host/", "https://host/a/../../b.pkl"])
def test_urls_that_cannot_be_cached(url):
    with pytest.raises(ZooError, match="^cannot (download|cache)"):
        cache_path(url)


def test_cache_root_defaults_to_home(monkeypatch):
    monkeypatch.delenv("DT_CACHE")
    assert cache_path("https://h/d/f.pkl") == Path.home() / ".cache" / "dt" / "zoo" / "d" / "f.pkl"
