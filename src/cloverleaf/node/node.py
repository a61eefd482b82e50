"""Build a router from a validated config, serve its transports, and shut it down cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ..cluster.stats import ClusterStats
from ..router.auth import (
    Action,
    AnonymousAuthenticator,
    Authenticator,
    DynamicAuthorizer,
    Permission,
    RoleAuthorizer,
    RolePolicy,
)
from ..router.authenticators import (
    CookieAuthenticator,
    CookieStore,
    CryptosignAuthenticator,
    Principal,
    Principals,
    ScramAuthenticator,
    TicketAuthenticator,
    TlsAuthenticator,
    WampCraAuthenticator,
)
from ..router.history import EventStore, MemoryEventStore, SqliteEventStore
from ..router.realm import Realm
from ..router.router import FailureDelays, Router
from ..router.session import QueuePolicy, SessionLimits, SessionOptions
from ..transport.archive import ZipArchive
from ..transport.cookies import CookieTracking
from ..transport.rawsocket import (
    RawSocketSettings,
    remove_stale_socket,
    serve_rawsocket_tcp,
    serve_rawsocket_unix,
)
from ..transport.testee import TesteeSettings, serve_testee
from ..transport.web import (
    ArchiveService,
    FixedService,
    LongPollService,
    MetricsService,
    NodeInfoService,
    PostService,
    RedirectService,
    Service,
    StaticService,
    WampService,
    WebSettings,
    serve_web,
)
from ..transport.websocket import WebSocketSettings, serve_websocket
from ..wamp.serializers import SERIALIZERS
from ..wamp.uri import UriCheck
from .config import (
    ArchivePath,
    BridgePath,
    ClusterConfig,
    ConsolePath,
    JsonPath,
    LongPollPath,
    MethodAuth,
    MetricsPath,
    NodeConfig,
    RawSocketOptions,
    RawSocketTransport,
    RealmConfig,
    RedirectPath,
    StaticPath,
    TcpEndpoint,
    TlsConfig,
    TransportAuth,
    WebSocketPath,
    WebSocketTesteeTransport,
    WebSocketTransport,
    WebTransport,
)
from .tls import ReloadingContext

if TYPE_CHECKING:
    from ..cluster.backend import NatsCluster
    from ..cluster.cookies import SharedCookies
    from ..transport.longpoll import LongPollEndpoint
    from ..wamp.auth import CryptosignKey
    from .components import Components
    from .metrics import WorkerMetricsExchange
    from .workers import WorkerSpec

log = logging.getLogger("cloverleaf.node")


def build_realm(config: RealmConfig, router: Router, base_dir: Path | None = None) -> Realm:
    """The realm of ``config``; relative file paths (the SQLite event store) are relative to ``base_dir``."""
    roles = {
        role.name: [
            Permission(p.uri, p.match, frozenset(Action(a) for a in p.allow), p.disclose.caller, p.disclose.publisher)
            for p in role.permissions
        ]
        for role in config.roles
        if role.authorizer is None
    }
    dynamic = {
        role.name: DynamicAuthorizer(role.authorizer_realm or config.name, role.authorizer, router.services.call)
        for role in config.roles
        if role.authorizer is not None
    }
    realm = Realm(config.name, RoleAuthorizer(roles, dynamic), UriCheck(config.uri_check))
    realm.broker.max_retained_topics = config.max_retained_topics
    realm.role_policies = {
        role.name: RolePolicy(role.disclose_caller, role.disclose_publisher, role.trustlevel) for role in config.roles
    }
    if config.event_history:
        store: EventStore = (
            SqliteEventStore(str((base_dir or Path.cwd()) / config.event_store.path))
            if config.event_store.type == "sqlite" and config.event_store.path
            else MemoryEventStore()
        )
        realm.event_store = store
        for history in config.event_history:
            realm.broker.enable_history(history.uri, history.match, history.limit, store)
    return realm


def missing_web_files(config: NodeConfig, archives: bool = True) -> list[str]:
    """Static path services whose directory does not exist (or is not a directory), and with
    ``archives`` archive paths whose file does not exist and is not downloaded, as "key path:
    message" lines: `cloverleaf check` reports them all; `start` warns about the directories (they
    may be mounted or deployed later; until then the path answers 404), while an archive that
    cannot be opened logs its own ERROR when its path is set up (it answers 503)."""
    problems = []
    for index, transport in enumerate(config.transports):
        if not isinstance(transport, WebTransport):
            continue
        for path, service in transport.paths.items():
            if isinstance(service, StaticPath):
                directory = config.resolve(service.directory)
                if not directory.is_dir():
                    problems.append(f'transports[{index}].paths["{path}"].directory: no such directory: {directory}')
            elif archives and isinstance(service, ArchivePath) and not service.download:
                archive = config.resolve(service.archive)
                if not archive.is_file():
                    problems.append(f'transports[{index}].paths["{path}"].archive: no such file: {archive} (or '
                                    "download: true with its origin)")  # fmt: skip
    return problems


def _principals(method: MethodAuth, router: Router) -> Principals:
    static = {
        authid: Principal(
            authid=authid, role=p.role, ticket=p.ticket, secret=p.secret, salt=p.salt, iterations=p.iterations,
            keylen=p.keylen, pubkeys=tuple(p.pubkeys), scram=dict(p.scram), certificate_sha1=p.certificate_sha1,
            authextra=dict(p.authextra), realm=p.realm,
        )
        for authid, p in method.principals.items()
    }  # fmt: skip
    if method.type == "dynamic":
        return Principals(static, method.authenticator, method.authenticator_realm, router.services.call)
    return Principals(static)


def build_authenticators(auth: TransportAuth, router: Router) -> list[Authenticator]:
    """The transport's methods; the client's order of preference decides among them."""
    authenticators: list[Authenticator] = []
    if auth.anonymous is not None:
        authenticators.append(AnonymousAuthenticator(auth.anonymous.role, auth.anonymous.realm))
    if auth.ticket is not None:
        authenticators.append(TicketAuthenticator(_principals(auth.ticket, router)))
    if auth.wampcra is not None:
        authenticators.append(WampCraAuthenticator(_principals(auth.wampcra, router)))
    if auth.cryptosign is not None:
        authenticators.append(
            CryptosignAuthenticator(_principals(auth.cryptosign, router), _router_key(auth.cryptosign.router_key))
        )
    if auth.tls is not None:
        authenticators.append(TlsAuthenticator(_principals(auth.tls, router)))
    if auth.scram is not None:
        principals = _principals(auth.scram, router)
        authenticators.append(ScramAuthenticator(principals, "wamp-scram"))
        authenticators.append(ScramAuthenticator(principals, "scram"))  # Autobahn's and Crossbar's name
    return authenticators


def _router_key(value: str | None) -> CryptosignKey | None:
    if not value:
        return None
    from ..wamp.auth import CryptosignKey  # lazy: cryptography loads only when configured

    if os.path.isfile(value):
        with open(value, encoding="ascii") as key_file:
            value = key_file.read().strip()
    return CryptosignKey.from_hex(value)


def _session_options(
    transport: WebSocketTransport | RawSocketOptions | WebSocketPath | LongPollPath,
    authenticators: list[Authenticator],
) -> SessionOptions:
    """What the router needs to know of a transport for each session it carries."""
    return SessionOptions(
        authenticators, transport.sequential_request_ids, transport.join_timeout, transport.echo_goodbye_reason
    )


#: the GOODBYE reason for the sessions of a node that fences itself (docs/cluster.md)
CLOSE_NODE_FENCED = "cloverleaf.close.node_fenced"


class ClusterStartError(OSError):
    """The node could not join its cluster (NATS unreachable, refused credentials, ...)."""


class Node:
    """A running router with its listening transports."""

    def __init__(self, config: NodeConfig, worker: WorkerSpec | None = None) -> None:
        self.config = config
        #: this process's place among the node's workers (None: the node is this one process)
        self.worker = worker
        limits = SessionLimits(config.limits.max_outgoing_bytes, QueuePolicy(config.limits.queue_policy))
        self.router = Router(limits)
        self.router.failures = FailureDelays(
            config.limits.auth_failures_free, config.limits.auth_failure_delay, config.limits.auth_failure_max_delay
        )
        for realm_config in config.realms:
            self.router.add_realm(build_realm(realm_config, self.router, config.base_dir))
        self.servers: list[asyncio.Server] = []
        #: the ZIP files archive paths serve (closed at stop)
        self._archives: list[ZipArchive] = []
        #: "ws://127.0.0.1:8080/ws"-style addresses actually bound (ports chosen by the OS resolved)
        self.addresses: list[str] = []
        #: Unix socket files this process bound (removed when it stops)
        self._bound_unix_paths: list[str] = []
        #: one TLS context per distinct TLS configuration (endpoints with the same files share one)
        self.tls_contexts: dict[TlsConfig, ReloadingContext] = {}
        #: the long-poll paths of web transports (their transports are ended on stop)
        self.longpolls: list[LongPollEndpoint] = []
        #: apps run in-process and guest programs, started after the transports
        self.components: Components | None = None
        #: the link to the other nodes of the cluster, when the config has a cluster section
        self.cluster: NatsCluster | None = None
        self._fencing: asyncio.Task[None] | None = None
        self._metrics_exchange: WorkerMetricsExchange | None = None
        #: (NATS subject, handler) a worker serves for the other workers of its node
        self._cluster_subscriptions: list[tuple[str, Callable[[Any], Awaitable[None]]]] = []
        self._cluster_keeper: asyncio.Task[None] | None = None
        self._relays: set[asyncio.Task[None]] = set()
        #: tracking cookies shared with the rest of the cluster (or the node's other workers)
        self.shared_cookies: SharedCookies | None = None
        cookie_ages = _cookie_max_ages(config)
        if config.cluster is not None and cookie_ages:
            from ..cluster.cookies import SharedCookies

            self.shared_cookies = SharedCookies(ttl=max(cookie_ages))
        #: counters kept across the node's incarnations (a fenced node rejoins as a new one)
        self.cluster_stats = ClusterStats()
        if worker is not None:
            self.router.welcome_extra = {"x_cb_node": worker.cluster.get("node", ""), "x_cb_worker": worker.name}
        elif config.cluster is not None:
            self.router.welcome_extra = {"x_cb_node": config.cluster.node}
        # components and guests run once per node: in its first worker
        if config.components and (worker is None or worker.index == 0):
            # (the component, long-poll and console modules load only when configured)
            from .components import Components

            self.components = Components(config, self.router)

    def _build_tls(self) -> None:
        """Load every TLS certificate before listening anywhere: a bad file stops the start (TlsError)."""
        for index, transport in enumerate(self.config.transports):
            endpoint = transport.endpoint
            if isinstance(endpoint, TcpEndpoint) and endpoint.tls is not None and endpoint.tls not in self.tls_contexts:
                self.tls_contexts[endpoint.tls] = ReloadingContext(
                    self.config.resolved_tls(endpoint.tls), f"transports[{index}].endpoint.tls"
                )

    def reload_tls(self) -> None:
        """Reload every TLS certificate and key now (SIGHUP); failures are logged, the old pair kept."""
        for context in self.tls_contexts.values():
            context.reload("SIGHUP")

    async def _start_cluster(self, cluster: ClusterConfig) -> None:
        """Join the cluster before any client can join a realm (their sessions need the cluster's view)."""
        from ..cluster.backend import ClusterSettings, NatsCluster

        tls = None
        if cluster.nats.tls is not None:
            nats_tls = cluster.nats.tls
            tls = ssl.create_default_context(
                cafile=str(self.config.resolve(nats_tls.ca_certificates)) if nats_tls.ca_certificates else None
            )
            if nats_tls.certificate and nats_tls.key:
                tls.load_cert_chain(str(self.config.resolve(nats_tls.certificate)),
                                    str(self.config.resolve(nats_tls.key)))  # fmt: skip
        credentials = str(self.config.resolve(cluster.nats.credentials)) if cluster.nats.credentials else None
        settings = ClusterSettings(
            cluster.name, cluster.node, list(cluster.nats.servers), cluster.nats.user, cluster.nats.password,
            cluster.nats.token, credentials, tls, cluster.heartbeat_interval, cluster.failure_timeout,
            cluster.replicas,
        )  # fmt: skip
        self.cluster = NatsCluster(settings, self.router, stats=self.cluster_stats)
        from ..cluster.sessions import SessionDirectory

        self.cluster.services.append(SessionDirectory(self.router))
        if self.shared_cookies is not None:
            self.cluster.services.append(self.shared_cookies)
        self.cluster.on_fence = self._on_fenced
        try:
            await self.cluster.start()
        except Exception as exc:
            self.cluster = None
            raise ClusterStartError(
                f"cannot join cluster {cluster.name} through NATS at {', '.join(cluster.nats.servers)}: "
                f"{exc or type(exc).__name__}"
            ) from None

    def _on_fenced(self, reason: str) -> None:
        """This node lost the cluster (cut off from NATS, or frozen) for longer than its peers wait:
        they have dropped its sessions' state, so it must not route on its stale view."""
        if self._fencing is None:
            self._fencing = asyncio.get_running_loop().create_task(self._fence(reason))

    async def _fence(self, reason: str) -> None:
        """Close every session with a reason saying why (clients reconnect, to a healthy node if
        they know one), then rejoin the cluster as a new incarnation."""
        sessions = self.router.sessions
        self.cluster_stats.fenced += 1
        # until it is back in the cluster, a session it welcomed would be routed on this node only
        self.router.refusing_joins = (CLOSE_NODE_FENCED, "this router node is rejoining its cluster; reconnect")
        log.error("cluster: fencing this node (%s): closing its %d sessions, then rejoining as a new incarnation",
                  reason, len(sessions))  # fmt: skip
        for session in list(sessions):
            session.say_goodbye(CLOSE_NODE_FENCED, f"this router node lost its cluster ({reason}); reconnect")
        deadline = time.monotonic() + 1.0
        while sessions and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for session in list(sessions):
            session.link.abort("fenced")
            session.connection_lost("fenced")
        old, self.cluster = self.cluster, None
        if old is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(old.stop(), 3.0)
            # a stop cut short leaves the old connection open: its subscriptions would go on
            # acting for the old incarnation
            with contextlib.suppress(Exception):
                await asyncio.wait_for(old.nats.close(), 1.0)
        assert self.config.cluster is not None
        delay = 0.1
        while True:
            try:
                await self._start_cluster(self.config.cluster)
                break
            except ClusterStartError as exc:
                log.warning("cluster: rejoining failed (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.router.refusing_joins = None
        self._fencing = None

    async def start(self) -> None:
        if self.config.cluster is not None:
            await self._start_cluster(self.config.cluster)
        self._build_tls()
        for problem in missing_web_files(self.config, archives=False):
            log.warning("%s (answering 404 until it exists)", problem)
        if any(isinstance(path, ConsolePath) for t in self.config.transports if isinstance(t, WebTransport)
               for path in t.paths.values()):  # fmt: skip
            from .console import check_consoles

            check_consoles(self.config)  # a console's missing file or unknown realm stops the start, as TLS does
        for index, transport in enumerate(self.config.transports):
            if isinstance(transport, WebTransport):
                await self._start_web(transport, self._inherited(index))
                continue
            if isinstance(transport, WebSocketTransport):
                tcp = transport.endpoint
                ws_settings = self._websocket_settings(transport, transport.path, tls=tcp.tls is not None)
                ssl_context = self.tls_contexts[tcp.tls].context if tcp.tls is not None else None
                server = await serve_websocket(self.router, ws_settings, tcp.host, tcp.port, ssl_context,
                                               self._inherited(index))  # fmt: skip
                self._record(server, "wss" if ssl_context else "ws", transport.path)
            elif isinstance(transport, WebSocketTesteeTransport):
                tcp = transport.endpoint
                ssl_context = self.tls_contexts[tcp.tls].context if tcp.tls is not None else None
                testee = TesteeSettings(
                    max_message_size=transport.max_message_size,
                    handshake_timeout=transport.handshake_timeout,
                    ping_interval=transport.ping_interval,
                    ping_timeout=transport.ping_timeout,
                )
                server = await serve_testee(testee, tcp.host, tcp.port, ssl_context, self._inherited(index))
                self.servers.append(server)  # not among self.addresses: no WAMP there for components
                for sock in server.sockets:
                    host, port = sock.getsockname()[:2]
                    log.info("websocket-testee (an echo, not WAMP) on %s://%s:%d", "wss" if ssl_context else "ws",
                             f"[{host}]" if ":" in host else host, port)  # fmt: skip
            else:
                assert isinstance(transport, RawSocketTransport)
                rs_settings = self._rawsocket_settings(transport)
                endpoint = transport.endpoint
                if isinstance(endpoint, TcpEndpoint):
                    ssl_context = self.tls_contexts[endpoint.tls].context if endpoint.tls is not None else None
                    server = await serve_rawsocket_tcp(
                        self.router, rs_settings, endpoint.host, endpoint.port, ssl_context, self._inherited(index)
                    )
                    self._record(server, "rss" if ssl_context else "rs", "")
                else:
                    inherited = self._inherited(index)
                    if inherited is None:  # an inherited socket's file is its binder's (the workers' parent)
                        remove_stale_socket(endpoint.path)
                    server = await serve_rawsocket_unix(self.router, rs_settings, endpoint.path, inherited)
                    if inherited is None:
                        self._bound_unix_paths.append(endpoint.path)
                    self.servers.append(server)
                    self.addresses.append(f"unix://{endpoint.path}")
        if self._cluster_subscriptions:
            self._cluster_keeper = asyncio.get_running_loop().create_task(self._keep_cluster_subscriptions())
        for address in self.addresses:
            log.info("listening on %s", address)
        for context in self.tls_contexts.values():
            context.start_polling()
        if self.components is not None:
            await self.components.start(self.addresses)

    def _cookie_auth(self, auth: TransportAuth) -> tuple[list[Authenticator], CookieTracking | None]:
        """The transport's authenticators and, with cookie authentication, its cookie tracking."""
        authenticators = build_authenticators(auth, self.router)
        if auth.cookie is None:
            return authenticators, None
        store = CookieStore(auth.cookie.max_age)
        if self.shared_cookies is not None:
            # (named by order: every node of a cluster runs the same config, so "t0" is the same transport)
            self.shared_cookies.attach(f"t{len(self.shared_cookies.stores)}", store)
        authenticators.append(CookieAuthenticator(store, time.monotonic))
        return authenticators, CookieTracking(auth.cookie.name, auth.cookie.max_age, store)

    def _websocket_settings(
        self, transport: WebSocketTransport | WebSocketPath, path: str, tls: bool
    ) -> WebSocketSettings:
        authenticators, cookies = self._cookie_auth(transport.auth)
        return WebSocketSettings(
            cookies=cookies,
            tls=tls,
            path=path,
            serializers=[SERIALIZERS[name] for name in transport.serializers],
            session=_session_options(transport, authenticators),
            max_message_size=transport.max_message_size,
            allowed_origins=transport.allowed_origins,
            handshake_timeout=transport.handshake_timeout,
            ping_interval=transport.ping_interval,
            ping_timeout=transport.ping_timeout,
        )

    def _metrics(self) -> Callable[[], tuple[bytes, str]]:
        from .metrics import metrics_renderer, render  # prometheus-client only when metrics are served

        registry, content_type = metrics_renderer(self.router, (lambda: self.cluster) if self.config.cluster else None)
        if self.worker is None:
            return lambda: (render(registry), content_type)
        # a node with workers: every worker's metrics, labelled by worker, whichever worker answers
        from prometheus_client import CollectorRegistry

        from .metrics import WorkerMetricsExchange, WorkersCollector

        if self._metrics_exchange is None:
            collector = WorkersCollector(registry, self.worker.name)
            subject = self._node_subject("metrics")
            self._metrics_exchange = WorkerMetricsExchange(collector, registry, self.worker.name, subject,
                                                           lambda: self.cluster.nats if self.cluster else None)
            self._cluster_subscriptions.append((subject, self._metrics_exchange.received))
            self._metrics_exchange.start()
        merged = CollectorRegistry(auto_describe=False)
        merged.register(self._metrics_exchange.collector)
        return lambda: (render(merged), content_type)

    def _node_subject(self, kind: str) -> str:
        """The NATS subject of ``kind`` traffic between the workers of this node."""
        from ..cluster.keys import key_token

        assert self.worker is not None and self.config.cluster is not None
        return f"cloverleaf.{key_token(self.config.cluster.name)}.{kind}.{key_token(self.worker.node or '-')}"

    def _worker_longpoll(self, longpoll: LongPollEndpoint, root: str) -> Callable[..., Awaitable[Any]]:
        """A long-poll path of a node with workers: each request about a transport another worker
        opened (its ID starts with that worker's name) is relayed to it over NATS and answered with
        its answer, since each HTTP connection lands on whichever worker the kernel chose."""
        import msgpack

        from ..cluster.keys import key_token
        from ..transport.web import HttpRequest

        worker = self.worker
        assert worker is not None
        base = self._node_subject("longpoll")

        def subject(name: str) -> str:
            return f"{base}.{name}.{key_token(root)}"

        async def serve(msg: Any) -> None:
            method, path, query, headers, body, peer = msgpack.unpackb(msg.data, raw=False)
            never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            status, answer, answer_headers = await longpoll.handle(HttpRequest(method, path, query, headers, body),
                                                                   peer, never)  # fmt: skip
            with contextlib.suppress(Exception):
                await msg.respond(msgpack.packb([status, answer, answer_headers]))

        async def relayed(msg: Any) -> None:
            task = asyncio.get_running_loop().create_task(serve(msg))  # (a held receive must not block others)
            self._relays.add(task)
            task.add_done_callback(self._relays.discard)

        self._cluster_subscriptions.append((subject(worker.name), relayed))

        async def handle(request: HttpRequest, peer: str,
                         lost: asyncio.Future[None]) -> tuple[int, bytes, dict[str, str]]:  # fmt: skip
            transport = longpoll.transport_of(request)
            owner = transport.split("-", 1)[0] if transport and "-" in transport else worker.name
            if owner == worker.name or transport in longpoll.transports or self.cluster is None:
                return await longpoll.handle(request, peer, lost)
            payload = msgpack.packb([request.method, request.path, request.query, request.headers, request.body, peer])
            try:
                reply = await self.cluster.nats.request(subject(owner), payload,
                                                        timeout=longpoll.settings.request_timeout + 5.0)  # fmt: skip
                status, body, headers = msgpack.unpackb(reply.data, raw=False)
                return int(status), bytes(body), dict(headers)
            except Exception:
                # no such worker, or it did not answer: as for a transport that is gone
                return 404, b"no such transport", longpoll.error_headers(request.headers)

        return handle

    async def _keep_cluster_subscriptions(self) -> None:
        """Subscribe ``_cluster_subscriptions`` on the cluster's NATS connection, again whenever it
        is replaced (a fenced node rejoins with a new one)."""
        subscribed_on: Any = None
        while True:
            cluster = self.cluster
            client = cluster.nats if cluster is not None else None
            if client is not None and client is not subscribed_on:
                try:
                    for subject, callback in self._cluster_subscriptions:
                        await client.subscribe(subject, cb=callback)
                    subscribed_on = client
                except Exception:
                    log.warning("cluster: subscribing the worker's relays failed; retrying", exc_info=True)
            await asyncio.sleep(0.5)

    def _rawsocket_settings(self, options: RawSocketOptions) -> RawSocketSettings:
        return RawSocketSettings(
            serializers=[SERIALIZERS[name] for name in options.serializers],
            session=_session_options(options, build_authenticators(options.auth, self.router)),
            max_message_size=options.max_message_size,
            handshake_timeout=options.handshake_timeout,
            ping_interval=options.ping_interval,
            ping_timeout=options.ping_timeout,
        )

    def _inherited(self, transport_index: int) -> socket.socket | None:
        """The listening socket the node's parent bound for this transport (workers), else None."""
        return None if self.worker is None else self.worker.socket_for(transport_index)

    async def _start_web(self, transport: WebTransport, sock: socket.socket | None = None) -> None:
        services: dict[str, Service] = {}
        for path, service in transport.paths.items():
            root = path.rstrip("/") or "/"
            if isinstance(service, WebSocketPath):
                tls = transport.endpoint.tls is not None
                services[root] = WampService(self._websocket_settings(service, root, tls=tls))
            elif isinstance(service, StaticPath):
                directory = self.config.resolve(service.directory)
                services[root] = StaticService(directory, tuple(service.index), service.max_age,
                                               directory_listing=service.directory_listing)
            elif isinstance(service, ArchivePath):
                from .archives import open_archive

                archive = await open_archive(service, self.config.resolve(service.archive), f'paths["{path}"]')
                if archive is not None:
                    self._archives.append(archive)
                services[root] = ArchiveService(archive)
            elif isinstance(service, RedirectPath):
                services[root] = RedirectService(service.url, service.status)
            elif isinstance(service, MetricsPath):
                services[root] = MetricsService(self._metrics())
            elif isinstance(service, JsonPath):
                services[root] = json_service(service)
            elif isinstance(service, ConsolePath):
                from .console import console_services

                services.update(console_services(path, service, self.config, self.router, transport.handshake_timeout))
            elif isinstance(service, BridgePath):
                from ..router.internal import ServiceSession
                from .bridge import HttpBridge

                bridge = HttpBridge(service.type, ServiceSession(self.router, service.realm, service.role,
                                                                 f"http-bridge:{root}"),
                                    service.key, service.secret, service.timeout, service.topic)  # fmt: skip
                methods = {"GET", "POST", "PUT", "PATCH", "DELETE"} if service.type == "webhook" else {"POST"}
                services[root] = PostService(bridge.handle, service.max_body, frozenset(methods))
            elif isinstance(service, LongPollPath):
                from ..transport.longpoll import LongPollEndpoint, LongPollSettings

                authenticators, cookies = self._cookie_auth(service.auth)
                longpoll = LongPollEndpoint(self.router, LongPollSettings(
                    root, [SERIALIZERS[name] for name in service.serializers],
                    _session_options(service, authenticators),
                    service.allowed_origins, service.request_timeout, service.session_timeout, service.max_transports,
                    cookies, f"{self.worker.name}-" if self.worker is not None else "",
                ))  # fmt: skip
                self.longpolls.append(longpoll)
                handle = longpoll.handle if self.worker is None else self._worker_longpoll(longpoll, root)
                services[root] = LongPollService(handle, service.max_message_size, longpoll.error_headers)
            else:
                services[root] = NodeInfoService()
        tcp = transport.endpoint
        ssl_context = self.tls_contexts[tcp.tls].context if tcp.tls is not None else None
        rawsocket = self._rawsocket_settings(transport.rawsocket) if transport.rawsocket is not None else None
        server = await serve_web(self.router, WebSettings(services, transport.handshake_timeout), tcp.host, tcp.port,
                                 ssl_context, sock, rawsocket)  # fmt: skip
        self._record(server, "https" if ssl_context else "http", "")
        if rawsocket is not None:
            self._note_addresses(server, "rss" if ssl_context else "rs", "")

    def _record(self, server: asyncio.Server, scheme: str, path: str) -> None:
        """Keep ``server`` and note its addresses."""
        self.servers.append(server)
        self._note_addresses(server, scheme, path)

    def _note_addresses(self, server: asyncio.Server, scheme: str, path: str) -> None:
        """Note ``server``'s addresses under ``scheme`` (a universal port is noted as http and rs)."""
        for sock in server.sockets:
            host, port = sock.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            self.addresses.append(f"{scheme}://{shown}:{port}{path}")

    async def stop(self) -> None:
        """Stop listening, say GOODBYE (system_shutdown) to every session, wait for them, close the rest."""
        for context in self.tls_contexts.values():
            await context.stop_polling()
        for server in self.servers:
            server.close()
        for archive in self._archives:
            archive.close()
        self._archives.clear()
        # Guests first (SIGTERM: they leave over their open connections), then the apps leave:
        # what is left for the router's GOODBYE below are the outside clients.
        if self.components is not None:
            await self.components.stop()
        sessions = self.router.sessions
        count = len(sessions)
        self.router.shutdown()
        deadline = time.monotonic() + self.config.shutdown_timeout
        while sessions and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for session in list(sessions):
            session.link.abort("shutdown")
            session.connection_lost()
        if sum(longpoll.close_all() for longpoll in self.longpolls):
            await asyncio.sleep(0.05)  # the held long-poll receives answer (410) before the loop ends
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        if self._fencing is not None:
            self._fencing.cancel()
        if self._metrics_exchange is not None:
            await self._metrics_exchange.stop()
        if self._cluster_keeper is not None:
            self._cluster_keeper.cancel()
        if self.cluster is not None:
            try:  # each step of leaving is bounded; this bounds them all, so a stop always ends
                await asyncio.wait_for(self.cluster.stop(), CLUSTER_STOP_TIMEOUT)
            except TimeoutError:
                log.warning("cluster: leaving took over %.0f s; the other nodes clean up after this one as after "
                            "a dead node", CLUSTER_STOP_TIMEOUT)  # fmt: skip
        for realm in self.router.realms.values():
            if realm.event_store is not None:
                realm.event_store.close()
        for path in self._bound_unix_paths:
            remove_stale_socket(path)
        log.info("stopped (%d session%s closed)", count, "" if count == 1 else "s")


#: seconds a stopping node gives the cluster to withdraw its state and say it leaves
CLUSTER_STOP_TIMEOUT = 6.0


def json_service(path: JsonPath) -> FixedService:
    """A ``json`` path: its value encoded once, with the headers its options ask for."""
    options = path.options
    body = orjson.dumps(path.value, option=orjson.OPT_INDENT_2 if options.prettify else 0)
    headers = {"Content-Type": "application/json"}
    if options.allow_cross_origin:
        headers["Access-Control-Allow-Origin"] = "*"
    if options.discourage_caching:
        headers["Cache-Control"] = "no-store"
    return FixedService(body, headers)


def _cookie_max_ages(config: NodeConfig) -> list[float]:
    """The ``max_age`` of every cookie-tracking transport or path of ``config``."""
    ages = []
    for transport in config.transports:
        auths = [getattr(transport, "auth", None)]
        if isinstance(transport, WebTransport):
            auths += [getattr(path, "auth", None) for path in transport.paths.values()]
        ages += [auth.cookie.max_age for auth in auths if auth is not None and getattr(auth, "cookie", None)]
    return ages


async def run_node(config: NodeConfig, worker: WorkerSpec | None = None) -> None:
    """Run until SIGINT or SIGTERM (a worker: or until its parent is gone), then shut down cleanly."""
    node = Node(config, worker)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # before the start: the ports listen (and a user may press Ctrl-C) while components still start;
    # a signal then is acted on once the start is complete, never a KeyboardInterrupt traceback
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await node.start()
    if worker is not None:
        # (Linux delivers SIGTERM when the parent dies; this also covers other systems, and a parent
        # that died before the child could ask for that signal)
        async def watch_parent() -> None:
            while os.getppid() == worker.parent:
                await asyncio.sleep(1.0)
            log.error("the node's parent process is gone: stopping this worker")
            stop.set()

        watcher = loop.create_task(watch_parent())
    if node.tls_contexts and hasattr(signal, "SIGHUP"):
        loop.add_signal_handler(signal.SIGHUP, node.reload_tls)  # without TLS, SIGHUP keeps its default
    log.info("cloverleaf router ready%s", f" (worker {worker.name} of {worker.count})" if worker else "")
    await stop.wait()
    log.info("shutting down")
    if worker is not None:
        watcher.cancel()
    await node.stop()


def install_event_loop_policy() -> None:
    """Use uvloop where it is installed (it roughly halves per-read costs of asyncio protocols)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
