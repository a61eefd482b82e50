"""RPC across router nodes on NATS: callers and callees on different `cloverleaf start` processes
of one cluster, with Autobahn|Python as the client."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallDetails, CallOptions, RegisterOptions
from tests.conftest import AutobahnSessions, RouterProcess, autobahn_transport

_ids = itertools.count(1)


def uri(name: str) -> str:
    return f"com.rpc{next(_ids)}.{name}"


async def call_when_there(caller: Any, procedure: str, *args: Any, timeout: float = 5.0, **kwargs: Any) -> Any:
    """Call once the registration has reached the caller's node (registry changes travel by watch)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await caller.call(procedure, *args, **kwargs)
        except ApplicationError as exc:
            if exc.error != "wamp.error.no_such_procedure" or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)


async def test_call_a_callee_on_another_node(two_nodes: tuple[RouterProcess, RouterProcess],
                                             autobahn: AutobahnSessions) -> None:
    a, b = two_nodes
    callee = await autobahn.open(autobahn_transport(b, "websocket", "cbor"))
    caller = await autobahn.open(autobahn_transport(a, "rawsocket", "json"))
    procedure, failing = uri("echo"), uri("fail")
    from autobahn.wamp.types import CallResult

    registration = await callee.register(lambda *args, **kwargs: CallResult(*args, **kwargs), procedure)

    def fail(x: int) -> None:
        raise ApplicationError("com.example.error.too_big", x, "is too big", limit=10)

    await callee.register(fail, failing)
    result = await call_when_there(caller, procedure, 1, "two", b"\x00\xff", nested={"x": [1.5, None]})
    assert list(result.results) == [1, "two", b"\x00\xff"] and result.kwresults == {"nested": {"x": [1.5, None]}}
    with pytest.raises(ApplicationError) as info:
        await call_when_there(caller, failing, 11)
    assert (info.value.error, list(info.value.args), info.value.kwargs) == \
        ("com.example.error.too_big", [11, "is too big"], {"limit": 10})
    # the registration has the same ID on the caller's node, and its meta API sees the remote callee
    assert await caller.call("wamp.registration.lookup", procedure) == registration.id
    assert await caller.call("wamp.registration.list_callees", registration.id) == [callee._session_id]
    await registration.unregister()
    deadline = time.monotonic() + 5
    while await caller.call("wamp.registration.lookup", procedure) is not None:
        assert time.monotonic() < deadline, "the unregistration did not reach the caller's node"
        await asyncio.sleep(0.02)
    with pytest.raises(ApplicationError) as info:
        await caller.call(procedure)
    assert info.value.error == "wamp.error.no_such_procedure"


async def test_single_and_policies_hold_cluster_wide(two_nodes: tuple[RouterProcess, RouterProcess],
                                                     autobahn: AutobahnSessions) -> None:
    a, b = two_nodes
    on_a = await autobahn.open(autobahn_transport(a, "websocket", "json"))
    on_b = await autobahn.open(autobahn_transport(b, "websocket", "msgpack"))
    single = uri("single")
    await on_a.register(lambda: "a", single)
    with pytest.raises(ApplicationError) as info:
        await on_b.register(lambda: "b", single)
    assert info.value.error == "wamp.error.procedure_already_exists"
    shared = uri("shared")
    await on_a.register(lambda: "a", shared, options=RegisterOptions(invoke="roundrobin"))
    with pytest.raises(ApplicationError) as info:
        await on_b.register(lambda: "b", shared, options=RegisterOptions(invoke="random"))
    assert info.value.error == "wamp.error.procedure_exists_with_different_invocation_policy"
    await on_b.register(lambda: "b", shared, options=RegisterOptions(invoke="roundrobin"))
    # round robin over both nodes' callees, in registration order, from either node
    deadline = time.monotonic() + 5
    for session in (on_a, on_b):
        while await session.call("wamp.registration.count_callees",
                                 await session.call("wamp.registration.lookup", shared)) != 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
    assert sorted([await on_a.call(shared) for _ in range(4)]) == ["a", "a", "b", "b"]
    assert sorted([await on_b.call(shared) for _ in range(4)]) == ["a", "a", "b", "b"]


