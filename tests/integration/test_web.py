"""The web transport: static files, redirects, node info and WAMP over WebSocket on one port."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import AutobahnSessions, RouterProcess, free_port, wait_for_port

from cloverleaf.client import NO_RECONNECT, connect


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("web")
    site = tmp / "site"
    (site / "js").mkdir(parents=True)
    (site / "index.html").write_text("<h1>cloverleaf</h1>")
    (site / "js" / "app.js").write_text("console.log(1)")
    (site / "big.bin").write_bytes(bytes(range(256)) * 40_000 + b"end")  # ~10 MB: streamed in chunks
    (tmp / "secret.txt").write_text("outside the site")
    port = free_port()
    transport = {"type": "web", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": port}, "paths": {
        "/": {"type": "static", "directory": str(site)},
        "/ws": {"type": "websocket"},
        "/info": {"type": "nodeinfo"},
        "/old": {"type": "redirect", "url": "/", "status": 301},
        "/metrics": {"type": "metrics"},
        "/publish": {"type": "publisher", "realm": "realm1", "role": "anonymous"},
        "/call": {"type": "caller", "realm": "realm1", "role": "anonymous"},
        "/signed": {"type": "publisher", "realm": "realm1", "role": "anonymous", "key": "k1", "secret": "s3cret"},
        "/hook": {"type": "webhook", "realm": "realm1", "role": "anonymous", "topic": "com.bridge.hook"},
        "/config.json": {"type": "json", "value": {"realm": "realm1", "topics": ["a", "b"], "n": 1.5}},
        "/public.json": {"type": "json", "value": [1, "two"], "options": {
            "prettify": True, "allow_cross_origin": True, "discourage_caching": True}},
    }}  # fmt: skip
    router = _start_with(tmp, transport)
    wait_for_port(port)
    yield router, port
    router.stop()


def _start_with(tmp: Path, extra_transport: dict[str, Any]) -> RouterProcess:
    """A router with the test config's transports plus ``extra_transport``."""
    from tests.conftest import launch_router, router_config

    def make_config(ws_port: int, rs_port: int, unix_path: str) -> dict[str, Any]:
        config = router_config(ws_port, rs_port, unix_path)
        config["transports"].append(extra_transport)
        return config

    return launch_router(tmp, make_config)


def _get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


async def test_static_files_with_types_and_caching(web: tuple[RouterProcess, int]) -> None:
    _, port = web
    status, headers, body = await asyncio.to_thread(_get, port, "/")
    assert status == 200 and body == b"<h1>cloverleaf</h1>"
    assert headers["Content-Type"] == "text/html; charset=utf-8" and "max-age" in headers["Cache-Control"]
    status, headers, body = await asyncio.to_thread(_get, port, "/js/app.js")
    assert status == 200 and "javascript" in headers["Content-Type"] and body == b"console.log(1)"
    assert headers["ETag"]
    # a directory without its slash is redirected (relative links in its index page then work);
    # one without an index file is not listed
    status, headers, _ = await asyncio.to_thread(_get, port, "/js")
    assert status == 301 and headers["Location"] == "/js/"
    status, _, _ = await asyncio.to_thread(_get, port, "/js/")
    assert status == 404


@pytest.mark.parametrize("path", ["/../secret.txt", "/%2e%2e/secret.txt", "/js/../../secret.txt", "/nope.html",
                                  "/..%2fsecret.txt"])  # fmt: skip
async def test_no_escape_from_the_directory(web: tuple[RouterProcess, int], path: str) -> None:
    _, port = web
    status, _, body = await asyncio.to_thread(_get, port, path)
    assert status == 404 and b"outside" not in body


async def test_raw_traversal_request_line(web: tuple[RouterProcess, int]) -> None:
    _, port = web

    def raw() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /../../secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return b"".join(iter(lambda: sock.recv(4096), b""))

    answer = await asyncio.to_thread(raw)
    assert answer.startswith(b"HTTP/1.1 404") and b"outside" not in answer


async def test_redirect_and_nodeinfo(web: tuple[RouterProcess, int]) -> None:
    _, port = web
    status, headers, _ = await asyncio.to_thread(_get, port, "/old")
    assert status == 301 and headers["Location"] == "/"
    status, headers, body = await asyncio.to_thread(_get, port, "/info")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "no-store"  # live figures: never from a cache
    assert b'"realm1"' in body


