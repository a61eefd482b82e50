"""Typed WAMP messages (spec: basic/messages and the Advanced Profile additions).

Every message class can ``parse`` the decoded list a serializer produced (validating arity, element
types and ID ranges, raising :class:`ProtocolError` on any breach) and ``marshal`` itself back into
the list a serializer encodes. URIs are only type-checked here: whether a URI is loose or strict is
a realm setting, so the router checks URI syntax itself and answers with ``invalid_uri``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import ProtocolError
from .ids import MAX_ID

Args = list[Any] | None
Kwargs = dict[str, Any] | None

# Predefined option/detail keys, and implementation-specific ones (spec: basic/messages,
# "Extensibility"). Unknown keys that match either form are ignored by the consumer.
_OPTION_KEY = re.compile(r"[a-z][a-z0-9_]{2,}|_[a-z0-9_]{3,}")
_checked_keys: dict[str, bool] = {}


def _fail(msg_name: str, what: str) -> ProtocolError:
    return ProtocolError(f"invalid {msg_name} message: {what}")


def integral_id(value: Any) -> Any:
    """An ID sent as a float with an integral value in [1, 2^53] read as that integer; anything
    else unchanged. JavaScript's CBOR and MessagePack encoders (cbor-x, msgpackr, used by wampy.js)
    write a Number of 2^32 or more as a float64, so every such ID a JS peer sends back (a session,
    subscription or registration ID) arrives as a float, exactly (docs/spec-notes.md)."""
    if type(value) is float and value.is_integer() and 1 <= value <= MAX_ID:
        return int(value)
    return value


def _check_id(value: Any, msg_name: str, what: str) -> int:
    if type(value) is not int:  # the common case skips the call: this runs for every message's IDs
        value = integral_id(value)
    if type(value) is not int or not 1 <= value <= MAX_ID:
        raise _fail(msg_name, f"{what} must be an integer in [1, 2^53], got {value!r:.60}")
    return value


def _check_dict(value: Any, msg_name: str, what: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise _fail(msg_name, f"{what} must be a dictionary, got {type(value).__name__}")
    for key in value:
        ok = _checked_keys.get(key) if type(key) is str else False
        if ok is None:
            ok = _OPTION_KEY.fullmatch(key) is not None
            if len(_checked_keys) < 4096:  # bounded memo of keys seen
                _checked_keys[key] = ok
        if not ok:
            raise _fail(msg_name, f"{what} key {key!r:.60} is not a valid WAMP option/detail key")
    return value


def _check_str(value: Any, msg_name: str, what: str) -> str:
    if type(value) is not str:
        raise _fail(msg_name, f"{what} must be a string, got {type(value).__name__}")
    return value


def _check_length(wmsg: list[Any], low: int, high: int, msg_name: str) -> None:
    if not low <= len(wmsg) <= high:
        expected = str(low) if low == high else f"{low} to {high}"
        raise _fail(msg_name, f"expected {expected} elements, got {len(wmsg)}")


def _payload(wmsg: list[Any], start: int, msg_name: str) -> tuple[Args, Kwargs]:
    args: Args = None
    kwargs: Kwargs = None
    if len(wmsg) > start:
        args = wmsg[start]
        if type(args) is not list:
            raise _fail(msg_name, f"Arguments must be a list, got {type(args).__name__}")
        if len(wmsg) > start + 1:
            kwargs = wmsg[start + 1]
            if type(kwargs) is not dict:
                raise _fail(msg_name, f"ArgumentsKw must be a dictionary, got {type(kwargs).__name__}")
            for key in kwargs:
                if type(key) is not str:
                    raise _fail(msg_name, "ArgumentsKw keys must be strings")
    return args, kwargs


def _append_payload(out: list[Any], args: Args, kwargs: Kwargs) -> list[Any]:
    if kwargs:
        out.append(args if args is not None else [])
        out.append(kwargs)
    elif args:
        out.append(args)
    return out


class Message:
    """Base of all WAMP messages."""

    __slots__ = ()
    MESSAGE_TYPE: ClassVar[int]
    NAME: ClassVar[str]

    @classmethod
    def parse(cls, wmsg: list[Any]) -> Message:  # pragma: no cover - overridden
        raise NotImplementedError

    def marshal(self) -> list[Any]:  # pragma: no cover - overridden
        raise NotImplementedError


@dataclass(slots=True)
class Hello(Message):
    MESSAGE_TYPE: ClassVar[int] = 1
    NAME: ClassVar[str] = "HELLO"
    realm: str
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, wmsg: list[Any]) -> Hello:
        _check_length(wmsg, 3, 3, cls.NAME)
        details = _check_dict(wmsg[2], cls.NAME, "Details")
        roles = details.get("roles")
        if type(roles) is not dict or not roles:
            raise _fail(cls.NAME, "Details.roles must be a non-empty dictionary")
        for role, features in roles.items():
            if role not in ("publisher", "subscriber", "caller", "callee"):
                raise _fail(cls.NAME, f"unknown client role {role!r:.40}")
            if type(features) is not dict:
                raise _fail(cls.NAME, f"Details.roles.{role} must be a dictionary")
        authmethods = details.get("authmethods")
        if authmethods is not None and (type(authmethods) is not list or any(type(m) is not str for m in authmethods)):
            raise _fail(cls.NAME, "Details.authmethods must be a list of strings")
        for key in ("authid", "authrole"):
            if key in details and details[key] is not None and type(details[key]) is not str:
                raise _fail(cls.NAME, f"Details.{key} must be a string")
        if "authextra" in details and details["authextra"] is not None and type(details["authextra"]) is not dict:
            raise _fail(cls.NAME, "Details.authextra must be a dictionary")
        return cls(_check_str(wmsg[1], cls.NAME, "Realm"), details)

    def marshal(self) -> list[Any]:
        return [1, self.realm, self.details]


@dataclass(slots=True)
class Welcome(Message):
    MESSAGE_TYPE: ClassVar[int] = 2
    NAME: ClassVar[str] = "WELCOME"
    session: int
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, wmsg: list[Any]) -> Welcome:
        _check_length(wmsg, 3, 3, cls.NAME)
        details = _check_dict(wmsg[2], cls.NAME, "Details")
        if type(details.get("roles")) is not dict:
            raise _fail(cls.NAME, "Details.roles must be a dictionary")
        return cls(_check_id(wmsg[1], cls.NAME, "Session"), details)

    def marshal(self) -> list[Any]:
        return [2, self.session, self.details]


@dataclass(slots=True)
class Abort(Message):
    MESSAGE_TYPE: ClassVar[int] = 3
    NAME: ClassVar[str] = "ABORT"
    details: dict[str, Any]
    reason: str

    args: Args = None
    kwargs: Kwargs = None

    @classmethod
    def parse(cls, wmsg: list[Any]) -> Abort:
        # Arguments and ArgumentsKw may carry more detail (spec: basic/uri_reference).
        _check_length(wmsg, 3, 5, cls.NAME)
        args, kwargs = _payload(wmsg, 3, cls.NAME)
        return cls(_check_dict(wmsg[1], cls.NAME, "Details"), _check_str(wmsg[2], cls.NAME, "Reason"), args, kwargs)

    def marshal(self) -> list[Any]:
        return _append_payload([3, self.details, self.reason], self.args, self.kwargs)


@dataclass(slots=True)
class Challenge(Message):
    MESSAGE_TYPE: ClassVar[int] = 4
    NAME: ClassVar[str] = "CHALLENGE"
    method: str
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, wmsg: list[Any]) -> Challenge:
        _check_length(wmsg, 3, 3, cls.NAME)
        return cls(_check_str(wmsg[1], cls.NAME, "AuthMethod"), _check_dict(wmsg[2], cls.NAME, "Extra"))

    def marshal(self) -> list[Any]:
        return [4, self.method, self.extra]


@dataclass(slots=True)
class Authenticate(Message):
    MESSAGE_TYPE: ClassVar[int] = 5
    NAME: ClassVar[str] = "AUTHENTICATE"
    signature: str
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, wmsg: list[Any]) -> Authenticate:
        _check_length(wmsg, 3, 3, cls.NAME)
        return cls(_check_str(wmsg[1], cls.NAME, "Signature"), _check_dict(wmsg[2], cls.NAME, "Extra"))

    def marshal(self) -> list[Any]:
        return [5, self.signature, self.extra]


@dataclass(slots=True)
class Goodbye(Message):
    MESSAGE_TYPE: ClassVar[int] = 6
    NAME: ClassVar[str] = "GOODBYE"
    details: dict[str, Any]
    reason: str

    args: Args = None
    kwargs: Kwargs = None

    @classmethod
    def parse(cls, wmsg: list[Any]) -> Goodbye:
        # Arguments and ArgumentsKw may carry more detail (spec: basic/uri_reference).
        _check_length(wmsg, 3, 5, cls.NAME)
        args, kwargs = _payload(wmsg, 3, cls.NAME)
        return cls(_check_dict(wmsg[1], cls.NAME, "Details"), _check_str(wmsg[2], cls.NAME, "Reason"), args, kwargs)

    def marshal(self) -> list[Any]:
        return _append_payload([6, self.details, self.reason], self.args, self.kwargs)


@dataclass(slots=True)
class Error(Message):
    MESSAGE_TYPE: ClassVar[int] = 8
    NAME: ClassVar[str] = "ERROR"
    request_type: int
    request: int
    details: dict[str, Any]
    error: str
    args: Args = None
    kwargs: Kwargs = None

    # Request types an ERROR may answer (spec: basic/messages, "ERROR").
    REQUEST_TYPES: ClassVar[frozenset[int]] = frozenset({16, 32, 34, 48, 64, 66, 68})

    @classmethod
    def parse(cls, wmsg: list[Any]) -> Error:
        _check_length(wmsg, 5, 7, cls.NAME)
        request_type = wmsg[1]
        if type(request_type) is not int or request_type not in cls.REQUEST_TYPES:
            raise _fail(cls.NAME, f"REQUEST.Type {request_type!r:.30} is not a request message type")
        args, kwargs = _payload(wmsg, 5, cls.NAME)
        return cls(
            request_type,
            _check_id(wmsg[2], cls.NAME, "Request"),
            _check_dict(wmsg[3], cls.NAME, "Details"),
            _check_str(wmsg[4], cls.NAME, "Error"),
            args,
            kwargs,
        )

    def marshal(self) -> list[Any]:
        return _append_payload([8, self.request_type, self.request, self.details, self.error], self.args, self.kwargs)


@dataclass(slots=True)
class Publish(Message):
    MESSAGE_TYPE: ClassVar[int] = 16
    NAME: ClassVar[str] = "PUBLISH"
    request: int
    options: dict[str, Any]
    topic: str
    args: Args = None
    kwargs: Kwargs = None

    @classmethod
    def parse(cls, wmsg: list[Any]) -> Publish:
        _check_length(wmsg, 4, 6, cls.NAME)
        args, kwargs = _payload(wmsg, 4, cls.NAME)
        return cls(
            _check_id(wmsg[1], cls.NAME, "Request"),
            _check_dict(wmsg[2], cls.NAME, "Options"),
            _check_str(wmsg[3], cls.NAME, "Topic"),
            args,
            kwargs,
        )

    def marshal(self) -> list[Any]:
        return _append_payload([16, self.request, self.options, self.topic], self.args, self.kwargs)


@dataclass(slots=True)
class Published(Message):
    MESSAGE_TYPE: ClassVar[int] = 17
    NAME: ClassVar[str] = "PUBLISHED"
    request: int
    publication: int

    @classmethod
    def parse(cls, wmsg: list[Any]) -> Published:
        _check_length(wmsg, 3, 3, cls.NAME)
        return cls(_check_id(wmsg[1], cls.NAME, "Request"), _check_id(wmsg[2], cls.NAME, "Publication"))

    def marshal(self) -> list[Any]:
        return [17, self.request, self.publication]


@dataclass(slots=True)
class Subscribe(Message):
    MESSAGE_TYPE: ClassVar[int] = 32
    NAME: ClassVar[str] = "SUBSCRIBE"
    request: int
    options: dict[str, Any]
    topic: str

    @classmethod
    def parse(cls, wmsg: list[Any]) -> Subscribe:
        _check_length(wmsg, 4, 4, cls.NAME)
        return cls(
            _check_id(wmsg[1], cls.NAME, "Request"),
            _check_dict(wmsg[2], cls.NAME, "Options"),
            _check_str(wmsg[3], cls.NAME, "Topic"),
        )

    def marshal(self) -> list[Any]:
        return [32, self.request, self.options, self.topic]


@dataclass(slots=True)
class Subscribed(Message):
    MESSAGE_TYPE: ClassVar[int] = 33
    NAME: ClassVar[str] = "SUBSCRIBED"
    request: int
    subscription: int

    @classmethod
    def parse(cls, wmsg: list[Any]) -> Subscribed:
        _check_length(wmsg, 3, 3, cls.NAME)
        return cls(_check_id(wmsg[1], cls.NAME, "Request"), _check_id(wmsg[2], cls.NAME, "Subscription"))

    def marshal(self) -> list[Any]:
        return [33, self.request, self.subscription]


@dataclass(slots=True)
class Unsubscribe(Message):
    MESSAGE_TYPE: ClassVar[int] = 34
    NAME: ClassVar[str] = "UNSUBSCRIBE"
    request: int
    subscription: int

    @classmethod
    def parse(cls, wmsg: list[Any]) -> Unsubscribe:
        _check_length(wmsg, 3, 3, cls.NAME)
        return cls(_check_id(wmsg[1], cls.NAME, "Request"), _check_id(wmsg[2], cls.NAME, "Subscription"))

    def marshal(self) -> list[Any]:
        return [34, self.request, self.subscription]


@dataclass(slots=True)
class Unsubscribed(Message):
    MESSAGE_TYPE: ClassVar[int] = 35
    NAME: ClassVar[str] = "UNSUBSCRIBED"
    request: int
    details: dict[str, Any] | None = None

    @classmethod
    def parse(cls, wmsg: list[Any]) -> Unsubscribed:
        _check_length(wmsg, 2, 3, cls.NAME)
        details = _check_dict(wmsg[2], cls.NAME, "Details") if len(wmsg) == 3 else None
        # A revocation (Advanced Profile) carries request 0.
        request = wmsg[1]
        if not (type(request) is int and request == 0 and details):
            request = _check_id(request, cls.NAME, "Request")
        return cls(request, details)

    def marshal(self) -> list[Any]:
        return [35, self.request, self.details] if self.details else [35, self.request]


@dataclass(slots=True)
class Event(Message):
    MESSAGE_TYPE: ClassVar[int] = 36
    NAME: ClassVar[str] = "EVENT"
    subscription: int
    publication: int
    details: dict[str, Any]
    args: Args = None
    kwargs: Kwargs = None

    @classmethod
    def parse(cls, wmsg: list[Any]) -> Event:
        _check_length(wmsg, 4, 6, cls.NAME)
        args, kwargs = _payload(wmsg, 4, cls.NAME)
        return cls(
            _check_id(wmsg[1], cls.NAME, "Subscription"),
            _check_id(wmsg[2], cls.NAME, "Publication"),
            _check_dict(wmsg[3], cls.NAME, "Details"),
            args,
            kwargs,
        )

    def marshal(self) -> list[Any]:
        return _append_payload([36, self.subscription, self.publication, self.details], self.args, self.kwargs)


@dataclass(slots=True)
class Call(Message):
    MESSAGE_TYPE: ClassVar[int] = 48
    NAME: ClassVar[str] = "CALL"
    request: int
    options: dict[str, Any]
    procedure: str
    args: Args = None
    kwargs: Kwargs = None

    @classmethod
    def parse(cls, wmsg: list[Any]) -> Call:
        _check_length(wmsg, 4, 6, cls.NAME)
        args, kwargs = _payload(wmsg, 4, cls.NAME)
        return cls(
            _check_id(wmsg[1], cls.NAME, "Request"),
            _check_dict(wmsg[2], cls.NAME, "Options"),
            _check_str(wmsg[3], cls.NAME, "Procedure"),
            args,
            kwargs,
        )

    def marshal(self) -> list[Any]:
        return _append_payload([48, self.request, self.options, self.procedure], self.args, self.kwargs)


@dataclass(slots=True)
class Cancel(Message):
    MESSAGE_TYPE: ClassVar[int] = 49
    NAME: ClassVar[str] = "CANCEL"
    request: int
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, wmsg: list[Any]) -> Cancel:
        _check_length(wmsg, 3, 3, cls.NAME)
        return cls(_check_id(wmsg[1], cls.NAME, "Request"), _check_dict(wmsg[2], cls.NAME, "Options"))

    def marshal(self) -> list[Any]:
        return [49, self.request, self.options]


@dataclass(slots=True)
class Result(Message):
    MESSAGE_TYPE: ClassVar[int] = 50
    NAME: ClassVar[str] = "RESULT"
    request: int
    details: dict[str, Any]
    args: Args = None
    kwargs: Kwargs = None

    @classmethod
    def parse(cls, wmsg: list[Any]) -> Result:
        _check_length(wmsg, 3, 5, cls.NAME)
        args, kwargs = _payload(wmsg, 3, cls.NAME)
        return cls(_check_id(wmsg[1], cls.NAME, "Request"), _check_dict(wmsg[2], cls.NAME, "Details"), args, kwargs)

    def marshal(self) -> list[Any]:
        return _append_payload([50, self.request, self.details], self.args, self.kwargs)


@dataclass(slots=True)
class Register(Message):
    MESSAGE_TYPE: ClassVar[int] = 64
    NAME: ClassVar[str] = "REGISTER"
    request: int
    options: dict[str, Any]
    procedure: str

    @classmethod
    def parse(cls, wmsg: list[Any]) -> Register:
        _check_length(wmsg, 4, 4, cls.NAME)
        return cls(
            _check_id(wmsg[1], cls.NAME, "Request"),
            _check_dict(wmsg[2], cls.NAME, "Options"),
            _check_str(wmsg[3], cls.NAME, "Procedure"),
        )

    def marshal(self) -> list[Any]:
        return [64, self.request, self.options, self.procedure]


@dataclass(slots=True)
class Registered(Message):
    MESSAGE_TYPE: ClassVar[int] = 65
    NAME: ClassVar[str] = "REGISTERED"
    request: int
    registration: int

    @classmethod
    def parse(cls, wmsg: list[Any]) -> Registered:
        _check_length(wmsg, 3, 3, cls.NAME)
        return cls(_check_id(wmsg[1], cls.NAME, "Request"), _check_id(wmsg[2], cls.NAME, "Registration"))

    def marshal(self) -> list[Any]:
        return [65, self.request, self.registration]


@dataclass(slots=True)
class Unregister(Message):
    MESSAGE_TYPE: ClassVar[int] = 66
    NAME: ClassVar[str] = "UNREGISTER"
    request: int
    registration: int

    @classmethod
    def parse(cls, wmsg: list[Any]) -> Unregister:
        _check_length(wmsg, 3, 3, cls.NAME)
        return cls(_check_id(wmsg[1], cls.NAME, "Request"), _check_id(wmsg[2], cls.NAME, "Registration"))

    def marshal(self) -> list[Any]:
        return [66, self.request, self.registration]


@dataclass(slots=True)
class Unregistered(Message):
    MESSAGE_TYPE: ClassVar[int] = 67
    NAME: ClassVar[str] = "UNREGISTERED"
    request: int
    details: dict[str, Any] | None = None

    @classmethod
    def parse(cls, wmsg: list[Any]) -> Unregistered:
        _check_length(wmsg, 2, 3, cls.NAME)
        details = _check_dict(wmsg[2], cls.NAME, "Details") if len(wmsg) == 3 else None
        request = wmsg[1]
        if not (type(request) is int and request == 0 and details):
            request = _check_id(request, cls.NAME, "Request")
        return cls(request, details)

    def marshal(self) -> list[Any]:
        return [67, self.request, self.details] if self.details else [67, self.request]


@dataclass(slots=True)
class Invocation(Message):
    MESSAGE_TYPE: ClassVar[int] = 68
    NAME: ClassVar[str] = "INVOCATION"
    request: int
    registration: int
    details: dict[str, Any]
    args: Args = None
    kwargs: Kwargs = None

    @classmethod
    def parse(cls, wmsg: list[Any]) -> Invocation:
        _check_length(wmsg, 4, 6, cls.NAME)
        args, kwargs = _payload(wmsg, 4, cls.NAME)
        return cls(
            _check_id(wmsg[1], cls.NAME, "Request"),
            _check_id(wmsg[2], cls.NAME, "Registration"),
            _check_dict(wmsg[3], cls.NAME, "Details"),
            args,
            kwargs,
        )

    def marshal(self) -> list[Any]:
        return _append_payload([68, self.request, self.registration, self.details], self.args, self.kwargs)


@dataclass(slots=True)
class Interrupt(Message):
    MESSAGE_TYPE: ClassVar[int] = 69
    NAME: ClassVar[str] = "INTERRUPT"
    request: int
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, wmsg: list[Any]) -> Interrupt:
        _check_length(wmsg, 3, 3, cls.NAME)
        return cls(_check_id(wmsg[1], cls.NAME, "Request"), _check_dict(wmsg[2], cls.NAME, "Options"))

    def marshal(self) -> list[Any]:
        return [69, self.request, self.options]


@dataclass(slots=True)
class Yield(Message):
    MESSAGE_TYPE: ClassVar[int] = 70
    NAME: ClassVar[str] = "YIELD"
    request: int
    options: dict[str, Any]
    args: Args = None
    kwargs: Kwargs = None

    @classmethod
    def parse(cls, wmsg: list[Any]) -> Yield:
        _check_length(wmsg, 3, 5, cls.NAME)
        args, kwargs = _payload(wmsg, 3, cls.NAME)
        return cls(_check_id(wmsg[1], cls.NAME, "Request"), _check_dict(wmsg[2], cls.NAME, "Options"), args, kwargs)

    def marshal(self) -> list[Any]:
        return _append_payload([70, self.request, self.options], self.args, self.kwargs)


MESSAGE_CLASSES: dict[int, type[Message]] = {
    cls.MESSAGE_TYPE: cls
    for cls in (
        Hello,
        Welcome,
        Abort,
        Challenge,
        Authenticate,
        Goodbye,
        Error,
        Publish,
        Published,
        Subscribe,
        Subscribed,
        Unsubscribe,
        Unsubscribed,
        Event,
        Call,
        Cancel,
        Result,
        Register,
        Registered,
        Unregister,
        Unregistered,
        Invocation,
        Interrupt,
        Yield,
    )
}


def parse_message(wmsg: Any) -> Message:
    """Turn a decoded payload (a list whose first element is the message type) into a message.

    Raises :class:`ProtocolError` for anything that is not a well-formed WAMP message.
    """
    if type(wmsg) is not list or not wmsg:
        raise ProtocolError("a WAMP message must be a non-empty list")
    code = wmsg[0]
    cls = MESSAGE_CLASSES.get(code) if type(code) is int else None
    if cls is None:
        raise ProtocolError(f"unknown WAMP message type {code!r:.30}")
    return cls.parse(wmsg)