async def test_concurrent_single_registrations_one_winner(two_nodes: tuple[RouterProcess, RouterProcess],
                                                          autobahn: AutobahnSessions) -> None:
    """Both nodes register the same URI at the same moment, 30 times: exactly one wins each time."""
    a, b = two_nodes
    on_a = await autobahn.open(autobahn_transport(a, "websocket", "json"))
    on_b = await autobahn.open(autobahn_transport(b, "websocket", "json"))
    for _ in range(30):
        procedure = uri("contested")
        outcomes = await asyncio.gather(on_a.register(lambda: "a", procedure), on_b.register(lambda: "b", procedure),
                                        return_exceptions=True)  # fmt: skip
        won = [o for o in outcomes if not isinstance(o, BaseException)]
        lost = [o for o in outcomes if isinstance(o, ApplicationError)]
        assert len(won) == 1 and len(lost) == 1, outcomes
        assert lost[0].error == "wamp.error.procedure_already_exists"


async def test_progress_cancel_and_timeout_across_nodes(two_nodes: tuple[RouterProcess, RouterProcess],
                                                        autobahn: AutobahnSessions) -> None:
    a, b = two_nodes
    callee = await autobahn.open(autobahn_transport(b, "websocket", "json"))
    caller = await autobahn.open(autobahn_transport(a, "websocket", "msgpack"))
    counting, sleepy = uri("count"), uri("sleepy")
    interrupted: asyncio.Queue[str] = asyncio.Queue()

    async def count(n: int, details: CallDetails) -> str:
        assert details.progress is not None
        for i in range(n):
            details.progress(i)
            await asyncio.sleep(0)
        return "done"

    async def sleep(seconds: float) -> str:
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            interrupted.put_nowait("interrupted")
            raise
        return "awake"

    await callee.register(count, counting, options=RegisterOptions(details_arg="details"))
    await callee.register(sleep, sleepy)
    progress: list[Any] = []
    assert await call_when_there(caller, counting, 5, options=CallOptions(on_progress=progress.append)) == "done"
    assert progress == [0, 1, 2, 3, 4]
    assert await call_when_there(caller, sleepy, 0.01) == "awake"
    # cancel: the INTERRUPT crosses to the callee's node
    call = asyncio.ensure_future(caller.call(sleepy, 30))
    await asyncio.sleep(0.2)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await asyncio.wait_for(interrupted.get(), 5) == "interrupted"
    # timeout: run on the caller's node, interrupting the remote callee
    with pytest.raises(ApplicationError) as info:
        await caller.call(sleepy, 30, options=CallOptions(timeout=200))
    assert info.value.error == "wamp.error.timeout"
    assert await asyncio.wait_for(interrupted.get(), 5) == "interrupted"
    # calls in flight at once, answered out of order
    results = await asyncio.gather(*(caller.call(sleepy, d) for d in (0.3, 0.1, 0.2)))
    assert results == ["awake"] * 3


async def test_pattern_precedence_across_nodes(two_nodes: tuple[RouterProcess, RouterProcess],
                                               autobahn: AutobahnSessions) -> None:
    a, b = two_nodes
    on_a = await autobahn.open(autobahn_transport(a, "websocket", "json"))
    on_b = await autobahn.open(autobahn_transport(b, "websocket", "json"))
    base = uri("api")
    await on_b.register(lambda details: ["prefix on b", details.procedure], base,
                        options=RegisterOptions(match="prefix", details_arg="details"))
    await on_b.register(lambda details: ["wildcard on b", details.procedure], f"{base}..echo",
                        options=RegisterOptions(match="wildcard", details_arg="details"))
    await on_a.register(lambda: "exact on a", f"{base}.v1.echo")
    assert await call_when_there(on_b, f"{base}.v1.echo") == "exact on a"
    assert await call_when_there(on_a, f"{base}.v2.other") == ["prefix on b", f"{base}.v2.other"]
    # exact beats prefix beats wildcard, wherever each callee is
    assert await on_a.call(f"{base}.v1.echo") == "exact on a"


