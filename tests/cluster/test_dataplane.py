"""The cluster's data plane (cloverleaf.cluster.dataplane) against real nats-server processes:
order, authentication, TLS, reconnection after a killed or frozen server, the bounded buffer."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.cluster.nats import NatsCluster, NatsServer
from tests.integration.test_tls import TestCA

from cloverleaf.cluster.dataplane import DataPlane, DataPlaneError

pytestmark = pytest.mark.timeout(60)


class Inbox:
    """What one subscription of a data plane received, in order."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    def __call__(self, payload: bytes) -> None:
        self.payloads.append(payload)

    async def until(self, count: int, timeout: float = 10.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(self.payloads) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.payloads)} of {count} messages arrived")
            await asyncio.sleep(0.01)
        return self.payloads


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_messages_keep_their_order_and_own_messages_come_back(nats_server: NatsServer) -> None:
    mine, theirs = Inbox(), Inbox()
    a = DataPlane([nats_server.url], {"t.a": mine})
    b = DataPlane([nats_server.url], {"t.b": theirs})
    await a.start()
    await b.start()
    try:
        assert a.is_connected and a.connected_url == f"127.0.0.1:{nats_server.port}"
        assert a.max_payload == 1024 * 1024  # from the server's INFO
        sent = [f"{n}".encode() * (1 + n % 50) for n in range(20_000)]
        for start in range(0, len(sent), 1000):  # 1,000 per event-loop pass
            for payload in sent[start : start + 1000]:
                assert a.publish("t.b", payload)
            a.publish("t.a", str(start).encode())
            await asyncio.sleep(0)
        assert await theirs.until(len(sent)) == sent
        assert await mine.until(20) == [str(start).encode() for start in range(0, len(sent), 1000)]
        assert a.dropped == 0 and b.received == len(sent)
    finally:
        await a.close()
        await b.close()


async def test_close_delivers_what_was_published_just_before(nats_server: NatsServer) -> None:
    inbox = Inbox()
    receiver = DataPlane([nats_server.url], {"t.r": inbox})
    sender = DataPlane([nats_server.url], {"t.s": Inbox()})
    await receiver.start()
    await sender.start()
    for n in range(1000):
        sender.publish("t.r", n.to_bytes(4, "big"))
    await sender.close()
    assert not sender.is_connected and not sender.publish("t.r", b"late")
    assert await inbox.until(1000) == [n.to_bytes(4, "big") for n in range(1000)]
    await receiver.close()


async def test_user_password_token_and_a_refusal(tmp_path: Path) -> None:
    with NatsServer(tmp_path / "up", name="up", jetstream=False,
                    extra_config='authorization { user: router, password: "s3cret" }') as server:  # fmt: skip
        inbox = Inbox()
        plane = DataPlane([server.url], {"t.x": inbox}, user="router", password="s3cret")
        await plane.start()
        plane.publish("t.x", b"in")
        assert await inbox.until(1) == [b"in"]
        await plane.close()
        in_url = DataPlane([f"nats://router:s3cret@127.0.0.1:{server.port}"], {"t.x": Inbox()})
        await in_url.start()  # credentials in the server URL, as nats-py takes them
        await in_url.close()
        wrong = DataPlane([server.url], {"t.x": Inbox()}, user="router", password="wrong")
        with pytest.raises(DataPlaneError, match=r"(?i)authorization violation") as refused:
            await wrong.start()
        assert "wrong" not in str(refused.value)  # the password is not repeated in the error
    token = 'authorization { token: "t0ken" }'
    with NatsServer(tmp_path / "tok", name="tok", jetstream=False, extra_config=token) as server:
        inbox = Inbox()
        plane = DataPlane([server.url], {"t.x": inbox}, token="t0ken")
        await plane.start()
        plane.publish("t.x", b"in")
        assert await inbox.until(1) == [b"in"]
        await plane.close()
        with pytest.raises(DataPlaneError, match=r"(?i)authorization violation"):
            await DataPlane([server.url], {"t.x": Inbox()}).start()


