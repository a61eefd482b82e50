"""Failures of a cluster of router nodes on NATS: a frozen node fences itself and rejoins; a NATS
server dies under connected nodes."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autobahn.wamp.exception import ApplicationError
from tests.cluster.nats import NatsCluster, NatsServer, create_kv_when_ready
from tests.cluster.nodes import cluster_router
from tests.cluster.test_cluster_rpc import call_when_there
from tests.conftest import AutobahnSessions, RouterProcess, autobahn_transport


async def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_frozen_node_fences_itself_and_rejoins(tmp_path: Path, nats_server: NatsServer,
                                                     autobahn: AutobahnSessions) -> None:
    a = cluster_router(tmp_path / "a", nats_server.url, "a")
    b = cluster_router(tmp_path / "b", nats_server.url, "b")
    try:
        caller = await autobahn.open(autobahn_transport(a, "websocket", "json"))
        callee = await autobahn.open(autobahn_transport(b, "websocket", "json"))
        left: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        callee.on("leave", lambda _session, details: left.done() or left.set_result(details))
        await callee.register(lambda: "b", "com.fence.proc")
        assert await call_when_there(caller, "com.fence.proc") == "b"
        b.process.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()

        async def gone() -> bool:
            return await caller.call("wamp.registration.lookup", "com.fence.proc") is None

        await wait_until(gone, 3.0, "node a did not drop the frozen node's registration")
        assert time.monotonic() - stopped < 3.0
        b.process.send_signal(signal.SIGCONT)
        # node b notices it was away too long: its sessions get a GOODBYE saying so
        details = await asyncio.wait_for(left, 5)
        assert details.reason == "cloverleaf.close.node_fenced", details
        assert "fencing this node" in b.log()
        # ... and it rejoined as a new incarnation (refusing joins until then): a new callee there is
        # reachable from node a
        deadline = time.monotonic() + 5
        while True:
            try:
                fresh = await autobahn.open(autobahn_transport(b, "websocket", "json"))
                break
            except ConnectionError:
                assert time.monotonic() < deadline, "node b did not take sessions again after fencing"
                await asyncio.sleep(0.1)
        await fresh.register(lambda: "b again", "com.fence.proc")
        assert await call_when_there(caller, "com.fence.proc") == "b again"
    finally:
        for node in (a, b):
            with_signal_cont(node)
            assert node.stop() == 0, node.log()
            assert "Traceback" not in node.log(), node.log()


def with_signal_cont(node: RouterProcess) -> None:
    if node.process.poll() is None:
        node.process.send_signal(signal.SIGCONT)


async def test_nats_server_killed_nodes_carry_on(tmp_path: Path, nats_cluster: NatsCluster,
                                                 autobahn: AutobahnSessions) -> None:
    """Three NATS servers; node a uses n1 first, node b n2 first. Killing n1 moves node a to
    another server within the failure timeout's margin: sessions and routing carry on."""
    n1, n2, _n3 = nats_cluster.servers
    a = cluster_router(tmp_path / "a", n1.url, "a", replicas=3)
    b = cluster_router(tmp_path / "b", n2.url, "b", replicas=3)
    # (each node is given one server; NATS tells it the others, as it would be in production)
    try:
        caller = await autobahn.open(autobahn_transport(a, "websocket", "json"))
        callee = await autobahn.open(autobahn_transport(b, "websocket", "json"))
        await callee.register(lambda x: x * 2, "com.natsdown.double")
        assert await call_when_there(caller, "com.natsdown.double", 21) == 42
        n1.kill()
        deadline = time.monotonic() + 5
        answers = []
        while time.monotonic() < deadline and len(answers) < 20:
            try:
                answers.append(await asyncio.wait_for(caller.call("com.natsdown.double", len(answers)), 1))
            except (ApplicationError, TimeoutError):
                await asyncio.sleep(0.05)
        assert answers == [2 * i for i in range(20)]
        assert "fencing this node" not in a.log()
        assert caller.is_attached()
    finally:
        for node in (a, b):
            assert node.stop() == 0, node.log()
            assert "Traceback" not in node.log(), node.log()


async def test_nats_server_frozen_nodes_move_to_another(tmp_path: Path, nats_cluster: NatsCluster,
                                                        autobahn: AutobahnSessions) -> None:  # fmt: skip
    """A frozen NATS server keeps its TCP connections open and answers nothing: node a's data plane
    leaves it after three unanswered PINGs (every failure_timeout / 4), before its own heartbeats
    have been missing for failure_timeout, so the node moves to another server instead of fencing
    itself, and calls through it carry on."""
    n1, n2, _n3 = nats_cluster.servers
    a = cluster_router(tmp_path / "a", n1.url, "a", replicas=3, failure_timeout=3.0)
    b = cluster_router(tmp_path / "b", n2.url, "b", replicas=3, failure_timeout=3.0)
    try:
        caller = await autobahn.open(autobahn_transport(a, "websocket", "json"))
        callee = await autobahn.open(autobahn_transport(b, "websocket", "json"))
        await callee.register(lambda x: x * 2, "com.natsfrozen.double")
        assert await call_when_there(caller, "com.natsfrozen.double", 21) == 42
        n1.freeze()
        frozen_at = time.monotonic()
        answers: list[int] = []
        while time.monotonic() - frozen_at < 8 and len(answers) < 20:
            try:
                answers.append(await asyncio.wait_for(caller.call("com.natsfrozen.double", len(answers)), 1))
            except (ApplicationError, TimeoutError):
                await asyncio.sleep(0.05)
        assert answers == [2 * i for i in range(20)]
        print(f"\n[frozen NATS server] 20 calls through node a {time.monotonic() - frozen_at:.2f} s after the freeze")
        assert "NATS server" in a.log() and "stopped answering" in a.log(), a.log()
        assert "fencing this node" not in a.log()
        assert caller.is_attached()
    finally:
        n1.thaw()
        for node in (a, b):
            assert node.stop() == 0, node.log()
            assert "Traceback" not in node.log(), node.log()


