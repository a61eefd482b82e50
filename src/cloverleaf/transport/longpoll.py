"""WAMP over HTTP long-poll (spec: advanced/transport_http_longpoll), a path service of the web transport.

The wire format is the spec's, as AutobahnJS's ``longpoll`` transport and Crossbar speak it::

    POST <root>/open                 {"protocols": ["wamp.2.json"]}  ->  200 {"protocol", "transport"}
    POST <root>/<transport>/send     one message (a batch for ".batched" protocols)  ->  204
    POST <root>/<transport>/receive  held until something is queued: 200 with one message (a batch of
                                     every queued message for ".batched" protocols); 204 with an empty
                                     body after ``request_timeout``
    POST <root>/<transport>/close    ->  204

Success on ``send`` and ``close`` is 204, as Crossbar answers: the spec's text says 202 ("no
content"), but AutobahnJS treats every status other than 200 and 204 as a failed request. An
unknown transport is 404, a transport whose session has ended 410 (``receive``; ``close`` still
answers 204 so that a client's orderly close succeeds). Browsers reach the service from other
origins through CORS (AutobahnJS posts ``Content-Type: application/json`` with credentials, so
every request is preflighted); ``allowed_origins`` decides which origins may. With cookie
authentication on, ``open`` reads the tracking cookie or sets a new one, as a WebSocket upgrade
does (see :mod:`cloverleaf.transport.cookies`), and the transport's session carries it.

This module is thin I/O and the registry of transports: each transport is a router session on a
:class:`LongPollLink`, payloads go to :meth:`RouterSession.receive` untouched, and what the router
writes is queued until a ``receive`` takes it. No routing happens here.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import orjson

from ..router.authenticators import CookieStore
from ..router.ratelimit import RateLimitedLog
from ..router.router import Router
from ..router.session import RouterSession, SessionOptions
from ..wamp import errors
from ..wamp.batching import (
    RECORD_SEPARATOR,
    BatchError,
    Framing,
    choose_framing,
    frame_batch,
    framings_for,
    json_separator,
    split_batch,
)
from ..wamp.serializers import Serializer
from .cookies import CookieTracking, is_cross_origin
from .link import origin_allowed
from .web import HttpRequest

log = logging.getLogger("cloverleaf.transport.longpoll")
#: lines any HTTP client can repeat at will
limited_log = RateLimitedLog(log)

#: (status, body, headers) as :class:`~cloverleaf.transport.web.LongPollService` answers
Response = tuple[int, bytes, dict[str, str]]

#: response Content-Type per serializer (Crossbar's)
MIME_TYPES: Final = {
    "json": "application/json; charset=utf-8",
    "msgpack": "application/x-msgpack",
    "cbor": "application/cbor",
}
_NO_STORE: Final = "no-store, no-cache, must-revalidate, max-age=0"
#: how long a browser may reuse a preflight answer (Chromium caps this at 2 hours)
PREFLIGHT_MAX_AGE: Final = 600
_OPERATIONS: Final = frozenset({"send", "receive", "close"})


def cors_headers(headers: Mapping[str, str], allowed_origins: Sequence[str], preflight: bool) -> dict[str, str] | None:
    """CORS answer headers for a request; None when its Origin is not allowed.

    Requests without Origin (non-browsers) pass with no CORS headers. An allowed Origin is echoed
    with ``Access-Control-Allow-Credentials: true``: AutobahnJS sends its requests with
    credentials, and browsers refuse ``*`` for those. A preflight is also told the methods and
    the headers it asked for.
    """
    origin = headers.get("origin")
    if origin is None:
        return {}
    if not origin_allowed(origin, allowed_origins):
        return None
    answer = {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}
    if preflight:
        answer["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        requested = headers.get("access-control-request-headers")
        if requested:
            answer["Access-Control-Allow-Headers"] = requested
        answer["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
    return answer


@dataclass(frozen=True, slots=True)
class LongPollSettings:
    #: the service's path (its root: "/lp" serves "/lp/open", "/lp/<transport>/send", ...)
    root: str = "/lp"
    #: in the order protocols are listed to clients that offer none of them
    serializers: Sequence[Serializer] = ()
    session: SessionOptions = field(default_factory=SessionOptions)
    #: shell-style patterns for the Origin header; requests without Origin (non-browsers) pass
    allowed_origins: Sequence[str] = ("*",)
    #: seconds a ``receive`` is held when nothing is queued (below the client's own timeout:
    #: AutobahnJS gives up after 12 s)
    request_timeout: float = 10.0
    #: seconds without any request after which a transport is closed and its session ended
    session_timeout: float = 30.0
    #: open transports at most; ``open`` answers 503 beyond
    max_transports: int = 10_000
    #: cookie authentication (None: off)
    cookies: CookieTracking | None = None
    #: put before every transport ID (a node's worker names its own: "w1-...", docs/workers.md)
    id_prefix: str = ""


class LongPollLink:
    """A :class:`~cloverleaf.router.interfaces.TransportLink` whose outgoing payloads wait for a ``receive``.

    The queue is bounded by the router: its backlog is everything not yet taken by a ``receive``,
    so ``limits.max_outgoing_bytes`` and ``queue_policy`` apply to a client that stops polling
    as to a slow socket.
    """

    kind = "longpoll"

    def __init__(self, transport_id: str, protocol: Framing, peer: str) -> None:
        self.transport_id = transport_id
        self.protocol = protocol
        self.serializer = protocol.serializer
        self.peer = peer
        self.peer_max_message_size = 0
        self.session: RouterSession | None = None
        #: the receive being held, if any (a newer receive replaces it)
        self.waiter: asyncio.Future[None] | None = None
        #: requests of this transport being answered right now (a held receive among them)
        self.active = 0
        self.last_seen = time.monotonic()
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        #: the router asked to close: what is queued is still delivered, nothing more is taken
        self.closing = False
        #: why the router aborted this transport (the session's leave line says it), if it did
        self.abort_reason: str | None = None
        #: the JSON batch separator to send (the spec's, or the one the peer used)
        self.separator = RECORD_SEPARATOR
        #: the session is detached (the transport answers 410 from now on)
        self.ended = False
        #: the browser's tracking cookie and the store remembering who it proved (cookie auth)
        self.cookie: str | None = None
        self.cookie_store: CookieStore | None = None
        self._loop = asyncio.get_running_loop()

    # -- TransportLink -----------------------------------------------------------------------

    def write(self, payload: bytes) -> None:
        if self.closing:
            return
        self._queue.append(payload)
        self._queued_bytes += len(payload)
        self._wake()

    def backlog(self) -> int:
        return self._queued_bytes

    def close(self, reason: str) -> None:
        if self.closing:
            return
        self.closing = True
        if not self._queue:
            # Never inside the caller's loop (it may be the broker's fan-out): on the next pass.
            self._loop.call_soon(self.end)
        self._wake()

    def abort(self, reason: str) -> None:
        self.closing = True
        if self.abort_reason is None:
            self.abort_reason = reason
        self._queue.clear()
        self._queued_bytes = 0
        self._loop.call_soon(self.end)
        self._wake()

    # -- the long-poll side ------------------------------------------------------------------

    def take(self) -> list[bytes]:
        """What a ``receive`` answers with: every queued payload (batched) or the first one."""
        queue = self._queue
        if not queue:
            return []
        taken = list(queue) if self.protocol.batched else [queue.popleft()]
        if self.protocol.batched:
            queue.clear()
        self._queued_bytes -= sum(len(p) for p in taken)
        if self.closing and not queue:
            self.end()
        return taken

    def end(self) -> None:
        """Detach the session (it forgets its subscriptions, registrations and calls) and wake a held receive."""
        if self.ended:
            return
        self.ended = self.closing = True
        self._queue.clear()
        self._queued_bytes = 0
        session, self.session = self.session, None
        if session is not None:
            session.connection_lost(self.abort_reason or "transport lost")
        self._wake()

    def touch(self) -> None:
        self.last_seen = time.monotonic()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class LongPollEndpoint:
    """The transports of one long-poll path: opens them, answers their requests, ends idle ones."""

    def __init__(self, router: Router, settings: LongPollSettings) -> None:
        self.router = router
        self.settings = settings
        self.protocols = framings_for(settings.serializers)
        self.transports: dict[str, LongPollLink] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._sweep_interval = min(1.0, max(0.01, settings.session_timeout / 4))
        root = settings.root.rstrip("/")
        self._prefix = root + "/"

    async def handle(self, request: HttpRequest, peer: str, lost: asyncio.Future[None]) -> Response:
        """Answer one request under the service's path.

        ``peer`` describes the connection ("tcp:host:port"); ``lost`` is done once it is gone.
        """
        preflight = request.method == "OPTIONS"
        cors = cors_headers(request.headers, self.settings.allowed_origins, preflight)
        if cors is None:
            origin = request.headers.get("origin")
            limited_log.info("origin refused", "refused long-poll request from Origin %r", origin)
            return _text(403, "origin not allowed", {})
        headers = {**cors, "Cache-Control": _NO_STORE}
        if preflight:
            return 204, b"", headers
        if request.method != "POST":
            body = "" if request.method == "HEAD" else "this path speaks WAMP over HTTP long-poll (POST)"
            return _text(405, body, {**headers, "Allow": "POST, OPTIONS"})
        parts = request.path[len(self._prefix) :].split("/") if request.path.startswith(self._prefix) else []
        if parts == ["open"]:
            return self._open(request, peer, headers)
        if len(parts) != 2 or parts[1] not in _OPERATIONS:
            return _text(404, "not found", headers)
        link = self.transports.get(parts[0])
        if link is None:
            return _text(404, "no such transport", headers)
        operation = parts[1]
        link.touch()
        if operation == "send":
            return self._send(link, request.body, headers)
        if operation == "receive":
            return await self._receive(link, headers, lost)
        self._close(link)
        return 204, b"", headers

    def transport_of(self, request: HttpRequest) -> str | None:
        """The transport ID a request is about (None: ``open``, or not a transport's path)."""
        if not request.path.startswith(self._prefix):
            return None
        parts = request.path[len(self._prefix) :].split("/")
        if len(parts) != 2 or parts[1] not in _OPERATIONS:
            return None
        return parts[0]

    def error_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """Headers for an answer the web transport gives itself to a request on this path (413, 400):
        the CORS headers ``handle`` would give, so that a browser on an allowed origin can read the status."""
        cors = cors_headers(headers, self.settings.allowed_origins, preflight=False)
        return {**(cors or {}), "Cache-Control": _NO_STORE}

    def close_all(self) -> int:
        """End every transport (node shutdown): sessions are detached, held receives woken to
        answer 410. Returns how many receives were held."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        transports, self.transports = self.transports, {}
        held = sum(1 for link in transports.values() if link.active)
        for link in transports.values():
            link.end()
        return held

    # -- operations --------------------------------------------------------------------------

    def _open(self, request: HttpRequest, peer: str, headers: dict[str, str]) -> Response:
        try:
            options = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            return _text(400, "the request body must be a JSON object with 'protocols'", headers)
        if not isinstance(options, dict) or "protocols" not in options:
            return _text(400, "the request body must be a JSON object with 'protocols'", headers)
        protocol = choose_framing(options["protocols"], self.protocols)
        if protocol is None:
            spoken = ", ".join(p.name for p in self.protocols)
            return _text(400, f"no common protocol (this path speaks: {spoken})", headers)
        if len(self.transports) >= self.settings.max_transports:
            limited_log.warning("transports full", "long-poll %s: %d transports open, refusing more",
                                self.settings.root, len(self.transports))  # fmt: skip
            return _text(503, "too many long-poll transports", {**headers, "Retry-After": "5"})
        transport_id = self.settings.id_prefix + secrets.token_urlsafe(24)
        link = LongPollLink(transport_id, protocol, peer)
        headers = {**headers, "Content-Type": MIME_TYPES["json"]}
        settings = self.settings
        if settings.cookies is not None:
            # A cookie for another site is stored and sent by browsers only as SameSite=None, which
            # needs Secure, which needs HTTPS: so on TLS, a cross-origin open gets that.
            tls = peer.startswith("tls:")
            cross_site = tls and is_cross_origin(request.headers.get("origin"), request.headers.get("host"), tls)
            link.cookie, set_cookie = settings.cookies.for_request([request.headers.get("cookie", "")], cross_site)
            link.cookie_store = settings.cookies.store
            if set_cookie is not None:
                headers["Set-Cookie"] = set_cookie
        link.session = self.router.open_session(link, settings.session)
        self.transports[transport_id] = link
        self._schedule_sweep()
        answer = orjson.dumps({"protocol": protocol.name, "transport": transport_id})
        return 200, answer, headers

    def _send(self, link: LongPollLink, body: bytes, headers: dict[str, str]) -> Response:
        session = link.session
        if session is None or link.closing:
            return 204, b"", headers  # the session has ended: discarded, as frames after a close are
        if link.protocol.batched:
            try:
                payloads = split_batch(link.serializer, body)
            except BatchError as exc:
                session.abort(errors.PROTOCOL_VIOLATION, str(exc))
                return _text(400, str(exc), headers)
            link.separator = json_separator(body)  # answer in the peer's own dialect (Autobahn's 0x18)
        else:
            payloads = [body]
        for payload in payloads:
            if link.session is None or link.closing:
                break  # an earlier message of the batch ended the session
            session.receive(payload)
        return 204, b"", headers

    async def _receive(self, link: LongPollLink, headers: dict[str, str], lost: asyncio.Future[None]) -> Response:
        if lost.done():
            return 204, b"", headers  # nobody would read the answer: take nothing
        taken = link.take()
        if not taken and not link.ended:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            previous, link.waiter = link.waiter, waiter
            if previous is not None and not previous.done():
                previous.set_result(None)  # the older receive answers empty: this one takes over
            link.active += 1
            try:
                await asyncio.wait((waiter, lost), timeout=self.settings.request_timeout,
                                   return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            finally:
                link.active -= 1
                link.touch()
                replaced = link.waiter is not waiter
                if not replaced:
                    link.waiter = None
            if replaced or lost.done():
                return 204, b"", headers
            taken = link.take()
        if taken:
            body = frame_batch(link.serializer, taken, link.separator) if link.protocol.batched else taken[0]
            content_type = MIME_TYPES.get(link.serializer.NAME, "application/octet-stream")
            return 200, body, {**headers, "Content-Type": content_type}
        if link.ended:
            return _text(410, "the transport is closed", headers)
        return 204, b"", headers

    def _close(self, link: LongPollLink) -> None:
        """The client closes the transport: like a dropped connection, the session ends now."""
        self.transports.pop(link.transport_id, None)
        if not link.ended:
            log.debug("long-poll transport %s closed by %s", link.transport_id[:8], link.peer)
        link.end()

    # -- idle transports ---------------------------------------------------------------------

    def _schedule_sweep(self) -> None:
        if self._sweeper is None and self.transports:
            self._sweeper = asyncio.get_running_loop().call_later(self._sweep_interval, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        deadline = time.monotonic() - self.settings.session_timeout
        for transport_id, link in list(self.transports.items()):
            if link.active == 0 and link.last_seen < deadline:
                del self.transports[transport_id]
                if not link.ended:
                    limited_log.info(
                        "idle transport closed",
                        "long-poll transport of session %s (%s): no request for %ss, closed",
                        link.session.session_id if link.session is not None else "-",
                        link.peer,
                        self.settings.session_timeout,
                    )
                link.end()
        self._schedule_sweep()


def _text(status: int, text: str, headers: dict[str, str]) -> Response:
    body = (text + "\n").encode() if text else b""
    return status, body, {**headers, "Content-Type": "text/plain; charset=utf-8"}


__all__ = [
    "LongPollEndpoint",
    "LongPollLink",
    "LongPollSettings",
    "cors_headers",
]
