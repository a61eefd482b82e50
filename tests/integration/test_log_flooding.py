"""One client's behaviour costs the log one line per event that matters (issue 10, item 8).

Over real sockets against a router process, reading its log: a slow consumer closed under
``queue_policy: close`` is logged once however many events follow before the transport reports the
loss; one dropping events under ``drop_events`` is warned about once; a flood of connections
that fail authentication, never send HELLO or send garbage is rate-limited and never logged at
ERROR; a RawSocket session closed by the ping timeout says so.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from tests.conftest import RouterProcess, start_router
from tests.rawclient import RawClient

HELLO, WELCOME, ABORT, AUTHENTICATE = 1, 2, 3, 5
PUBLISH, SUBSCRIBE, SUBSCRIBED, EVENT = 16, 32, 33, 36
TICKET_AUTH: dict[str, Any] = {"ticket": {"principals": {"joe": {"role": "anonymous", "ticket": "joes-ticket"}}}}
BURST = 10  # RateLimitedLog's default: lines per kind per minute


def _lines(router: RouterProcess, pattern: str) -> list[str]:
    return [line for line in router.log().splitlines() if re.search(pattern, line)]


def _no_errors(router: RouterProcess) -> None:
    log = router.log()
    assert " ERROR " not in log and "Traceback" not in log, log


async def _subscribed_pair(router: RouterProcess, topic: str) -> tuple[RawClient, RawClient]:
    publisher = await RawClient.rawsocket(router.rs_port, "json")
    slow = await RawClient.rawsocket(router.rs_port, "json")
    for client in (publisher, slow):
        await client.join()
    answer = await slow.request([SUBSCRIBE, slow.request_id(), {}, topic])
    assert answer[0] == SUBSCRIBED
    return publisher, slow


async def _flood(publisher: RawClient, topic: str, total: int, size: int, per_write: int) -> None:
    """PUBLISH ``total`` events of ``size`` bytes, ``per_write`` of them in each socket write, so
    that the router routes many events in one loop pass."""
    assert publisher._writer is not None
    payload = "x" * size
    for _ in range(total // per_write):
        frames = b""
        for _ in range(per_write):
            message = publisher.serializer.encode([PUBLISH, publisher.request_id(), {}, topic, [payload]])
            frames += b"\x00" + len(message).to_bytes(3, "big") + message
        publisher._writer.write(frames)
        await publisher._writer.drain()


async def test_a_condemned_slow_consumer_is_logged_once(tmp_path: Path) -> None:
    router = start_router(tmp_path, limits={"max_outgoing_bytes": 65536, "queue_policy": "close"})
    try:
        publisher, slow = await _subscribed_pair(router, "com.example.flood")
        # 24 MB past a subscriber that reads nothing: the kernel's buffers fill, then the router's
        # queue; the events that follow in the same reads all find the queue full.
        await _flood(publisher, "com.example.flood", total=3000, size=8000, per_write=30)
        assert await slow.closed(timeout=10)
        # the router is still well: the publisher's session answers
        await publisher.send([PUBLISH, publisher.request_id(), {"acknowledge": True}, "com.example.other"])
        while (await publisher.recv())[0] != 17:
            pass
        closed = _lines(router, "closed: outgoing queue over 65536 bytes")
        assert len(closed) == 1, closed
        left = _lines(router, f"session {slow.session_id} left realm")
        assert len(left) == 1 and left[0].endswith(": outgoing queue full"), left
        await publisher.close()
        _no_errors(router)
    finally:
        router.stop()


async def test_dropped_events_are_warned_about_once(tmp_path: Path) -> None:
    router = start_router(tmp_path, limits={"max_outgoing_bytes": 65536, "queue_policy": "drop_events"})
    try:
        publisher, slow = await _subscribed_pair(router, "com.example.drops")
        await _flood(publisher, "com.example.drops", total=3000, size=8000, per_write=30)
        await publisher.send([PUBLISH, publisher.request_id(), {"acknowledge": True}, "com.example.other"])
        while (await publisher.recv())[0] != 17:
            pass
        warnings = _lines(router, "is a slow consumer: dropping events")
        assert len(warnings) == 1 and "(1 dropped so far)" in warnings[0], warnings
        await slow.close()
        for _ in range(100):
            left = _lines(router, f"session {slow.session_id} left realm")
            if left:
                break
            await asyncio.sleep(0.05)
        assert len(left) == 1 and re.search(r"transport lost \(\d+ events dropped as a slow consumer\)$", left[0])
        await publisher.close()
        _no_errors(router)
    finally:
        router.stop()


async def test_a_flood_of_failing_connections_is_rate_limited(tmp_path: Path) -> None:
    router = start_router(tmp_path, rs_options={"auth": TICKET_AUTH, "hello_timeout": 0.5},
                          limits={"auth_failures_free": 1000})  # fmt: skip
    try:
        # 25 wrong tickets
        for _ in range(25):
            client = await RawClient.rawsocket(router.rs_port, "json")
            await client.send([HELLO, "realm1", {"roles": {"caller": {}}, "authmethods": ["ticket"], "authid": "joe"}])
            assert (await client.recv())[0] == 4
            await client.send([AUTHENTICATE, "wrong", {}])
            abort = await client.recv()
            assert abort[0] == ABORT and abort[2] == "wamp.error.authentication_failed", abort
            await client.close()
        refused = _lines(router, r"refused tcp:127\.0\.0\.1:\d+: wamp\.error\.authentication_failed")
        assert len(refused) == BURST, refused
        assert all(" INFO " in line for line in refused)
        assert not _lines(router, "aborted: wamp.error.authentication_failed")  # one line per failure, not two
        # 25 connections that never send HELLO, and 25 that send garbage, on RawSocket and WebSocket
        idle = [await RawClient.rawsocket(router.rs_port, "json") for _ in range(25)]
        for n in range(25):
            garbage = await (RawClient.rawsocket(router.rs_port, "msgpack") if n % 2 else
                             RawClient.websocket(router.ws_url, "json"))  # fmt: skip
            await garbage.send_bytes(b"\xc1\xc1" if n % 2 else b"[not JSON")  # 0xc1: never used in MessagePack
            assert (await garbage.recv())[2] == "wamp.error.protocol_violation"
            await garbage.close()
        for client in idle:
            assert (await client.recv(timeout=5))[2] == "wamp.error.timeout"
            await client.close()
        assert len(_lines(router, "no HELLO within 0.5 s")) == BURST
        assert len(_lines(router, "aborted: wamp.error.protocol_violation")) == BURST
        _no_errors(router)
    finally:
        router.stop()


async def test_rawsocket_ping_timeout_is_named(tmp_path: Path) -> None:
    router = start_router(tmp_path, rs_options={"ping_interval": 0.3, "ping_timeout": 0.3})
    try:
        joined = await RawClient.rawsocket(router.rs_port, "json")
        await joined.join()
        waiting = await RawClient.rawsocket(router.rs_port, "json")  # never joins, never answers a PING
        # RawClient reads past the router's PINGs without answering them
        assert await joined.closed(timeout=5) and await waiting.closed(timeout=5)
        left = _lines(router, f"session {joined.session_id} left realm realm1")
        assert len(left) == 1 and left[0].endswith(": ping timeout"), left
        unjoined = _lines(router, r"ping timeout \(no answer to PING within 0.3 s\), closing")
        assert len(unjoined) == 1, router.log()  # only the session that had not joined: the other's leave line says it
        _no_errors(router)
    finally:
        router.stop()
