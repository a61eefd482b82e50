"""The node as a user runs it: `cloverleaf start`, clean shutdown, logs, bounded queues."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RouterProcess, start_router, wait_for_port
from tests.rawclient import RawClient

GOODBYE, ABORT, SUBSCRIBE, PUBLISH = 6, 3, 32, 16


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def test_shutdown_says_goodbye_to_every_session(fresh_router: RouterProcess) -> None:
    clients = [
        await RawClient.websocket(fresh_router.ws_url, "json"),
        await RawClient.rawsocket(fresh_router.rs_port, "msgpack"),
        await RawClient.rawsocket(unix_path=fresh_router.unix_path, serializer="cbor"),
    ]
    for client in clients:
        await client.join()
    fresh_router.process.send_signal(signal.SIGTERM)
    for client in clients:
        goodbye = await client.recv()
        assert goodbye[0] == GOODBYE
        assert goodbye[2] == "wamp.close.system_shutdown"
        await client.send([GOODBYE, {}, "wamp.close.goodbye_and_out"])
        assert await client.closed()
    assert await asyncio.to_thread(fresh_router.process.wait, 10) == 0
    log = fresh_router.log()
    assert "Traceback" not in log
    assert "left realm realm1" in log
    assert "stopped (3 sessions closed)" in log
    assert not os.path.exists(fresh_router.unix_path)  # the socket file it bound goes with it


async def test_shutdown_does_not_wait_forever_for_silent_clients(fresh_router: RouterProcess) -> None:
    client = await RawClient.rawsocket(fresh_router.rs_port, "json")
    await client.join()
    started = time.monotonic()
    fresh_router.process.send_signal(signal.SIGINT)
    goodbye = await client.recv()
    assert goodbye[2] == "wamp.close.system_shutdown"
    # never answer: the router closes us after its shutdown_timeout (2 s in the test config)
    assert await client.closed(timeout=10)
    assert await asyncio.to_thread(fresh_router.process.wait, 10) == 0
    assert time.monotonic() - started < 8
    assert "stopped (1 session closed)" in fresh_router.log()


async def test_join_and_leave_are_logged_with_session_realm_and_peer(fresh_router: RouterProcess) -> None:
    client = await RawClient.websocket(fresh_router.ws_url, "json")
    welcome = await client.join()
    session_id = welcome[1]
    await client.send([GOODBYE, {}, "wamp.close.normal"])
    reply = await client.recv()
    assert reply[0] == GOODBYE and reply[2] == "wamp.close.goodbye_and_out"
    await client.close()
    await asyncio.sleep(0.2)
    log = fresh_router.log()
    joined = [line for line in log.splitlines() if f"session {session_id} joined realm realm1" in line]
    left = [line for line in log.splitlines() if f"session {session_id} left realm realm1" in line]
    assert joined and "tcp:127.0.0.1:" in joined[0] and "websocket/json" in joined[0]
    assert left and "INFO" in left[0]


async def test_welcome_announces_roles_and_identity(fresh_router: RouterProcess) -> None:
    client = await RawClient.rawsocket(fresh_router.rs_port, "json")
    welcome = await client.join()
    details = welcome[2]
    assert 1 <= welcome[1] <= 2**53
    assert set(details["roles"]) == {"broker", "dealer"}
    assert details["authrole"] == "anonymous" and details["authmethod"] == "anonymous"
    assert details["realm"] == "realm1"
    await client.close()


@pytest.mark.parametrize("policy", ["drop_events", "close"])
async def test_slow_consumer_is_bounded(tmp_path: Path, policy: str) -> None:
    router = start_router(tmp_path, limits={"max_outgoing_bytes": 262144, "queue_policy": policy})
    try:
        publisher = await RawClient.rawsocket(router.rs_port, "json")
        slow = await RawClient.rawsocket(router.rs_port, "json")
        healthy = await RawClient.rawsocket(router.rs_port, "json")
        for client in (publisher, slow, healthy):
            await client.join()
        for client in (slow, healthy):
            answer = await client.request([SUBSCRIBE, client.request_id(), {}, "com.example.flood"])
            assert answer[0] == 33
        # The slow subscriber stops reading. The healthy one keeps up: the publisher sends in
        # batches and waits for the healthy subscriber to catch up before the next batch.
        total, batch = 4000, 10
        payload = "x" * 8000
        received = 0
        for _ in range(total // batch):
            for _ in range(batch):
                await publisher.send([PUBLISH, publisher.request_id(), {}, "com.example.flood", [payload]])
            target = received + batch
            while received < target:
                message = await healthy.recv(timeout=20)
                if message[0] == 36:
                    received += 1
        assert received == total  # the healthy subscriber lost nothing
        rss_kb = _rss_kb(router.process.pid)
        # 32 MB were published past a subscriber that read nothing: the router did not keep them.
        assert rss_kb < 120_000, rss_kb
        log = router.log()
        if policy == "drop_events":
            assert "slow consumer: dropping events" in log
            # the slow session is still open: it can still talk once it reads again
            await slow.send([PUBLISH, slow.request_id(), {"acknowledge": True}, "com.example.other"])
            while True:
                message = await slow.recv(timeout=10)
                if message[0] == 17:
                    break
        else:
            assert "closed: outgoing queue over 262144 bytes" in log
            assert await slow.closed(timeout=10)
        for client in (publisher, slow, healthy):
            await client.close()
    finally:
        router.stop()


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def test_start_with_embedded_default(tmp_path: Path) -> None:
    if not (_port_is_free(8080) and _port_is_free(8081)):
        pytest.skip("ports 8080/8081 are in use on this machine; the embedded default needs them")
    log_path = tmp_path / "default.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "cloverleaf", "start"], stdout=log,
                                   stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        wait_for_port(8080)
        wait_for_port(8081)

        async def join() -> list[Any]:
            client = await RawClient.websocket("ws://127.0.0.1:8080/ws", "json")
            welcome = await client.join("realm1")
            await client.close()
            return welcome

        welcome = asyncio.run(join())
        assert welcome[2]["authrole"] == "anonymous"
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
    text = log_path.read_text()
    assert "listening on ws://127.0.0.1:8080/ws" in text and "listening on rs://127.0.0.1:8081" in text


def test_bad_config_is_reported_without_traceback(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("realms:\n  - name: realm1\ntransports:\n  - type: websocket\n    endpoint: {port: 99999}\n")
    result = subprocess.run([sys.executable, "-m", "cloverleaf", "start", "--config", str(config)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert f"{config}: transports[0].endpoint.port:" in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = tmp_path / "node.json"
        config.write_text(
            '{"realms": [{"name": "realm1"}], "transports": [{"type": "rawsocket", '
            f'"endpoint": {{"type": "tcp", "port": {port}}}}}]}}'
        )
        result = subprocess.run([sys.executable, "-m", "cloverleaf", "start", "--config", str(config)],
                                capture_output=True, text=True, timeout=30, env={**os.environ})
    assert result.returncode == 1
    assert "cannot start" in result.stderr and "Traceback" not in result.stderr


async def test_unknown_role_is_refused(tmp_path: Path) -> None:
    router = start_router(tmp_path, realms=[{"name": "realm1", "roles": [{"name": "member"}]}])
    try:
        client = await RawClient.websocket(router.ws_url, "json")
        await client.send([1, "realm1", {"roles": {"caller": {}}}])
        abort = await client.recv()
        assert abort[0] == ABORT and abort[2] == "wamp.error.no_such_role"
        assert await client.closed()
    finally:
        router.stop()


async def test_stopping_with_clients_that_answer_goodbye_and_go_logs_no_error(caplog: pytest.LogCaptureFixture) -> None:
    """A client answers the shutdown GOODBYE and closes at once: the router's half-close of a
    socket the peer already shut (ENOTCONN from shutdown(SHUT_WR)) is not an internal error."""
    import logging

    from cloverleaf.client import NO_RECONNECT, connect
    from cloverleaf.node.config import parse_config
    from cloverleaf.node.node import Node

    caplog.set_level(logging.WARNING)
    for _ in range(5):
        node = Node(parse_config({"realms": [{"name": "realm1"}], "transports": [
            {"type": "websocket", "endpoint": {"port": 0}}, {"type": "rawsocket", "endpoint": {"port": 0}}]}))
        await node.start()
        for address in node.addresses:
            await connect(address, "realm1", reconnect=NO_RECONNECT)
        await node.stop()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
