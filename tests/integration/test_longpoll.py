"""WAMP over HTTP long-poll on the web transport, driven by a plain HTTP client (http.client in
threads) against a router process, meeting WebSocket sessions in the same realm."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from tests.conftest import RouterProcess, free_port, wait_for_port
from tests.integration.test_web import _start_with

from cloverleaf.client import NO_RECONNECT, PublishOptions, connect

ROLES: dict[str, Any] = {"subscriber": {}, "publisher": {}, "caller": {}, "callee": {}}
ORIGIN = "https://app.example.com"
SESSION_TIMEOUT = 1.0
REQUEST_TIMEOUT = 0.5
ACK = PublishOptions(acknowledge=True)
#: ticket, and a tracking cookie remembering who authenticated (paths /lpc, and /lpx where it expires)
COOKIE_AUTH: dict[str, Any] = {"ticket": {"principals": {"joe": {"role": "anonymous", "ticket": "joes-ticket"}}},
                               "cookie": {}}  # fmt: skip


class LongPoll:
    """One long-poll client: a transport opened on ``root``, each request on a new connection
    (as browsers may), or on ``connection`` when given."""

    def __init__(self, port: int, root: str = "/lp") -> None:
        self.port = port
        self.root = root
        self.transport = ""
        self.protocol = ""

    def request(
        self, path: str, body: bytes = b"", method: str = "POST", headers: dict[str, str] | None = None,
        connection: http.client.HTTPConnection | None = None,
    ) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
        conn = connection or http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, self.root + path, body=body,
                         headers={"Content-Type": "application/json; charset=utf-8", **(headers or {})})  # fmt: skip
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            if connection is None:
                conn.close()

    def open(self, protocols: list[str] | None = None, headers: dict[str, str] | None = None) -> dict[str, str]:
        """Open a transport; the answer's headers."""
        body = json.dumps({"protocols": protocols or ["wamp.2.json"]}).encode()
        status, answer_headers, answer = self.request("/open", body, headers=headers)
        assert status == 200, answer
        opened = json.loads(answer)
        self.transport, self.protocol = opened["transport"], opened["protocol"]
        return answer_headers

    def send(self, message: list[Any]) -> int:
        return self.request(f"/{self.transport}/send", json.dumps(message).encode())[0]

    def receive(self, connection: http.client.HTTPConnection | None = None) -> tuple[int, Any]:
        status, _, body = self.request(f"/{self.transport}/receive", connection=connection)
        return status, (json.loads(body) if status == 200 else body)

    def close(self) -> int:
        return self.request(f"/{self.transport}/close")[0]

    def join(self) -> list[Any]:
        """HELLO and the WELCOME."""
        assert self.send([1, "realm1", {"roles": ROLES}]) == 204
        status, welcome = self.receive()
        assert status == 200 and welcome[0] == 2, welcome
        return list(welcome)


async def _in_thread(function: Any, *args: Any) -> Any:
    return await asyncio.to_thread(function, *args)


@pytest.fixture(scope="module")
def longpoll(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RouterProcess, int]]:
    tmp = tmp_path_factory.mktemp("longpoll")
    port = free_port()
    router = _start_with(tmp, {
        "type": "web", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": port},
        "paths": {
            "/lp": {"type": "longpoll", "session_timeout": SESSION_TIMEOUT, "request_timeout": REQUEST_TIMEOUT,
                    "max_message_size": 4096, "allowed_origins": [ORIGIN]},
            "/ws": {"type": "websocket"},
            "/lpc": {"type": "longpoll", "auth": COOKIE_AUTH, "allowed_origins": [ORIGIN]},
            "/lpx": {"type": "longpoll", "auth": {**COOKIE_AUTH, "cookie": {"name": "short", "max_age": 1}}},
        },
    })  # fmt: skip
    wait_for_port(port)
    yield router, port
    router.stop()


