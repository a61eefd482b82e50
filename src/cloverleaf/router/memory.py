"""An in-memory connection between a client and the router: no socket, no framing.

:func:`connect_in_memory` opens a router session on a :class:`MemoryLink` and returns the client's
end of it, a :class:`MemoryClientLink`, which has what the client asks of a transport
(``serializer``, ``send(payload)``, ``close()``, ``closed``). The node runs embedded App
components on it (``cloverleaf.node.components``); this module knows nothing of the client.

Client to router: ``send`` hands the payload to :meth:`RouterSession.receive` at once. Router to
client: payloads are queued and delivered, in order, from the event loop (``call_soon``), never
inside the router's own call: the client never runs in the middle of a fan-out, and a client that
sends HELLO sees the WELCOME only after its ``send`` returned, as over a socket.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..wamp.serializers import Serializer

if TYPE_CHECKING:
    from .router import Router
    from .session import RouterSession, SessionOptions

log = logging.getLogger("cloverleaf.router.memory")

MessageHandler = Callable[[bytes], None]
LostHandler = Callable[[BaseException | None], None]


class MemoryLink:
    """The router's side: a :class:`~cloverleaf.router.interfaces.TransportLink` in memory.

    ``kind`` is "internal", so the trusted internal role (``TrustedAuthenticator``) is admitted on it:
    only offer that authenticator to sessions the node itself opens.
    """

    kind = "internal"
    peer_max_message_size = 0

    def __init__(self, serializer: Serializer, peer: str, on_message: MessageHandler, on_lost: LostHandler) -> None:
        self.serializer = serializer
        self.peer = peer
        self.session: RouterSession | None = None
        self._on_message = on_message
        self._on_lost = on_lost
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._scheduled = False
        #: the router closed (or aborted): deliver what is queued, then end
        self._closing = False
        #: the client closed its end: deliver nothing more
        self.client_closed = False
        self.ended = False
        self._loop = asyncio.get_running_loop()
        self.client = MemoryClientLink(self)

    # -- the router's side (TransportLink) -----------------------------------------------------

    def write(self, payload: bytes) -> None:
        if self._closing or self.ended or self.client_closed:
            return
        self._queue.append(payload)
        self._queued_bytes += len(payload)
        self._schedule()

    def backlog(self) -> int:
        return self._queued_bytes

    def close(self, reason: str) -> None:
        if self._closing or self.ended:
            return
        self._closing = True
        self._schedule()

    def abort(self, reason: str) -> None:
        if self.ended:
            return
        self._queue.clear()
        self._queued_bytes = 0
        self._closing = True
        self._schedule()

    # -- delivery --------------------------------------------------------------------------------

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._deliver)

    def _deliver(self) -> None:
        """Hand the client what was queued when this pass began; what the client's handlers make
        the router write meanwhile waits for the next pass (a handler publishing to its own topic
        cannot starve the loop)."""
        self._scheduled = False
        for _ in range(len(self._queue)):
            if self.ended or self.client_closed:
                break
            payload = self._queue.popleft()
            self._queued_bytes -= len(payload)
            try:
                self._on_message(payload)
            except Exception:
                log.exception("%s: the client failed handling a message", self.peer)
        if self.ended or self.client_closed:
            self._queue.clear()
            self._queued_bytes = 0
            return
        if self._queue:
            self._schedule()
        elif self._closing:
            self.end(None)

    def end(self, exc: BaseException | None) -> None:
        """The connection is over on both sides: the router session is lost, the client told."""
        if self.ended:
            return
        self.ended = True
        self._queue.clear()
        self._queued_bytes = 0
        session, self.session = self.session, None
        if session is not None:
            session.connection_lost()
        self._on_lost(exc)


class MemoryClientLink:
    """The client's side: structurally a ``cloverleaf.client.transports.ClientLink``."""

    def __init__(self, link: MemoryLink) -> None:
        self._link = link
        self.serializer = link.serializer

    def send(self, payload: bytes) -> None:
        link = self._link
        if self.closed or link._closing:
            return  # like bytes written to a socket the router has closed: lost
        session = link.session
        if session is None:
            return
        try:
            session.receive(payload)
        except Exception:  # a router bug must not surface in the client's call, as over a socket
            log.exception("%s: the router failed handling a message", link.peer)

    def close(self) -> None:
        link = self._link
        if self.closed:
            return
        link.client_closed = True
        link._loop.call_soon(link.end, None)

    @property
    def closed(self) -> bool:
        return self._link.client_closed or self._link.ended


def connect_in_memory(
    router: Router,
    options: SessionOptions,
    serializer: Serializer,
    on_message: MessageHandler,
    on_lost: LostHandler,
    peer: str = "internal",
) -> MemoryClientLink:
    """Open a router session on an in-memory link and return the client's end of it.

    ``options`` decides the authentication, as a transport's do (e.g. ``TrustedAuthenticator`` or
    ``FixedRoleAuthenticator`` from :mod:`cloverleaf.router.internal`); ``on_message(payload)`` and
    ``on_lost(exc)`` are the client's, called from the event loop. Must run on the router's loop.
    """
    link = MemoryLink(serializer, peer, on_message, on_lost)
    link.session = router.open_session(link, options)
    return link.client