async def test_tls_with_the_configured_ca_and_a_refused_certificate(tmp_path: Path) -> None:
    ca = TestCA()
    issued = ca.issue("127.0.0.1", server=True)
    (tmp_path / "server.pem").write_bytes(issued.cert_pem)
    (tmp_path / "server.key").write_bytes(issued.key_pem)
    (tmp_path / "ca.pem").write_bytes(ca.pem)
    tls = f'tls {{ cert_file: "{tmp_path / "server.pem"}", key_file: "{tmp_path / "server.key"}" }}'
    with NatsServer(tmp_path / "tls", name="tls", jetstream=False, extra_config=tls) as server:
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        inbox = Inbox()
        plane = DataPlane([server.url], {"t.x": inbox}, tls=context)
        await plane.start()
        plane.publish("t.x", b"over tls")
        assert await inbox.until(1) == [b"over tls"]
        await plane.close()
        # the server requires TLS (its INFO says so): without our CA the certificate is refused
        with pytest.raises(DataPlaneError, match=r"(?i)certificate"):
            await DataPlane([server.url], {"t.x": Inbox()}).start()


async def test_a_killed_server_the_plane_reconnects_to_another_and_keeps_subscribing(nats_cluster: NatsCluster) -> None:
    n1, n2, n3 = nats_cluster[0], nats_cluster[1], nats_cluster[2]
    inbox, echo = Inbox(), Inbox()
    receiver = DataPlane([n2.url], {"t.r": inbox})
    sender = DataPlane([n1.url, n3.url], {"t.s": echo}, reconnect_wait=0.05)
    await receiver.start()
    await sender.start()
    try:
        assert sender.connected_url.endswith(f":{n1.port}")
        await asyncio.sleep(0.2)  # interest crosses the NATS routes
        sender.publish("t.r", b"before")
        assert await inbox.until(1) == [b"before"]
        n1.kill()
        await until(lambda: sender.reconnects == 1 and sender.is_connected)
        assert sender.connected_url.endswith(f":{n3.port}")
        await asyncio.sleep(0.2)
        sender.publish("t.r", b"after")
        sender.publish("t.s", b"own subscription restored")
        assert await inbox.until(2) == [b"before", b"after"]
        assert await echo.until(1) == [b"own subscription restored"]
    finally:
        await sender.close()
        await receiver.close()


async def test_a_frozen_server_is_left_after_unanswered_pings(nats_cluster: NatsCluster) -> None:
    n1, n2 = nats_cluster[0], nats_cluster[1]
    inbox = Inbox()
    receiver = DataPlane([n2.url], {"t.r": inbox})
    sender = DataPlane([n1.url, n2.url], {"t.s": Inbox()}, ping_interval=0.2, max_outstanding_pings=2)
    await receiver.start()
    await sender.start()
    try:
        n1.freeze()
        frozen_at = time.monotonic()
        await until(lambda: sender.reconnects == 1 and sender.is_connected)
        assert time.monotonic() - frozen_at < 2.0  # about 3 ping intervals
        assert sender.connected_url.endswith(f":{n2.port}")
        sender.publish("t.r", b"via n2")
        assert await inbox.until(1) == [b"via n2"]
    finally:
        n1.thaw()
        await sender.close()
        await receiver.close()


async def test_published_while_disconnected_waits_in_a_bounded_buffer(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "down", name="down", jetstream=False)
    server.start()
    try:
        echo = Inbox()
        plane = DataPlane([server.url], {"t.e": echo}, max_buffer=10_000, reconnect_wait=0.05)
        await plane.start()
        server.kill()
        await until(lambda: not plane.is_connected)
        accepted = [n for n in range(200) if plane.publish("t.e", n.to_bytes(2, "big") * 20)]
        assert 0 < len(accepted) < 200 and plane.dropped == 200 - len(accepted)  # 40-byte messages, 10 kB
        server.heal()
        await until(lambda: plane.is_connected)
        # the subscription is renewed before the buffer leaves: the node's own messages come back
        assert await echo.until(len(accepted)) == [n.to_bytes(2, "big") * 20 for n in accepted]
        await plane.close()
    finally:
        server.cleanup()


async def test_no_server_reachable_names_each(tmp_path: Path) -> None:
    with pytest.raises(DataPlaneError) as failed:
        await DataPlane(["nats://127.0.0.1:1", "nats://user:pw@127.0.0.1:2"], {"t": Inbox()}, connect_timeout=1).start()
    assert "nats://127.0.0.1:1" in str(failed.value) and "nats://127.0.0.1:2" in str(failed.value)
    assert "pw" not in str(failed.value)