async def test_events_and_calls_between_longpoll_and_websocket(longpoll: tuple[RouterProcess, int]) -> None:
    _, port = longpoll
    client = LongPoll(port)
    await _in_thread(client.open)
    assert client.protocol == "wamp.2.json" and len(client.transport) >= 32
    welcome = await _in_thread(client.join)
    assert welcome[2]["authrole"] == "anonymous" and welcome[2]["realm"] == "realm1"

    ws = await connect(f"ws://127.0.0.1:{port}/ws", "realm1", reconnect=NO_RECONNECT)
    # long-poll subscribes; a WebSocket session publishes; the held receive answers with the EVENT
    assert await _in_thread(client.send, [32, 1, {}, "com.lp.news"]) == 204
    status, subscribed = await _in_thread(client.receive)
    assert status == 200 and subscribed[:2] == [33, 1]
    held = asyncio.ensure_future(_in_thread(client.receive))
    await asyncio.sleep(0.1)
    assert not held.done()
    await ws.publish("com.lp.news", "hello", n=1, options=ACK)
    status, event = await asyncio.wait_for(held, 5)
    assert status == 200 and event[0] == 36 and event[1] == subscribed[2] and event[4:] == [["hello"], {"n": 1}]

    # the WebSocket session subscribes and registers; long-poll publishes and calls
    received: asyncio.Queue[Any] = asyncio.Queue()
    await ws.subscribe("com.lp.back", received.put_nowait)
    await ws.register("com.lp.add", lambda a, b: a + b)
    assert await _in_thread(client.send, [16, 2, {}, "com.lp.back", ["from long-poll"]]) == 204
    assert await asyncio.wait_for(received.get(), 5) == "from long-poll"
    assert await _in_thread(client.send, [48, 3, {}, "com.lp.add", [2, 3]]) == 204
    status, result = await _in_thread(client.receive)
    assert status == 200 and result == [50, 3, {}, [5]]

    # GOODBYE, its answer, then the transport is closed and forgotten
    assert await _in_thread(client.send, [6, {}, "wamp.close.close_realm"]) == 204
    status, goodbye = await _in_thread(client.receive)
    assert status == 200 and goodbye == [6, {}, "wamp.close.goodbye_and_out"]
    assert await _in_thread(client.close) == 204
    assert (await _in_thread(client.receive))[0] == 404
    assert await ws.call("wamp.session.count") == 1
    await ws.leave()


async def test_batched_msgpack(longpoll: tuple[RouterProcess, int]) -> None:
    _, port = longpoll
    client = LongPoll(port)
    await _in_thread(client.open, ["wamp.2.cbor.nope", "wamp.2.msgpack.batched", "wamp.2.json"])
    assert client.protocol == "wamp.2.msgpack.batched"

    def batch(*messages: list[Any]) -> bytes:
        encoded = [msgspec.msgpack.encode(m) for m in messages]
        return b"".join(struct.pack("!I", len(e)) + e for e in encoded)

    def unbatch(body: bytes) -> list[Any]:
        messages, offset = [], 0
        while offset < len(body):
            (length,) = struct.unpack_from("!I", body, offset)
            messages.append(msgspec.msgpack.decode(body[offset + 4 : offset + 4 + length]))
            offset += 4 + length
        return messages

    def exchange(*messages: list[Any]) -> list[Any]:
        if messages:
            status, _, _ = client.request(f"/{client.transport}/send", batch(*messages))
            assert status == 204
        status, headers, body = client.request(f"/{client.transport}/receive")
        assert status == 200 and headers["content-type"] == "application/x-msgpack"
        return unbatch(body)

    # HELLO and SUBSCRIBE in one batch: WELCOME and SUBSCRIBED come back in one batch
    answers = await _in_thread(exchange, [1, "realm1", {"roles": ROLES}], [32, 1, {}, "com.lp.batched"])
    assert [a[0] for a in answers] == [2, 33]
    ws = await connect(f"ws://127.0.0.1:{port}/ws", "realm1", reconnect=NO_RECONNECT)
    for value in range(3):
        await ws.publish("com.lp.batched", value, options=ACK)
    events: list[Any] = []
    while len(events) < 3:
        events += await _in_thread(exchange)
    assert [e[0] for e in events] == [36, 36, 36] and [e[4] for e in events] == [[0], [1], [2]]
    # an empty batch is not a batch: 400, and the session is aborted
    status, _, _ = await _in_thread(client.request, f"/{client.transport}/send", b"")
    assert status == 400
    abort = await _in_thread(exchange)
    assert abort[0][0] == 3 and abort[0][2] == "wamp.error.protocol_violation"
    await ws.leave()