async def test_json_path_serves_its_value(web: tuple[RouterProcess, int]) -> None:
    """Crossbar's ``json`` path service: a fixed value, and its three options."""
    _, port = web
    status, headers, body = await asyncio.to_thread(_get, port, "/config.json")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"realm": "realm1", "topics": ["a", "b"], "n": 1.5}
    assert b"\n" not in body and "Access-Control-Allow-Origin" not in headers and "Cache-Control" not in headers
    status, headers, body = await asyncio.to_thread(_get, port, "/public.json")
    assert status == 200 and json.loads(body) == [1, "two"]
    assert body.startswith(b"[\n  1,")  # prettified
    assert headers["Access-Control-Allow-Origin"] == "*" and headers["Cache-Control"] == "no-store"
    request = urllib.request.Request(f"http://127.0.0.1:{port}/config.json", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        await asyncio.to_thread(urllib.request.urlopen, request, timeout=5)
    assert refused.value.code == 405


async def test_responses_carry_a_reason_phrase_and_the_date(web: tuple[RouterProcess, int]) -> None:
    """RFC 9110: an origin server with a clock sends Date (6.6.1); the reason phrase is optional in
    HTTP/1.1 but clients and people read it."""
    import email.utils

    _, port = web

    def head_of(path: str) -> list[str]:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        return data.split(b"\r\n\r\n")[0].decode().split("\r\n")

    for path, status_line in (("/", "HTTP/1.1 200 OK"), ("/nope.txt", "HTTP/1.1 404 Not Found"),
                              ("/old", "HTTP/1.1 301 Moved Permanently")):  # fmt: skip
        lines = await asyncio.to_thread(head_of, path)
        assert lines[0] == status_line, lines
        dates = [line.split(": ", 1)[1] for line in lines if line.lower().startswith("date: ")]
        assert len(dates) == 1, lines
        assert abs(email.utils.parsedate_to_datetime(dates[0]).timestamp() - time.time()) < 5


async def test_wamp_on_the_web_port(web: tuple[RouterProcess, int], autobahn: AutobahnSessions) -> None:
    router, port = web
    status, _, _ = await asyncio.to_thread(_get, port, "/ws")
    assert status == 426  # plain HTTP on the WAMP path: upgrade required
    ours = await connect(f"ws://127.0.0.1:{port}/ws", "realm1", reconnect=NO_RECONNECT)
    theirs = await autobahn.open({"type": "websocket", "url": f"ws://127.0.0.1:{port}/ws"})
    await ours.register("com.web.echo", lambda x: x)
    assert await theirs.call("com.web.echo", "over the web port") == "over the web port"
    # a RawSocket session on the same realm calls the procedure too
    rawsocket = await connect(router.rs_url, "realm1", reconnect=NO_RECONNECT)
    assert await rawsocket.call("com.web.echo", 7) == 7
    await rawsocket.leave()
    await ours.leave()


async def test_http_keep_alive_serves_several_requests(web: tuple[RouterProcess, int]) -> None:
    _, port = web

    def two_requests() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /info HTTP/1.1\r\nHost: x\r\n\r\nGET /js/app.js HTTP/1.1\r\nHost: x\r\n"
                         b"Connection: close\r\n\r\n")  # fmt: skip
            return b"".join(iter(lambda: sock.recv(4096), b""))

    answer = await asyncio.to_thread(two_requests)
    assert answer.count(b"HTTP/1.1 200") == 2 and answer.endswith(b"console.log(1)")


def test_config_errors_name_the_path_service(tmp_path: Path) -> None:
    from cloverleaf.node.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as info:
        parse_config({"realms": [{"name": "realm1"}], "transports": [
            {"type": "web", "endpoint": {"port": 8080}, "paths": {"/": {"type": "static"}}}]})  # fmt: skip
    assert 'transports[0].paths["/"].directory: required key is missing' in str(info.value)


async def test_prometheus_metrics(web: tuple[RouterProcess, int]) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    _, port = web
    session = await connect(f"ws://127.0.0.1:{port}/ws", "realm1", reconnect=NO_RECONNECT)
    await session.register("com.metrics.p", lambda: 1)
    await session.subscribe("com.metrics.t", lambda: None)
    for _ in range(3):
        await session.call("com.metrics.p")
    with pytest.raises(Exception):  # noqa: B017 - any ERROR: counted
        await session.call("com.metrics.missing")
    status, headers, body = await asyncio.to_thread(_get, port, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(body.decode()) for s in family.samples}  # fmt: skip
    realm = (("realm", "realm1"),)
    assert samples[("cloverleaf_sessions", realm)] >= 1
    assert samples[("cloverleaf_calls_routed_total", realm)] >= 3
    assert samples[("cloverleaf_errors_sent_total", realm)] >= 1
    assert samples[("cloverleaf_messages_received_total", (("realm", "realm1"), ("type", "CALL")))] >= 4

    def sent(kind: str) -> float:
        return samples[("cloverleaf_messages_sent_total", (("realm", "realm1"), ("type", kind)))]

    assert sent("RESULT") >= 3 and sent("INVOCATION") >= 3 and sent("ERROR") >= 1
    assert sent("WELCOME") >= 1 and sent("REGISTERED") >= 1 and sent("SUBSCRIBED") >= 1
    await session.leave()


