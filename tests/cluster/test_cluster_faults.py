"""Faults of a cluster of router nodes on NATS, measured: a NATS partition, a router cut off from
its nats-server, a node SIGKILLed and restarted at once, dynamic authentication and authorization
served by another node, session IDs across three nodes. Real `cloverleaf start` processes and
nats-servers on 127.0.0.1, Autobahn|Python as the client; each test measures its bounds and prints
them (pytest -s)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions, RegisterOptions
from tests.cluster.nats import FreezableProxy, NatsServer, create_kv_when_ready
from tests.cluster.nodes import cluster_router
from tests.cluster.test_cluster_rpc import call_when_there
from tests.conftest import (
    AutobahnSessions,
    RouterProcess,
    autobahn_transport,
    free_port,
    launch_router,
    router_config,
    wait_for_port,
)
from tests.rawclient import RawClient

#: the cluster timeouts the nodes run with (the config defaults)
FAILURE_TIMEOUT = 1.5


def ab(node: RouterProcess) -> dict[str, Any]:
    return autobahn_transport(node, "websocket", "json")


def incarnations(node: RouterProcess) -> list[str]:
    """Every incarnation the node has joined as, in order (from its log)."""
    return re.findall(r"joined as incarnation (\S+)", node.log())


async def measure(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> float:
    """Seconds until ``await check()`` is true (polled every 20 ms); fails after ``timeout``."""
    start = time.monotonic()
    while not await check():
        assert time.monotonic() - start < timeout, f"{what}: not within {timeout} s"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def report(name: str, **seconds: float) -> None:
    print(f"\n[{name}] " + ", ".join(f"{key} {value:.2f} s" for key, value in seconds.items()))


def stop_all(*nodes: RouterProcess) -> None:
    for node in nodes:
        if node.process.poll() is None:
            node.process.send_signal(signal.SIGCONT)
            assert node.stop() == 0, node.log()
        assert "Traceback" not in node.log(), node.log()


async def open_when_possible(autobahn: AutobahnSessions, node: RouterProcess, timeout: float, **kw: Any) -> Any:
    """A session on ``node`` as soon as it takes one (a fencing node refuses or closes them)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            session = await autobahn.open(ab(node), **kw)
            if session.is_attached():
                return session
        except (ConnectionError, OSError, TimeoutError):
            pass
        assert time.monotonic() < deadline, f"no session on the node within {timeout} s\n{node.log()}"
        await asyncio.sleep(0.05)