async def test_http_errors_cors_and_preflight(longpoll: tuple[RouterProcess, int]) -> None:
    _, port = longpoll
    client = LongPoll(port)
    for operation in ("send", "receive", "close"):
        status, _, _ = await _in_thread(client.request, f"/not-a-transport/{operation}")
        assert status == 404
    assert (await _in_thread(client.request, "/open", b"", "GET"))[0] == 405
    status, _, body = await _in_thread(client.request, "/open", b'{"protocols": ["wamp.2.ubjson"]}')
    assert status == 400 and b"wamp.2.json" in body
    assert (await _in_thread(client.request, "/open", b"[1, 2]"))[0] == 400
    status, _, body = await _in_thread(client.request, "/open?x=382913", b'{"protocols": ["wamp.2.json"]}')
    assert status == 200  # the spec's cache-busting query parameter is ignored
    assert (await _in_thread(client.request, f"/{json.loads(body)['transport']}/close?x=2"))[0] == 204
    assert (await _in_thread(client.request, "/open", b"x" * 5000))[0] == 413

    # a browser on another origin: preflight, then the request itself carries the CORS headers
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"}  # fmt: skip
    status, headers, _ = await _in_thread(client.request, "/open", b"", "OPTIONS", preflight)
    assert status == 204 and headers["access-control-allow-origin"] == ORIGIN
    assert headers["access-control-allow-credentials"] == "true"
    assert headers["access-control-allow-headers"] == "content-type"
    assert "POST" in headers["access-control-allow-methods"]
    status, headers, body = await _in_thread(client.request, "/open", b'{"protocols": ["wamp.2.json"]}', "POST",
                                             {"Origin": ORIGIN})  # fmt: skip
    assert status == 200 and headers["access-control-allow-origin"] == ORIGIN and "no-store" in headers["cache-control"]
    transport = json.loads(body)["transport"]
    assert (await _in_thread(client.request, f"/{transport}/close"))[0] == 204
    status, headers, _ = await _in_thread(
        client.request, "/open", b"", "OPTIONS", {**preflight, "Origin": "https://evil.example"}
    )
    assert status == 403 and "access-control-allow-origin" not in headers


async def test_malformed_message_aborts_the_session_only(longpoll: tuple[RouterProcess, int]) -> None:
    _, port = longpoll
    client = LongPoll(port)
    await _in_thread(client.open)
    await _in_thread(client.join)
    status, _, _ = await _in_thread(client.request, f"/{client.transport}/send", b"[16, {not json")
    assert status == 204  # accepted as a message; the session answers in-band, as over WebSocket
    status, abort = await _in_thread(client.receive)
    assert status == 200 and abort[0] == 3 and abort[2] == "wamp.error.protocol_violation"
    assert (await _in_thread(client.receive))[0] == 410  # the transport has ended
    assert await _in_thread(client.close) == 204
    # body over max_message_size: 413
    other = LongPoll(port)
    await _in_thread(other.open)
    status, _, _ = await _in_thread(other.request, f"/{other.transport}/send", b"[1]" + b" " * 5000)
    assert status == 413
    # the router carries on
    await _in_thread(other.join)
    assert await _in_thread(other.close) == 204


