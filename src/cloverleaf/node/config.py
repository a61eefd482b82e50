"""Node configuration: YAML or JSON parsed once into typed, validated objects.

Every error names the file, the key path and what was expected, e.g.
``node.yaml: transports[0].endpoint.port: Input should be less than or equal to 65535 (got 70000)``.
"""

from __future__ import annotations

import json
import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ..wamp.uri import is_valid_uri

SerializerName = Literal["json", "msgpack", "cbor"]
ALL_SERIALIZERS: list[SerializerName] = ["json", "msgpack", "cbor"]
ActionName = Literal["call", "register", "publish", "subscribe"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class TlsConfig(_Strict):
    """TLS on a TCP endpoint (wss://, rss://); the certificate and key are reloaded when they change."""

    certificate: Annotated[str, Field(min_length=1)]
    key: Annotated[str, Field(min_length=1)]
    #: CA certificates (PEM) that client certificates must chain to
    ca_certificates: Annotated[str, Field(min_length=1)] | None = None
    client_certificates: Literal["none", "optional", "required"] = "none"
    #: seconds between checks of the certificate and key files for changes; 0 disables (SIGHUP still reloads)
    reload_interval: Annotated[float, Field(ge=0)] = 5.0

    @model_validator(mode="after")
    def _client_certificates_need_a_ca(self) -> TlsConfig:
        if self.client_certificates != "none" and self.ca_certificates is None:
            raise ValueError(f"ca_certificates: a CA file, for client_certificates: {self.client_certificates}")
        return self


class TcpEndpoint(_Strict):
    type: Literal["tcp"] = "tcp"
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)]
    tls: TlsConfig | None = None


class UnixEndpoint(_Strict):
    type: Literal["unix"]
    path: Annotated[str, Field(min_length=1)]


def _endpoint_type(value: Any) -> str | None:
    if isinstance(value, dict):
        return str(value.get("type", "tcp"))  # "type" may be omitted for TCP, as on WebSocket transports
    return None if value is None else str(getattr(value, "type", ""))


Endpoint = Annotated[
    Annotated[TcpEndpoint, Tag("tcp")] | Annotated[UnixEndpoint, Tag("unix")], Discriminator(_endpoint_type)
]


class AnonymousAuth(_Strict):
    role: str = "anonymous"
    #: the only realm anonymous clients may join (as Crossbar's anonymous `realm`); omitted: any
    realm: str | None = None


class PrincipalConfig(_Strict):
    """One authid's role and credentials (only what its method needs)."""

    role: str
    #: ticket: a hash from `cloverleaf passwd ticket` (or, discouraged, the ticket in clear)
    ticket: str | None = None
    #: wampcra: the secret, or with ``salt`` the derived key from `cloverleaf passwd wampcra`
    secret: str | None = None
    salt: str | None = None
    iterations: Annotated[int, Field(ge=1)] = 1000
    keylen: Annotated[int, Field(ge=16, le=64)] = 32
    #: cryptosign: Ed25519 public keys (hex)
    pubkeys: list[str] = Field(default_factory=list)
    #: wamp-scram: stored credentials from `cloverleaf passwd scram`
    scram: dict[str, Any] = Field(default_factory=dict)
    #: tls: pin the client certificate's SHA-1 fingerprint (hex, colons allowed)
    certificate_sha1: str | None = None
    authextra: dict[str, Any] = Field(default_factory=dict)
    #: the only realm this principal may join (as Crossbar's principals' realm); omitted: any realm
    #: whose roles include its role
    realm: str | None = None


class CookieAuth(_Strict):
    #: the cookie's name, and how long (whole seconds: the browser's Max-Age) an authenticated cookie is remembered
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = "cbtid"
    max_age: Annotated[int, Field(ge=1)] = 86400


class MethodAuth(_Strict):
    """A challenge-response method: principals listed here, or asked of a dynamic authenticator."""

    type: Literal["static", "dynamic"] = "static"
    principals: dict[str, PrincipalConfig] = Field(default_factory=dict)
    #: dynamic: the procedure called with (realm, authid, details)
    authenticator: str | None = None
    #: dynamic: the realm the procedure is registered on (default: the realm joined)
    authenticator_realm: str | None = None
    #: cryptosign: the router's own Ed25519 key (hex seed, from `cloverleaf keygen`) for router
    #: authentication, or a file holding it
    router_key: str | None = None

    @model_validator(mode="after")
    def _dynamic_needs_a_procedure(self) -> MethodAuth:
        if self.type == "dynamic" and not self.authenticator:
            raise ValueError("authenticator: the procedure URI of the dynamic authenticator")
        return self


class TransportAuth(_Strict):
    """Authentication methods a transport offers, tried in the order the client lists them."""

    anonymous: AnonymousAuth | None = None
    ticket: MethodAuth | None = None
    wampcra: MethodAuth | None = None
    cryptosign: MethodAuth | None = None
    scram: MethodAuth | None = None
    #: client certificates (a TLS endpoint with client_certificates optional or required)
    tls: MethodAuth | None = None
    #: WebSocket and long-poll only: a tracking cookie remembers who authenticated, for the "cookie" method
    cookie: CookieAuth | None = None


def _default_auth() -> TransportAuth:
    return TransportAuth(anonymous=AnonymousAuth())


