"""The NATS test infrastructure itself: real nats-servers, a 3-node JetStream cluster, the freezable
proxy, and the fault signals the cluster back end will rely on (server pings drop a frozen peer)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import KeyWrongLastSequenceError
from tests.cluster.nats import FreezableProxy, NatsCluster, NatsServer
from tests.conftest import free_port

pytestmark = pytest.mark.timeout(60)


def monitor(server: NatsServer, path: str) -> Any:
    with urllib.request.urlopen(f"{server.monitor_url}{path}", timeout=2) as response:
        return json.load(response)


async def next_msg(queue: asyncio.Queue[Msg], timeout: float = 2.0) -> bytes:
    msg = await asyncio.wait_for(queue.get(), timeout)
    return msg.data


async def test_single_server_loopback_jetstream_and_fast_pings(nats_server: NatsServer) -> None:
    varz = monitor(nats_server, "/varz")
    assert varz["server_name"] == "n1"
    assert varz["host"] == "127.0.0.1" and varz["http_host"] == "127.0.0.1"
    assert varz["ping_interval"] == 1_000_000_000 and varz["ping_max"] == 2
    assert nats_server.healthy("?js-enabled-only=true")
    assert str(nats_server.store_dir) in monitor(nats_server, "/jsz?config=true")["config"]["store_dir"]

    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        kv = await js.create_key_value(bucket="single", replicas=1)
        assert await kv.create("k", b"v1") == 1
        with pytest.raises(KeyWrongLastSequenceError):
            await kv.create("k", b"v2")
        assert (await kv.get("k")).value == b"v1"
    finally:
        await nc.close()

    # stop() is a clean SIGTERM shutdown; start() again keeps ports and the JetStream store
    assert nats_server.stop() == 0
    assert not nats_server.healthy()
    nats_server.start()
    nc = await nats.connect(nats_server.url)
    try:
        kv = await nc.jetstream().key_value("single")
        assert (await kv.get("k")).value == b"v1"
    finally:
        await nc.close()


async def test_cluster_is_fully_routed_and_kv_is_replicated_with_cas(nats_cluster: NatsCluster) -> None:
    # 0.5-0.8 s on a quiet machine (measured here); the bound leaves room for the full suite's load
    assert nats_cluster.start_seconds is not None and nats_cluster.start_seconds < 15
    names = {s.name for s in nats_cluster.servers}
    assert names == {"n1", "n2", "n3"}
    for server in nats_cluster.servers:
        routez = monitor(server, "/routez")
        assert {r["remote_name"] for r in routez["routes"]} == names - {server.name}
        assert monitor(server, "/varz")["cluster"]["addr"] == "127.0.0.1"

    nc = await nats.connect(servers=nats_cluster.urls)
    try:
        js = nc.jetstream(timeout=5)
        # an R3 stream's creation elects its own Raft leader and waits for three disks: under the
        # full suite's load that once took longer than the 5 s request timeout. Creating a bucket
        # again with the same configuration is a no-op, so a timed-out create is asked again.
        deadline = time.monotonic() + 20
        while True:
            try:
                kv = await js.create_key_value(bucket="cas", replicas=3)
                break
            except NatsTimeoutError:
                if time.monotonic() > deadline:
                    raise
        info = await js.stream_info("KV_cas")
        assert info.config.num_replicas == 3
        assert info.cluster is not None and info.cluster.leader in names
        assert {p.name for p in info.cluster.replicas or []} == names - {info.cluster.leader}

        rev = await kv.create("proc.add", b"session-1")
        with pytest.raises(KeyWrongLastSequenceError):  # create() on an existing key: compare-and-set
            await kv.create("proc.add", b"session-2")
        with pytest.raises(KeyWrongLastSequenceError):  # update() with a stale revision
            await kv.update("proc.add", b"session-3", last=rev + 100)
        rev2 = await kv.update("proc.add", b"session-4", last=rev)
        assert rev2 > rev
        await kv.delete("proc.add")
        assert await kv.create("proc.add", b"session-5") > rev2  # a deleted key can be created again
        assert (await kv.get("proc.add")).value == b"session-5"
    finally:
        await nc.close()


async def test_kv_survives_sigkill_of_the_stream_leader_the_client_is_connected_to(nats_cluster: NatsCluster) -> None:
    nc0 = await nats.connect(servers=nats_cluster.urls)
    try:
        js0 = nc0.jetstream(timeout=5)
        kv0 = await js0.create_key_value(bucket="survive", replicas=3)
        await kv0.put("before", b"1")
        info = await js0.stream_info("KV_survive")
        assert info.cluster is not None and info.cluster.leader is not None
        leader = nats_cluster.server(info.cluster.leader)
    finally:
        await nc0.close()

    # a client given all three URLs, connected to the leader first
    urls = [leader.url] + [u for u in nats_cluster.urls if u != leader.url]
    reconnected = asyncio.Event()

    async def on_reconnect() -> None:
        reconnected.set()

    nc = await nats.connect(
        servers=urls, dont_randomize=True, reconnect_time_wait=0.05, max_reconnect_attempts=-1,
        reconnected_cb=on_reconnect,
    )  # fmt: skip
    try:
        assert nc.connected_url is not None and nc.connected_url.port == leader.port
        kv = await nc.jetstream(timeout=2).key_value("survive")
        leader.kill()
        killed = time.monotonic()
        await asyncio.wait_for(reconnected.wait(), 2)
        assert nc.connected_url.port != leader.port
        # a new stream leader needs a Raft election (4-9 s after a SIGKILL): retry until then
        deadline = killed + 15
        while True:
            try:
                assert (await kv.get("before")).value == b"1"
                rev = await kv.create("after", b"2")
                break
            except KeyWrongLastSequenceError:
                # an earlier attempt timed out on the client's side after the new leader had stored it
                entry = await kv.get("after")
                assert entry.value == b"2"
                rev = entry.revision
                break
            except (TimeoutError, NatsTimeoutError, nats.errors.NoRespondersError, nats.js.errors.APIError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        with pytest.raises(KeyWrongLastSequenceError):
            await kv.create("after", b"3")
        assert (await kv.get("after")).revision == rev
        info = await nc.jetstream(timeout=2).stream_info("KV_survive")
        assert info.cluster is not None and info.cluster.leader not in (None, leader.name)
    finally:
        await nc.close()

    nats_cluster.heal()  # the killed server comes back with its store and catches up
    # /healthz also reports 503 while a replica catches up on a stream (the readiness bucket heal()
    # just wrote to, KV_survive): wait for all three to be current rather than sample once
    deadline = time.monotonic() + 10
    while not all(s.healthy() for s in nats_cluster.servers):
        assert time.monotonic() < deadline, nats_cluster.log_tails()
        await asyncio.sleep(0.1)


async def test_frozen_proxy_stops_traffic_both_ways_and_thaw_delivers_it(
    nats_server: NatsServer, freezable_proxy: Callable[[int], FreezableProxy]
) -> None:
    proxy = freezable_proxy(nats_server.port)
    events: list[str] = []

    async def on_disconnect() -> None:
        events.append("disconnected")

    behind = await nats.connect(proxy.url, disconnected_cb=on_disconnect, allow_reconnect=False)
    direct = await nats.connect(nats_server.url)
    to_behind: asyncio.Queue[Msg] = asyncio.Queue()
    to_direct: asyncio.Queue[Msg] = asyncio.Queue()
    try:
        await behind.subscribe("down", cb=to_behind.put)
        await direct.subscribe("up", cb=to_direct.put)
        await behind.flush()
        await direct.flush()
        assert proxy.open_connections == 1

        await direct.publish("down", b"1")
        await behind.publish("up", b"a")
        assert await next_msg(to_behind) == b"1"
        assert await next_msg(to_direct) == b"a"

        proxy.freeze()
        await direct.publish("down", b"2")
        await behind.publish("up", b"b")
        await direct.flush()
        await asyncio.sleep(0.8)  # well under the server's ~3 s stale-connection limit
        assert to_behind.empty() and to_direct.empty()
        # (no flush(timeout=...) here: in nats-py 2.16 a flush that times out leaves a cancelled
        # future behind, and the late PONG then kills the client's read loop without a callback)
        assert proxy.open_connections == 1  # frozen, not closed

        proxy.thaw()
        assert await next_msg(to_behind) == b"2"  # what queued meanwhile arrives, nothing lost
        assert await next_msg(to_direct) == b"b"
        await direct.publish("down", b"3")
        assert await next_msg(to_behind) == b"3"
        assert events == [] and behind.is_connected
    finally:
        await behind.close()
        await direct.close()


async def test_cut_proxy_resets_the_connection_and_the_client_reconnects(
    nats_server: NatsServer, freezable_proxy: Callable[[int], FreezableProxy]
) -> None:
    proxy = freezable_proxy(nats_server.port)
    disconnected = asyncio.Event()
    reconnected = asyncio.Event()

    async def on_disconnect() -> None:
        disconnected.set()

    async def on_reconnect() -> None:
        reconnected.set()

    behind = await nats.connect(
        proxy.url, reconnect_time_wait=0.05, disconnected_cb=on_disconnect, reconnected_cb=on_reconnect
    )
    direct = await nats.connect(nats_server.url)
    inbox: asyncio.Queue[Msg] = asyncio.Queue()
    try:
        await behind.subscribe("down", cb=inbox.put)
        await behind.flush()
        assert proxy.cut() == 2  # the accepted side and the upstream side
        await asyncio.wait_for(disconnected.wait(), 1)
        await asyncio.wait_for(reconnected.wait(), 2)
        assert proxy.accepted == 2
        await behind.flush()  # subscriptions are replayed on reconnect
        await direct.publish("down", b"after-cut")
        assert await next_msg(inbox) == b"after-cut"
    finally:
        await behind.close()
        await direct.close()


RESPONDER = textwrap.dedent(
    """
    import asyncio, sys
    import nats

    async def main():
        nc = await nats.connect(sys.argv[1])  # client pings every 2 min: only the server notices a freeze
        async def pong(msg):
            await msg.respond(b"pong")
        await nc.subscribe("svc.ping", cb=pong)
        await nc.flush()
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


