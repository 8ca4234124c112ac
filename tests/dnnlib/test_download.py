"""dnnlib.download against an HTTP server started on 127.0.0.1 in the test (no other network)."""

import hashlib
import http.server
import os
import threading

import pytest

from dnnlib import download
from dnnlib.digest import sha256_path

PAYLOAD = bytes(range(256)) * 4099  # just over 1 MiB: more than one read() chunk
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    requests = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        _Handler.requests.append(self.path)
        if self.path == "/weights.bin":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD)
        elif self.path == "/short.bin":  # announces more than it sends
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD) + 10))
            self.end_headers()
            self.wfile.write(PAYLOAD)
        else:
            self.send_error(500, "broken on purpose")

    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def server():
    _Handler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _cache_files(d):
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def test_downloads_verifies_then_reuses_cache_without_server(server, tmp_path):
    httpd, base = server
    cache = tmp_path / "cache"
    logs = []
    path = download.download(f"{base}/weights.bin", PAYLOAD_SHA, cache_dir=cache, progress=False, log=logs.append)
    assert path == str(cache / "weights.bin")
    assert open(path, "rb").read() == PAYLOAD
    assert _Handler.requests == ["/weights.bin"]
    assert any("fetched" in m and PAYLOAD_SHA in m for m in logs)
    assert _cache_files(cache) == ["weights.bin"]  # no temporary file left behind

    httpd.shutdown()  # the second call must not need the server
    logs.clear()
    again = download.download(f"{base}/weights.bin", PAYLOAD_SHA.upper(), cache_dir=cache, progress=False,
                              log=logs.append)
    assert again == path and _Handler.requests == ["/weights.bin"] and logs == []


def test_wrong_sha256_refused_and_nothing_cached(server, tmp_path):
    _, base = server
    cache = tmp_path / "cache"
    wrong = "0" * 64
    with pytest.raises(ValueError) as e:
        download.download(f"{base}/weights.bin", wrong, cache_dir=cache, progress=False, log=lambda m: None)
    msg = str(e.value)
    assert f"{base}/weights.bin" in msg and wrong in msg and PAYLOAD_SHA in msg
    assert _cache_files(cache) == []


def test_server_error_and_truncation_leave_nothing(server, tmp_path):
    _, base = server
    cache = tmp_path / "cache"
    with pytest.raises(OSError, match="HTTP 500"):
        download.download(f"{base}/missing.bin", PAYLOAD_SHA, cache_dir=cache, progress=False, log=lambda m: None)
    with pytest.raises(OSError, match="short.bin"):
        download.download(f"{base}/short.bin", PAYLOAD_SHA, cache_dir=cache, progress=False, log=lambda m: None)
    assert _cache_files(cache) == []


def test_damaged_cached_file_is_replaced(server, tmp_path):
    _, base = server
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "weights.bin").write_bytes(b"not the weights")
    path = download.download(f"{base}/weights.bin", PAYLOAD_SHA, cache_dir=cache, progress=True, log=lambda m: None)
    assert sha256_path(path) == PAYLOAD_SHA


def test_requires_a_pin_and_honours_env_cache(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="pinned sha256"):
        download.download("http://127.0.0.1:9/x.bin", None, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="pinned sha256"):
        download.download("http://127.0.0.1:9/x.bin", "abc", cache_dir=tmp_path)
    monkeypatch.setenv(download.CACHE_ENV, str(tmp_path / "elsewhere"))
    assert download.cached_path("http://h/a/b.tgz") == str(tmp_path / "elsewhere" / "b.tgz")
