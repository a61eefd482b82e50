"""A ``universal`` transport: one port speaking RawSocket (first byte 0x7F), WebSocket and the web
path services, as Crossbar.io's default node and AutobahnJS's test configuration use it."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from tests.conftest import AutobahnSessions, RouterProcess, free_port, launch_router, router_config
from tests.rawclient import RawClient

from cloverleaf.client import NO_RECONNECT, connect
from cloverleaf.node.config import ConfigError, parse_config


@pytest.fixture(scope="module")
def universal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RouterProcess, int]]:
    tmp = tmp_path_factory.mktemp("universal")
    (tmp / "site").mkdir()
    (tmp / "site" / "index.html").write_text("<h1>one port</h1>")
    port = free_port()

    def make_config(ws_port: int, rs_port: int, unix_path: str) -> dict[str, Any]:
        config = router_config(ws_port, rs_port, unix_path)
        config["transports"].append({
            "type": "universal", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": port},
            "handshake_timeout": 1.0,
            "rawsocket": {"serializers": ["msgpack", "cbor"]},
            "paths": {"/": {"type": "static", "directory": str(tmp / "site")}, "/ws": {"type": "websocket"},
                      "/info": {"type": "nodeinfo"}},
        })  # fmt: skip
        return config

    router = launch_router(tmp, make_config, wait_ports=(port,))
    yield router, port
    assert router.stop() == 0, router.log()
    assert "Traceback" not in router.log(), router.log()


async def test_rawsocket_websocket_and_http_share_the_port(universal: tuple[RouterProcess, int]) -> None:
    router, port = universal
    assert f"listening on rs://127.0.0.1:{port}" in router.log()
    callee = await connect(f"rs://127.0.0.1:{port}", "realm1", serializer="msgpack", reconnect=NO_RECONNECT)
    caller = await connect(f"ws://127.0.0.1:{port}/ws", "realm1", reconnect=NO_RECONNECT)
    try:
        await callee.register("com.universal.add", lambda a, b: a + b)
        assert await caller.call("com.universal.add", 2, 40) == 42
    finally:
        await callee.leave()
        await caller.leave()

    def get(path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return bytes(response.read())

    assert await asyncio.to_thread(get, "/") == b"<h1>one port</h1>"
    assert json.loads(await asyncio.to_thread(get, "/info"))["node"] == "cloverleaf"


async def test_autobahn_python_over_both_on_one_port(universal: tuple[RouterProcess, int],
                                                     autobahn: AutobahnSessions) -> None:  # fmt: skip
    _, port = universal
    over_rawsocket = await autobahn.open({"type": "rawsocket", "url": f"rs://127.0.0.1:{port}", "serializer": "cbor",
                                          "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": port}})  # fmt: skip
    over_websocket = await autobahn.open({"type": "websocket", "url": f"ws://127.0.0.1:{port}/ws",
                                          "serializers": ["json"]})  # fmt: skip
    await over_rawsocket.register(lambda name: f"hello {name}", "com.universal.hello")
    assert await over_websocket.call("com.universal.hello", "autobahn") == "hello autobahn"


async def test_the_rawsocket_options_apply(universal: tuple[RouterProcess, int]) -> None:
    _, port = universal
    client = await RawClient.rawsocket(port, "cbor")
    assert (await client.join())[0] == 2  # WELCOME
    await client.close()
    with pytest.raises(ConnectionError, match="handshake refused"):  # json is not among its serializers
        await RawClient.rawsocket(port, "json")


async def test_a_silent_connection_is_closed_after_the_handshake_timeout(universal: tuple[RouterProcess, int]) -> None:
    _, port = universal
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, nothing said
    assert 0.8 < time.monotonic() - started < 3
    writer.close()


def test_config_universal_and_web_with_rawsocket() -> None:
    base = {"realms": [{"name": "realm1"}]}
    paths = {"/ws": {"type": "websocket"}}
    endpoint = {"port": 8080}
    universal = parse_config({**base, "transports": [{"type": "universal", "endpoint": endpoint, "paths": paths}]})
    assert universal.transports[0].rawsocket is not None  # on by default  # type: ignore[union-attr]
    web = parse_config({**base, "transports": [{"type": "web", "endpoint": {"port": 8080}, "paths": paths}]})
    assert web.transports[0].rawsocket is None  # type: ignore[union-attr]
    with pytest.raises(ConfigError) as error:
        parse_config({**base, "transports": [{"type": "universal", "endpoint": {"port": 8080}, "paths": paths,
                                              "rawsocket": {"serializers": ["yaml"]}}]})  # fmt: skip
    assert "transports[0].rawsocket.serializers[0]" in str(error.value)


async def test_universal_over_tls(tmp_path: Any) -> None:
    """TLS first, then the sniffing: rss:// (RawSocket), wss:// and https:// on one TLS port."""
    from tests.integration.test_tls import make_pki

    pki = make_pki(tmp_path)
    port = free_port()
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<h1>one TLS port</h1>")

    def make_config(ws_port: int, rs_port: int, unix_path: str) -> dict[str, Any]:
        config = router_config(ws_port, rs_port, unix_path)
        config["transports"].append({
            "type": "universal", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": port,
                                              "tls": pki.tls_config()},
            "paths": {"/": {"type": "static", "directory": str(tmp_path / "site")}, "/ws": {"type": "websocket"}},
        })  # fmt: skip
        return config

    router = launch_router(tmp_path, make_config, wait_ports=(port,))
    context = pki.client_context()
    try:
        callee = await connect(f"rss://127.0.0.1:{port}", "realm1", serializer="cbor", ssl_context=context,
                               reconnect=NO_RECONNECT)  # fmt: skip
        caller = await connect(f"wss://127.0.0.1:{port}/ws", "realm1", ssl_context=context, reconnect=NO_RECONNECT)
        try:
            await callee.register("com.universal.tls", lambda: "over TLS")
            assert await caller.call("com.universal.tls") == "over TLS"
        finally:
            await callee.leave()
            await caller.leave()

        def get() -> bytes:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/", timeout=5, context=context) as response:
                return bytes(response.read())

        assert await asyncio.to_thread(get) == b"<h1>one TLS port</h1>"
        # a client that speaks plain text to the TLS port gets nothing routed
        with pytest.raises((ConnectionError, OSError, TimeoutError)):
            await connect(f"rs://127.0.0.1:{port}", "realm1", reconnect=NO_RECONNECT, connect_timeout=2)
    finally:
        assert router.stop() == 0, router.log()
        assert "Traceback" not in router.log(), router.log()