async def test_receive_timeout_and_a_second_receive_replacing_the_first(longpoll: tuple[RouterProcess, int]) -> None:
    _, port = longpoll
    client = LongPoll(port)
    await _in_thread(client.open)
    await _in_thread(client.join)
    started = time.monotonic()
    assert (await _in_thread(client.receive))[0] == 204  # nothing to send within request_timeout
    assert REQUEST_TIMEOUT * 0.8 < time.monotonic() - started < REQUEST_TIMEOUT + 2

    first = asyncio.ensure_future(_in_thread(client.receive))
    await asyncio.sleep(0.1)
    second = asyncio.ensure_future(_in_thread(client.receive))
    assert (await asyncio.wait_for(first, 2))[0] == 204  # answered empty at once: the second took over
    assert await _in_thread(client.send, [48, 1, {}, "com.lp.nobody"]) == 204
    status, error = await asyncio.wait_for(second, 2)
    assert status == 200 and error[0] == 8 and error[4] == "wamp.error.no_such_procedure"
    assert await _in_thread(client.close) == 204


async def test_idle_transport_is_closed_and_its_session_cleaned_up(longpoll: tuple[RouterProcess, int]) -> None:
    _, port = longpoll
    client = LongPoll(port)
    await _in_thread(client.open)
    await _in_thread(client.join)
    assert await _in_thread(client.send, [64, 1, {}, "com.lp.idle"]) == 204
    assert (await _in_thread(client.receive))[1][0] == 65  # REGISTERED
    ws = await connect(f"ws://127.0.0.1:{port}/ws", "realm1", reconnect=NO_RECONNECT)
    await asyncio.sleep(SESSION_TIMEOUT + 0.6)  # no request meanwhile
    with pytest.raises(Exception, match="no_such_procedure"):
        await ws.call("com.lp.idle")
    assert (await _in_thread(client.receive))[0] == 404
    await ws.leave()


async def test_shutdown_answers_a_held_receive(tmp_path: Path) -> None:
    port = free_port()
    router = _start_with(tmp_path, {"type": "web", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": port},
                                    "paths": {"/lp": {"type": "longpoll"}}})  # fmt: skip
    wait_for_port(port)
    client = LongPoll(port)
    await _in_thread(client.open)
    await _in_thread(client.join)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    held = asyncio.ensure_future(_in_thread(client.receive, connection))
    await asyncio.sleep(0.2)
    stopping = asyncio.ensure_future(asyncio.to_thread(router.stop))
    status, goodbye = await asyncio.wait_for(held, 5)
    assert status == 200 and goodbye == [6, {}, "wamp.close.system_shutdown"]
    # answered on the same (kept-alive) connection: the router no longer accepts new ones
    status, _, _ = await _in_thread(client.request, f"/{client.transport}/send",
                                    json.dumps([6, {}, "wamp.close.goodbye_and_out"]).encode(), "POST", None,
                                    connection)  # fmt: skip
    assert status == 204
    connection.close()
    assert await asyncio.wait_for(stopping, 10) == 0
    assert "stopped (" in router.log()


def _ticket_join(client: LongPoll) -> list[Any]:
    """HELLO with ticket as joe, the CHALLENGE, AUTHENTICATE, and the WELCOME."""
    assert client.send([1, "realm1", {"roles": ROLES, "authmethods": ["ticket"], "authid": "joe"}]) == 204
    status, challenge = client.receive()
    assert status == 200 and challenge[:2] == [4, "ticket"], challenge
    assert client.send([5, "joes-ticket", {}]) == 204
    status, welcome = client.receive()
    assert status == 200 and welcome[0] == 2, welcome
    return list(welcome)


def _cookie_join(client: LongPoll) -> list[Any]:
    """HELLO offering cookie authentication only: the WELCOME or the ABORT."""
    assert client.send([1, "realm1", {"roles": ROLES, "authmethods": ["cookie"]}]) == 204
    status, answer = client.receive()
    assert status == 200, answer
    return list(answer)


