"""Transport behaviour: WebSocket negotiation and Origin checks, RawSocket keepalive, realm isolation."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest
import websockets
from tests.conftest import RouterProcess, start_router
from tests.rawclient import RawClient


async def test_websocket_negotiates_the_client_preferred_serializer(router: RouterProcess) -> None:
    async with websockets.connect(router.ws_url, subprotocols=["wamp.2.cbor", "wamp.2.json"]) as ws:
        assert ws.subprotocol == "wamp.2.cbor"
    async with websockets.connect(router.ws_url, subprotocols=["wamp.2.unknown", "wamp.2.msgpack"]) as ws:
        assert ws.subprotocol == "wamp.2.msgpack"


async def test_websocket_without_a_wamp_subprotocol_is_refused(router: RouterProcess) -> None:
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(router.ws_url, subprotocols=["chat"]):
            pass
    assert info.value.response.status_code == 400
    assert b"no supported WAMP subprotocol" in info.value.response.body


async def test_websocket_on_another_path_is_not_found(router: RouterProcess) -> None:
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(router.ws_url.replace("/ws", "/other"), subprotocols=["wamp.2.json"]):
            pass
    assert info.value.response.status_code == 404


async def test_origin_check(tmp_path: Path) -> None:
    router = start_router(tmp_path, ws_options={"allowed_origins": ["https://app.example.com", "http://localhost:*"]})
    try:
        for origin in ("https://app.example.com", "http://localhost:3000"):
            async with websockets.connect(router.ws_url, subprotocols=["wamp.2.json"], origin=origin) as ws:
                assert ws.subprotocol == "wamp.2.json"
        with pytest.raises(websockets.InvalidStatus) as info:
            async with websockets.connect(router.ws_url, subprotocols=["wamp.2.json"], origin="https://evil.example"):
                pass
        assert info.value.response.status_code == 403
        # non-browser clients send no Origin and pass
        client = await RawClient.websocket(router.ws_url)
        await client.join()
        await client.close()
    finally:
        router.stop()


async def test_websocket_serializers_can_be_restricted(tmp_path: Path) -> None:
    router = start_router(tmp_path, ws_options={"serializers": ["msgpack"]}, rs_options={"serializers": ["cbor"]})
    try:
        with pytest.raises(websockets.InvalidStatus):
            async with websockets.connect(router.ws_url, subprotocols=["wamp.2.json"]):
                pass
        async with websockets.connect(router.ws_url, subprotocols=["wamp.2.json", "wamp.2.msgpack"]) as ws:
            assert ws.subprotocol == "wamp.2.msgpack"
        reader, writer = await asyncio.open_connection("127.0.0.1", router.rs_port)
        writer.write(bytes((0x7F, 0xF1, 0, 0)))  # JSON: not offered on this transport
        assert await asyncio.wait_for(reader.readexactly(4), 5) == bytes((0x7F, 0x10, 0, 0))
        writer.close()
        client = await RawClient.rawsocket(router.rs_port, "cbor")
        await client.join()
        await client.close()
    finally:
        router.stop()


async def test_rawsocket_keepalive_pings_and_drops_silent_peers(tmp_path: Path) -> None:
    router = start_router(tmp_path, rs_options={"ping_interval": 0.3, "ping_timeout": 0.3})
    try:
        # A peer that answers PINGs stays connected.
        reader, writer = await asyncio.open_connection("127.0.0.1", router.rs_port)
        writer.write(bytes((0x7F, 0xF1, 0, 0)))
        await reader.readexactly(4)
        pings = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.5
        while loop.time() < deadline:
            header = await asyncio.wait_for(reader.readexactly(4), 2)
            payload = await reader.readexactly(int.from_bytes(header[1:], "big"))
            assert header[0] == 1  # PING
            pings += 1
            writer.write(struct.pack("!B", 2) + len(payload).to_bytes(3, "big") + payload)  # PONG
        assert pings >= 2
        assert not reader.at_eof()
        writer.close()
        # A peer that never answers is dropped.
        silent = await RawClient.rawsocket(router.rs_port, "json")
        await silent.join()
        assert await silent.closed(timeout=5)
    finally:
        router.stop()


async def test_rawsocket_answers_client_pings(router: RouterProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", router.rs_port)
    writer.write(bytes((0x7F, 0xF2, 0, 0)))
    await reader.readexactly(4)
    writer.write(struct.pack("!B", 1) + (5).to_bytes(3, "big") + b"hello")
    header = await asyncio.wait_for(reader.readexactly(4), 5)
    assert header == struct.pack("!B", 2) + (5).to_bytes(3, "big")
    assert await reader.readexactly(5) == b"hello"
    writer.close()


async def test_realms_are_isolated(router: RouterProcess) -> None:
    first = await RawClient.rawsocket(router.rs_port, "json")
    second = await RawClient.rawsocket(router.rs_port, "json")
    await first.join("realm1")
    await second.join("strict.realm")
    answer = await first.request([64, first.request_id(), {}, "com.example.isolated"])
    assert answer[0] == 65
    answer = await second.request([48, second.request_id(), {}, "com.example.isolated"])
    assert answer[0] == 8 and answer[4] == "wamp.error.no_such_procedure"
    # the same procedure can be registered in the other realm
    answer = await second.request([64, second.request_id(), {}, "com.example.isolated"])
    assert answer[0] == 65
    for client in (first, second):
        await client.close()
