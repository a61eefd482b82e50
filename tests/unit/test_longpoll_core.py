"""The long-poll transport without sockets: batching, negotiation, CORS, and the registry driving a
real in-process router (queue policy, held receives, idle transports, shutdown)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from cloverleaf.router.auth import Action, AnonymousAuthenticator, Permission, RoleAuthorizer
from cloverleaf.router.realm import Realm
from cloverleaf.router.router import Router
from cloverleaf.router.session import QueuePolicy, SessionLimits, SessionOptions
from cloverleaf.transport.longpoll import (
    LongPollEndpoint,
    LongPollSettings,
    cors_headers,
)
from cloverleaf.transport.web import HttpRequest
from cloverleaf.wamp.batching import BatchError, choose_framing, frame_batch, framings_for, split_batch
from cloverleaf.wamp.serializers import CBOR, JSON, MSGPACK, Serializer

ROLES: dict[str, Any] = {"subscriber": {}, "publisher": {}, "caller": {}, "callee": {}}


@pytest.mark.parametrize("serializer", [JSON, MSGPACK, CBOR])
def test_batches_round_trip(serializer: Serializer) -> None:
    payloads = [serializer.encode([16, i, {}, "com.example", ["x" * i]]) for i in range(5)]
    assert split_batch(serializer, frame_batch(serializer, payloads)) == payloads
    assert split_batch(serializer, frame_batch(serializer, payloads[:1])) == payloads[:1]


def test_json_batch_is_record_separated() -> None:
    assert frame_batch(JSON, [b"[1]", b"[2]"]) == b"[1]\x1e[2]\x1e"
    assert split_batch(JSON, b'[1,"a"]\x1e') == [b'[1,"a"]']


@pytest.mark.parametrize(
    ("serializer", "body"),
    [(JSON, b""), (JSON, b"[1]"), (MSGPACK, b""), (MSGPACK, b"\x00\x00"), (MSGPACK, b"\x00\x00\x00\x09abc")],
)
def test_malformed_batches(serializer: Serializer, body: bytes) -> None:
    with pytest.raises(BatchError):
        split_batch(serializer, body)


def test_protocol_choice_follows_the_client() -> None:
    supported = framings_for([JSON, MSGPACK])
    assert [p.name for p in supported] == [
        "wamp.2.json", "wamp.2.json.batched", "wamp.2.msgpack", "wamp.2.msgpack.batched",
    ]  # fmt: skip
    chosen = choose_framing(["wamp.2.cbor", "wamp.2.msgpack.batched", "wamp.2.json"], supported)
    assert chosen is not None and chosen.serializer is MSGPACK and chosen.batched
    assert choose_framing(["wamp.2.cbor"], supported) is None
    assert choose_framing("wamp.2.json", supported) is None  # must be a list
    assert choose_framing([1, None, "wamp.2.json"], supported) == supported[0]


def test_cors() -> None:
    allowed = ["https://*.example.com"]
    assert cors_headers({}, allowed, preflight=False) == {}  # no Origin: not a browser
    assert cors_headers({"origin": "https://evil.test"}, allowed, preflight=True) is None
    answer = cors_headers({"origin": "https://app.example.com"}, allowed, preflight=False)
    assert answer == {"Access-Control-Allow-Origin": "https://app.example.com",
                      "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}  # fmt: skip
    answer = cors_headers({"origin": "https://app.example.com", "access-control-request-headers": "content-type"},
                          allowed, preflight=True)  # fmt: skip
    assert answer is not None and answer["Access-Control-Allow-Headers"] == "content-type"
    assert "POST" in answer["Access-Control-Allow-Methods"] and int(answer["Access-Control-Max-Age"]) > 0


# -- the registry on a real router -----------------------------------------------------------


def _router(limits: SessionLimits | None = None) -> Router:
    router = Router(limits)
    router.add_realm(Realm("realm1", RoleAuthorizer({"anonymous": [Permission("", "prefix", frozenset(Action))]})))
    return router


class Client:
    """Calls the endpoint as the web transport would, one request at a time."""

    def __init__(self, endpoint: LongPollEndpoint) -> None:
        self.endpoint = endpoint
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport = ""

    async def post(self, path: str, body: bytes = b"") -> tuple[int, bytes]:
        request = HttpRequest("POST", "/lp" + path, "", {}, body)
        status, answer, _ = await self.endpoint.handle(request, "tcp:127.0.0.1:1", self.lost)
        return status, answer

    async def open(self, protocol: str = "wamp.2.json") -> None:
        status, body = await self.post("/open", orjson.dumps({"protocols": [protocol]}))
        assert status == 200
        self.transport = orjson.loads(body)["transport"]

    async def send(self, message: list[Any]) -> int:
        return (await self.post(f"/{self.transport}/send", orjson.dumps(message)))[0]

    async def receive(self) -> tuple[int, Any]:
        status, body = await self.post(f"/{self.transport}/receive")
        return status, orjson.loads(body) if status == 200 else body

    async def join(self) -> None:
        assert await self.send([1, "realm1", {"roles": ROLES}]) == 204
        status, welcome = await self.receive()
        assert status == 200 and welcome[0] == 2


def _endpoint(router: Router, **settings: Any) -> LongPollEndpoint:
    options = SessionOptions([AnonymousAuthenticator()])
    return LongPollEndpoint(router, LongPollSettings("/lp", [JSON, MSGPACK], options, **settings))


async def test_slow_poller_gets_events_dropped_by_the_router_queue_policy() -> None:
    router = _router(SessionLimits(max_outgoing_bytes=2000, queue_policy=QueuePolicy.DROP_EVENTS))
    endpoint = _endpoint(router, request_timeout=0.05)
    slow = Client(endpoint)
    await slow.open()
    await slow.join()
    assert await slow.send([32, 1, {}, "com.lp.flood"]) == 204
    assert (await slow.receive())[1][0] == 33
    publisher = Client(endpoint)
    await publisher.open()
    await publisher.join()
    for i in range(100):
        assert await publisher.send([16, i + 1, {}, "com.lp.flood", ["x" * 100]]) == 204
    link = endpoint.transports[slow.transport]
    assert link.backlog() <= 2000
    session = link.session
    assert session is not None and session.dropped_events > 0 and session.is_open
    received = 0
    while True:  # unbatched: one EVENT per receive, as many as fitted in the queue
        status, event = await slow.receive()
        if status != 200:
            assert status == 204  # request_timeout: nothing more queued
            break
        assert event[0] == 36
        received += 1
    assert received + session.dropped_events == 100


async def test_close_policy_ends_the_transport() -> None:
    router = _router(SessionLimits(max_outgoing_bytes=1000, queue_policy=QueuePolicy.CLOSE))
    endpoint = _endpoint(router, request_timeout=0.05)
    slow = Client(endpoint)
    await slow.open()
    await slow.join()
    await slow.send([32, 1, {}, "com.lp.flood"])
    await slow.receive()
    publisher = Client(endpoint)
    await publisher.open()
    await publisher.join()
    for i in range(20):
        await publisher.send([16, i + 1, {}, "com.lp.flood", ["x" * 100]])
    await asyncio.sleep(0)  # the abort detaches the session on the next loop pass
    assert len(router.realms["realm1"].sessions) == 1
    assert (await slow.receive())[0] == 410


async def test_held_receive_wakes_replaces_and_gives_up_on_a_lost_connection() -> None:
    endpoint = _endpoint(_router(), request_timeout=5)
    client = Client(endpoint)
    await client.open()
    await client.join()
    first = asyncio.ensure_future(client.receive())
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(client.receive())
    assert (await asyncio.wait_for(first, 1))[0] == 204
    await client.send([48, 1, {}, "com.lp.missing"])
    status, error = await asyncio.wait_for(second, 1)
    assert status == 200 and error[0] == 8
    # a receive whose connection is lost returns without taking the message queued meanwhile
    held = asyncio.ensure_future(client.receive())
    await asyncio.sleep(0.01)
    client.lost.set_result(None)
    await client.send([48, 2, {}, "com.lp.missing"])
    assert (await asyncio.wait_for(held, 1))[0] == 204
    again = Client(endpoint)
    again.transport = client.transport
    status, error = await again.receive()
    assert status == 200 and error[:3] == [8, 48, 2]


async def test_idle_transports_are_swept_and_shutdown_answers_held_receives() -> None:
    router = _router()
    endpoint = _endpoint(router, session_timeout=0.1, request_timeout=5)
    idle, busy = Client(endpoint), Client(endpoint)
    for client in (idle, busy):
        await client.open()
        await client.join()
    held = asyncio.ensure_future(busy.receive())
    await asyncio.sleep(0.3)
    # the held receive keeps its transport alive; the other is gone with its session
    assert list(endpoint.transports) == [busy.transport]
    assert len(router.realms["realm1"].sessions) == 1
    assert endpoint.close_all() == 1
    assert (await asyncio.wait_for(held, 1))[0] == 410
    assert not router.sessions and not endpoint.transports


async def test_too_many_transports() -> None:
    endpoint = _endpoint(_router(), max_transports=2)
    for _ in range(2):
        await Client(endpoint).open()
    status, _ = await Client(endpoint).post("/open", b'{"protocols": ["wamp.2.json"]}')
    assert status == 503
    endpoint.close_all()


def test_longpoll_path_config() -> None:
    from cloverleaf.node.config import ConfigError, LongPollPath, WebTransport, parse_config

    def config(longpoll: dict[str, Any]) -> dict[str, Any]:
        web = {"type": "web", "endpoint": {"port": 8080}, "paths": {"/lp": {"type": "longpoll", **longpoll}}}
        return {"realms": [{"name": "realm1"}], "transports": [web]}

    transport = parse_config(config({})).transports[0]
    assert isinstance(transport, WebTransport)
    service = transport.paths["/lp"]
    assert isinstance(service, LongPollPath)
    assert (service.request_timeout, service.session_timeout, service.sequential_request_ids) == (10.0, 30.0, False)
    assert service.allowed_origins == ["*"] and service.serializers == ["json", "msgpack", "cbor"]
    with pytest.raises(ConfigError) as info:
        parse_config(config({"request_timeout": 0, "colour": "blue"}))
    assert 'transports[0].paths["/lp"].request_timeout: Input should be greater than 0' in str(info.value)
    assert 'transports[0].paths["/lp"].colour: unknown key' in str(info.value)
