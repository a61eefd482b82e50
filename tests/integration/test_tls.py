"""TLS on the router's TCP endpoints (wss://, rss://): clients, protocol versions, client
certificates, and certificates replaced on disk while the router runs.

Certificates come from a throwaway CA made here with ``cryptography`` (ECDSA P-256, so it is quick);
the server certificate names 127.0.0.1 as an IP SAN, so clients verify it as they would any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tests.conftest import AutobahnSessions, RouterProcess, free_port, router_config, wait_for_port

from cloverleaf.client import NO_RECONNECT, ApplicationError, Session, connect
from cloverleaf.node.config import ConfigError, parse_config
from cloverleaf.node.node import Node
from cloverleaf.node.tls import TlsError

# -- certificates ---------------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


class TestCA:
    __test__ = False  # not a test class for pytest

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name("Cloverleaf Test CA"))
            .issuer_name(_name("Cloverleaf Test CA"))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, cn: str, *, server: bool) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), critical=False
            )
        return Issued(builder.sign(self.key, hashes.SHA256()), key)


@dataclass
class Pki:
    dir: Path
    ca: TestCA
    server: Issued
    client: Issued

    @property
    def ca_path(self) -> str:
        return str(self.dir / "ca.pem")

    @property
    def cert_path(self) -> str:
        return str(self.dir / "server.pem")

    @property
    def key_path(self) -> str:
        return str(self.dir / "server.key")

    def install(self, issued: Issued) -> None:
        """Replace the server's certificate and key on disk the way tools do: write aside, rename over."""
        for data, path in ((issued.key_pem, self.key_path), (issued.cert_pem, self.cert_path)):
            Path(path + ".new").write_bytes(data)
            os.replace(path + ".new", path)

    def client_context(self, with_certificate: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.ca.pem.decode())
        if with_certificate:
            (self.dir / "client.pem").write_bytes(self.client.cert_pem)
            (self.dir / "client.key").write_bytes(self.client.key_pem)
            context.load_cert_chain(str(self.dir / "client.pem"), str(self.dir / "client.key"))
        return context

    def tls_config(self, **options: Any) -> dict[str, Any]:
        return {"certificate": self.cert_path, "key": self.key_path, **options}


def make_pki(directory: Path) -> Pki:
    ca = TestCA()
    pki = Pki(directory, ca, ca.issue("router one", server=True), ca.issue("client1", server=False))
    (directory / "ca.pem").write_bytes(ca.pem)
    pki.install(pki.server)
    return pki


# -- a router with TLS on both TCP transports -----------------------------------------------------


def start_tls_router(tmp: Path, tls: dict[str, Any], auth: dict[str, Any] | None = None) -> RouterProcess:
    ws_port, rs_port = free_port(), free_port()
    unix_path = str(tmp / "router.sock")
    extra = {"auth": auth} if auth else {}
    config = router_config(
        ws_port, rs_port, unix_path,
        ws_options={"endpoint": {"type": "tcp", "host": "127.0.0.1", "port": ws_port, "tls": tls}, **extra},
        rs_options={"endpoint": {"type": "tcp", "host": "127.0.0.1", "port": rs_port, "tls": tls}, **extra},
    )  # fmt: skip
    config_path = tmp / "node.yaml"
    config_path.write_text(yaml.safe_dump(config))
    log_path = tmp / "router.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cloverleaf", "start", "--config", str(config_path)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    try:
        wait_for_port(ws_port)
        wait_for_port(rs_port)
    except TimeoutError:
        process.kill()
        raise RuntimeError(f"router did not start:\n{log_path.read_text()}") from None
    return RouterProcess(
        process, f"wss://127.0.0.1:{ws_port}/ws", f"rss://127.0.0.1:{rs_port}", unix_path, ws_port, rs_port, log_path
    )