class _TransportBase(_Strict):
    serializers: Annotated[list[SerializerName], Field(min_length=1)] = Field(
        default_factory=lambda: list(ALL_SERIALIZERS)
    )
    #: the largest WAMP message accepted from a client, in bytes
    max_message_size: Annotated[int, Field(ge=512, le=16 * 1024 * 1024)] = 1024 * 1024
    handshake_timeout: Annotated[float, Field(gt=0)] = 10.0
    #: seconds a client may take to join once its transport is open: to send HELLO, and to answer
    #: a CHALLENGE (a dynamic authenticator's time is not counted); then ABORT wamp.error.timeout.
    #: Default: handshake_timeout
    hello_timeout: Annotated[float, Field(gt=0)] | None = None
    ping_interval: Annotated[float, Field(ge=0)] = 30.0
    ping_timeout: Annotated[float, Field(gt=0)] = 10.0
    auth: TransportAuth = Field(default_factory=_default_auth)
    #: true: the spec's rule, a client's request IDs run 1, 2, 3, ... and a gap aborts the session
    #: with protocol_violation. Off by default, as Crossbar: wampy keeps counting across a
    #: reconnect and beltway2 skips an ID when a publish fails locally; what would break routing
    #: (a CALL reusing the ID of a call in flight) is refused either way
    sequential_request_ids: bool = False
    #: answer a client's GOODBYE with its own reason (as Crossbar does) instead of the spec's
    #: wamp.close.goodbye_and_out: Autobahn|Python logs a warning for any reason but
    #: wamp.close.normal, so its users migrating from Crossbar see one per session otherwise
    echo_goodbye_reason: bool = False

    @property
    def join_timeout(self) -> float:
        """``hello_timeout``, or ``handshake_timeout`` when it is not set."""
        return self.hello_timeout if self.hello_timeout is not None else self.handshake_timeout


class _WebSocketPings(_Strict):
    """The ping settings of everything on picows, which checks for the PONG within the interval."""

    #: seconds of silence before the router pings (0: no pings)
    ping_interval: Annotated[float, Field(ge=0)] = 30.0
    #: seconds the PONG may take before the connection is dropped (at most ping_interval)
    ping_timeout: Annotated[float, Field(gt=0)] = 10.0

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> _WebSocketPings:
        # picows refuses it on every connection otherwise (a traceback per client, no session)
        if self.ping_interval > 0 and self.ping_timeout > self.ping_interval:
            raise ValueError(f"ping_timeout ({self.ping_timeout:g}) at most ping_interval ({self.ping_interval:g})")
        return self


class WebSocketTransport(_WebSocketPings, _TransportBase):
    type: Literal["websocket"]
    endpoint: TcpEndpoint
    path: str = "/ws"
    allowed_origins: list[str] = Field(default_factory=lambda: ["*"])

    @field_validator("path")
    @classmethod
    def _path_is_absolute(cls, value: str) -> str:
        if not value.startswith("/") and value != "*":
            raise ValueError("a path starting with '/', or '*' for any path")
        return value


class WebSocketTesteeTransport(_WebSocketPings):
    """A WebSocket echo endpoint for conformance suites (the Autobahn|Testsuite; Crossbar.io's
    ``websocket.testee``): the router's own WebSocket stack, frame checks and limits, with every
    message sent back as it came. Any path, with or without a subprotocol. Not for production."""

    type: Literal["websocket-testee"]
    endpoint: TcpEndpoint
    #: as on a websocket transport
    max_message_size: Annotated[int, Field(ge=512, le=16 * 1024 * 1024)] = 1024 * 1024
    handshake_timeout: Annotated[float, Field(gt=0)] = 10.0


class RawSocketOptions(_TransportBase):
    """RawSocket's options where it shares a port (a ``universal`` transport's ``rawsocket``)."""

    @model_validator(mode="after")
    def _no_cookies(self) -> RawSocketOptions:
        if self.auth.cookie is not None:
            raise ValueError("auth.cookie only on websocket transports and websocket/longpoll paths "
                             "(RawSocket has no cookies)")  # fmt: skip
        return self


class RawSocketTransport(RawSocketOptions):
    type: Literal["rawsocket"]
    endpoint: Endpoint


class WebSocketPath(_WebSocketPings, _TransportBase):
    """WAMP over WebSocket on a path of a web transport."""

    type: Literal["websocket"]
    allowed_origins: list[str] = Field(default_factory=lambda: ["*"])


class LongPollPath(_TransportBase):
    """WAMP over HTTP long-poll on a path of a web transport (AutobahnJS's and Crossbar's wire format).

    ``max_message_size`` bounds each request body; the ping settings do not apply, and
    ``handshake_timeout`` only as the default of ``hello_timeout``. ``auth`` as for WebSocket
    (``cookie`` included: ``open`` reads or sets the tracking cookie), except ``tls`` (no client
    certificate reaches a long-poll session).
    """

    type: Literal["longpoll"]
    #: shell-style patterns for browsers' Origin header (CORS); requests without Origin pass
    allowed_origins: list[str] = Field(default_factory=lambda: ["*"])
    #: seconds a receive request is held when nothing is queued (keep it below the client's:
    #: AutobahnJS gives up after 12 s)
    request_timeout: Annotated[float, Field(gt=0)] = 10.0
    #: seconds without any request after which a transport is closed and its session ended
    session_timeout: Annotated[float, Field(gt=0)] = 30.0
    #: open transports at most on this path; further opens are answered 503
    max_transports: Annotated[int, Field(ge=1)] = 10_000
    #: AutobahnJS posts each message in its own request without waiting for the previous one, so
    #: two may arrive out of order and the spec's sequential-ID check would abort the session
    sequential_request_ids: bool = False


class StaticPath(_Strict):
    """Files from a directory (index files, MIME types, ETag/Cache-Control, no escape from it)."""

    type: Literal["static"]
    directory: str
    index: list[str] = Field(default_factory=lambda: ["index.html"])
    max_age: Annotated[int, Field(ge=0)] = 3600
    #: a folder without an index file shows a list of its entries (hidden ones left out) instead of 404
    directory_listing: bool = False


class RedirectPath(_Strict):
    type: Literal["redirect"]
    url: str
    status: Literal[301, 302, 307, 308] = 302


class NodeInfoPath(_Strict):
    """JSON: node name, version and the sessions per realm."""

    type: Literal["nodeinfo"]


class MetricsPath(_Strict):
    """Prometheus text: sessions, messages by type, routed calls and events, errors, drops, per realm."""

    type: Literal["metrics"]


class JsonPathOptions(_Strict):
    #: indented output
    prettify: bool = False
    #: Access-Control-Allow-Origin: * (any web page may read it)
    allow_cross_origin: bool = False
    #: Cache-Control: no-store
    discourage_caching: bool = False


