"""Basic Profile end to end with Autobahn|Python, on every transport and serializer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions
from tests.conftest import AutobahnSessions, RouterProcess, autobahn_transport

CLUSTER_READY = True  # also run against two router nodes of a cluster (tests/conftest.py)

TRANSPORTS = ["websocket", "rawsocket", "unix"]
SERIALIZERS = ["json", "msgpack", "cbor"]


@pytest.mark.parametrize("kind", TRANSPORTS)
@pytest.mark.parametrize("serializer", SERIALIZERS)
async def test_rpc_and_pubsub_round_trip(router: RouterProcess, autobahn: AutobahnSessions, kind: str,
                                         serializer: str) -> None:
    transport = autobahn_transport(router, kind, serializer)
    callee = await autobahn.open(transport)
    caller = await autobahn.open(transport)
    assert callee._session_id != caller._session_id
    procedure = f"com.example.{kind}.{serializer}.echo"

    def echo(*args: Any, **kwargs: Any) -> Any:
        from autobahn.wamp.types import CallResult
        return CallResult(*args, **kwargs)

    registration = await callee.register(echo, procedure)
    result = await caller.call(procedure, 1, "two", b"\x00\x01binary", nested={"x": [1.5, None, True]})
    assert list(result.results) == [1, "two", b"\x00\x01binary"]
    assert result.kwresults == {"nested": {"x": [1.5, None, True]}}

    # kwargs only, and no payload at all
    result = await caller.call(procedure, key="value")
    assert result.kwresults == {"key": "value"}
    assert await caller.call(procedure) is None

    topic = f"com.example.{kind}.{serializer}.topic"
    received: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    subscription = await callee.subscribe(lambda *a, **kw: received.put_nowait((a, kw)), topic)
    publication = await caller.publish(topic, "hello", b"\xff", n=1, options=PublishOptions(acknowledge=True))
    assert publication.id >= 1
    assert await asyncio.wait_for(received.get(), 5) == (("hello", b"\xff"), {"n": 1})

    # unacknowledged publish still arrives
    caller.publish(topic, "second")
    assert await asyncio.wait_for(received.get(), 5) == (("second",), {})

    await subscription.unsubscribe()
    await registration.unregister()
    with pytest.raises(ApplicationError) as info:
        await caller.call(procedure)
    assert info.value.error == "wamp.error.no_such_procedure"


async def test_application_error_with_args_and_kwargs(router: RouterProcess, autobahn: AutobahnSessions) -> None:
    transport = autobahn_transport(router, "websocket", "json")
    callee = await autobahn.open(transport)
    caller = await autobahn.open(transport)

    def fail(x: int) -> None:
        raise ApplicationError("com.example.error.too_big", x, "is too big", limit=10)

    await callee.register(fail, "com.example.fail")
    with pytest.raises(ApplicationError) as info:
        await caller.call("com.example.fail", 11)
    assert info.value.error == "com.example.error.too_big"
    assert list(info.value.args) == [11, "is too big"]
    assert info.value.kwargs == {"limit": 10}


async def test_procedure_already_exists(router: RouterProcess, autobahn: AutobahnSessions) -> None:
    transport = autobahn_transport(router, "rawsocket", "msgpack")
    first = await autobahn.open(transport)
    second = await autobahn.open(transport)
    await first.register(lambda: 1, "com.example.taken")
    with pytest.raises(ApplicationError) as info:
        await second.register(lambda: 2, "com.example.taken")
    assert info.value.error == "wamp.error.procedure_already_exists"
    # the first registration still answers
    assert await second.call("com.example.taken") == 1


async def test_shared_registration_under_another_policy(router: RouterProcess, autobahn: AutobahnSessions) -> None:
    from autobahn.wamp.types import RegisterOptions

    transport = autobahn_transport(router, "websocket", "json")
    first = await autobahn.open(transport)
    second = await autobahn.open(transport)
    await first.register(lambda: 1, "com.example.shared", options=RegisterOptions(invoke="roundrobin"))
    with pytest.raises(ApplicationError) as info:
        await second.register(lambda: 2, "com.example.shared", options=RegisterOptions(invoke="random"))
    # the URI Autobahn itself defines for this case (ApplicationError.PROCEDURE_EXISTS_INVOCATION_POLICY_CONFLICT)
    assert info.value.error == ApplicationError.PROCEDURE_EXISTS_INVOCATION_POLICY_CONFLICT
    assert info.value.error == "wamp.error.procedure_exists_with_different_invocation_policy"
    await second.register(lambda: 2, "com.example.shared", options=RegisterOptions(invoke="roundrobin"))


async def test_strict_realm_rejects_loose_uris(router: RouterProcess, autobahn: AutobahnSessions) -> None:
    session = await autobahn.open(autobahn_transport(router, "websocket", "json"), realm="strict.realm")
    with pytest.raises(ApplicationError) as info:
        await session.register(lambda: None, "com.Example.UpperCase")
    assert info.value.error == "wamp.error.invalid_uri"
    await session.register(lambda: 7, "com.example.lower_case")
    assert await session.call("com.example.lower_case") == 7


async def test_unknown_subscription_and_registration(router: RouterProcess, autobahn: AutobahnSessions) -> None:
    from autobahn.wamp import message

    session = await autobahn.open(autobahn_transport(router, "websocket", "json"))
    owner = await autobahn.open(autobahn_transport(router, "websocket", "json"))
    subscription = await owner.subscribe(lambda: None, "com.example.owned")
    registration = await owner.register(lambda: None, "com.example.owned_proc")
    # Another session cannot unsubscribe/unregister what it does not hold: build the requests by hand.
    loop = asyncio.get_running_loop()
    for msg_cls, target, expected in (
        (message.Unsubscribe, subscription.id, "wamp.error.no_such_subscription"),
        (message.Unregister, registration.id, "wamp.error.no_such_registration"),
    ):
        request = session._request_id_gen.next()
        future: asyncio.Future[Any] = loop.create_future()
        if msg_cls is message.Unsubscribe:
            session._unsubscribe_reqs[request] = _Pending(future)
        else:
            session._unregister_reqs[request] = _Pending(future)
        session._transport.send(msg_cls(request, target))
        with pytest.raises(ApplicationError) as info:
            await asyncio.wait_for(future, 5)
        assert info.value.error == expected


class _Pending:
    """Autobahn's request bookkeeping records, reduced to what its ERROR handler reads."""

    def __init__(self, future: Any) -> None:
        self.on_reply = future
        self.request_id = 0
        self.registration = None
        self.subscription = None


