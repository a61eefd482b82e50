"""The write side shared by all transports: queue payloads, join them into one write per loop pass."""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections.abc import Sequence
from typing import Any

from ..router.authenticators import CookieStore
from ..router.session import RouterSession
from ..wamp.serializers import Serializer

log = logging.getLogger("cloverleaf.transport")

#: queued bytes at which a link writes at once instead of waiting for the end of the loop pass
FLUSH_AT_BYTES = 64 * 1024


def peer_certificate(transport: asyncio.BaseTransport) -> tuple[dict[str, Any] | None, bytes | None]:
    """The verified client certificate of a TLS connection: ``getpeercert()``'s dict and the DER bytes.

    (None, None) without TLS, or when the client sent no certificate (or none was asked for).
    """
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None, None
    return ssl_object.getpeercert() or None, ssl_object.getpeercert(binary_form=True)


def channel_binding(transport: asyncio.BaseTransport) -> dict[str, bytes]:
    """TLS channel binding data for cryptosign/SCRAM: ``tls-unique`` where the TLS version has it
    (1.2; Python's ssl module exposes neither tls-unique for 1.3 nor ``tls-exporter``)."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return {}
    try:
        data = ssl_object.get_channel_binding("tls-unique")
    except (ValueError, AttributeError):
        return {}
    return {"tls-unique": data} if data else {}


def origin_allowed(origin: str, allowed_origins: Sequence[str]) -> bool:
    """Whether a browser's ``Origin`` matches one of the shell-style patterns (``https://*.example.com``)."""
    return any(fnmatch.fnmatchcase(origin, pattern) for pattern in allowed_origins)


def describe_peer(transport: asyncio.BaseTransport, scheme: str) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = f"[{peer[0]}]" if ":" in str(peer[0]) else peer[0]
        return f"{scheme}:{host}:{peer[1]}"
    return f"{scheme}:{peer or 'unix'}"


#: seconds a half-closed connection keeps reading (and discarding) before it is dropped
LINGER_SECONDS = 2.0


def linger_close(raw: asyncio.Transport) -> None:
    """Close after the queued bytes are sent, without a reset destroying them.

    Closing a socket that still has unread input makes the kernel send a TCP reset, and the
    peer may then lose our last message (an ABORT, say) before reading it. So: send FIN after
    the queued bytes, keep reading until the peer closes too, and drop the connection after
    LINGER_SECONDS at the latest. The protocol must discard what arrives meanwhile.
    """
    if raw.is_closing():
        return
    if raw.can_write_eof():
        try:
            raw.write_eof()
        except OSError:  # the peer is gone already (ENOTCONN): nothing left to deliver
            raw.abort()
            return
        asyncio.get_running_loop().call_later(LINGER_SECONDS, raw.abort)
    else:
        raw.close()


class CoalescingLink:
    """A :class:`~cloverleaf.router.interfaces.TransportLink` that frames and batches payloads.

    Payloads queued during one event-loop pass are framed and handed to the socket in a single
    ``write``: a loopback ``send()`` costs about the same for 60 bytes as for 6 KB, so joining
    frames is what makes fan-out and pipelined RPC cheap (see docs/benchmarks.md).
    """

    kind = "unknown"

    def __init__(self, raw: asyncio.Transport, serializer: Serializer, peer: str) -> None:
        self.raw = raw
        self.serializer = serializer
        self.peer = peer
        self.peer_max_message_size = 0
        #: the client's certificate on TLS connections that asked for one (``ssl.SSLSocket.getpeercert()``)
        self.peer_certificate: dict[str, Any] | None = None
        #: the same certificate in DER form (for fingerprints)
        self.peer_certificate_der: bytes | None = None
        #: TLS channel binding data by type (see channel_binding())
        self.channel_binding: dict[str, bytes] = {}
        #: the WebSocket tracking cookie and the store remembering who it proved (cookie auth)
        self.cookie: str | None = None
        self.cookie_store: CookieStore | None = None
        self.session: RouterSession | None = None
        #: why the router aborted this link (the session's leave line says it), if it did
        self.abort_reason: str | None = None
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._flush_scheduled = False
        self._closed = False
        self._loop = asyncio.get_running_loop()

    def frame_header(self, payload: bytes) -> bytes:  # pragma: no cover - overridden
        raise NotImplementedError

    def write(self, payload: bytes) -> None:
        if self._closed:
            return
        self._pending.append(self.frame_header(payload))
        self._pending.append(payload)
        self._pending_bytes += len(payload)
        if self._pending_bytes >= FLUSH_AT_BYTES:
            # Joining beyond this gains nothing, and writing now keeps the backlog an honest
            # measure of what the peer has not taken (the router's queue policy reads it).
            self.flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._scheduled_flush)

    def flush(self) -> None:
        if not self._pending or self._closed:
            return
        data = self.join_pending(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        self.raw.write(data)

    def join_pending(self, pending: list[bytes]) -> bytes:
        """The bytes for one socket write from what :meth:`write` queued: each payload's
        :meth:`frame_header`, then the payload."""
        return b"".join(pending)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self.flush()

    def backlog(self) -> int:
        return self._pending_bytes + self.raw.get_write_buffer_size()

    def close(self, reason: str) -> None:
        if self._closed:
            return
        self.flush()
        self._closed = True
        self.close_transport()

    def close_transport(self) -> None:
        self.raw.close()

    def abort(self, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        self.abort_reason = reason
        self._pending.clear()
        self.raw.abort()

    @property
    def closed(self) -> bool:
        return self._closed

    def connection_lost(self) -> None:
        self._closed = True
        self._pending.clear()
        self.detach_session()

    def detach_session(self) -> None:
        """End the session now (its registrations, subscriptions and calls), whatever the socket does."""
        session, self.session = self.session, None
        if session is not None:
            session.connection_lost(self.abort_reason or "transport lost")