class JsonPath(_Strict):
    """A fixed JSON value (Crossbar's ``json`` path service): configuration a web page reads."""

    type: Literal["json"]
    value: Any
    options: JsonPathOptions = Field(default_factory=JsonPathOptions)


class ArchivePath(_Strict):
    """Files served from a ZIP archive (Crossbar's ``archive`` path service), e.g. AutobahnJS's
    release zip: ``default_object`` answers the path itself, members are looked up below
    ``object_prefix``. With ``download``, a missing archive is fetched from ``origin`` at start
    (and must match one of ``hashes``, SHA-256 in hex, when they are given)."""

    type: Literal["archive"]
    #: the ZIP file (relative to the node folder)
    archive: Annotated[str, Field(min_length=1)]
    origin: str | None = None
    download: bool = False
    hashes: list[Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]] = Field(default_factory=list)
    object_prefix: str = ""
    default_object: str | None = None
    #: file name suffix -> Content-Type (the longest matching suffix wins), beside the usual types
    mime_types: dict[str, str] = Field(default_factory=dict)
    max_age: Annotated[int, Field(ge=0)] = 3600

    @field_validator("origin")
    @classmethod
    def _origin_is_http(cls, value: str | None) -> str | None:
        return None if value is None else _check_http_url(value)

    @model_validator(mode="after")
    def _download_needs_an_origin(self) -> ArchivePath:
        if self.download and self.origin is None:
            raise ValueError("origin: the URL to download the archive from (download: true)")
        return self


class BridgePath(_Strict):
    """HTTP POST to WAMP: ``publisher`` publishes, ``caller`` calls (Crossbar's request shapes)."""

    type: Literal["publisher", "caller", "webhook"]
    realm: str
    role: str
    #: webhook: the topic each request is published to, as {method, path, query, headers, body}
    topic: str | None = None
    #: optional request signing (Crossbar's scheme): the key clients name and the shared secret
    key: str | None = None
    secret: str | None = None
    timeout: Annotated[float, Field(gt=0)] = 30.0
    max_body: Annotated[int, Field(ge=1024)] = 1024 * 1024

    @model_validator(mode="after")
    def _key_and_secret_together(self) -> BridgePath:
        if (self.key is None) != (self.secret is None):
            raise ValueError("key and secret together (both or neither)")
        if self.type == "webhook" and not self.topic:
            raise ValueError("topic: the topic a webhook publishes to")
        return self


class ConsolePrincipal(_Strict):
    """A web console user: ticket authentication against a stored hash."""

    #: a hash from `cloverleaf passwd ticket` (the console takes no clear-text tickets)
    ticket: str

    @model_validator(mode="before")
    @classmethod
    def _no_role(cls, data: Any) -> Any:
        if isinstance(data, dict) and "role" in data:  # pasted from `cloverleaf passwd ticket` without --console
            raise ValueError("no role key: every console user has the console's own role; remove it "
                             "(`cloverleaf passwd ticket --console` prints the entry without it)")  # fmt: skip
        return data

    @field_validator("ticket")
    @classmethod
    def _ticket_is_a_hash(cls, value: str) -> str:
        from ..wamp.auth import is_ticket_hash  # lazy: the crypto libraries load only when needed

        if not is_ticket_hash(value):
            raise ValueError("a ticket hash from `cloverleaf passwd ticket` (the console takes no clear-text tickets)")
        return value


class ConsolePath(_Strict):
    """The web console: a page to watch and drive realms, with its own users and WAMP endpoint (<path>/ws)."""

    type: Literal["console"]
    #: the realms the console may manage (each a configured realm)
    realms: Annotated[list[str], Field(min_length=1)]
    #: AutobahnJS's browser build, relative to the node folder
    autobahn_js: Annotated[str, Field(min_length=1)] = "web/js/autobahn.min.js"
    principals: Annotated[dict[str, ConsolePrincipal], Field(min_length=1)]
    #: shell patterns for the Origin of the console's WebSocket; omitted: the page's own origin only
    allowed_origins: list[str] | None = None


PathService = Annotated[
    WebSocketPath | StaticPath | RedirectPath | NodeInfoPath | MetricsPath | BridgePath | ConsolePath | LongPollPath
    | JsonPath | ArchivePath,
    Field(discriminator="type"),
]