async def test_cookie_authentication(longpoll: tuple[RouterProcess, int]) -> None:
    _, port = longpoll
    first = LongPoll(port, "/lpc")
    headers = await _in_thread(first.open, None, {"Origin": ORIGIN})
    set_cookie = headers["set-cookie"]
    name_value, *attributes = [part.strip() for part in set_cookie.split(";")]
    assert name_value.startswith("cbtid=") and 16 <= len(name_value) - len("cbtid=") <= 64
    # plain HTTP: SameSite=None would need Secure, which a browser does not take over HTTP
    assert attributes == ["Max-Age=86400", "Path=/", "HttpOnly", "SameSite=Lax"]
    assert headers["access-control-allow-origin"] == ORIGIN and headers["access-control-allow-credentials"] == "true"
    welcome = await _in_thread(_ticket_join, first)
    assert welcome[2]["authid"] == "joe" and welcome[2]["authmethod"] == "ticket"

    # a second transport with the cookie: kept (no Set-Cookie), and the session joins as joe by cookie
    second = LongPoll(port, "/lpc")
    headers = await _in_thread(second.open, None, {"Cookie": f"other=1; {name_value}"})
    assert "set-cookie" not in headers
    welcome = await _in_thread(_cookie_join, second)
    assert welcome[0] == 2 and welcome[2]["authid"] == "joe" and welcome[2]["authmethod"] == "cookie"
    assert welcome[2]["authrole"] == "anonymous"
    for client in (first, second):
        assert await _in_thread(client.close) == 204

    # a well-formed cookie nobody authenticated with proves nothing and is replaced: it may have
    # been planted by someone waiting for the next login under it (session fixation)
    stranger = LongPoll(port, "/lpc")
    headers = await _in_thread(stranger.open, None, {"Cookie": "cbtid=" + "x" * 32})
    assert headers["set-cookie"].startswith("cbtid=") and "x" * 32 not in headers["set-cookie"]
    abort = await _in_thread(_cookie_join, stranger)
    assert abort[0] == 3 and abort[2] == "wamp.error.authentication_failed"
    # a malformed one is replaced
    replaced = LongPoll(port, "/lpc")
    headers = await _in_thread(replaced.open, None, {"Cookie": "cbtid=short"})
    assert headers["set-cookie"].startswith("cbtid=") and not headers["set-cookie"].startswith("cbtid=short;")
    assert await _in_thread(replaced.close) == 204

    # a cookie from another path (another cookie store) proves nothing there
    elsewhere = LongPoll(port, "/lpx")
    headers = await _in_thread(elsewhere.open, None, {"Cookie": f"short={name_value.partition('=')[2]}"})
    assert headers["set-cookie"].startswith("short=")  # unknown to this store: replaced
    abort = await _in_thread(_cookie_join, elsewhere)
    assert abort[0] == 3 and abort[2] == "wamp.error.authentication_failed"


async def test_cookie_expires_after_max_age(longpoll: tuple[RouterProcess, int]) -> None:
    _, port = longpoll
    first = LongPoll(port, "/lpx")
    set_cookie = (await _in_thread(first.open))["set-cookie"]
    assert set_cookie.startswith("short=") and "Max-Age=1;" in set_cookie
    await _in_thread(_ticket_join, first)
    cookie = set_cookie.split(";")[0]
    recognized = LongPoll(port, "/lpx")
    await _in_thread(recognized.open, None, {"Cookie": cookie})
    assert (await _in_thread(_cookie_join, recognized))[2]["authmethod"] == "cookie"
    await asyncio.sleep(1.3)
    late = LongPoll(port, "/lpx")
    await _in_thread(late.open, None, {"Cookie": cookie})
    abort = await _in_thread(_cookie_join, late)
    assert abort[0] == 3 and abort[2] == "wamp.error.authentication_failed"
    for client in (first, recognized, late):
        assert await _in_thread(client.close) == 204