async def register_when_possible(session_on: Callable[[], Awaitable[Any]], fn: Any, procedure: str, timeout: float,
                                 options: RegisterOptions | None = None) -> Any:  # fmt: skip
    """Register ``procedure`` from a (fresh if need be) session, retrying refusals and failures."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            session = await session_on()
            return await asyncio.wait_for(session.register(fn, procedure, options=options), 10)
        except (ApplicationError, ConnectionError, TimeoutError, OSError) as exc:
            last = exc
            await asyncio.sleep(0.05)
    raise AssertionError(f"could not register {procedure} within {timeout} s: {last!r}")


# -- 1. a partition of the NATS cluster -------------------------------------------------------------


async def test_partition_each_side_drops_the_other_and_the_cluster_converges_after_heal(
    tmp_path: Path, freezable_proxy: Callable[[int], FreezableProxy], autobahn: AutobahnSessions
) -> None:
    """n1 and n2 route to each other directly; n3 reaches them only through two proxies (its routes
    are one-directional: n1 and n2 never dial it, and every server advertises an address where
    nothing listens, so no gossiped route goes around the proxies). Router a is on n1, router b on
    n3. Freezing both proxies cuts n3 (and b) off the JetStream majority."""
    nowhere = f"127.0.0.1:{free_port()}"
    ports = [free_port() for _ in range(3)]
    p1, p2 = freezable_proxy(ports[0]), freezable_proxy(ports[1])
    n1 = NatsServer(tmp_path / "nats", name="n1", cluster_port=ports[0], routes=[f"nats-route://127.0.0.1:{ports[1]}"],
                    cluster_advertise=nowhere)  # fmt: skip
    n2 = NatsServer(tmp_path / "nats", name="n2", cluster_port=ports[1], routes=[f"nats-route://127.0.0.1:{ports[0]}"],
                    cluster_advertise=nowhere)  # fmt: skip
    n3 = NatsServer(tmp_path / "nats", name="n3", cluster_port=ports[2], routes=[p1.route_url, p2.route_url],
                    cluster_advertise=nowhere)  # fmt: skip
    servers = (n1, n2, n3)
    nodes: list[RouterProcess] = []
    try:
        for server in servers:
            server.launch()
        for server in servers:
            server.wait_ready(20)
        await create_kv_when_ready([s.url for s in servers], "ready", 3, timeout=20)
        a = cluster_router(tmp_path / "a", n1.url, "a", replicas=3)
        nodes.append(a)
        b = cluster_router(tmp_path / "b", n3.url, "b", replicas=3)
        nodes.append(b)
        on_a = await autobahn.open(ab(a))
        on_b = await autobahn.open(ab(b))
        b_left: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        on_b.on("leave", lambda _s, details: b_left.done() or b_left.set_result(details))
        await on_a.register(lambda: "a", "com.part.a")
        await on_b.register(lambda: "b", "com.part.b", options=RegisterOptions(invoke="single"))
        assert await call_when_there(on_a, "com.part.b") == "b"
        assert await call_when_there(on_b, "com.part.a") == "a"
        assert p1.open_connections >= 1 and p2.open_connections >= 1  # n3's routes go through them

        p1.freeze()
        p2.freeze()
        frozen = time.monotonic()
        # the minority side: a REGISTER there ends with an error, never hangs
        register_b = asyncio.ensure_future(on_b.register(lambda: "x", "com.part.minority"))
        # core NATS traffic between the sides stops: a call from a to b's callee fails, bounded
        with pytest.raises(ApplicationError) as info:
            await asyncio.wait_for(on_a.call("com.part.b"), FAILURE_TIMEOUT + 3)
        assert info.value.error in ("wamp.error.canceled", "wamp.error.no_such_procedure"), info.value
        call_failed = time.monotonic() - frozen

        async def a_dropped_b() -> bool:
            return await on_a.call("wamp.registration.lookup", "com.part.b") is None

        await measure(a_dropped_b, FAILURE_TIMEOUT + 3, "node a dropping node b's registration")
        a_drop = time.monotonic() - frozen
        # the minority node finds the others silent, asks JetStream, gets no answer: it fences itself
        # (GOODBYE cloverleaf.close.node_fenced to its sessions) instead of routing on its own view
        details = await asyncio.wait_for(b_left, 10 + 2 * FAILURE_TIMEOUT + 3)  # (backend.STANDING_TIMEOUT)
        assert details.reason == "cloverleaf.close.node_fenced", details
        b_fenced_after = time.monotonic() - frozen
        # its REGISTER in flight ended (refused, or cut short by the fence), never hung
        with pytest.raises(Exception) as raised:
            await asyncio.wait_for(register_b, 15)
        assert not isinstance(raised.value, TimeoutError), raised.value
        register_failed = time.monotonic() - frozen
        # the majority side tries to take b's `single` procedure over meanwhile (b's callee is gone
        # from its view; the registry entry is purged only if the janitor's write lands)
        try:
            await on_a.register(lambda: "a took it", "com.part.b", options=RegisterOptions(invoke="single"))
            taken_over = True
        except ApplicationError as exc:
            assert exc.error == "wamp.error.procedure_already_exists", exc
            taken_over = False
        await asyncio.sleep(max(0.0, 4.0 - (time.monotonic() - frozen)))  # the routes to n3 drop (pings)
        b_fenced = b_left.done()

        p1.thaw()
        p2.thaw()
        healed = time.monotonic()
        fresh_b = await open_when_possible(autobahn, b, 30)

        async def fresh_on_b() -> Any:
            nonlocal fresh_b
            if not fresh_b.is_attached():
                fresh_b = await open_when_possible(autobahn, b, 30)
            return fresh_b

        await register_when_possible(fresh_on_b, lambda: "b after", "com.part.after_b", 30)
        await on_a.register(lambda: "a after", "com.part.after_a")
        assert await call_when_there(await fresh_on_b(), "com.part.after_a", timeout=10) == "a after"
        assert await call_when_there(on_a, "com.part.after_b", timeout=10) == "b after"
        converged = time.monotonic() - healed
        # never two `single` callees of com.part.b: node b fenced itself, which closed its callee; so
        # the procedure is node a's if it took it over, else nobody's, and both nodes agree
        if taken_over:
            assert await call_when_there(await fresh_on_b(), "com.part.b") == "a took it"
            registration = await on_a.call("wamp.registration.lookup", "com.part.b")
            assert await on_a.call("wamp.registration.list_callees", registration) == [on_a._session_id]
            assert await (await fresh_on_b()).call("wamp.registration.list_callees", registration) == [
                on_a._session_id]
            with pytest.raises(ApplicationError) as info:
                await (await fresh_on_b()).register(lambda: "b again", "com.part.b")
            assert info.value.error == "wamp.error.procedure_already_exists"
        else:
            for session in (on_a, await fresh_on_b()):
                with pytest.raises(ApplicationError) as info:
                    await session.call("com.part.b")
                assert info.value.error == "wamp.error.no_such_procedure"
        assert "fencing this node" in b.log() and b_fenced
        report("partition", call_a_to_b_failed=call_failed, a_drops_b=a_drop, b_fences=b_fenced_after,
               minority_register_ended=register_failed, converged_after_heal=converged)  # fmt: skip
        print(f"  majority took b's single procedure over: {taken_over}")
        # a's registration from before the partition is intact on both nodes (node b had called it:
        # dropping node b's caller side on a must not take a's callee out of its registration)
        assert await on_a.call("com.part.a") == "a"
        assert await call_when_there(await fresh_on_b(), "com.part.a") == "a"
    finally:
        p1.thaw()
        p2.thaw()
        try:
            stop_all(*nodes)
        finally:
            for server in servers:
                server.cleanup()


# -- 2. a router cut off from its nats-server -------------------------------------------------------


async def test_router_cut_off_from_nats_fences_and_rejoins(
    tmp_path: Path, nats_server: NatsServer, freezable_proxy: Callable[[int], FreezableProxy],
    autobahn: AutobahnSessions,
) -> None:  # fmt: skip
    proxy = freezable_proxy(nats_server.port)
    a = cluster_router(tmp_path / "a", nats_server.url, "a")
    b = cluster_router(tmp_path / "b", proxy.url, "b")  # (one server: no other address is gossiped)
    try:
        on_a = await autobahn.open(ab(a))
        on_b = await autobahn.open(ab(b))
        left: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        on_b.on("leave", lambda _s, details: left.done() or left.set_result(details))
        await on_b.register(lambda: "b", "com.cut.b")
        assert await call_when_there(on_a, "com.cut.b") == "b"
        first = incarnations(b)
        assert len(first) == 1

        proxy.freeze()
        frozen = time.monotonic()
        details = await asyncio.wait_for(left, FAILURE_TIMEOUT + 3)
        fenced = time.monotonic() - frozen
        assert details.reason == "cloverleaf.close.node_fenced", details
        assert FAILURE_TIMEOUT - 0.5 < fenced < FAILURE_TIMEOUT + 1.5

        async def a_dropped_b() -> bool:
            return await on_a.call("wamp.registration.lookup", "com.cut.b") is None

        dropped = fenced + await measure(a_dropped_b, FAILURE_TIMEOUT + 2, "node a dropping node b")
        await asyncio.sleep(max(0.0, 2 * FAILURE_TIMEOUT - (time.monotonic() - frozen)))
        proxy.thaw()
        thawed = time.monotonic()

        fresh = await open_when_possible(autobahn, b, 15)

        async def on_fresh() -> Any:
            nonlocal fresh
            if not fresh.is_attached():
                fresh = await open_when_possible(autobahn, b, 15)
            return fresh

        await register_when_possible(on_fresh, lambda: "b again", "com.cut.b", 15)
        assert await call_when_there(on_a, "com.cut.b") == "b again"
        rejoined = time.monotonic() - thawed
        later = incarnations(b)
        assert len(later) >= 2 and later[-1] != first[0], b.log()
        assert "fencing this node" in b.log() and "fencing this node" not in a.log()
        report("cut off", fenced=fenced, a_drops_b=dropped, callable_after_thaw=rejoined)
    finally:
        proxy.thaw()
        stop_all(a, b)


# -- 3. a node SIGKILLed and restarted at once --------------------------------------------------------


#: this scenario's nodes' failure timeout (seconds)
RESTART_FAILURE_TIMEOUT = 3.0


def restart(node: RouterProcess) -> RouterProcess:
    """The same `cloverleaf start --config node.yaml` again (same ports, same cluster section)."""
    config = node.log_path.parent / "node.yaml"
    with open(node.log_path, "ab") as log:
        command = [sys.executable, "-m", "cloverleaf", "start", "--config", str(config)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    for port in (node.ws_port, node.rs_port):
        wait_for_port(port)
    return RouterProcess(process, node.ws_url, node.rs_url, node.unix_path, node.ws_port, node.rs_port, node.log_path)


async def test_restart_under_a_new_incarnation_inherits_nothing(
    tmp_path: Path, nats_server: NatsServer, autobahn: AutobahnSessions
) -> None:
    # a failure timeout with room for a restart on a loaded machine (the restart must come back
    # before the old incarnation is found dead: that is the case under test)
    a = cluster_router(tmp_path / "a", nats_server.url, "a", failure_timeout=RESTART_FAILURE_TIMEOUT)
    b = cluster_router(tmp_path / "b", nats_server.url, "b", failure_timeout=RESTART_FAILURE_TIMEOUT)
    nodes = [a, b]
    try:
        on_a = await autobahn.open(ab(a))
        on_b = await autobahn.open(ab(b))
        old_session = on_b._session_id
        await on_b.register(lambda: "old", "com.restart.single", options=RegisterOptions(invoke="single"))
        await on_b.subscribe(lambda *args: None, "com.restart.topic")
        assert await call_when_there(on_a, "com.restart.single") == "old"
        assert await on_a.call("wamp.subscription.lookup", "com.restart.topic") is not None
        first = incarnations(b)

        b.process.kill()
        b.process.wait()
        killed = time.monotonic()
        b = restart(b)
        nodes[1] = b
        restarted = time.monotonic() - killed
        assert restarted < RESTART_FAILURE_TIMEOUT, "the restart took longer than the failure timeout"

        async def joined_again() -> bool:
            return len(incarnations(b)) == 2

        await measure(joined_again, 10, "the restarted node joining")
        assert incarnations(b)[1] != first[0]
        # right after the restart the old incarnation's `single` registration still holds the URI
        new_b = await autobahn.open(ab(b))
        took_at: list[float] = []

        async def taken() -> bool:
            try:
                await new_b.register(lambda: "new", "com.restart.single", options=RegisterOptions(invoke="single"))
            except ApplicationError as exc:
                assert exc.error == "wamp.error.procedure_already_exists", exc
                return False
            took_at.append(time.monotonic() - killed)
            return True

        await measure(taken, 3 * RESTART_FAILURE_TIMEOUT + 2, "a new session taking the killed node's single procedure")
        assert await call_when_there(on_a, "com.restart.single") == "new"
        assert await new_b.call("com.restart.single") == "new"

        async def sessions_gone() -> bool:
            for session in (on_a, new_b):
                if old_session in await session.call("wamp.session.list"):
                    return False
                try:
                    await session.call("wamp.session.get", old_session)
                    return False
                except ApplicationError as exc:
                    assert exc.error == "wamp.error.no_such_session"
            return True

        async def subscriptions_gone() -> bool:
            return all([await s.call("wamp.subscription.lookup", "com.restart.topic") is None for s in (on_a, new_b)])

        await measure(sessions_gone, 3 * RESTART_FAILURE_TIMEOUT + 2, "the killed node's sessions leaving")
        sessions_cleaned = time.monotonic() - killed
        await measure(subscriptions_gone, 2, "the killed node's subscriptions leaving")
        cleaned = time.monotonic() - killed
        # nothing stale is routed to: an acknowledged publication goes nowhere, a call to the new callee
        await on_a.publish("com.restart.topic", 1, options=PublishOptions(acknowledge=True))
        assert await on_a.call(
            "wamp.registration.list_callees", await on_a.call("wamp.registration.lookup", "com.restart.single")
        ) == [new_b._session_id]
        assert took_at[0] < 2 * RESTART_FAILURE_TIMEOUT + 1.5 and cleaned < 3 * RESTART_FAILURE_TIMEOUT + 1.5
        report("restart", restart=restarted, single_taken=took_at[0], sessions_gone=sessions_cleaned,
               all_cleaned=cleaned)  # fmt: skip
    finally:
        stop_all(*nodes)


# -- 4. dynamic authentication and authorization served by another node -------------------------------


REALMS = [
    {"name": "realm1", "roles": [{"name": "user", "authorizer": "com.auth.authorize", "authorizer_realm": "auth"},
                                 {"name": "anonymous", "permissions": []}]},
    {"name": "auth", "roles": [{"name": "anonymous"}]},
]  # fmt: skip
AUTH = {
    "anonymous": {"role": "anonymous"},
    "ticket": {"type": "dynamic", "authenticator": "com.auth.authenticate", "authenticator_realm": "auth"},
}


def auth_node(tmp: Path, nats_url: str, name: str) -> RouterProcess:
    tmp.mkdir(parents=True, exist_ok=True)
    section = {"name": "test", "node": name, "nats": {"servers": [nats_url]}}
    return launch_router(tmp, lambda ws, rs, unix: router_config(ws, rs, unix, cluster=section, realms=REALMS,
                                                                 ws_options={"auth": AUTH}))  # fmt: skip


async def test_dynamic_authenticator_and_authorizer_on_another_node(
    tmp_path: Path, nats_server: NatsServer, autobahn: AutobahnSessions
) -> None:
    a = auth_node(tmp_path / "a", nats_server.url, "a")
    b = auth_node(tmp_path / "b", nats_server.url, "b")
    try:
        backend = await autobahn.open(ab(a), realm="auth")
        calls: list[Any] = []
        decisions: list[tuple[str, str, str]] = []

        def authenticate(realm: str, authid: str, details: dict[str, Any]) -> Any:
            calls.append((realm, authid, details.get("ticket")))
            if details.get("ticket") != f"{authid}-ok":
                raise ApplicationError("com.auth.invalid_ticket", "no")
            return {"role": "user", "extra": {"hello": authid}}

        def authorize(session: dict[str, Any], uri: str, action: str, options: dict[str, Any]) -> Any:
            decisions.append((session["authid"], uri, action))
            return {"allow": uri.startswith("com.allowed."), "cache": False}

        await backend.register(authenticate, "com.auth.authenticate")
        await backend.register(authorize, "com.auth.authorize")
        started = time.monotonic()
        user = await autobahn.open(ab(b), authentication={"ticket": {"authid": "alice", "ticket": "alice-ok"}})
        authenticated = time.monotonic() - started
        assert (user._authid, user._authrole) == ("alice", "user")
        assert calls == [("realm1", "alice", "alice-ok")]
        # a wrong ticket: refused by the authenticator on node a
        client = await RawClient.websocket(b.ws_url)
        await client.send([1, "realm1", {"roles": {"caller": {}}, "authmethods": ["ticket"], "authid": "bob"}])
        assert (await client.recv())[0] == 4  # CHALLENGE
        abort = await client.request([5, "bob-wrong", {}])
        assert abort[0] == 3 and abort[2] == "wamp.error.authentication_failed", abort
        assert calls[-1] == ("realm1", "bob", "bob-wrong")
        # every action of alice (on node b) is decided by the authorizer on node a
        await user.register(lambda: "yes", "com.allowed.proc")
        with pytest.raises(ApplicationError) as info:
            await user.register(lambda: "no", "com.denied.proc")
        assert info.value.error == "wamp.error.not_authorized"
        assert await user.call("com.allowed.proc") == "yes"
        with pytest.raises(ApplicationError) as info:
            await user.call("com.denied.other")
        assert info.value.error == "wamp.error.not_authorized"
        await user.publish("com.allowed.topic", 1, options=PublishOptions(acknowledge=True))
        with pytest.raises(ApplicationError) as info:
            await user.publish("com.denied.topic", 1, options=PublishOptions(acknowledge=True))
        assert info.value.error == "wamp.error.not_authorized"
        assert [d for d in decisions if d[0] == "alice"] == [
            ("alice", "com.allowed.proc", "register"), ("alice", "com.denied.proc", "register"),
            ("alice", "com.allowed.proc", "call"), ("alice", "com.denied.other", "call"),
            ("alice", "com.allowed.topic", "publish"), ("alice", "com.denied.topic", "publish"),
        ]  # fmt: skip
        report("dynamic auth", join_authenticated_remotely=authenticated)
    finally:
        stop_all(a, b)


# -- 5. session IDs unique across three nodes --------------------------------------------------------


async def test_session_ids_unique_across_three_nodes(
    tmp_path: Path, nats_server: NatsServer, autobahn: AutobahnSessions
) -> None:
    nodes = [cluster_router(tmp_path / name, nats_server.url, name) for name in "abc"]
    try:
        per_node = 30
        sessions = await asyncio.gather(*(autobahn.open(ab(node)) for node in nodes for _ in range(per_node)))
        ids = [session._session_id for session in sessions]
        assert len(set(ids)) == len(ids) == 3 * per_node
        for index in range(3):  # each node's meta API lists every node's sessions
            assert sorted(await sessions[index * per_node].call("wamp.session.list")) == sorted(ids)
    finally:
        await autobahn.close()
        time.sleep(0.5)  # (the sessions' leaving lands before the nodes stop)
        stop_all(*nodes)