def stop_cleanly(router: RouterProcess) -> None:
    code = router.stop()
    assert code == 0, f"router exited with {code}:\n{router.log()}"
    assert "Traceback" not in router.log(), router.log()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_router(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    router = start_tls_router(tmp_path_factory.mktemp("router"), pki.tls_config())
    yield router
    stop_cleanly(router)


@pytest.fixture
def own_pki(tmp_path: Path) -> Pki:
    """Certificates of the test's own, for tests that replace them."""
    return make_pki(tmp_path)


def served_certificate(port: int, context: ssl.SSLContext, timeout: float = 3.0) -> x509.Certificate:
    """The certificate the router presents to a new connection (blocking; run it in a thread)."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock,
        context.wrap_socket(sock, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


async def served_serial(port: int, context: ssl.SSLContext) -> int:
    cert = await asyncio.to_thread(served_certificate, port, context)
    return int(cert.serial_number)


async def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def tls_session(url: str, context: ssl.SSLContext, serializer: str = "json") -> Session:
    return await connect(url, "realm1", serializer=serializer, ssl_context=context, reconnect=NO_RECONNECT,
                         connect_timeout=5)  # fmt: skip


async def echo_roundtrip(session: Session, name: str) -> None:
    procedure = f"com.tls.echo.{name}.{session.session_id}"
    await session.register(procedure, lambda *args: list(args))
    assert await session.call(procedure, 1, "two") == [1, "two"]


@pytest.fixture
async def sessions() -> AsyncIterator[list[Session]]:
    opened: list[Session] = []
    yield opened
    for session in opened:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(session.leave(), 3)


# -- clients over TLS ------------------------------------------------------------------------------


@pytest.mark.parametrize("serializer", ["json", "msgpack", "cbor"])
@pytest.mark.parametrize("kind", ["wss", "rss"])
async def test_cloverleaf_client_over_tls(
    tls_router: RouterProcess, pki: Pki, sessions: list[Session], kind: str, serializer: str
) -> None:
    url = tls_router.ws_url if kind == "wss" else tls_router.rs_url
    context = pki.client_context()
    a = await tls_session(url, context, serializer)
    b = await tls_session(url, context, serializer)
    sessions += [a, b]
    await echo_roundtrip(a, kind)
    received: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    topic = f"com.tls.topic.{kind}.{serializer}"
    await b.subscribe(topic, lambda *args: received.done() or received.set_result(list(args)))
    await a.publish(topic, "hello", b"\x00\xff")
    assert await asyncio.wait_for(received, 5) == ["hello", b"\x00\xff"]
    # the session details say the connection is TLS
    details = await a.call("wamp.session.get", b.session_id)
    assert details["transport"]["peer"].startswith("tls:127.0.0.1:"), details
    assert details["transport"]["type"] == ("websocket" if kind == "wss" else "rawsocket")


async def test_autobahn_over_wss(tls_router: RouterProcess, pki: Pki, autobahn: AutobahnSessions) -> None:
    context = pki.client_context()
    endpoint = {"type": "tcp", "host": "127.0.0.1", "port": tls_router.ws_port, "tls": context}
    transport = {"type": "websocket", "url": tls_router.ws_url, "serializers": ["msgpack"], "endpoint": endpoint}
    session = await autobahn.open(transport)
    await session.register(lambda x: x * 2, "com.tls.autobahn.double")
    assert await session.call("com.tls.autobahn.double", 21) == 42


async def test_client_that_does_not_trust_the_ca_is_refused(tls_router: RouterProcess) -> None:
    # the system trust store does not know the test CA
    with pytest.raises(ConnectionError):
        await tls_session(tls_router.ws_url, ssl.create_default_context())


def _handshake(port: int, context: ssl.SSLContext) -> str:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=3) as sock,
        context.wrap_socket(sock, server_hostname="127.0.0.1") as tls,
    ):
        return str(tls.version())


def test_tls_1_2_and_1_3_are_accepted(tls_router: RouterProcess, pki: Pki) -> None:
    for version, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
        context = pki.client_context()
        context.minimum_version = context.maximum_version = version
        assert _handshake(tls_router.ws_port, context) == name
        assert _handshake(tls_router.rs_port, context) == name


@pytest.mark.parametrize("transport", ["ws", "rs"])
def test_tls_1_1_and_older_are_refused(tls_router: RouterProcess, transport: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSVersion.TLSv1 and TLSv1_1 are deprecated
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # so that this client itself still offers TLS 1.0/1.1
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    port = tls_router.ws_port if transport == "ws" else tls_router.rs_port
    with pytest.raises(ssl.SSLError) as refused:
        _handshake(port, context)
    # The router's refusal: a protocol_version alert, or (uvloop) the connection closed at once. Not
    # this client declining on its own before sending anything (that would be NO_PROTOCOLS_AVAILABLE).
    refusals = ("TLSV1_ALERT_PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL", "UNEXPECTED_EOF_WHILE_READING")
    assert refused.value.reason in refusals, refused.value
    assert tls_router.process.poll() is None


@pytest.mark.parametrize("transport", ["ws", "rs"])
def test_plain_connection_to_a_tls_port_gets_nothing(tls_router: RouterProcess, transport: str) -> None:
    port = tls_router.ws_port if transport == "ws" else tls_router.rs_port
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        # a clear-text WebSocket upgrade or RawSocket handshake instead of a TLS ClientHello
        sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n" if transport == "ws" else b"\x7f\xf2\x00\x00" * 4)
        try:
            data = sock.recv(100)
        except ConnectionResetError:
            data = b""
    assert data == b"" or data[0] == 0x15, data  # closed, or a TLS alert record: nothing in clear text
    assert tls_router.process.poll() is None


# -- client certificates ---------------------------------------------------------------------------


def _refused_without_certificate(port: int, context: ssl.SSLContext, hello: bytes) -> bytes:
    """TLS 1.3 finishes the client's side of the handshake first; the refusal comes on the next read."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=3) as sock,
        context.wrap_socket(sock, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(hello)
        return tls.recv(100)


async def test_client_certificates_required(tmp_path: Path, own_pki: Pki) -> None:
    router = start_tls_router(
        tmp_path, own_pki.tls_config(ca_certificates=own_pki.ca_path, client_certificates="required")
    )
    try:
        # without a certificate: no answer, whatever protocol the client speaks
        for port, hello in (
            (router.ws_port, b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"),
            (router.rs_port, b"\x7f\xf2\x00\x00"),
        ):
            try:
                answer = await asyncio.to_thread(_refused_without_certificate, port, own_pki.client_context(), hello)
            except ssl.SSLError as exc:  # the certificate_required alert
                assert "CERTIFICATE_REQUIRED" in str(exc), exc
            except ConnectionResetError:
                pass
            else:
                assert answer == b"", answer  # closed without a word (uvloop does not send the alert)
        with pytest.raises(ConnectionError):
            await tls_session(router.rs_url, own_pki.client_context())
        # with one: welcome on both transports
        for url in (router.ws_url, router.rs_url):
            session = await tls_session(url, own_pki.client_context(with_certificate=True))
            await echo_roundtrip(session, "clientcert")
            await session.leave()
        assert router.process.poll() is None
    finally:
        stop_cleanly(router)


async def test_wss_client_without_required_certificate_gets_connection_error(tmp_path: Path, own_pki: Pki) -> None:
    router = start_tls_router(
        tmp_path, own_pki.tls_config(ca_certificates=own_pki.ca_path, client_certificates="required")
    )
    try:
        with pytest.raises(ConnectionError):
            await tls_session(router.ws_url, own_pki.client_context())
    finally:
        stop_cleanly(router)


async def test_peer_certificate_on_the_link(tmp_path: Path, own_pki: Pki, sessions: list[Session]) -> None:
    """In-process: the link holds the verified client certificate; without one it is None."""
    ws_port, rs_port = free_port(), free_port()
    tls = own_pki.tls_config(ca_certificates=own_pki.ca_path, client_certificates="optional")
    config = parse_config({
        "realms": [{"name": "realm1"}],
        "transports": [
            {"type": "websocket", "endpoint": {"port": ws_port, "tls": tls}},
            {"type": "rawsocket", "endpoint": {"port": rs_port, "tls": tls}},
        ],
    })  # fmt: skip
    node = Node(config)
    await node.start()
    try:
        assert node.addresses == [f"wss://127.0.0.1:{ws_port}/ws", f"rss://127.0.0.1:{rs_port}"]
        assert len(node.tls_contexts) == 1  # the two endpoints share one context
        for url in (f"wss://127.0.0.1:{ws_port}/ws", f"rss://127.0.0.1:{rs_port}"):
            with_cert = await tls_session(url, own_pki.client_context(with_certificate=True))
            without = await tls_session(url, own_pki.client_context())
            sessions += [with_cert, without]
            links = {s.session_id: s.link for s in node.router.sessions}
            certificate = links[with_cert.session_id].peer_certificate
            assert certificate is not None
            assert ((("commonName", "client1"),)) in certificate["subject"]
            der = links[with_cert.session_id].peer_certificate_der
            assert der == own_pki.client.cert.public_bytes(serialization.Encoding.DER)
            assert links[without.session_id].peer_certificate is None
            assert links[with_cert.session_id].peer.startswith("tls:127.0.0.1:")
    finally:
        for session in sessions:
            await asyncio.wait_for(session.leave(), 3)
        sessions.clear()
        await node.stop()


# -- certificates replaced while the router runs ----------------------------------------------------


async def test_swapped_certificate_served_without_restart(
    tmp_path: Path, own_pki: Pki, sessions: list[Session]
) -> None:
    router = start_tls_router(tmp_path, own_pki.tls_config(reload_interval=0.1))
    try:
        context = own_pki.client_context()
        first = own_pki.server.cert.serial_number
        assert await served_serial(router.ws_port, context) == first
        old_ws = await tls_session(router.ws_url, context)
        old_rs = await tls_session(router.rs_url, context, "msgpack")
        sessions += [old_ws, old_rs]
        await echo_roundtrip(old_ws, "before")

        replacement = own_pki.ca.issue("router two", server=True)
        own_pki.install(replacement)
        second = replacement.cert.serial_number
        await wait_for(lambda: _serial_is(router.ws_port, context, second), what="the new certificate on wss")
        assert await served_serial(router.rs_port, context) == second
        # the sessions made before the swap are still up and still work
        assert await old_ws.call("wamp.session.count") >= 2
        assert await old_rs.call("wamp.session.count") >= 2
        # and new ones come in under the new certificate
        fresh = await tls_session(router.rs_url, context)
        sessions.append(fresh)
        await echo_roundtrip(fresh, "after")
        await wait_for(lambda: "reloaded (files changed)" in router.log(), what="the reload log line")
        for session in sessions:
            await session.leave()
        sessions.clear()
    finally:
        stop_cleanly(router)


async def _serial_is(port: int, context: ssl.SSLContext, serial: int) -> bool:
    return await served_serial(port, context) == serial


async def test_broken_replacement_keeps_the_old_certificate(
    tmp_path: Path, own_pki: Pki, sessions: list[Session]
) -> None:
    router = start_tls_router(tmp_path, own_pki.tls_config(reload_interval=0.1))
    try:
        context = own_pki.client_context()
        first = own_pki.server.cert.serial_number
        session = await tls_session(router.ws_url, context)
        sessions.append(session)
        replacement = own_pki.ca.issue("router two", server=True)

        # 1. a half-written certificate file
        Path(own_pki.cert_path).write_bytes(replacement.cert_pem[: len(replacement.cert_pem) // 2])
        await wait_for(lambda: router.log().count("TLS reload (files changed) failed") >= 1, what="a failure log")
        # 2. a complete certificate that does not match the key on disk
        Path(own_pki.cert_path).write_bytes(replacement.cert_pem)
        await wait_for(lambda: router.log().count("TLS reload (files changed) failed") >= 2, what="a second one")
        assert "KEY_VALUES_MISMATCH" in router.log()
        # the old pair is still served, to new connections too, and the router runs on
        assert await served_serial(router.ws_port, context) == first
        assert await served_serial(router.rs_port, context) == first
        assert router.process.poll() is None
        await echo_roundtrip(session, "during")
        late = await tls_session(router.rs_url, context)
        sessions.append(late)
        await echo_roundtrip(late, "late")

        # 3. the matching key arrives: now the new certificate is served
        Path(own_pki.key_path).write_bytes(replacement.key_pem)
        await wait_for(lambda: _serial_is(router.ws_port, context, replacement.cert.serial_number),
                       what="the repaired pair")  # fmt: skip
        await echo_roundtrip(session, "after")
        for s in sessions:
            await s.leave()
        sessions.clear()
    finally:
        stop_cleanly(router)


async def test_sighup_reloads(tmp_path: Path, own_pki: Pki) -> None:
    router = start_tls_router(tmp_path, own_pki.tls_config(reload_interval=0))  # no polling
    try:
        context = own_pki.client_context()
        first = own_pki.server.cert.serial_number
        replacement = own_pki.ca.issue("router two", server=True)
        own_pki.install(replacement)
        await asyncio.sleep(0.3)
        assert await served_serial(router.ws_port, context) == first  # polling is off
        router.process.send_signal(signal.SIGHUP)
        await wait_for(lambda: _serial_is(router.ws_port, context, replacement.cert.serial_number),
                       what="the certificate after SIGHUP")  # fmt: skip
        assert await served_serial(router.rs_port, context) == replacement.cert.serial_number
        assert "reloaded (SIGHUP)" in router.log()
        # a second SIGHUP with nothing changed is harmless
        router.process.send_signal(signal.SIGHUP)
        await wait_for(lambda: "unchanged" in router.log(), what="the 'unchanged' log line")
        assert router.process.poll() is None
    finally:
        stop_cleanly(router)


# -- configuration and start-up errors ----------------------------------------------------------------


def _config_with_tls(tls: Any, transport: str = "websocket") -> dict[str, Any]:
    return {"realms": [{"name": "realm1"}],
            "transports": [{"type": transport, "endpoint": {"type": "tcp", "port": 9000, "tls": tls}}]}  # fmt: skip


@pytest.mark.parametrize(
    ("tls", "transport", "expected"),
    [
        ({"key": "k.pem"}, "websocket", "transports[0].endpoint.tls.certificate: required key is missing"),
        ({"certificate": "c", "key": "k", "reload_interval": -1}, "rawsocket",
         "transports[0].endpoint.tls.reload_interval: Input should be greater than or equal to 0"),
        ({"certificate": "c", "key": "k", "client_certificates": "maybe"}, "websocket",
         "transports[0].endpoint.tls.client_certificates: Input should be 'none', 'optional' or 'required'"),
        ({"certificate": "c", "key": "k", "client_certificates": "required"}, "rawsocket",
         "transports[0].endpoint.tls: expected ca_certificates: a CA file, for client_certificates: required"),
        ({"certificate": "c", "key": "k", "ciphers": "x"}, "websocket",
         "transports[0].endpoint.tls.ciphers: unknown key (expected one of: ca_certificates, certificate, "
         "client_certificates, key, reload_interval)"),
    ],
)  # fmt: skip
def test_config_errors_name_the_key(tls: dict[str, Any], transport: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(_config_with_tls(tls, transport), "node.yaml")
    assert any(problem.startswith(expected) for problem in error.value.problems), error.value.problems


def test_tls_on_a_unix_endpoint_is_an_unknown_key() -> None:
    endpoint = {"type": "unix", "path": "/tmp/x", "tls": {}}
    data = {"realms": [{"name": "realm1"}], "transports": [{"type": "rawsocket", "endpoint": endpoint}]}
    with pytest.raises(ConfigError) as error:
        parse_config(data)
    assert error.value.problems[0].startswith("transports[0].endpoint.tls: unknown key"), error.value.problems


async def test_unreadable_or_bad_files_stop_the_start(tmp_path: Path, own_pki: Pki) -> None:
    bad_key = tmp_path / "other.key"
    bad_key.write_bytes(own_pki.client.key_pem)  # a key, but not the certificate's
    cases = [
        ({"certificate": str(tmp_path / "missing.pem"), "key": own_pki.key_path},
         f"transports[0].endpoint.tls.certificate: cannot read {tmp_path / 'missing.pem'}: No such file"),
        ({"certificate": own_pki.cert_path, "key": str(tmp_path / "missing.key")},
         "transports[0].endpoint.tls.key: cannot read"),
        ({"certificate": own_pki.cert_path, "key": str(bad_key)},
         "transports[0].endpoint.tls: cannot use certificate"),
        ({"certificate": own_pki.key_path, "key": own_pki.key_path},
         "not a PEM certificate or key"),
        ({**own_pki.tls_config(), "ca_certificates": str(tmp_path / "none.pem"), "client_certificates": "optional"},
         "transports[0].endpoint.tls.ca_certificates: cannot load"),
    ]  # fmt: skip
    for tls, expected in cases:
        node = Node(parse_config(_config_with_tls(tls)))
        with pytest.raises(TlsError) as error:
            await node.start()
        assert expected in str(error.value), str(error.value)
        assert node.servers == []  # nothing listens after a failed start


def test_cli_reports_a_missing_certificate_in_one_line(tmp_path: Path) -> None:
    config = _config_with_tls({"certificate": str(tmp_path / "nope.pem"), "key": str(tmp_path / "nope.key")})
    config["transports"][0]["endpoint"]["port"] = free_port()
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "cloverleaf", "start", "--config", str(path)],
                          capture_output=True, timeout=15, text=True)  # fmt: skip
    assert done.returncode == 1, done
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    assert f"transports[0].endpoint.tls.certificate: cannot read {tmp_path / 'nope.pem'}" in output, output


class _TlsMethod:
    """The client side of the ``tls`` method: the certificate already said it all."""

    method = "tls"

    def __init__(self, authid: str | None = None) -> None:
        self.authid = authid

    def authextra(self) -> dict[str, Any]:
        return {}

    def on_challenge(self, extra: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        raise AssertionError("tls authentication sends no CHALLENGE")


async def test_tls_client_certificate_authentication(tmp_path: Path, own_pki: Pki) -> None:
    fingerprint = hashlib.sha1(x509.load_pem_x509_certificate(own_pki.client.cert_pem).public_bytes(
        serialization.Encoding.DER)).hexdigest()  # fmt: skip
    auth = {"tls": {"principals": {"client1": {"role": "anonymous"},
                                   "pinned": {"role": "anonymous", "certificate_sha1": fingerprint},
                                   "other": {"role": "anonymous", "certificate_sha1": "00" * 20}}}}  # fmt: skip
    router = start_tls_router(
        tmp_path, own_pki.tls_config(ca_certificates=own_pki.ca_path, client_certificates="optional"), auth
    )
    try:
        context = own_pki.client_context(with_certificate=True)
        for authid, expected in ((None, "client1"), ("pinned", "pinned")):
            session = await connect(router.rs_url, "realm1", ssl_context=context, authenticators=[_TlsMethod(authid)],
                                    reconnect=NO_RECONNECT)  # fmt: skip
            assert session.details["authid"] == expected and session.details["authmethod"] == "tls"
            assert session.details["authextra"]["certificate"]["sha1"] == fingerprint
            await session.leave()
        for context, authid in ((own_pki.client_context(with_certificate=True), "other"),
                                (own_pki.client_context(), None)):  # fmt: skip
            with pytest.raises(ApplicationError) as info:
                await connect(router.rs_url, "realm1", ssl_context=context, authenticators=[_TlsMethod(authid)],
                              reconnect=NO_RECONNECT)  # fmt: skip
            assert info.value.error == "wamp.error.authentication_failed"
    finally:
        stop_cleanly(router)


async def test_cryptosign_with_tls_unique_channel_binding(tmp_path: Path, own_pki: Pki) -> None:
    from cloverleaf.wamp.auth import cryptosign_channel_id, cryptosign_sign_challenge, new_cryptosign_key
    from cloverleaf.wamp.serializers import JSON

    key = new_cryptosign_key()
    auth = {"cryptosign": {"principals": {"device": {"role": "anonymous", "pubkeys": [key.public_key_hex]}}}}
    router = start_tls_router(tmp_path, own_pki.tls_config(), auth)
    try:
        context = own_pki.client_context()
        context.maximum_version = ssl.TLSVersion.TLSv1_2  # tls-unique exists up to TLS 1.2
        reader, writer = await asyncio.open_connection("127.0.0.1", router.rs_port, ssl=context)
        binding = writer.get_extra_info("ssl_object").get_channel_binding("tls-unique")
        writer.write(b"\x7f\xf1\x00\x00")
        assert (await reader.readexactly(4))[1] & 0x0F == 1

        async def send(message: list[Any]) -> None:
            payload = JSON.encode(message)
            writer.write(len(payload).to_bytes(4, "big") + payload)

        async def recv() -> list[Any]:
            header = await asyncio.wait_for(reader.readexactly(4), 5)
            return list(JSON.decode(await reader.readexactly(int.from_bytes(header[1:], "big"))))

        await send([1, "realm1", {"roles": {"caller": {}}, "authmethods": ["cryptosign"], "authid": "device",
                                  "authextra": {"pubkey": key.public_key_hex, "channel_binding": "tls-unique"}}])
        challenge = await recv()
        assert challenge[0] == 4 and challenge[2]["channel_binding"] == "tls-unique"
        channel_id = cryptosign_channel_id("tls-unique", binding)
        await send([5, cryptosign_sign_challenge(key, challenge[2]["challenge"], channel_id), {}])
        welcome = await recv()
        assert welcome[0] == 2 and welcome[2]["authid"] == "device"
        writer.close()
        # a signature without the binding is refused
        reader, writer = await asyncio.open_connection("127.0.0.1", router.rs_port, ssl=context)
        writer.write(b"\x7f\xf1\x00\x00")
        await reader.readexactly(4)
        await send([1, "realm1", {"roles": {"caller": {}}, "authmethods": ["cryptosign"], "authid": "device",
                                  "authextra": {"pubkey": key.public_key_hex, "channel_binding": "tls-unique"}}])
        challenge = await recv()
        await send([5, cryptosign_sign_challenge(key, challenge[2]["challenge"]), {}])
        assert (await recv())[2] == "wamp.error.authentication_failed"
        writer.close()
    finally:
        stop_cleanly(router)