async def test_errors_answered_by_the_web_transport_carry_cors(longpoll: tuple[RouterProcess, int]) -> None:
    _, port = longpoll
    client = LongPoll(port)
    allowed, refused = {"Origin": ORIGIN}, {"Origin": "https://evil.example"}
    # 413: the body is over max_message_size (the web transport answers and closes the connection)
    status, headers, _ = await _in_thread(client.request, "/open", b"x" * 5000, "POST", allowed)
    assert status == 413 and headers["access-control-allow-origin"] == ORIGIN
    assert headers["access-control-allow-credentials"] == "true" and headers["connection"] == "close"
    status, headers, _ = await _in_thread(client.request, "/open", b"x" * 5000, "POST", refused)
    assert status == 413 and "access-control-allow-origin" not in headers
    status, headers, _ = await _in_thread(client.request, "/open", b"x" * 5000)
    assert status == 413 and "access-control-allow-origin" not in headers  # no Origin: not a browser
    # 405: another method than POST or OPTIONS (answered by the long-poll service itself)
    status, headers, _ = await _in_thread(client.request, "/open", b"", "GET", allowed)
    assert status == 405 and headers["access-control-allow-origin"] == ORIGIN and "POST" in headers["allow"]
    status, headers, _ = await _in_thread(client.request, "/open", b"", "GET", refused)
    assert status == 403 and "access-control-allow-origin" not in headers

    # 400: malformed HTTP in the body of a request on the path (a bad chunk size)
    def malformed(origin: str) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(f"POST /lp/open HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: {origin}\r\n"
                         "Transfer-Encoding: chunked\r\n\r\nzz\r\n".encode())  # fmt: skip
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
            return answer

    answer = await _in_thread(malformed, ORIGIN)
    assert answer.startswith(b"HTTP/1.1 400 ") and f"access-control-allow-origin: {ORIGIN}".encode() in answer.lower()
    answer = await _in_thread(malformed, "https://evil.example")
    assert answer.startswith(b"HTTP/1.1 400 ") and b"access-control-allow-origin" not in answer.lower()


async def test_cookie_for_cross_origin_browsers_over_tls(tmp_path: Path) -> None:
    from tests.integration.test_tls import make_pki

    pki = make_pki(tmp_path)
    port = free_port()
    router = _start_with(tmp_path, {
        "type": "web", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": port, "tls": pki.tls_config()},
        "paths": {"/lp": {"type": "longpoll", "auth": COOKIE_AUTH, "allowed_origins": ["https://*"]},
                  "/ws": {"type": "websocket", "auth": COOKIE_AUTH, "allowed_origins": ["https://*"]}},
    })  # fmt: skip
    try:
        wait_for_port(port)
        context = pki.client_context()
        client = LongPoll(port)

        def set_cookie(origin: str | None) -> str:
            connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
            try:
                status, headers, _ = client.request("/open", b'{"protocols": ["wamp.2.json"]}', "POST",
                                                    {"Origin": origin} if origin else {}, connection)  # fmt: skip
            finally:
                connection.close()
            assert status == 200
            return headers["set-cookie"]

        # another origin over TLS: a cookie the browser stores and sends cross-site
        assert (await _in_thread(set_cookie, ORIGIN)).endswith("; HttpOnly; SameSite=None; Secure")
        # the page's own origin, or no browser: SameSite=Lax as on WebSocket
        assert (await _in_thread(set_cookie, f"https://127.0.0.1:{port}")).endswith("; HttpOnly; SameSite=Lax")
        assert (await _in_thread(set_cookie, None)).endswith("; HttpOnly; SameSite=Lax")

        # the same rule on a WebSocket path of the TLS endpoint
        import websockets

        async def ws_set_cookie(origin: str | None) -> str:
            async with websockets.connect(f"wss://127.0.0.1:{port}/ws", ssl=context, subprotocols=["wamp.2.json"],
                                          origin=origin) as ws:  # type: ignore[arg-type]  # fmt: skip
                value: str = ws.response.headers["Set-Cookie"]
                return value

        assert (await ws_set_cookie(ORIGIN)).endswith("; HttpOnly; SameSite=None; Secure")
        assert (await ws_set_cookie(f"https://127.0.0.1:{port}")).endswith("; HttpOnly; SameSite=Lax")
        assert (await ws_set_cookie(None)).endswith("; HttpOnly; SameSite=Lax")
    finally:
        assert router.stop() == 0
