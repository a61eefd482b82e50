"""The `static` path service as a production web server: byte ranges, precompressed siblings,
conditional requests. A real router process, queried over loopback with exact headers."""

from __future__ import annotations

import gzip
import http.client
import os
import socket
import time
from collections.abc import Iterator
from email.utils import formatdate

import pytest
from tests.conftest import RouterProcess, free_port, wait_for_port
from tests.integration.test_web import _start_with

TEXT = b"0123456789abcdefghij"  # 20 bytes
BIG = bytes(range(256)) * 4_000 + b"end"  # ~1 MB: parts over 256 KiB are streamed
APP = b"console.log('precompressed');\n" * 50
FAKE_BR = b"\x1b brotli bytes (never decoded by the router)"
#: files' modification time: whole seconds, well in the past
MTIME = int(time.time()) - 3600


@pytest.fixture(scope="module")
def static(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RouterProcess, int]]:
    tmp = tmp_path_factory.mktemp("static")
    site = tmp / "site"
    site.mkdir()
    files = {
        "text.txt": TEXT, "big.bin": BIG, "empty.txt": b"",
        "app.js": APP, "app.js.gz": gzip.compress(APP), "app.js.br": FAKE_BR,
        "style.css": b"body{}" * 100, "style.css.gz": gzip.compress(b"body{}" * 100),  # gzip only
        "stale.js": b"new();", "stale.js.gz": gzip.compress(b"old();"),  # compressed before the last change
        "escape.js": b"inside();",
    }  # fmt: skip
    for name, content in files.items():
        (site / name).write_bytes(content)
        os.utime(site / name, (MTIME, MTIME))
    os.utime(site / "stale.js.gz", (MTIME - 60, MTIME - 60))
    os.utime(site / "app.js.gz", (MTIME + 1, MTIME + 1))  # newer than app.js: fine
    # a sibling that is a symlink out of the directory is not served
    (tmp / "outside.gz").write_bytes(b"outside the site")
    (site / "escape.js.gz").symlink_to(tmp / "outside.gz")
    (tmp / "secret.txt").write_text("outside the site")
    (tmp / "secret.txt.gz").write_bytes(gzip.compress(b"outside the site"))
    # a folder listed (directory_listing), with names that need escaping, a hidden file and a link out
    listed = tmp / "listed"
    (listed / "sub dir").mkdir(parents=True)
    (listed / "sub dir" / "inner.txt").write_text("inner")
    (listed / "a<b>&c.txt").write_text("x")
    (listed / ".hidden").write_text("hidden")
    (listed / "out").symlink_to(tmp / "secret.txt")
    port = free_port()
    paths = {"/": {"type": "static", "directory": str(site)},
             "/listed": {"type": "static", "directory": str(listed), "directory_listing": True}}
    transport = {"type": "web", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": port}, "paths": paths}
    router = _start_with(tmp, transport)
    wait_for_port(port)
    yield router, port
    router.stop()


def _request(port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[
    int, dict[str, str], bytes
]:  # fmt: skip
    """One request with exactly these headers; response header names in lower case."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        return b"".join(iter(lambda: sock.recv(1 << 16), b""))


# ranges


@pytest.mark.parametrize(
    ("header", "content_range", "part"),
    [
        ("bytes=0-4", "bytes 0-4/20", TEXT[:5]),  # first bytes
        ("bytes=5-9", "bytes 5-9/20", TEXT[5:10]),  # middle
        ("bytes=-3", "bytes 17-19/20", TEXT[-3:]),  # suffix
        ("bytes=15-", "bytes 15-19/20", TEXT[15:]),  # open-ended
        ("bytes=10-1000", "bytes 10-19/20", TEXT[10:]),  # past the end: clipped
        ("bytes=-1000", "bytes 0-19/20", TEXT),  # suffix longer than the file: all of it
        ("bytes=19-19", "bytes 19-19/20", TEXT[19:]),
        ("bytes=0-99999999999999999999999", "bytes 0-19/20", TEXT),  # huge numbers are not a problem
    ],
)
def test_single_range(static: tuple[RouterProcess, int], header: str, content_range: str, part: bytes) -> None:
    _, port = static
    status, headers, body = _request(port, "/text.txt", {"Range": header})
    assert status == 206 and body == part
    assert headers["content-range"] == content_range and headers["content-length"] == str(len(part))
    assert headers["accept-ranges"] == "bytes" and headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("header", ["bytes=20-", "bytes=25-30", "bytes=-0"])
def test_unsatisfiable_range_is_416(static: tuple[RouterProcess, int], header: str) -> None:
    _, port = static
    status, headers, _ = _request(port, "/text.txt", {"Range": header})
    assert status == 416 and headers["content-range"] == "bytes */20"
    status, headers, _ = _request(port, "/empty.txt", {"Range": "bytes=0-"})
    assert status == 416 and headers["content-range"] == "bytes */0"


@pytest.mark.parametrize(
    "header",
    ["bytes=abc", "bytes=5-2", "items=0-4", "bytes 0-4", "bytes=--1", "bytes=-", "bytes=1-2-3", "bytes=0x1-4",
     "bytes=0-1,5-6", "bytes=-1, 0-0"],  # the last two: several ranges, answered whole (no multipart)
)  # fmt: skip
def test_malformed_or_multiple_ranges_get_the_whole_file(static: tuple[RouterProcess, int], header: str) -> None:
    _, port = static
    status, headers, body = _request(port, "/text.txt", {"Range": header})
    assert status == 200 and body == TEXT and "content-range" not in headers
    assert headers["accept-ranges"] == "bytes"


def test_if_range(static: tuple[RouterProcess, int]) -> None:
    _, port = static
    _, headers, _ = _request(port, "/text.txt")
    etag, last_modified = headers["etag"], headers["last-modified"]
    assert last_modified == formatdate(MTIME, usegmt=True)
    for validator in (etag, last_modified):  # the current validator: the range is honoured
        status, _, body = _request(port, "/text.txt", {"Range": "bytes=0-1", "If-Range": validator})
        assert (status, body) == (206, TEXT[:2])
    stale = ['"0-0"', "W/" + etag, formatdate(MTIME - 10, usegmt=True), "not a date"]
    for validator in stale:  # another one (or a weak tag): the whole, current file
        status, _, body = _request(port, "/text.txt", {"Range": "bytes=0-1", "If-Range": validator})
        assert (status, body) == (200, TEXT)


def test_head_with_range_is_the_whole_file_head(static: tuple[RouterProcess, int]) -> None:
    """Range is defined for GET only (RFC 9110 §14.2): a HEAD gets what a plain GET would."""
    _, port = static
    status, headers, body = _request(port, "/text.txt", {"Range": "bytes=0-4"}, method="HEAD")
    assert status == 200 and body == b"" and headers["content-length"] == "20"
    assert headers["accept-ranges"] == "bytes" and "content-range" not in headers
    status, headers, body = _request(port, "/big.bin", method="HEAD")
    assert status == 200 and body == b"" and headers["content-length"] == str(len(BIG))
    # HEAD of something missing: the 404's length, no body, and the connection goes on
    answer = _raw(port, b"HEAD /missing HTTP/1.1\r\nHost: x\r\n\r\nGET /text.txt HTTP/1.1\r\nHost: x\r\n"
                        b"Connection: close\r\n\r\n")  # fmt: skip
    assert answer.startswith(b"HTTP/1.1 404") and answer.count(b"HTTP/1.1 200") == 1 and answer.endswith(TEXT)


def test_large_range_is_streamed_to_a_slow_reader_then_the_connection_goes_on(
    static: tuple[RouterProcess, int],
) -> None:
    _, port = static
    first, last = 100_000, 100_000 + 600_000 - 1  # 600 kB from the middle: more than two chunks
    expected = BIG[first : last + 1]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(f"GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes={first}-{last}\r\n\r\n".encode()
                     + b"GET /text.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")  # fmt: skip
        chunks = []
        for _ in range(10):  # slowly at first: the router waits for the connection to drain
            chunks.append(sock.recv(16 * 1024))
            time.sleep(0.01)
        chunks += iter(lambda: sock.recv(1 << 20), b"")
    answer = b"".join(chunks)
    head, _, rest = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 206")
    assert f"content-range: bytes {first}-{last}/{len(BIG)}".encode() in head.lower()
    assert f"content-length: {len(expected)}".encode() in head.lower()
    assert rest[: len(expected)] == expected
    second = rest[len(expected) :]
    assert second.startswith(b"HTTP/1.1 200") and second.endswith(TEXT)
    # the tail, open-ended, and a suffix of it
    status, headers, body = _request(port, "/big.bin", {"Range": "bytes=300000-"})
    assert status == 206 and body == BIG[300_000:] and headers["content-length"] == str(len(BIG) - 300_000)
    status, _, body = _request(port, "/big.bin", {"Range": "bytes=-300000"})
    assert status == 206 and body == BIG[-300_000:]


# precompressed siblings


def test_precompressed_siblings_by_accept_encoding(static: tuple[RouterProcess, int]) -> None:
    _, port = static
    status, plain, body = _request(port, "/app.js")
    assert status == 200 and body == APP and "content-encoding" not in plain
    assert plain["vary"] == "Accept-Encoding" and "javascript" in plain["content-type"]

    status, headers, body = _request(port, "/app.js", {"Accept-Encoding": "gzip, deflate"})
    assert status == 200 and headers["content-encoding"] == "gzip" and gzip.decompress(body) == APP
    assert headers["content-type"] == plain["content-type"] and headers["vary"] == "Accept-Encoding"
    assert headers["content-length"] == str(len(body)) and headers["etag"].endswith('-gz"')
    gzip_etag, gzip_length = headers["etag"], headers["content-length"]

    status, headers, body = _request(port, "/app.js", {"Accept-Encoding": "gzip, deflate, br, zstd"})
    assert status == 200 and headers["content-encoding"] == "br" and body == FAKE_BR
    assert headers["content-type"] == plain["content-type"] and headers["etag"].endswith('-br"')
    assert len({plain["etag"], gzip_etag, headers["etag"]}) == 3

    # weights: the higher wins, q=0 refuses, "*" stands for what is not named
    for accept, coding in [
        ("br;q=0.5, gzip;q=0.8", "gzip"), ("br;q=0, gzip", "gzip"), ("br;q=0, gzip;q=0", None),
        ("gzip;q=0, *", "br"), ("*;q=0", None), ("*", "br"), ("identity", None), ("BR", "br"),
        ("x-gzip", "gzip"), ("br;q=0.000", None), ("br;q=bogus, gzip", "gzip"), ("gzip;Q=1.0", "gzip"),
    ]:  # fmt: skip
        status, headers, _ = _request(port, "/app.js", {"Accept-Encoding": accept})
        assert status == 200 and headers.get("content-encoding") == coding, accept
        assert headers["vary"] == "Accept-Encoding"

    # HEAD: the encoded length
    status, headers, body = _request(port, "/app.js", {"Accept-Encoding": "gzip"}, method="HEAD")
    assert status == 200 and body == b"" and headers["content-encoding"] == "gzip"
    assert headers["content-length"] == gzip_length


def test_only_the_siblings_there_are_and_fresh_ones(static: tuple[RouterProcess, int]) -> None:
    _, port = static
    status, headers, body = _request(port, "/style.css", {"Accept-Encoding": "br"})  # no .br: identity
    assert status == 200 and "content-encoding" not in headers and body == b"body{}" * 100
    assert headers["vary"] == "Accept-Encoding"  # a .gz exists: the answer depends on the header
    status, headers, body = _request(port, "/style.css", {"Accept-Encoding": "br, gzip"})
    assert headers["content-encoding"] == "gzip" and gzip.decompress(body) == b"body{}" * 100
    # no sibling at all: identity, and nothing varies
    status, headers, body = _request(port, "/text.txt", {"Accept-Encoding": "br, gzip"})
    assert status == 200 and body == TEXT and "content-encoding" not in headers and "vary" not in headers
    # a sibling older than its file is stale: not used
    status, headers, body = _request(port, "/stale.js", {"Accept-Encoding": "gzip"})
    assert status == 200 and body == b"new();" and "content-encoding" not in headers and "vary" not in headers
    # a sibling that is a symlink out of the directory is not used
    status, headers, body = _request(port, "/escape.js", {"Accept-Encoding": "gzip"})
    assert status == 200 and body == b"inside();" and "content-encoding" not in headers


def test_a_compressed_file_by_its_own_name_is_not_labelled_as_what_it_unpacks_to(
    static: tuple[RouterProcess, int],
) -> None:
    _, port = static
    status, headers, body = _request(port, "/app.js.gz")
    assert status == 200 and headers["content-type"] == "application/gzip" and "content-encoding" not in headers
    assert gzip.decompress(body) == APP


def test_range_of_a_precompressed_response_is_of_the_encoded_bytes(static: tuple[RouterProcess, int]) -> None:
    _, port = static
    _, whole, body = _request(port, "/app.js", {"Accept-Encoding": "gzip"})
    size = len(body)
    status, headers, part = _request(port, "/app.js", {"Accept-Encoding": "gzip", "Range": "bytes=0-9",
                                                       "If-Range": whole["etag"]})  # fmt: skip
    assert status == 206 and part == body[:10] and headers["content-range"] == f"bytes 0-9/{size}"
    assert headers["content-encoding"] == "gzip" and headers["vary"] == "Accept-Encoding"
    # the identity ETag does not validate a range of the encoded bytes
    _, plain, _ = _request(port, "/app.js")
    status, _, part = _request(port, "/app.js", {"Accept-Encoding": "gzip", "Range": "bytes=0-9",
                                                 "If-Range": plain["etag"]})  # fmt: skip
    assert status == 200 and part == body


@pytest.mark.parametrize("path", ["/..%2fsecret.txt.gz", "/..%2fsecret.txt", "/%2e%2e/secret.txt.gz",
                                  "/../secret.txt.gz"])  # fmt: skip
def test_no_escape_for_compressed_names(static: tuple[RouterProcess, int], path: str) -> None:
    _, port = static
    status, _, body = _request(port, path, {"Accept-Encoding": "gzip"})
    assert status == 404 and b"outside" not in body and b"\x1f\x8b" not in body
    answer = _raw(port, f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
                  .encode())  # fmt: skip
    assert answer.startswith(b"HTTP/1.1 404") and b"\x1f\x8b" not in answer


# conditional requests


def test_if_modified_since(static: tuple[RouterProcess, int]) -> None:
    _, port = static
    _, headers, _ = _request(port, "/text.txt")
    last_modified, etag = headers["last-modified"], headers["etag"]
    status, headers, body = _request(port, "/text.txt", {"If-Modified-Since": last_modified})
    assert status == 304 and body == b"" and headers["etag"] == etag and "max-age" in headers["cache-control"]
    later = formatdate(MTIME + 60, usegmt=True)
    assert _request(port, "/text.txt", {"If-Modified-Since": later})[0] == 304
    earlier = formatdate(MTIME - 60, usegmt=True)
    assert _request(port, "/text.txt", {"If-Modified-Since": earlier})[:3:2] == (200, TEXT)
    future = formatdate(time.time() + 86_400, usegmt=True)  # not a valid validator: ignored
    assert _request(port, "/text.txt", {"If-Modified-Since": future})[0] == 200
    assert _request(port, "/text.txt", {"If-Modified-Since": "yesterday"})[0] == 200
    # If-None-Match takes precedence: a tag that does not match means 200 whatever the date says
    status, _, body = _request(port, "/text.txt", {"If-None-Match": '"other"', "If-Modified-Since": later})
    assert (status, body) == (200, TEXT)
    # HEAD too
    assert _request(port, "/text.txt", {"If-Modified-Since": last_modified}, method="HEAD")[0] == 304


def test_if_none_match(static: tuple[RouterProcess, int]) -> None:
    _, port = static
    _, plain, _ = _request(port, "/app.js")
    _, encoded, _ = _request(port, "/app.js", {"Accept-Encoding": "br"})
    for header in (plain["etag"], f'"x", {plain["etag"]}', "W/" + plain["etag"], "*"):
        status, headers, body = _request(port, "/app.js", {"If-None-Match": header})
        assert status == 304 and body == b"" and headers["vary"] == "Accept-Encoding", header
    # the identity tag does not match the encoded representation, and the other way round
    status, _, body = _request(port, "/app.js", {"If-None-Match": plain["etag"], "Accept-Encoding": "br"})
    assert (status, body) == (200, FAKE_BR)
    status, headers, _ = _request(port, "/app.js", {"If-None-Match": encoded["etag"], "Accept-Encoding": "br"})
    assert status == 304 and headers["etag"] == encoded["etag"]
    status, _, body = _request(port, "/app.js", {"If-None-Match": encoded["etag"]})
    assert (status, body) == (200, APP)
    # a 304 says the length a 200 would have had (RFC 9110 §8.6), not 0
    answer = _raw(port, f"GET /app.js HTTP/1.1\r\nHost: x\r\nIf-None-Match: {plain['etag']}\r\n"
                        f"Connection: close\r\n\r\n".encode())  # fmt: skip
    assert answer.startswith(b"HTTP/1.1 304") and b"content-length: 0\r\n" not in answer.lower()


# directory listing


def test_a_folder_without_index_is_404_unless_listed(static: tuple[RouterProcess, int]) -> None:
    _router, port = static
    assert _request(port, "/")[0] == 404
    status, headers, body = _request(port, "/listed/")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    page = body.decode()
    # folders first, names escaped, links percent-encoded; no hidden entry, no link out of the folder
    assert page.index("sub%20dir/") < page.index("a%3Cb%3E%26c.txt")
    assert "a&lt;b&gt;&amp;c.txt" in page and "<b>" not in page
    assert ".hidden" not in page and '"out"' not in page
    assert '"../"' not in page  # the listed folder's root has no parent link
    status, _headers, body = _request(port, "/listed/sub%20dir/")
    assert status == 200 and "inner.txt" in body.decode() and '"../"' in body.decode()
    assert _request(port, "/listed/sub%20dir/inner.txt")[2] == b"inner"
