"""Error and close-reason URIs of the WAMP specification, and the core's exception types."""

from __future__ import annotations

from typing import Any

# Close / abort reasons (GOODBYE and ABORT).
CLOSE_NORMAL = "wamp.close.normal"
CLOSE_SYSTEM_SHUTDOWN = "wamp.close.system_shutdown"
CLOSE_CLOSE_REALM = "wamp.close.close_realm"
CLOSE_GOODBYE_AND_OUT = "wamp.close.goodbye_and_out"
CLOSE_KILLED = "wamp.close.killed"

# Errors (ERROR messages and ABORT reasons).
INVALID_URI = "wamp.error.invalid_uri"
NO_SUCH_PROCEDURE = "wamp.error.no_such_procedure"
PROCEDURE_ALREADY_EXISTS = "wamp.error.procedure_already_exists"
#: a shared registration exists under another invocation policy (Autobahn, Crossbar, Bondy, WampSharp)
PROCEDURE_EXISTS_WITH_DIFFERENT_INVOCATION_POLICY = "wamp.error.procedure_exists_with_different_invocation_policy"
NO_SUCH_REGISTRATION = "wamp.error.no_such_registration"
NO_SUCH_SUBSCRIPTION = "wamp.error.no_such_subscription"
INVALID_ARGUMENT = "wamp.error.invalid_argument"
PROTOCOL_VIOLATION = "wamp.error.protocol_violation"
NOT_AUTHORIZED = "wamp.error.not_authorized"
AUTHORIZATION_FAILED = "wamp.error.authorization_failed"
AUTHENTICATION_FAILED = "wamp.error.authentication_failed"
NO_AUTH_METHOD = "wamp.error.no_auth_method"
NO_SUCH_REALM = "wamp.error.no_such_realm"
NO_SUCH_ROLE = "wamp.error.no_such_role"
NO_SUCH_PRINCIPAL = "wamp.error.no_such_principal"
NO_SUCH_SESSION = "wamp.error.no_such_session"
CANCELED = "wamp.error.canceled"
TIMEOUT = "wamp.error.timeout"
NO_ELIGIBLE_CALLEE = "wamp.error.no_eligible_callee"
OPTION_NOT_ALLOWED = "wamp.error.option_not_allowed"
FEATURE_NOT_SUPPORTED = "wamp.error.feature_not_supported"
PAYLOAD_SIZE_EXCEEDED = "wamp.error.payload_size_exceeded"
#: ABORT reason when handling a message failed inside the router (a bug of ours, not the peer's);
#: the spec has no URI for it
INTERNAL_ERROR = "cloverleaf.error.internal_error"


class ProtocolError(Exception):
    """The peer broke the WAMP protocol; the session must be aborted with ``protocol_violation``.

    ``message`` is a human-readable explanation that is safe to send back to the offending peer.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SerializationError(ProtocolError):
    """A payload could not be decoded (or a value could not be encoded) by the chosen serializer."""


class UnroutableValueError(ProtocolError):
    """A well-formed request whose values fall outside the data model (:mod:`cloverleaf.wamp.datamodel`).

    Not a violation that ends the session: the router refuses that one CALL, PUBLISH, YIELD or
    ERROR (spec: "payload validation", ``wamp.error.invalid_argument``). ``refused`` is the
    parsed message (its request ID, options) and ``message`` says what was refused and why.
    """

    def __init__(self, message: str, refused: Any) -> None:
        super().__init__(message)
        self.refused = refused


class UnencodableError(Exception):
    """A value cannot be represented in the chosen serializer (e.g. a CBOR tag bound for JSON).

    Not a protocol violation of the sender: the router answers or skips that one recipient.
    """


class ApplicationError(Exception):
    """An error carrying a WAMP error URI and an optional payload, as sent in ERROR messages.

    ``args`` are the error's positional payload (``Arguments``) and ``kwargs`` its keyword payload
    (``ArgumentsKw``), as in Autobahn, so ``raise ApplicationError("com.example.too_big", 11,
    limit=10)`` in a procedure reaches the caller with the same URI, args and kwargs.
    """

    def __init__(self, error: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args)
        self.error = error
        self.kwargs: dict[str, Any] = kwargs

    def __str__(self) -> str:
        parts = [self.error]
        if self.args:
            parts.append(", ".join(repr(a) for a in self.args))
        if self.kwargs:
            parts.append(", ".join(f"{k}={v!r}" for k, v in self.kwargs.items()))
        return ": ".join(parts)