async def test_caller_gets_error_when_callee_vanishes(router: RouterProcess, autobahn: AutobahnSessions) -> None:
    transport = autobahn_transport(router, "websocket", "json")
    callee = await autobahn.open(transport)
    caller = await autobahn.open(transport)
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(30)

    await callee.register(slow, "com.example.slow")
    call = asyncio.ensure_future(caller.call("com.example.slow"))
    await asyncio.wait_for(started.wait(), 5)
    callee._transport.close()  # drop the callee's connection mid-call
    with pytest.raises(ApplicationError) as info:
        await asyncio.wait_for(call, 5)
    assert info.value.error == "wamp.error.canceled"
    # and its registration is gone
    with pytest.raises(ApplicationError) as info:
        await caller.call("com.example.slow")
    assert info.value.error == "wamp.error.no_such_procedure"


async def test_no_such_realm(router: RouterProcess) -> None:
    from autobahn.asyncio.component import Component

    loop = asyncio.get_running_loop()
    left: asyncio.Future[Any] = loop.create_future()
    component = Component(transports=[{"type": "websocket", "url": router.ws_url, "max_retries": 0}],
                          realm="no.such.realm")

    @component.on_leave  # type: ignore[misc]
    def _on_leave(session: Any, details: Any) -> None:
        if not left.done():
            left.set_result(details)

    done = component.start(loop)
    details = await asyncio.wait_for(left, 5)
    assert details.reason == "wamp.error.no_such_realm"
    await asyncio.wait_for(component.stop(), 5)
    done.cancel()