async def test_sigstopped_client_loses_its_interest_within_four_seconds(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", RESPONDER, nats_server.url], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    nc = await nats.connect(nats_server.url)
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 15)
        assert line.strip() == b"ready", child.stderr.read() if child.stderr else b""
        assert (await nc.request("svc.ping", b"", timeout=2)).data == b"pong"

        os.kill(child.pid, signal.SIGSTOP)
        frozen = time.monotonic()
        timeouts = 0
        while True:
            try:
                await nc.request("svc.ping", b"", timeout=0.25)
                pytest.fail("a stopped process answered")
            except NatsTimeoutError:
                timeouts += 1  # the server still delivers to the frozen socket
            except NoRespondersError:
                break
            assert time.monotonic() - frozen < 6, "the server never dropped the frozen client"
        detected = time.monotonic() - frozen
        assert timeouts >= 2  # not gone at once: it took the server's pings
        assert detected < 4.5, f"frozen client detected after {detected:.2f}s"
    finally:
        await nc.close()
        child.kill()
        child.wait()


async def test_frozen_proxy_in_a_route_partitions_two_servers(
    tmp_path: Path, freezable_proxy: Callable[[int], FreezableProxy]
) -> None:
    # n2 reaches n1 only through the proxy (n1 dials nobody, and n2 is its only peer, so no
    # gossiped address can bypass it); route pings every 1 s as for clients
    n1 = NatsServer(tmp_path, name="n1", cluster_port=free_port(), jetstream=False)
    proxy = freezable_proxy(n1.cluster_port or 0)
    n2 = NatsServer(tmp_path, name="n2", cluster_port=free_port(), routes=[proxy.route_url], jetstream=False)
    try:
        n1.start()
        n2.start()
        deadline = time.monotonic() + 5
        while len(monitor(n1, "/routez")["routes"]) == 0:
            assert time.monotonic() < deadline, n2.log_tail()
            await asyncio.sleep(0.02)
        assert proxy.open_connections >= 1  # every route connection (pooled) goes through it

        on_n1 = await nats.connect(n1.url)
        on_n2 = await nats.connect(n2.url)
        inbox: asyncio.Queue[Msg] = asyncio.Queue()
        try:
            await on_n2.subscribe("x", cb=inbox.put)
            await on_n2.flush()
            deadline = time.monotonic() + 5
            while True:  # until n2's interest has crossed the route
                await on_n1.publish("x", b"probe")
                with contextlib.suppress(asyncio.TimeoutError):
                    await next_msg(inbox, 0.1)
                    break
                assert time.monotonic() < deadline
            while not inbox.empty():
                inbox.get_nowait()

            proxy.freeze()
            await on_n1.publish("x", b"during")
            await asyncio.sleep(0.5)
            assert inbox.empty()
            proxy.thaw()
            assert await next_msg(inbox) == b"during"
        finally:
            await on_n1.close()
            await on_n2.close()
    finally:
        n2.cleanup()
        n1.cleanup()
