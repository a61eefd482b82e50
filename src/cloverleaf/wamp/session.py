"""The router-side WAMP session state machine (spec: basic/session-lifecycle), sans-I/O.

:class:`ServerSessionCore` decodes each received payload with the session's serializer, validates
it into a typed message and checks it is allowed in the current phase. It raises
:class:`ProtocolError` for anything out of order, so the router can ABORT that one session with
``wamp.error.protocol_violation``. The router reports what it sends (WELCOME, CHALLENGE, GOODBYE,
ABORT) through the ``sent_*`` methods so the phase always matches the conversation on the wire.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from .datamodel import TOO_DEEP, find_unportable
from .errors import ProtocolError, UnroutableValueError
from .ids import MAX_ID
from .messages import (
    Abort,
    Authenticate,
    Call,
    Cancel,
    Error,
    Goodbye,
    Hello,
    Invocation,
    Message,
    Publish,
    Register,
    Subscribe,
    Unregister,
    Unsubscribe,
    Yield,
    parse_message,
)
from .serializers import UNDEFINED_OPTION_VALUES, Serializer


class Phase(Enum):
    WAITING_HELLO = "waiting_hello"
    #: HELLO or AUTHENTICATE is being decided (e.g. by a dynamic authenticator): only ABORT may come
    JOINING = "joining"
    AUTHENTICATING = "authenticating"
    ESTABLISHED = "established"
    CLOSING = "closing"  # we sent GOODBYE and wait for the peer's reply
    CLOSED = "closed"


# Messages a client may send once the session is established (spec: the client roles).
_ESTABLISHED_FROM_CLIENT = frozenset(
    cls.MESSAGE_TYPE
    for cls in (Goodbye, Abort, Error, Publish, Subscribe, Unsubscribe, Call, Cancel, Register, Unregister, Yield)
)
# Messages whose values the router refuses with an ERROR (not an ABORT) when they fall outside the
# data model (spec: basic/bp_uris, "payload validation" answered with wamp.error.invalid_argument).
_REFUSABLE = frozenset(cls.MESSAGE_TYPE for cls in (Publish, Call, Yield, Error))
# Where a client's message holds its Options (or Details) dict: [TYPE, Request, Options, ...], and
# [ERROR, REQUEST.Type, Request, Details, ...].
_OPTIONS_INDEX = {cls.MESSAGE_TYPE: 2 for cls in (Publish, Subscribe, Call, Cancel, Register, Yield)} | {
    Error.MESSAGE_TYPE: 3
}
# Messages that open a new request and so carry the next session-scope request ID.
_NEW_REQUESTS = frozenset(cls.MESSAGE_TYPE for cls in (Publish, Subscribe, Unsubscribe, Call, Register, Unregister))


class SessionCore:
    """What both ends of a session do with a received payload: decode it, validate it into a typed
    message, and check it against the phase (:meth:`_check_order`, one per side)."""

    __slots__ = ("phase", "serializer")
    serializer: Serializer
    phase: Phase

    def receive(self, payload: bytes | bytearray | memoryview) -> Message | None:
        """Decode and check one payload; return the message, or None when it must be ignored.

        Raises :class:`ProtocolError` if the payload is not a valid WAMP message or the message
        is not allowed now. After a violation the session is CLOSED (the caller should ABORT with
        ``wamp.error.protocol_violation``).
        """
        try:
            wmsg, problem = self._decode(payload)
            if problem is not None:
                return self._unportable(wmsg, problem)
            return self._check_order(parse_message(wmsg))
        except UnroutableValueError:
            raise  # that one request is refused; the session goes on
        except ProtocolError:
            self.phase = Phase.CLOSED
            raise

    def _decode(self, payload: bytes | bytearray | memoryview) -> tuple[Any, str | None]:
        """The decoded message, and what in it must not be routed (a client keeps all it receives)."""
        return self.serializer.decode(payload), None

    def _unportable(self, wmsg: Any, problem: str) -> Message | None:  # pragma: no cover - router side only
        raise NotImplementedError

    def _check_order(self, message: Message) -> Message | None:  # pragma: no cover - each side has its own
        raise NotImplementedError


class ServerSessionCore(SessionCore):
    """Decoding, validation and ordering for one router-side session."""

    __slots__ = ("last_request", "reused_request", "sequential_requests")

    def __init__(self, serializer: Serializer, sequential_requests: bool = True) -> None:
        self.serializer = serializer
        self.phase = Phase.WAITING_HELLO
        #: enforce the spec's rule that a client's request IDs go 1, 2, 3, ... (basic/building_blocks,
        #: "Protocol Errors"); off, any ID in [1, 2^53] is accepted as Crossbar does
        self.sequential_requests = sequential_requests
        self.last_request = 0
        #: the CALL just received reused an earlier request ID (only a progressive call may)
        self.reused_request = False

    def _decode(self, payload: bytes | bytearray | memoryview) -> tuple[Any, str | None]:
        return self.serializer.decode_routable(payload)

    def _unportable(self, wmsg: Any, problem: str) -> Message | None:
        """A message holding values outside the data model: raise :class:`UnroutableValueError`
        for a request the router can refuse alone, :class:`ProtocolError` for anything else."""
        if problem == TOO_DEEP:
            # not parsed: describing a value this deep (in an error text, say) could exhaust the stack
            raise ProtocolError(f"the message holds {problem}")
        if self._drop_undefined_options(wmsg):
            remaining = find_unportable(wmsg)
            if remaining is None:
                return self._check_order(parse_message(wmsg))
            problem = remaining
        message = self._check_order(parse_message(wmsg))
        if message is None:
            return None
        if message.MESSAGE_TYPE not in _REFUSABLE:
            raise ProtocolError(f"{message.NAME} holds {problem}, which the router cannot carry")
        raise UnroutableValueError(
            f"{message.NAME} refused: it holds {problem}, which not every client can receive", message
        )

    @staticmethod
    def _drop_undefined_options(wmsg: Any) -> bool:
        """Remove the options whose value is "undefined" (CBOR's simple value 23, msgpackr's
        extension for it); say whether there were any. wampy.js with CBOR or MessagePack sends
        ``match`` and ``get_retained`` as undefined in every SUBSCRIBE that does not set them:
        an option left out, as JSON.stringify drops it (docs/spec-notes.md)."""
        if type(wmsg) is not list or not wmsg:
            return False
        index = _OPTIONS_INDEX.get(wmsg[0]) if type(wmsg[0]) is int else None
        if index is None or len(wmsg) <= index or type(wmsg[index]) is not dict:
            return False
        options = wmsg[index]
        undefined = [key for key, value in options.items() if any(value is u for u in UNDEFINED_OPTION_VALUES)]
        for key in undefined:
            del options[key]
        return bool(undefined)

    def _check_order(self, message: Message) -> Message | None:
        phase = self.phase
        code = message.MESSAGE_TYPE
        if phase is Phase.ESTABLISHED:
            if code not in _ESTABLISHED_FROM_CLIENT:
                raise ProtocolError(f"{message.NAME} is not allowed from a client in an established session")
            if code == Error.MESSAGE_TYPE and message.request_type != Invocation.MESSAGE_TYPE:  # type: ignore[attr-defined]
                raise ProtocolError("a client may only send ERROR in reply to an INVOCATION")
            if code in _NEW_REQUESTS:
                self.reused_request = False
                request: int = message.request  # type: ignore[attr-defined]
                if self.sequential_requests:
                    expected = self.last_request + 1 if self.last_request < MAX_ID else 1
                    if request != expected:
                        # A progressive call's later CALLs reuse its ID (spec: advanced/
                        # rpc_progressive_call_invocations); the dealer checks the call is pending.
                        if code == Call.MESSAGE_TYPE and request <= self.last_request:
                            self.reused_request = True
                            return message
                        raise ProtocolError(
                            f"{message.NAME} request ID {request} is not the next in sequence (expected {expected})"
                        )
                self.last_request = request
            elif code == Goodbye.MESSAGE_TYPE or code == Abort.MESSAGE_TYPE:
                self.phase = Phase.CLOSED
            return message
        if phase is Phase.WAITING_HELLO:
            if code == Hello.MESSAGE_TYPE:
                return message
            if code == Abort.MESSAGE_TYPE:
                self.phase = Phase.CLOSED
                return message
            raise ProtocolError(f"expected HELLO, got {message.NAME}")
        if phase is Phase.JOINING:
            if code == Abort.MESSAGE_TYPE:
                self.phase = Phase.CLOSED
                return message
            raise ProtocolError(f"{message.NAME} while the router is still deciding on the join")
        if phase is Phase.AUTHENTICATING:
            if code == Authenticate.MESSAGE_TYPE:
                self.phase = Phase.JOINING
                return message
            if code == Abort.MESSAGE_TYPE:
                self.phase = Phase.CLOSED
                return message
            raise ProtocolError(f"expected AUTHENTICATE, got {message.NAME}")
        if phase is Phase.CLOSING:
            # After our GOODBYE only the peer's GOODBYE (or an ABORT) matters; anything else
            # still in flight is dropped (spec: basic/session-lifecycle, "GOODBYE").
            if code == Goodbye.MESSAGE_TYPE or code == Abort.MESSAGE_TYPE:
                self.phase = Phase.CLOSED
                return message
            return None
        return None  # CLOSED: nothing more is processed

    def joining(self) -> None:
        """The router is deciding on HELLO/AUTHENTICATE and will answer later."""
        if self.phase is not Phase.CLOSED:
            self.phase = Phase.JOINING

    def sent_challenge(self) -> None:
        self.phase = Phase.AUTHENTICATING

    def sent_welcome(self) -> None:
        self.phase = Phase.ESTABLISHED

    def sent_goodbye(self) -> None:
        """We initiated closing; wait for the peer's GOODBYE."""
        if self.phase is Phase.ESTABLISHED:
            self.phase = Phase.CLOSING

    def sent_abort(self) -> None:
        self.phase = Phase.CLOSED

    def replied_goodbye(self) -> None:
        self.phase = Phase.CLOSED
