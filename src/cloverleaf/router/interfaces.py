"""The seams between the router and what plugs into it: transports and routing back ends."""

from __future__ import annotations

from typing import Protocol

from ..wamp.serializers import Serializer


class TransportLink(Protocol):
    """What the router needs of one client connection; implemented by each transport adapter.

    The router hands it ready WAMP payloads (already serialized with ``serializer``); the link
    frames them and writes them, joining everything queued in one event-loop pass into one write.
    """

    serializer: Serializer
    #: a description of the remote end for logs, e.g. "tcp:127.0.0.1:50312"
    peer: str
    #: the transport kind for session details, e.g. "websocket" or "rawsocket"
    kind: str
    #: the largest payload the peer accepts (0 when it did not say)
    peer_max_message_size: int

    def write(self, payload: bytes) -> None:
        """Queue one payload for sending; never blocks."""

    def backlog(self) -> int:
        """Bytes queued for this peer and not yet accepted by the kernel."""

    def close(self, reason: str) -> None:
        """Close the connection after writing what is already queued."""

    def abort(self, reason: str) -> None:
        """Drop the connection at once, discarding anything queued."""