class WebTransport(_Strict):
    """One TCP (or TLS) port serving several path services; WAMP WebSockets run on picows.

    ``type: universal`` is the same port also speaking RawSocket: a connection whose first byte is
    RawSocket's magic 0x7F is a RawSocket one (with the ``rawsocket`` options), any other is HTTP.
    A ``web`` transport does so too when it has a ``rawsocket`` key.
    """

    type: Literal["web", "universal"]
    endpoint: TcpEndpoint
    paths: Annotated[dict[str, PathService], Field(min_length=1)]
    handshake_timeout: Annotated[float, Field(gt=0)] = 10.0
    #: RawSocket on the same port (universal: on by default, with the defaults of a rawsocket transport)
    rawsocket: RawSocketOptions | None = None

    @model_validator(mode="before")
    @classmethod
    def _universal_speaks_rawsocket(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("type") == "universal" and data.get("rawsocket") is None:
            return {**data, "rawsocket": {}}
        return data

    @field_validator("paths")
    @classmethod
    def _paths_are_absolute(cls, value: dict[str, Any]) -> dict[str, Any]:
        for path in value:
            if not path.startswith("/"):
                raise ValueError(f"paths starting with '/' (got {path!r})")
        return value


Transport = Annotated[
    WebSocketTransport | RawSocketTransport | WebTransport | WebSocketTesteeTransport, Field(discriminator="type")
]


class DiscloseConfig(_Strict):
    caller: bool = False
    publisher: bool = False


class PermissionConfig(_Strict):
    uri: str
    #: exact beats wildcard beats prefix; among prefixes the longest wins (Crossbar's precedence)
    match: Literal["exact", "prefix", "wildcard"] = "exact"
    allow: list[ActionName] = Field(default_factory=list)
    disclose: DiscloseConfig = Field(default_factory=DiscloseConfig)


class RoleConfig(_Strict):
    name: Annotated[str, Field(min_length=1)]
    #: disclose this role's callers to callees and publishers to subscribers, even unasked
    disclose_caller: bool = False
    disclose_publisher: bool = False
    #: trust level added to INVOCATION/EVENT details for this role's calls and publications
    trustlevel: Annotated[int, Field(ge=0)] | None = None
    #: a dynamic authorizer instead of permissions: the procedure called with
    #: (session details, uri, action, options), and the realm it is registered on
    authorizer: str | None = None
    authorizer_realm: str | None = None
    permissions: list[PermissionConfig] = Field(
        default_factory=lambda: [
            PermissionConfig(uri="", match="prefix", allow=["call", "register", "publish", "subscribe"])
        ]
    )


class EventHistoryConfig(_Strict):
    """Keep the last ``limit`` events published to a topic or pattern (wamp.subscription.get_events)."""

    uri: str
    match: Literal["exact", "prefix", "wildcard"] = "exact"
    limit: Annotated[int, Field(ge=1, le=1_000_000)] = 1000


class EventStoreConfig(_Strict):
    #: "memory": lost on restart; "sqlite": kept in ``path`` across restarts
    type: Literal["memory", "sqlite"] = "memory"
    path: str | None = None

    @field_validator("path")
    @classmethod
    def _path_not_empty(cls, value: str | None) -> str | None:
        if value is not None and not value:
            raise ValueError("a file path")
        return value


class RealmConfig(_Strict):
    name: str
    #: "strict" admits only lower-case letters, digits and "_" in URI components
    uri_check: Literal["loose", "strict"] = "loose"
    roles: list[RoleConfig] = Field(default_factory=lambda: [RoleConfig(name="anonymous")])
    event_history: list[EventHistoryConfig] = Field(default_factory=list)
    event_store: EventStoreConfig = Field(default_factory=EventStoreConfig)
    #: topics whose last retained event is kept (PUBLISH with retain); past it the topic retained
    #: on longest ago is forgotten. 0: nothing is retained
    max_retained_topics: Annotated[int, Field(ge=0)] = 10_000

    @model_validator(mode="after")
    def _sqlite_needs_a_path(self) -> RealmConfig:
        if self.event_store.type == "sqlite" and not self.event_store.path:
            raise ValueError("event_store.path: a file path for the sqlite event store")
        return self

    @field_validator("name")
    @classmethod
    def _name_is_uri(cls, value: str) -> str:
        if not is_valid_uri(value):
            raise ValueError("a WAMP URI such as 'realm1' or 'com.example'")
        return value


class LimitsConfig(_Strict):
    #: bytes queued for one session before the queue policy applies
    max_outgoing_bytes: Annotated[int, Field(ge=64 * 1024)] = 4 * 1024 * 1024
    #: "drop_events": drop EVENTs for a slow subscriber (counted), close it if anything else overflows;
    #: "close": close the slow session at once
    queue_policy: Literal["drop_events", "close"] = "drop_events"
    #: authentication failures from one host answered at once; then the ABORT waits
    #: auth_failure_delay seconds, doubling up to auth_failure_max_delay
    auth_failures_free: Annotated[int, Field(ge=0)] = 3
    auth_failure_delay: Annotated[float, Field(ge=0)] = 0.5
    auth_failure_max_delay: Annotated[float, Field(ge=0)] = 10.0


class LoggingConfig(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"


_APP_SPEC = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*)?")


class AppComponent(_Strict):
    """A :class:`cloverleaf.client.App` run inside the node, connected in memory (no socket)."""

    type: Literal["app"]
    #: shown in log lines (default: the app spec)
    name: Annotated[str, Field(min_length=1)] | None = None
    #: MODULE[:ATTRIBUTE] (attribute ``app`` by default), imported with the node folder first on sys.path
    app: str
    realm: str
    #: the authrole it joins as, authorized like any client's; omitted: the router's trusted internal role
    role: Annotated[str, Field(min_length=1)] | None = None
    #: default: "component:<app>"
    authid: Annotated[str, Field(min_length=1)] | None = None
    #: seconds the join, the registrations and the on_join hooks may take before the start counts as failed
    start_timeout: Annotated[float, Field(gt=0)] = 30.0

    @field_validator("app")
    @classmethod
    def _app_is_a_spec(cls, value: str) -> str:
        if not _APP_SPEC.fullmatch(value) or value.partition(":")[0].endswith(".py"):
            raise ValueError("MODULE[:ATTRIBUTE] such as backend:app or services.billing:app (a module name, "
                             "not a file name)")  # fmt: skip
        return value

    @property
    def label(self) -> str:
        return self.name or self.app


class RestartConfig(_Strict):
    """When and how soon a guest that exited is started again (exponential backoff)."""

    #: "always": whatever the exit code; "on_failure": unless it exited with 0; "never"
    policy: Literal["always", "on_failure", "never"] = "always"
    initial_delay: Annotated[float, Field(gt=0)] = 1.0
    max_delay: Annotated[float, Field(gt=0)] = 30.0
    #: each further restart in a row waits this many times longer, up to max_delay
    factor: Annotated[float, Field(ge=1)] = 2.0
    #: a run that lasted this many seconds starts the backoff over at initial_delay
    reset_after: Annotated[float, Field(ge=0)] = 10.0

    @model_validator(mode="after")
    def _max_not_below_initial(self) -> RestartConfig:
        if self.max_delay < self.initial_delay:
            raise ValueError(f"max_delay: at least initial_delay ({self.initial_delay})")
        return self


class _SupervisedProgram(_Strict):
    """What the node's supervised programs (guests and class components) share: a process the
    node starts after its transports listen, restarts when it exits, and stops (SIGTERM, then
    SIGKILL) on shutdown."""

    #: the working directory (default: the node folder; relative to it)
    cwd: str | None = None
    #: added to the node's environment
    env: dict[str, str] = Field(default_factory=dict)
    restart: RestartConfig = Field(default_factory=RestartConfig)
    #: seconds between SIGTERM and SIGKILL on shutdown
    stop_timeout: Annotated[float, Field(ge=0)] = 5.0


class GuestComponent(_SupervisedProgram):
    """An external program the node supervises."""

    type: Literal["guest"]
    #: shown in log lines (default: the executable's file name and the first argument)
    name: Annotated[str, Field(min_length=1)] | None = None
    #: looked up on PATH when it has no "/"; a relative path is relative to the node folder
    executable: Annotated[str, Field(min_length=1)]
    arguments: list[str] = Field(default_factory=list)

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return " ".join([Path(self.executable).name, *self.arguments[:1]])


_CLASS_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


class ClassTransport(_Strict):
    """An Autobahn|Python ``Component`` transport a class component connects over instead of the
    node's private socket (another router, or a transport of this node with its own auth)."""

    model_config = ConfigDict(extra="allow")  # Autobahn's other transport keys (max_retries, options, ...)

    type: Literal["websocket", "rawsocket"]
    url: Annotated[str, Field(min_length=1)]


class ClassComponent(_SupervisedProgram):
    """An Autobahn|Python ``ApplicationSession`` subclass, unchanged (Crossbar's ``class``
    components), run in a supervised Python process of its own by Autobahn's ``Component`` runner
    (:mod:`cloverleaf.node.classrunner`): on Twisted when it derives from Autobahn's Twisted
    session, else on asyncio. Without ``transport`` it joins through a Unix socket the node opens
    for it alone (in a private folder), as ``role``."""

    type: Literal["class"]
    #: shown in log lines (default: the class name)
    name: Annotated[str, Field(min_length=1)] | None = None
    #: MODULE.CLASS, imported with the node folder (or ``cwd``) and ``pythonpath`` on sys.path
    classname: str
    realm: str
    #: the authrole it joins as on the node's private socket, authorized like any client's
    #: (Crossbar's default for router components: anonymous)
    role: Annotated[str, Field(min_length=1)] = "anonymous"
    #: its authid on the private socket (default: "component:<classname>")
    authid: Annotated[str, Field(min_length=1)] | None = None
    #: handed to the session as ``self.config.extra``
    extra: Any = None
    #: folders put first on the program's PYTHONPATH (relative to the node folder)
    pythonpath: list[str] = Field(default_factory=list)
    #: connect over this instead of the private socket (then ``role`` and ``authid`` are refused: the
    #: router's authentication of that transport gives the identity)
    transport: ClassTransport | None = None

    @field_validator("classname")
    @classmethod
    def _classname_is_dotted(cls, value: str) -> str:
        if not _CLASS_NAME.fullmatch(value):
            raise ValueError("MODULE.CLASS such as backend.Backend or myapp.services.Billing")
        return value

    @model_validator(mode="after")
    def _identity_only_on_the_private_socket(self) -> ClassComponent:
        given = sorted({"role", "authid"} & self.model_fields_set)
        if self.transport is not None and given:
            raise ValueError(f"{' and '.join(given)}: only without a transport (over its own transport, the "
                             "router's authentication of that transport gives the component its identity)")
        return self

    @property
    def label(self) -> str:
        return self.name or self.classname


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _check_http_url(value: str) -> str:
    """``value`` if it is an absolute http(s) URL with a host (else ValueError)."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number or out of range
    except ValueError as exc:
        raise ValueError(f"an http:// or https:// URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c in value for c in " \t\r\n\\"):
        raise ValueError("an absolute http:// or https:// URL with a host, e.g. https://example.com/path")
    return value


def _check_topic(topic: str, match: str) -> None:
    if match == "wildcard":
        valid = is_valid_uri(topic, allow_empty_components=True)
    else:
        valid = is_valid_uri(topic[:-1] if match == "prefix" and topic.endswith(".") else topic)
    if not valid:
        raise ValueError(f"topic: a WAMP URI{' pattern' if match != 'exact' else ''} for match: {match} "
                         f"(got {topic!r})")  # fmt: skip


class HttpSubscription(_Strict):
    """One topic forwarded to one URL."""

    topic: str
    url: str
    #: how ``topic`` matches (WAMP pattern-based subscriptions)
    match: Literal["exact", "prefix", "wildcard"] = "exact"

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, value: str) -> str:
        return _check_http_url(value)

    @model_validator(mode="after")
    def _topic_is_a_uri(self) -> HttpSubscription:
        _check_topic(self.topic, self.match)
        return self


class _HttpComponent(_Strict):
    """What the outgoing HTTP components share: a session on a realm and an HTTP client."""

    #: shown in log lines (default: type and first topic, or type and procedure)
    name: Annotated[str, Field(min_length=1)] | None = None
    realm: str
    #: the authrole it joins as, authorized like any client's; omitted: the router's trusted internal role
    role: Annotated[str, Field(min_length=1)] | None = None
    #: default: "component:<name>"
    authid: Annotated[str, Field(min_length=1)] | None = None
    #: sent with every request (an Authorization header, say)
    headers: dict[str, str] = Field(default_factory=dict)
    #: seconds one HTTP request may take, from connecting to the end of the response
    timeout: Annotated[float, Field(gt=0)] = 10.0
    #: HTTP requests in flight at most (and connections open at most)
    max_in_flight: Annotated[int, Field(ge=1, le=1000)] = 10
    #: seconds the requests still queued or in flight may take to finish on shutdown
    stop_timeout: Annotated[float, Field(ge=0)] = 5.0

    @field_validator("headers")
    @classmethod
    def _headers_are_valid(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"HTTP header names (letters, digits and !#$%&'*+.^_`|~-), got {name!r}")
            if any(c in text for c in "\r\n\0"):
                raise ValueError(f"header {name}: a value on one line (no CR, LF or NUL)")
        return value


def _status_codes(value: Any) -> Any:
    """``expected_code`` as a list: one code becomes a list of one; codes are 100 to 599."""
    single = isinstance(value, int) and not isinstance(value, bool)
    if single:
        value = [value]
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(type(code) is int for code in value):
        raise ValueError("an HTTP status code such as 200, or a list of them such as [200, 204]")
    for code in value:
        if not 100 <= code <= 599:  # (the message shows a single code itself)
            raise ValueError("an HTTP status code from 100 to 599" + ("" if single else f" (not {code})"))
    return value


class HttpSubscriberComponent(_HttpComponent):
    """Events become HTTP requests (Crossbar's MessageForwarder): each event on a subscribed topic
    is sent to its URL with ``{"args": [...], "kwargs": {...}}`` as the JSON body."""

    type: Literal["http-subscriber"]
    subscriptions: Annotated[list[HttpSubscription], Field(min_length=1)]
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    #: a status code, or a list of them, that counts as delivered; omitted: any 2xx
    expected_code: list[int] | None = None
    #: events waiting for a free request slot at most; further events are dropped (counted, logged)
    max_queue: Annotated[int, Field(ge=1, le=1_000_000)] = 1000
    #: attempts after the first on a connection error, a timeout, a 5xx or a 429 answer
    retries: Annotated[int, Field(ge=0, le=20)] = 3
    #: seconds before the first retry, doubled for each further one up to retry_max_delay
    retry_delay: Annotated[float, Field(gt=0)] = 0.5
    retry_max_delay: Annotated[float, Field(gt=0)] = 30.0

    @field_validator("expected_code", mode="before")
    @classmethod
    def _codes_are_statuses(cls, value: Any) -> Any:
        return _status_codes(value)

    @model_validator(mode="after")
    def _max_not_below_initial(self) -> HttpSubscriberComponent:
        if self.retry_max_delay < self.retry_delay:
            raise ValueError(f"retry_max_delay: at least retry_delay ({self.retry_delay:g})")
        return self

    @property
    def label(self) -> str:
        return self.name or f"http-subscriber:{self.subscriptions[0].topic}"


HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
#: the methods an http-callee performs unless its ``methods`` says otherwise
HTTP_METHODS: list[HttpMethod] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class HttpCalleeComponent(_HttpComponent):
    """A procedure that performs HTTP requests below a base URL (Crossbar's RESTCallee): the call's
    keyword arguments say method, url, headers, params and body; the result is the response."""

    type: Literal["http-callee"]
    procedure: str
    #: every request goes to this URL or below it (a call's url is relative to it)
    base_url: str
    #: the methods a call may ask for (others are refused with wamp.error.invalid_argument)
    methods: Annotated[list[HttpMethod], Field(min_length=1)] = Field(default_factory=lambda: list(HTTP_METHODS))
    #: a status code, or a list of them, returned as a result; others answer cloverleaf.error.http_status.
    #: Omitted: every response is a result (as Crossbar's RESTCallee), the caller reads its code
    expected_code: list[int] | None = None
    #: calls waiting for a free request slot at most; further calls answer cloverleaf.error.http_busy
    max_queue: Annotated[int, Field(ge=0, le=1_000_000)] = 100
    #: the largest response body read, in bytes (a larger one answers cloverleaf.error.http_response_too_large)
    max_response_size: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024

    @field_validator("expected_code", mode="before")
    @classmethod
    def _codes_are_statuses(cls, value: Any) -> Any:
        return _status_codes(value)

    @field_validator("procedure")
    @classmethod
    def _procedure_is_a_uri(cls, value: str) -> str:
        if not is_valid_uri(value):
            raise ValueError("a WAMP URI such as com.example.weather")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url_is_a_folder(cls, value: str) -> str:
        _check_http_url(value)
        parts = urlsplit(value)
        if parts.query or parts.fragment or "?" in value or "#" in value:
            raise ValueError("a URL without ?query or #fragment (a call adds its own params)")
        return value if value.endswith("/") else value + "/"  # a call's url is below it, never beside it

    @property
    def label(self) -> str:
        return self.name or f"http-callee:{self.procedure}"


Component = Annotated[
    AppComponent | GuestComponent | ClassComponent | HttpSubscriberComponent | HttpCalleeComponent,
    Field(discriminator="type")
]


class NatsTlsConfig(_Strict):
    """TLS to the NATS servers: the CA that signs them, and this node's certificate if they ask."""

    ca_certificates: Annotated[str, Field(min_length=1)] | None = None
    certificate: Annotated[str, Field(min_length=1)] | None = None
    key: Annotated[str, Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _pair(self) -> NatsTlsConfig:
        if (self.certificate is None) != (self.key is None):
            raise ValueError("certificate and key: both or neither")
        return self


class NatsConfig(_Strict):
    """How a node reaches NATS: every server it may use, and the credentials they want."""

    servers: Annotated[list[str], Field(min_length=1)]
    user: str | None = None
    password: str | None = None
    token: str | None = None
    #: a NATS credentials file (JWT and NKey seed), as `nsc` writes it
    credentials: str | None = None
    tls: NatsTlsConfig | None = None

    @field_validator("servers")
    @classmethod
    def _urls(cls, servers: list[str]) -> list[str]:
        for index, url in enumerate(servers):
            if not re.fullmatch(r"(nats|tls)://[^\s/]+", url):
                raise ValueError(f"a NATS server URL such as nats://127.0.0.1:4222 (nats:// or tls://, host and "
                                 f"port) as servers[{index}], got {url!r}")  # fmt: skip
        return servers


class ClusterConfig(_Strict):
    """The cluster this node belongs to (docs/cluster.md); without it the node is on its own."""

    name: str
    node: str
    nats: NatsConfig
    heartbeat_interval: Annotated[float, Field(gt=0, le=10)] = 0.25
    failure_timeout: Annotated[float, Field(gt=0, le=60)] = 1.5
    replicas: Annotated[int, Field(ge=1, le=5)] = 1

    @field_validator("name", "node")
    @classmethod
    def _names(cls, value: str, info: ValidationInfo) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
            raise ValueError(f"1 to 64 letters, digits, '_' or '-' (the {info.field_name} is part of NATS subject "
                             f"and bucket names)")  # fmt: skip
        return value

    @model_validator(mode="after")
    def _timeouts(self) -> ClusterConfig:
        if self.failure_timeout < 3 * self.heartbeat_interval:
            minimum = 3 * self.heartbeat_interval
            raise ValueError(f"a failure_timeout of at least 3 heartbeat intervals ({minimum:g} s), "
                             f"got {self.failure_timeout:g}")  # fmt: skip
        return self


class NodeConfig(_Strict):
    realms: Annotated[list[RealmConfig], Field(min_length=1)]
    transports: Annotated[list[Transport], Field(min_length=1)]
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    #: seconds to wait for sessions to answer GOODBYE on shutdown
    shutdown_timeout: Annotated[float, Field(ge=0)] = 5.0
    #: Apps run in-process, guest programs and the outgoing HTTP components (http-subscriber,
    #: http-callee), started after the transports, stopped before the router
    components: list[Component] = Field(default_factory=list)
    #: the cluster this node shares its realms with (docs/cluster.md); None: a node on its own
    cluster: ClusterConfig | None = None
    #: worker processes of this node (docs/workers.md): 1 is one process; "auto" one per core
    workers: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = 1
    #: how workers share a TCP port: a socket each bound with SO_REUSEPORT (the kernel spreads the
    #: connections evenly), or one socket they all accept from (Unix sockets are always shared)
    worker_sockets: Literal["reuseport", "shared"] = "reuseport"
    #: the node folder: the config file's directory (the working directory for the embedded default)
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @property
    def base_dir(self) -> Path:
        """The node folder: relative paths in the config (static directories, component modules,
        guest working directories, files) are relative to it."""
        return self._base_dir

    def resolve(self, path: str | Path) -> Path:
        """``path`` made absolute against :attr:`base_dir` (absolute paths are kept)."""
        return self._base_dir / Path(path).expanduser()

    def resolved_tls(self, tls: TlsConfig) -> TlsConfig:
        """``tls`` with its file names made absolute against :attr:`base_dir`."""
        ca = str(self.resolve(tls.ca_certificates)) if tls.ca_certificates else None
        return tls.model_copy(update={
            "certificate": str(self.resolve(tls.certificate)), "key": str(self.resolve(tls.key)), "ca_certificates": ca,
        })  # fmt: skip

    @field_validator("realms")
    @classmethod
    def _unique_realm_names(cls, realms: list[RealmConfig]) -> list[RealmConfig]:
        names = [realm.name for realm in realms]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"unique realm names, but '{name}' appears {names.count(name)} times")
        return realms

    @model_validator(mode="after")
    def _one_transport_per_address(self) -> NodeConfig:
        seen: list[tuple[int, Any]] = []
        for index, transport in enumerate(self.transports):
            endpoint = transport.endpoint
            for other, taken in seen:
                if isinstance(endpoint, UnixEndpoint) or isinstance(taken, UnixEndpoint):
                    clash = isinstance(endpoint, UnixEndpoint) and isinstance(taken, UnixEndpoint) and \
                        endpoint.path == taken.path
                else:
                    hosts = {endpoint.host, taken.host}
                    clash = endpoint.port == taken.port != 0 and (len(hosts) == 1 or bool(hosts & {"0.0.0.0", "::"}))
                if clash:
                    raise ValueError(f"transports[{index}].endpoint: the address of transports[{other}] (one "
                                     "transport per address: serve several paths with a web transport)")
            seen.append((index, endpoint))
        return self

    @model_validator(mode="after")
    def _components_fit(self) -> NodeConfig:
        realms = [realm.name for realm in self.realms]
        labels = [component.label for component in self.components]
        for index, component in enumerate(self.components):
            # (guests join nothing by config; a class component with a transport of its own may
            # join another router's realm)
            realm = None if isinstance(component, GuestComponent) else component.realm
            if isinstance(component, ClassComponent) and component.transport is not None:
                realm = None
            if realm is not None and realm not in realms:
                raise ValueError(f"components[{index}].realm: one of the configured realms ({', '.join(realms)}), "
                                 f"got '{realm}'")  # fmt: skip
            if labels.count(component.label) > 1:
                raise ValueError(f"components[{index}].name: a name of its own, '{component.label}' names "
                                 f"{labels.count(component.label)} components")  # fmt: skip
        return self


DEFAULT_CONFIG: dict[str, Any] = {
    "realms": [{"name": "realm1", "roles": [{"name": "anonymous"}]}],
    "transports": [
        {"type": "websocket", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": 8080}, "path": "/ws"},
        {"type": "rawsocket", "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": 8081}},
    ],
}


class ConfigError(Exception):
    """A config file could not be read or is invalid; ``problems`` lists every finding."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__("\n".join(f"{source}: {p}" for p in problems))
        self.source = source
        self.problems = problems


_MAPPINGS = {"paths", "principals", "env"}  # keys of these are the user's own: shown as ["..."]


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for index, part in enumerate(loc):
        previous = loc[index - 1] if index > 0 else None
        if isinstance(part, int):
            path += f"[{part}]"
        elif (
            part in _UNION_TAGS
            and index > 0
            and (isinstance(previous, int) or previous == "endpoint" or (index > 1 and loc[index - 2] == "paths"))
        ):
            continue  # pydantic names the chosen union member in the location; the file has no such key
        elif previous in _MAPPINGS:
            path += f'["{part}"]'
        else:
            path += f".{part}" if path else part
    return path or "(top level)"


def _tag_models(union: Any) -> dict[str, type[BaseModel]]:
    """Each ``type`` value of a tagged union (``Annotated[A | B, Field(discriminator="type")]``)
    -> its model."""
    models = [typing.get_args(member)[0] if typing.get_origin(member) is Annotated else member  # (Tag("tcp"))
              for member in typing.get_args(typing.get_args(union)[0])]  # fmt: skip
    return {tag: model for model in models for tag in typing.get_args(model.model_fields["type"].annotation)}


#: the tagged items of a config: transports, endpoints and components by their ``type`` ...
_TAGGED: dict[str, type[BaseModel]] = {**_tag_models(Transport), **_tag_models(Endpoint), **_tag_models(Component)}
#: ... and the path services of a web transport (whose "websocket" is not the transport's)
_PATH_TAGGED: dict[str, type[BaseModel]] = _tag_models(PathService)
#: the tags pydantic puts into an error's location (the file has no such key)
_UNION_TAGS = set(_TAGGED) | set(_PATH_TAGGED)


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys the mapping at ``loc`` may hold (for "unknown key" messages); [] if unknown."""
    model: Any = NodeConfig
    for index, part in enumerate(loc):
        if isinstance(part, int):
            continue
        previous = loc[index - 1] if index > 0 else None
        if previous == "paths":
            continue  # the user's own path ("/ws"); the service's tag comes next
        fields = getattr(model, "model_fields", None) or {}
        tagged = _PATH_TAGGED if index > 1 and loc[index - 2] == "paths" else _TAGGED
        if part in tagged and (part not in fields or isinstance(previous, int) or tagged is _PATH_TAGGED):
            # pydantic puts the chosen union member into the location (a list item's tag may
            # also be a field name: an "app" component has an "app" key)
            model = tagged[part]
            continue
        if part not in fields:
            return []
        model = _model_of(fields[part].annotation)
    return sorted(getattr(model, "model_fields", None) or {})


def _model_of(annotation: Any) -> Any:
    """The first BaseModel inside ``annotation`` (through list[...], X | None, Annotated[...])."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _union_tags(loc: tuple[int | str, ...]) -> list[str]:
    """The ``type`` values the tagged item at ``loc`` may have (transport, path service, component)."""
    named = [part for part in loc if isinstance(part, str)]
    union: Any = {"transports": Transport, "components": Component}.get(named[-1] if named else "")
    if (len(named) >= 2 and named[-2] == "paths") or named[-1:] == ["paths"]:
        union = PathService
    return list(_tag_models(union)) if union is not None else []


def _describe(error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "value_error":
        message = f"expected {message}"
    path = _key_path(tuple(error["loc"]))
    if error["type"] == "missing":
        return f"{path}: required key is missing"
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        # pydantic's "Input tag ... does not match any of the expected tags": say it as the file does
        listed = str(error.get("ctx", {}).get("expected_tags", ""))
        tags = [tag.strip(" '") for tag in listed.split(",") if tag.strip(" '")] or _union_tags(tuple(error["loc"]))
        expected = f"expected one of: {', '.join(tags)}" if tags else "see docs/configuration.md"
        if error["type"] == "union_tag_not_found":
            return f"{path}: the type key is missing ({expected})"
        return f"{path}.type: unknown type {error['ctx']['tag']!r} ({expected})"
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(tuple(error["loc"])[:-1])
        return f"{path}: unknown key" + (f" (expected one of: {', '.join(allowed)})" if allowed else "")
    shown = error.get("input")
    if isinstance(shown, (dict, list)):
        return f"{path}: {message}"
    return f"{path}: {message} (got {shown!r:.80})"


#: a value that is exactly ``${NAME}`` is read from the environment (as Crossbar.io's config does)
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def substitute_environment(data: Any, environ: Mapping[str, str] | None = None) -> tuple[Any, list[str]]:
    """``data`` with every string value that is exactly ``${NAME}`` replaced by the environment
    variable NAME (secrets kept out of config files, as in Crossbar.io); also the problems: one
    per variable that is not set, with its key path. Only whole values are replaced, never a part
    of a string, and keys are left as they are."""
    env = os.environ if environ is None else environ
    problems: list[str] = []

    def walk(value: Any, loc: tuple[int | str, ...]) -> Any:
        if isinstance(value, str):
            match = _ENV_REFERENCE.fullmatch(value)
            if match is None:
                return value
            name = match.group(1)
            if name not in env:
                problems.append(f"{_key_path(loc)}: the environment variable {name} is not set")
                return value
            return env[name]
        if isinstance(value, dict):
            return {key: walk(item, (*loc, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item, (*loc, index)) for index, item in enumerate(value)]
        return value

    return walk(data, ()), problems


def parse_config(data: Any, source: str = "<config>") -> NodeConfig:
    """Validate already-parsed config data (after :func:`substitute_environment`); raise
    :class:`ConfigError` listing every problem."""
    if data is None:  # an empty file (or only comments)
        raise ConfigError(source, ["the file is empty: a node config has at least realms: and transports: (see "
                                   "docs/configuration.md); without a config file, `cloverleaf start` runs the "
                                   "embedded default"])  # fmt: skip
    if not isinstance(data, dict):
        shown = {list: "a list", str: "a single text", int: "a number", float: "a number", bool: "true/false"}
        raise ConfigError(source, ["(top level): expected keys such as realms: and transports:, got "
                                   + shown.get(type(data), type(data).__name__)])  # fmt: skip
    data, missing = substitute_environment(data)
    try:
        config = NodeConfig.model_validate(data)
    except ValidationError as exc:  # every problem at once: unset variables and the rest
        raise ConfigError(source, missing + [_describe(e) for e in exc.errors()]) from None
    if missing:
        raise ConfigError(source, missing)
    return config


def load_config(path: str | Path) -> NodeConfig:
    """Read a YAML (.yaml/.yml) or JSON (.json) node config file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [f"cannot read the file: {exc.strerror}"]) from None
    try:
        data = json.loads(text) if source.endswith(".json") else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(source, [f"line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [f"{where}invalid YAML: {problem}"]) from None
    config = parse_config(data, source)
    config._base_dir = Path(path).resolve().parent
    return config


def default_config() -> NodeConfig:
    """The embedded default: realm1, anonymous allowed everything, WebSocket :8080/ws, RawSocket :8081."""
    return parse_config(DEFAULT_CONFIG, "<embedded default>")