def _post(port: int, path: str, body: bytes) -> tuple[int, Any]:
    import json

    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


async def test_http_bridge_publisher_and_caller(web: tuple[RouterProcess, int]) -> None:
    import json
    from urllib.parse import urlencode

    from cloverleaf.node.bridge import sign

    _, port = web
    session = await connect(f"ws://127.0.0.1:{port}/ws", "realm1", reconnect=NO_RECONNECT)
    received: asyncio.Queue[Any] = asyncio.Queue()
    await session.subscribe("com.bridge.news", lambda *a, **kw: received.put_nowait((a, kw)))
    await session.register("com.bridge.add", lambda a, b, scale=1: (a + b) * scale)

    body = json.dumps({"topic": "com.bridge.news", "args": ["hello"], "kwargs": {"n": 1}}).encode()
    status, answer = await asyncio.to_thread(_post, port, "/publish", body)
    assert status == 200 and isinstance(answer["id"], int)
    assert await asyncio.wait_for(received.get(), 5) == (("hello",), {"n": 1})

    body = json.dumps({"procedure": "com.bridge.add", "args": [2, 3], "kwargs": {"scale": 10}}).encode()
    status, answer = await asyncio.to_thread(_post, port, "/call", body)
    assert (status, answer) == (200, {"args": [50], "kwargs": {}})
    status, answer = await asyncio.to_thread(_post, port, "/call", b'{"procedure": "com.bridge.missing"}')
    assert status == 502 and answer["error"] == "wamp.error.no_such_procedure"
    status, answer = await asyncio.to_thread(_post, port, "/call", b"{not json")
    assert status == 400 and answer["error"] == "cloverleaf.error.invalid_json"
    # the data model applies as on a WebSocket: nesting is bounded, "\u0000..." is base64 binary
    deep = b'{"procedure": "com.bridge.add", "args": [' + b"[" * 200 + b"]" * 200 + b"]}"
    status, answer = await asyncio.to_thread(_post, port, "/call", deep)
    assert status == 400 and answer["error"] == "wamp.error.invalid_argument"
    assert "nested deeper" in answer["args"][0]
    body = json.dumps({"topic": "com.bridge.news", "args": ["\u0000AAE="]}).encode()
    status, answer = await asyncio.to_thread(_post, port, "/publish", body)
    assert status == 200
    assert await asyncio.wait_for(received.get(), 5) == ((b"\x00\x01",), {})
    status, _, _ = await asyncio.to_thread(_get, port, "/call")
    assert status == 405

    # signed requests: unsigned or wrongly signed are refused, properly signed ones pass
    body = json.dumps({"topic": "com.bridge.news", "args": ["signed"]}).encode()
    status, answer = await asyncio.to_thread(_post, port, "/signed", body)
    assert status == 401
    params = sign("k1", "wrong", body, 1, 7)
    status, _ = await asyncio.to_thread(_post, port, "/signed?" + urlencode(params), body)
    assert status == 401
    params = sign("k1", "s3cret", body, 2, 8)
    status, answer = await asyncio.to_thread(_post, port, "/signed?" + urlencode(params), body)
    assert status == 200
    assert await asyncio.wait_for(received.get(), 5) == (("signed",), {})
    # the same signed request again (a replay, within the timestamp's window) is refused
    status, answer = await asyncio.to_thread(_post, port, "/signed?" + urlencode(params), body)
    assert status == 401 and answer["error"] == "cloverleaf.error.invalid_signature"
    assert "replayed request" in answer["args"][0]
    # a new request signed with a lower seq is a new request (seq need not increase: clients share keys)
    status, answer = await asyncio.to_thread(_post, port, "/signed?" + urlencode(sign("k1", "s3cret", body, 1, 9)),
                                             body)  # fmt: skip
    assert status == 200
    assert await asyncio.wait_for(received.get(), 5) == (("signed",), {})
    assert received.empty()  # the replay published nothing
    await session.leave()