async def test_callee_node_killed_mid_call(two_nodes: tuple[RouterProcess, RouterProcess],
                                           autobahn: AutobahnSessions) -> None:
    a, b = two_nodes
    callee = await autobahn.open(autobahn_transport(b, "websocket", "json"))
    caller = await autobahn.open(autobahn_transport(a, "websocket", "json"))
    procedure = uri("doomed")

    async def forever() -> None:
        await asyncio.sleep(60)

    await callee.register(forever, procedure)
    await call_when_there(caller, "wamp.registration.lookup", procedure)
    deadline = time.monotonic() + 5
    while await caller.call("wamp.registration.lookup", procedure) is None:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    call = asyncio.ensure_future(caller.call(procedure))
    await asyncio.sleep(0.3)
    b.process.kill()
    started = time.monotonic()
    with pytest.raises(ApplicationError) as info:
        await asyncio.wait_for(call, 5)
    assert info.value.error == "wamp.error.canceled"
    assert time.monotonic() - started < 3.0
    # its registration is gone cluster-wide
    assert await caller.call("wamp.registration.lookup", procedure) is None
    with pytest.raises(ApplicationError) as info:
        await caller.call(procedure)
    assert info.value.error == "wamp.error.no_such_procedure"


async def test_callee_keeps_its_registration_when_a_caller_node_dies(two_nodes: tuple[RouterProcess, RouterProcess],
                                                                     autobahn: AutobahnSessions) -> None:
    """Node b called a callee on node a, then dies: node a drops b's caller side and its calls, and
    nothing else (regression: the callee was taken out of its registration, cluster-wide)."""
    a, b = two_nodes
    callee = await autobahn.open(autobahn_transport(a, "websocket", "json"))
    local_caller = await autobahn.open(autobahn_transport(a, "rawsocket", "json"))
    caller = await autobahn.open(autobahn_transport(b, "websocket", "json"))
    procedure, slow = uri("kept"), uri("slow")

    async def sleepy() -> str:
        await asyncio.sleep(30)
        return "late"

    await callee.register(lambda: "still here", procedure)
    await callee.register(sleepy, slow)
    assert await call_when_there(caller, procedure) == "still here"
    in_flight = asyncio.ensure_future(call_when_there(caller, slow))
    await asyncio.sleep(0.3)
    b.process.kill()
    await asyncio.sleep(2.5)  # past the failure timeout: node a has dropped node b
    in_flight.cancel()
    assert "is gone" in a.log()
    registration = await local_caller.call("wamp.registration.lookup", procedure)
    assert registration is not None
    assert await local_caller.call("wamp.registration.list_callees", registration) == [callee._session_id]
    assert await local_caller.call(procedure) == "still here"


async def test_no_invocation_reaches_a_callee_before_its_registered(two_nodes: tuple[RouterProcess, RouterProcess],
                                                                    autobahn: AutobahnSessions) -> None:
    """A REGISTER is answered once every node routes calls to the new callee, but its own node's
    replica lists it a little earlier: calls made meanwhile (here from both nodes, without pause)
    wait behind the REGISTERED, since Autobahn drops its connection on an INVOCATION for a
    registration ID it was not told."""
    a, b = two_nodes
    callee = await autobahn.open(autobahn_transport(b, "websocket", "json"))
    callers = [await autobahn.open(autobahn_transport(node, "websocket", "json")) for node in (a, b)]
    rounds = 20
    calling = True
    answered: set[int] = set()

    async def call(session: Any) -> None:
        async def one(n: int) -> None:
            with contextlib.suppress(ApplicationError):  # not registered (yet, or any more)
                answered.add(await session.call(f"com.x.race.p{n}"))

        while calling and session.is_attached():
            await asyncio.gather(*(one(n) for n in range(rounds)))

    tasks = [asyncio.get_running_loop().create_task(call(session)) for session in callers]
    try:
        for n in range(rounds):
            registration = await asyncio.wait_for(callee.register(lambda n=n: n, f"com.x.race.p{n}"), 10)
            deadline = time.monotonic() + 10
            while n not in answered:
                assert time.monotonic() < deadline and callee.is_attached()
                await asyncio.sleep(0.01)
            await asyncio.wait_for(registration.unregister(), 10)
            assert callee.is_attached()
    finally:
        calling = False
        await asyncio.gather(*tasks)
