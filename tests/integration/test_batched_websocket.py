"""The spec's batched WebSocket transport (wamp.2.json.batched, .msgpack.batched, .cbor.batched):
batches in both directions, the spec's failure on an empty or malformed batch, and Autobahn|Python
in batched mode as a real peer."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import msgpack
import orjson
import pytest
import websockets
from tests.conftest import RouterProcess

from cloverleaf.client import NO_RECONNECT, connect

HELLO_ROLES = {"roles": {"caller": {}, "callee": {}, "publisher": {}, "subscriber": {}}}


def json_batch(*messages: list[Any]) -> str:
    return "".join(orjson.dumps(m).decode() + "\x1e" for m in messages)


def split_json_batch(data: str | bytes) -> list[Any]:
    text = data if isinstance(data, str) else data.decode()
    assert text.endswith("\x1e"), f"not a JSON batch: {text!r}"
    return [orjson.loads(part) for part in text[:-1].split("\x1e")]


async def test_json_batched_session_gets_batches_and_sends_several_messages_in_one(router: RouterProcess) -> None:
    async with websockets.connect(router.ws_url, subprotocols=["wamp.2.json.batched"]) as ws:
        assert ws.subprotocol == "wamp.2.json.batched"
        await ws.send(json_batch([1, "realm1", HELLO_ROLES]))
        (welcome,) = split_json_batch(await ws.recv())
        assert welcome[0] == 2
        # three requests in one WebSocket message: register, then call what was just registered twice
        await ws.send(json_batch([64, 1, {}, "com.batched.echo"], [48, 2, {}, "com.batched.echo", ["a"]],
                                 [48, 3, {}, "com.batched.echo", ["b"]]))  # fmt: skip
        received: list[Any] = []
        while len(received) < 3:  # REGISTERED and two INVOCATIONs, in one or more batches
            received += split_json_batch(await ws.recv())
        assert [m[0] for m in received] == [65, 68, 68]
        assert [m[4] for m in received[1:]] == [["a"], ["b"]]
        await ws.send(json_batch([70, received[1][1], {}, ["a!"]], [70, received[2][1], {}, ["b!"]]))
        results: list[Any] = []
        while len(results) < 2:
            results += split_json_batch(await ws.recv())
        assert [(m[0], m[1], m[3]) for m in results] == [(50, 2, ["a!"]), (50, 3, ["b!"])]
        await ws.send(json_batch([6, {}, "wamp.close.normal"]))
        assert split_json_batch(await ws.recv())[0][0] == 6


@pytest.mark.parametrize(("subprotocol", "encode", "decode"), [
    ("wamp.2.msgpack.batched", msgpack.packb, msgpack.unpackb),
    ("wamp.2.cbor.batched", lambda m: __import__("cbor2").dumps(m), lambda b: __import__("cbor2").loads(b)),
])  # fmt: skip
async def test_binary_batches_carry_length_prefixes(router: RouterProcess, subprotocol: str, encode: Any,
                                                    decode: Any) -> None:  # fmt: skip
    async with websockets.connect(router.ws_url, subprotocols=[subprotocol]) as ws:
        assert ws.subprotocol == subprotocol
        hello = encode([1, "realm1", HELLO_ROLES])
        await ws.send(struct.pack("!I", len(hello)) + hello)
        data = await ws.recv()
        assert isinstance(data, bytes)
        (length,) = struct.unpack_from("!I", data)
        assert length == len(data) - 4
        assert decode(data[4:])[0] == 2


@pytest.mark.parametrize("bad", ["", "[1, \"realm1\", {}]"], ids=["empty", "no-separator"])
async def test_empty_or_malformed_batch_fails_the_session(router: RouterProcess, bad: str) -> None:
    async with websockets.connect(router.ws_url, subprotocols=["wamp.2.json.batched"]) as ws:
        await ws.send(bad)
        (abort,) = split_json_batch(await ws.recv())
        assert abort[0] == 3 and abort[2] == "wamp.error.protocol_violation"
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    # the router carries on
    session = await connect(router.ws_url, "realm1", reconnect=NO_RECONNECT)
    await session.leave()


async def test_autobahn_python_in_batched_mode(router: RouterProcess) -> None:
    # (ApplicationRunner sets txaio's global loop to this test's: conftest puts it back afterwards)
    from autobahn.asyncio.wamp import ApplicationRunner, ApplicationSession
    from autobahn.wamp.serializer import JsonSerializer, MsgPackSerializer
    from autobahn.wamp.types import PublishOptions

    ours = await connect(router.ws_url, "realm1", reconnect=NO_RECONNECT)
    await ours.register("com.batched.add", lambda a, b: a + b)
    for serializer in (JsonSerializer(batched=True), MsgPackSerializer(batched=True)):
        joined: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        class Joined(ApplicationSession):  # type: ignore[misc]
            def __init__(self, config: Any, joined: asyncio.Future[Any] = joined) -> None:
                super().__init__(config)
                self.joined = joined

            async def onJoin(self, details: Any) -> None:
                self.joined.set_result(self)

        runner = ApplicationRunner(router.ws_url, "realm1", serializers=[serializer])
        transport, _protocol = await runner.run(Joined, start_loop=False)
        try:
            theirs = await asyncio.wait_for(joined, 10)
            assert theirs._transport._serializer.SERIALIZER_ID.endswith(".batched")
            assert await theirs.call("com.batched.add", 2, 3) == 5
            events: asyncio.Queue[Any] = asyncio.Queue()
            await theirs.subscribe(events.put_nowait, "com.batched.news")
            for n in range(5):  # published back to back: may arrive in one batch
                await ours.publish("com.batched.news", n)
            assert [await asyncio.wait_for(events.get(), 5) for _ in range(5)] == [0, 1, 2, 3, 4]
            theirs.publish("com.batched.news", 99, options=PublishOptions(exclude_me=False))
            assert await asyncio.wait_for(events.get(), 5) == 99
            theirs.leave()
        finally:
            transport.close()
    await ours.leave()