async def test_webhook_turns_any_request_into_an_event(web: tuple[RouterProcess, int]) -> None:
    _, port = web
    session = await connect(f"ws://127.0.0.1:{port}/ws", "realm1", reconnect=NO_RECONNECT)
    received: asyncio.Queue[Any] = asyncio.Queue()
    await session.subscribe("com.bridge.hook", received.put_nowait)
    status, answer = await asyncio.to_thread(_post, port, "/hook/github?x=1", b'{"action": "opened"}')
    assert status == 202 and isinstance(answer["id"], int)
    event = await asyncio.wait_for(received.get(), 5)
    assert event["method"] == "POST" and event["path"] == "/hook/github" and event["query"] == "x=1"
    assert event["body"] == '{"action": "opened"}' and event["headers"]["content-type"] == "application/json"
    status, _, _ = await asyncio.to_thread(_get, port, "/hook")
    assert status == 202
    assert (await asyncio.wait_for(received.get(), 5))["method"] == "GET"
    await session.leave()


async def test_pipelined_requests_behind_a_slow_call_are_all_answered_in_order(web: tuple[RouterProcess, int]) -> None:
    """Requests pipelined behind a call that takes a while wait (reading pauses beyond 64 KiB of
    them, so a flood is not buffered without bound) and are then answered in order."""
    import json

    _, port = web
    session = await connect(f"ws://127.0.0.1:{port}/ws", "realm1", reconnect=NO_RECONNECT)

    async def slow(x: int) -> int:
        await asyncio.sleep(0.5)
        return x

    await session.register("com.bridge.slow", slow)
    body = json.dumps({"procedure": "com.bridge.slow", "args": [7]}).encode()
    call = (f"POST /call HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body  # fmt: skip
    gets = b"GET /js/app.js HTTP/1.1\r\nHost: x\r\n\r\n" * 2500  # ~95 KB of pipelined requests
    last = b"GET /info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

    def pipeline() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(call + gets + last)
            return b"".join(iter(lambda: sock.recv(65536), b""))

    answer = await asyncio.to_thread(pipeline)
    assert answer.count(b"HTTP/1.1 200") == 1 + 2500 + 1
    assert answer.index(b'{"args":[7],"kwargs":{}}') < answer.index(b"console.log(1)")
    assert answer.rstrip().endswith(b"}") and b'"realm1"' in answer[-400:]
    await session.leave()


async def test_large_file_is_streamed_whole_to_a_slow_reader_then_the_connection_goes_on(
    web: tuple[RouterProcess, int],
) -> None:
    """A file over the chunk size goes out as the connection drains (a reader that takes its time
    gets every byte), and a request pipelined behind it is answered after it."""
    _, port = web
    expected = bytes(range(256)) * 40_000 + b"end"

    def slow_download() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"
                         b"GET /js/app.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")  # fmt: skip
            chunks = []
            for _ in range(20):  # read slowly at first: the router must wait, not buffer the file
                chunks.append(sock.recv(16 * 1024))
                time.sleep(0.01)
            chunks += iter(lambda: sock.recv(1 << 20), b"")
            return b"".join(chunks)

    answer = await asyncio.to_thread(slow_download)
    head, _, rest = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and f"content-length: {len(expected)}".encode() in head.lower()
    assert rest[: len(expected)] == expected
    second = rest[len(expected) :]
    assert second.startswith(b"HTTP/1.1 200") and second.endswith(b"console.log(1)")
    status, headers, body = await asyncio.to_thread(_get, port, "/big.bin")
    assert status == 200 and body == expected and headers["Content-Length"] == str(len(expected))


async def test_a_body_over_the_limit_gets_its_413_even_while_still_uploading(web: tuple[RouterProcess, int]) -> None:
    """The router answers 413 as soon as the body passes the limit, then keeps reading (and
    dropping) until the client is done, so the answer is not destroyed by a TCP reset."""
    _, port = web
    size = 4 * 1024 * 1024  # the bridge accepts 1 MiB

    def upload() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % size)  # fmt: skip
            sock.sendall(b"x" * size)
            return b"".join(iter(lambda: sock.recv(65536), b""))

    answer = await asyncio.to_thread(upload)
    assert answer.startswith(b"HTTP/1.1 413")


def test_a_node_whose_http_bridge_was_used_stops_at_once(tmp_path: Path) -> None:
    """The bridge's session answers the shutdown GOODBYE itself: the node does not wait out its
    shutdown_timeout for it."""
    import signal

    port = free_port()
    router = _start_with(tmp_path, {"type": "web", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": port},
                                    "paths": {"/publish": {"type": "publisher", "realm": "realm1",
                                                           "role": "anonymous"}}})  # fmt: skip
    try:
        wait_for_port(port)
        status, _ = _post(port, "/publish", json.dumps({"topic": "com.bridge.used", "args": [1]}).encode())
        assert status == 200
        started = time.monotonic()
        router.process.send_signal(signal.SIGINT)
        assert router.process.wait(10) == 0
        assert time.monotonic() - started < 1.5, router.log()
    finally:
        router.stop()
    assert "stopped (1 session closed)" in router.log()
