"""The ``archive`` path service (Crossbar's): files served from a ZIP archive, downloaded from its
origin at start when missing and checked against its hashes. A real router process; the origin is
a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import io
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RouterProcess, free_port, launch_router, router_config
from tests.integration.test_static import _request as get

PREFIX = "autobahn-js-browser-1.0"
SCRIPT = b"/* autobahn */ var autobahn = {};\n" * 40


def make_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{PREFIX}/autobahn.min.js", SCRIPT)
        archive.writestr(f"{PREFIX}/docs/readme.txt", "read me\n")
        archive.writestr(f"{PREFIX}/huge.bin", b"\0" * (17 * 1024 * 1024))  # a bomb: 17 MB of zeros, tiny zipped
    return buffer.getvalue()


ZIP = make_zip()


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    """An HTTP server handing out the archive (the download origin)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/archive.zip":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(ZIP)))
            self.end_headers()
            self.wfile.write(ZIP)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/archive.zip"
    server.shutdown()


@pytest.fixture(scope="module")
def node(origin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RouterProcess, int, Path]]:
    tmp = tmp_path_factory.mktemp("archive")
    (tmp / "local.zip").write_bytes(ZIP)
    port = free_port()
    digest = hashlib.sha256(ZIP).hexdigest()
    paths = {
        "/js": {"type": "archive", "archive": str(tmp / "local.zip"), "object_prefix": PREFIX,
                "default_object": "autobahn.min.js", "mime_types": {".min.js": "text/javascript"}},
        "/fetched": {"type": "archive", "archive": str(tmp / "fetched" / "a.zip"), "origin": origin,
                     "download": True, "hashes": [digest], "object_prefix": PREFIX},
        "/tampered": {"type": "archive", "archive": str(tmp / "tampered.zip"), "origin": origin,
                      "download": True, "hashes": ["0" * 64]},
    }  # fmt: skip

    def make_config(ws_port: int, rs_port: int, unix_path: str) -> dict[str, Any]:
        config = router_config(ws_port, rs_port, unix_path)
        config["transports"].append({"type": "web", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": port},
                                     "paths": paths})  # fmt: skip
        return config

    router = launch_router(tmp, make_config, wait_ports=(port,))
    yield router, port, tmp
    assert router.stop() == 0, router.log()
    assert "Traceback" not in router.log(), router.log()


async def test_members_are_served_with_types_etags_and_the_default_object(
        node: tuple[RouterProcess, int, Path]) -> None:  # fmt: skip
    _router, port, _tmp = node
    status, headers, body = await asyncio.to_thread(get, port, "/js/autobahn.min.js")
    assert (status, body, headers["content-type"]) == (200, SCRIPT, "text/javascript")
    for default in ("/js", "/js/"):  # the default object
        status, _headers, body = await asyncio.to_thread(get, port, default)
        assert (status, body) == (200, SCRIPT)
    status, headers, body = await asyncio.to_thread(get, port, "/js/docs/readme.txt")
    assert (status, body) == (200, b"read me\n") and headers["content-type"].startswith("text/plain")
    status, again, _ = await asyncio.to_thread(get, port, "/js/docs/readme.txt", {"If-None-Match": headers["etag"]})
    assert status == 304 and again["etag"] == headers["etag"]
    status, head, body = await asyncio.to_thread(get, port, "/js/docs/readme.txt", None, "HEAD")
    assert (status, body, head["content-length"]) == (200, b"", "8")
    for missing in ("/js/nothing.js", "/js/../local.zip", "/js/docs/", "/js/huge.bin"):
        assert (await asyncio.to_thread(get, port, missing))[0] == 404, missing  # the bomb is not inflated


async def test_a_missing_archive_is_downloaded_and_checked(node: tuple[RouterProcess, int, Path]) -> None:
    router, port, tmp = node
    status, _headers, body = await asyncio.to_thread(get, port, "/fetched/autobahn.min.js")
    assert (status, body) == (200, SCRIPT)
    assert (tmp / "fetched" / "a.zip").read_bytes() == ZIP
    # one whose download matches none of its hashes is not served
    assert (await asyncio.to_thread(get, port, "/tampered/x"))[0] == 503
    assert "matches none of the configured hashes" in router.log()