async def test_joins_go_on_while_the_sessions_bucket_elects_a_new_leader(
        tmp_path: Path, nats_cluster: NatsCluster, autobahn: AutobahnSessions) -> None:  # fmt: skip
    """SIGKILL the NATS server leading the sessions bucket: JetStream needs seconds to elect a new
    leader (4-9 s, a Raft election), but sessions still join on both nodes within the claim's
    patience (2 s) plus the handshake, welcomed on their random IDs; their claims land in the
    background once JetStream answers again, and the other node's meta API sees them then."""
    import nats

    n1, n2, _n3 = nats_cluster.servers
    a = cluster_router(tmp_path / "a", n1.url, "a", replicas=3)
    b = cluster_router(tmp_path / "b", n2.url, "b", replicas=3)
    try:
        watcher = await autobahn.open(autobahn_transport(b, "websocket", "json"))
        nc = await nats.connect(servers=nats_cluster.urls)
        try:
            info = await nc.jetstream(timeout=5).stream_info("KV_cloverleaf-test-sessions")
        finally:
            await nc.close()
        assert info.cluster is not None and info.cluster.leader is not None
        nats_cluster.server(info.cluster.leader).kill()

        joined = []
        for node in (a, b, a):
            started = time.monotonic()
            joined.append(await autobahn.open(autobahn_transport(node, "websocket", "json")))
            assert time.monotonic() - started < 4.5, f"a join on node {node} took {time.monotonic() - started:.1f} s"
        assert all(session.is_attached() for session in joined)

        async def seen_from_b() -> bool:
            try:
                return all([await watcher.call("wamp.session.get", s._session_id) for s in joined])
            except ApplicationError:
                return False

        await wait_until(seen_from_b, 30, "the claims of the sessions that joined during the election never landed")
        assert "same ID" not in a.log() + b.log()
    finally:
        for node in (a, b):
            assert node.stop() == 0, node.log()
            assert "Traceback" not in node.log(), node.log()


async def test_a_node_started_before_jetstream_has_a_quorum_waits_for_it(
        tmp_path: Path, autobahn: AutobahnSessions) -> None:  # fmt: skip
    """A node and its NATS servers started together (a machine booting, `docker compose up`): one
    server of three is up, so JetStream has no meta leader and cannot open the node's buckets.
    The node keeps asking (a WARNING says so) rather than failing its start, and serves once the
    other two servers are up, here 10.5 s later: past the 5 s + 5 s that a lookup and a create
    without retries took to fail."""
    nats_cluster = NatsCluster(3, tmp_path / "nats")  # not started: launched one by one below
    first, *rest = nats_cluster.servers
    first.launch()
    node: RouterProcess | None = None
    try:
        node = await _started_while_mended(tmp_path / "a", first.url, 10.5, lambda: [s.launch() for s in rest])
        assert "has not opened the cloverleaf-test-" in node.log(), node.log()
        await _serves(node, autobahn, "com.quorum.late")
    finally:
        _stop_cleanly(node)
        nats_cluster.kill()


async def test_a_node_waits_while_its_buckets_have_too_few_servers_to_be_placed_on(
        tmp_path: Path, autobahn: AutobahnSessions) -> None:  # fmt: skip
    """JetStream has a quorum, but only two of its three servers can hold a replica (the third is
    being restarted with JetStream): the node's R3 buckets cannot be placed, and JetStream answers
    "no suitable peers for placement" (error 10005; CI met it as "peer offline" right after a
    partition test's servers formed their cluster). The node keeps asking rather than failing its
    start, and serves once the third server is back with JetStream."""
    nats_cluster = NatsCluster(3, tmp_path / "nats")  # not started: launched one by one below
    late = nats_cluster[2]
    late.jetstream = False
    node: RouterProcess | None = None
    try:
        for server in nats_cluster.servers:
            server.launch()
        await create_kv_when_ready(nats_cluster.urls, "ready", 2, timeout=20)

        def with_jetstream() -> None:
            assert late.stop() == 0
            late.jetstream = True
            late.launch()

        node = await _started_while_mended(tmp_path / "a", nats_cluster[0].url, 3, with_jetstream)
        assert "no suitable peers for placement" in node.log(), node.log()
        await _serves(node, autobahn, "com.placement.late")
    finally:
        _stop_cleanly(node)
        nats_cluster.kill()


async def _started_while_mended(tmp: Path, url: str, after: float, mend: Callable[[], object]) -> RouterProcess:
    """A node (R3 buckets, through ``url``) started while JetStream cannot open its buckets;
    ``mend()`` runs ``after`` seconds into its start; returns the node once it has started."""
    starting = asyncio.get_running_loop().run_in_executor(
        None, lambda: cluster_router(tmp, url, "a", replicas=3, start_timeout=30))
    await asyncio.sleep(after)
    mend()
    return await asyncio.wait_for(starting, 30)


async def _serves(node: RouterProcess, autobahn: AutobahnSessions, procedure: str) -> None:
    """A callee and a caller on ``node`` (two transports) get an answer through it."""
    callee = await autobahn.open(autobahn_transport(node, "websocket", "json"))
    await callee.register(lambda: "up", procedure)
    caller = await autobahn.open(autobahn_transport(node, "rawsocket", "cbor"))
    assert await caller.call(procedure) == "up"


def _stop_cleanly(node: RouterProcess | None) -> None:
    if node is not None:
        assert node.stop() == 0, node.log()
        assert "Traceback" not in node.log(), node.log()
