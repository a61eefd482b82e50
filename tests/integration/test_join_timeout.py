"""A peer that opens a transport but never joins is closed after ``hello_timeout`` (issue 10, item 7).

Over real sockets against a router process: RawSocket (TCP and Unix), WebSocket (answering the
router's pings all the while), WebSocket on a web transport's path and HTTP long-poll; a peer
stuck after a CHALLENGE is closed as well, and a peer that joined in time is left alone.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import time
from pathlib import Path
from typing import Any

from tests.conftest import RouterProcess, free_port, launch_router, router_config, start_router
from tests.rawclient import RawClient

HELLO, ABORT, CHALLENGE = 1, 3, 4
PUBLISH, PUBLISHED = 16, 17
TIMEOUT_URI = "wamp.error.timeout"
TICKET_AUTH: dict[str, Any] = {"anonymous": {}, "ticket": {"principals": {"joe": {"role": "anonymous",
                                                                                   "ticket": "joes-ticket"}}}}


async def _expect_timeout_abort(client: RawClient, what: str, seconds: str) -> None:
    abort = await client.recv(timeout=5)
    assert abort == [ABORT, {"message": f"no {what} within {seconds} s"}, TIMEOUT_URI], abort
    assert await client.closed(timeout=5)


def _log_lines(router: RouterProcess, text: str) -> list[str]:
    return [line for line in router.log().splitlines() if text in line]


async def test_no_hello_is_aborted_on_every_socket_transport(tmp_path: Path) -> None:
    # Pings every 0.2 s on WebSocket: a peer answering them (the websockets library does) is still
    # closed, because only a HELLO counts.
    router = start_router(tmp_path, ws_options={"hello_timeout": 1.0, "ping_interval": 0.2, "ping_timeout": 0.2},
                          rs_options={"hello_timeout": 0.5})  # fmt: skip
    try:
        started = time.monotonic()
        ws = await RawClient.websocket(router.ws_url, "json")
        rs = await RawClient.rawsocket(router.rs_port, "msgpack")
        await _expect_timeout_abort(rs, "HELLO", "0.5")
        assert 0.4 < time.monotonic() - started < 3
        await _expect_timeout_abort(ws, "HELLO", "1")
        assert 0.9 < time.monotonic() - started < 4
        # the Unix socket transport has no hello_timeout key: handshake_timeout (10 s) is the default
        unix = await RawClient.rawsocket(unix_path=router.unix_path)
        assert not await unix.closed(timeout=1.0)
        await unix.close()
        lines = _log_lines(router, "no HELLO within")
        assert len(lines) == 2, lines
        assert all(" INFO " in line and "aborted: wamp.error.timeout" in line for line in lines), lines
        assert any("no HELLO within 0.5 s" in line for line in lines)
        assert any("no HELLO within 1 s" in line for line in lines)
    finally:
        router.stop()


async def test_hello_timeout_defaults_to_handshake_timeout(tmp_path: Path) -> None:
    router = start_router(tmp_path, rs_options={"handshake_timeout": 0.5})
    try:
        client = await RawClient.rawsocket(router.rs_port, "json")
        await _expect_timeout_abort(client, "HELLO", "0.5")
    finally:
        router.stop()


async def test_a_peer_that_joined_in_time_is_not_closed(tmp_path: Path) -> None:
    router = start_router(tmp_path, rs_options={"hello_timeout": 0.3})
    try:
        client = await RawClient.rawsocket(router.rs_port, "json")
        await asyncio.sleep(0.1)
        await client.join()
        await asyncio.sleep(0.6)
        answer = await client.request([PUBLISH, client.request_id(), {"acknowledge": True}, "com.example.t"])
        assert answer[0] == PUBLISHED, answer
        await client.close()
        assert not _log_lines(router, "within 0.3 s")
    finally:
        router.stop()


async def test_no_authenticate_after_challenge_is_aborted(tmp_path: Path) -> None:
    """The timeout covers the whole join: a CHALLENGE left unanswered ends it too."""
    router = start_router(tmp_path, rs_options={"hello_timeout": 0.5, "auth": TICKET_AUTH})
    try:
        client = await RawClient.rawsocket(router.rs_port, "json")
        await client.send([HELLO, "realm1", {"roles": {"caller": {}}, "authmethods": ["ticket"], "authid": "joe"}])
        challenge = await client.recv()
        assert challenge[0] == CHALLENGE and challenge[1] == "ticket", challenge
        await _expect_timeout_abort(client, "AUTHENTICATE", "0.5")
        # one who answers the challenge in time joins
        client = await RawClient.rawsocket(router.rs_port, "json")
        await client.send([HELLO, "realm1", {"roles": {"caller": {}}, "authmethods": ["ticket"], "authid": "joe"}])
        assert (await client.recv())[0] == CHALLENGE
        await client.send([5, "joes-ticket", {}])
        assert (await client.recv())[0] == 2
        await asyncio.sleep(0.7)
        assert not await client.closed(timeout=0.1)
        await client.close()
    finally:
        router.stop()


def _web_router(tmp: Path, web_port: int) -> RouterProcess:
    def make_config(ws_port: int, rs_port: int, unix_path: str) -> dict[str, Any]:
        config = router_config(ws_port, rs_port, unix_path)
        config["transports"].append({
            "type": "web", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": web_port},
            "paths": {"/ws": {"type": "websocket", "hello_timeout": 0.5},
                      "/lp": {"type": "longpoll", "hello_timeout": 0.5}},
        })  # fmt: skip
        return config

    return launch_router(tmp, make_config, wait_ports=[web_port])


def _post(port: int, path: str, body: bytes = b"") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


async def test_no_hello_on_web_transport_paths(tmp_path: Path) -> None:
    web_port = free_port()
    router = _web_router(tmp_path, web_port)
    try:
        ws = await RawClient.websocket(f"ws://127.0.0.1:{web_port}/ws", "cbor")
        status, body = await asyncio.to_thread(_post, web_port, "/lp/open", b'{"protocols": ["wamp.2.json"]}')
        assert status == 200, body
        transport = json.loads(body)["transport"]
        await _expect_timeout_abort(ws, "HELLO", "0.5")
        # long-poll: the ABORT waits in the transport's queue for the client's next receive
        status, body = await asyncio.to_thread(_post, web_port, f"/lp/{transport}/receive")
        assert status == 200 and json.loads(body) == [ABORT, {"message": "no HELLO within 0.5 s"}, TIMEOUT_URI]
        status, _ = await asyncio.to_thread(_post, web_port, f"/lp/{transport}/receive")
        assert status == 410
        assert len(_log_lines(router, "no HELLO within 0.5 s")) == 2
    finally:
        router.stop()
