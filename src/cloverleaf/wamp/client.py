"""The client-side WAMP session state machine (spec: basic/session-lifecycle), sans-I/O.

:class:`ClientSessionCore` is the mirror of :class:`~cloverleaf.wamp.session.ServerSessionCore`:
it hands out the client's sequential request IDs, encodes outgoing messages, and decodes and checks
every payload from the router against the current phase. Which request an answer belongs to is the
asyncio layer's business (it owns the futures); the core guarantees shape and order.
"""

from __future__ import annotations

from .errors import ProtocolError
from .ids import SequentialIds
from .messages import (
    Abort,
    Challenge,
    Error,
    Event,
    Goodbye,
    Interrupt,
    Invocation,
    Message,
    Published,
    Registered,
    Result,
    Subscribed,
    Unregistered,
    Unsubscribed,
    Welcome,
)
from .serializers import Serializer
from .session import Phase, SessionCore

# Messages a router may send once the session is established (spec: the router roles).
_ESTABLISHED_FROM_ROUTER = frozenset(
    cls.MESSAGE_TYPE
    for cls in (
        Goodbye, Abort, Error, Published, Subscribed, Unsubscribed, Event, Result, Registered,
        Unregistered, Invocation, Interrupt,
    )
)  # fmt: skip


class ClientSessionCore(SessionCore):
    """Request IDs, encoding, decoding and ordering for one client-side session."""

    __slots__ = ("request_ids",)

    def __init__(self, serializer: Serializer) -> None:
        self.serializer = serializer
        self.phase = Phase.WAITING_HELLO
        self.request_ids = SequentialIds()

    def next_request(self) -> int:
        """The next session-scope request ID (1, 2, 3, ... as the spec requires)."""
        return self.request_ids.next()

    def encode(self, message: Message) -> bytes:
        return self.serializer.encode(message.marshal())

    def hello_sent(self) -> None:
        """After HELLO the client waits for WELCOME, CHALLENGE or ABORT."""
        self.phase = Phase.AUTHENTICATING

    def goodbye_sent(self) -> None:
        if self.phase is Phase.ESTABLISHED:
            self.phase = Phase.CLOSING

    def _check_order(self, message: Message) -> Message | None:
        phase = self.phase
        code = message.MESSAGE_TYPE
        if phase is Phase.ESTABLISHED:
            if code not in _ESTABLISHED_FROM_ROUTER:
                raise ProtocolError(f"{message.NAME} is not allowed from a router in an established session")
            if code == Goodbye.MESSAGE_TYPE or code == Abort.MESSAGE_TYPE:
                self.phase = Phase.CLOSED
            return message
        if phase is Phase.AUTHENTICATING:
            if code == Welcome.MESSAGE_TYPE:
                self.phase = Phase.ESTABLISHED
                return message
            if code == Challenge.MESSAGE_TYPE:
                return message
            if code == Abort.MESSAGE_TYPE:
                self.phase = Phase.CLOSED
                return message
            raise ProtocolError(f"expected WELCOME, CHALLENGE or ABORT, got {message.NAME}")
        if phase is Phase.CLOSING:
            if code == Goodbye.MESSAGE_TYPE or code == Abort.MESSAGE_TYPE:
                self.phase = Phase.CLOSED
                return message
            return None  # in flight before the router saw our GOODBYE
        if phase is Phase.WAITING_HELLO:
            raise ProtocolError(f"{message.NAME} before HELLO was sent")
        return None
