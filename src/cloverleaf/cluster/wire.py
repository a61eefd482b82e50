"""What the nodes of a cluster send each other: one MessagePack list per NATS message.

Pure: no I/O, no clocks. Every message is ``[kind, field, field, ...]``: a dataclass registered
with :func:`message` names its kind, and its fields, in order, are the list's elements. MessagePack
carries every value of the router's data model both ways unchanged (bytes included), and a message
is encoded once whatever the number of recipients on the receiving node (that node encodes once per
serializer of its own sessions).

A node drops (and counts) a message it cannot decode; one of a kind it does not know decodes to
None, so nodes of a newer version can add kinds without breaking older ones.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

import msgpack


class WireError(ValueError):
    """A node-to-node message that cannot be read."""


class WireMessage(Protocol):
    KIND: ClassVar[int]

    def check(self) -> None:
        """Raise TypeError or ValueError when a field has the wrong shape."""


_KINDS: dict[int, type[Any]] = {}
_FIELDS: dict[type[Any], tuple[str, ...]] = {}
M = TypeVar("M")


def message(kind: int) -> Any:
    """Register a dataclass as the message of ``kind`` (each kind once)."""

    def register(cls: type[M]) -> type[M]:
        if kind in _KINDS:
            raise ValueError(f"message kind {kind} is taken by {_KINDS[kind].__name__}")
        cls.KIND = kind  # type: ignore[attr-defined]
        _KINDS[kind] = cls
        _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
        return cls

    return register


_packer = msgpack.Packer(use_bin_type=True, autoreset=True)


def encode(value: Any) -> bytes:
    """The bytes of one node-to-node message (an instance of a registered dataclass)."""
    cls = type(value)
    fields = _FIELDS.get(cls)
    if fields is None:
        raise TypeError(f"{cls.__name__} is not a registered node-to-node message")
    return _packer.pack([cls.KIND, *(getattr(value, name) for name in fields)])  # type: ignore[no-any-return]


def array_header(length: int) -> bytes:
    """The MessagePack header of an array of ``length`` elements (the elements follow, encoded)."""
    if length < 16:
        return bytes((0x90 | length,))
    if length < 0x10000:
        return b"\xdc" + length.to_bytes(2, "big")
    return b"\xdd" + length.to_bytes(4, "big")


def encode_with_tail(kind: int, fields: tuple[Any, ...], tail: bytes) -> bytes:
    """The bytes of ``[kind, *fields, <tail>]`` where ``tail`` is one value already encoded in
    MessagePack (a WAMP message encoded for another node is carried as it is: no second encoding,
    and the receiver decodes the whole in one pass)."""
    packed: bytes = _packer.pack(kind) + b"".join(_packer.pack(f) for f in fields)
    return array_header(len(fields) + 2) + packed + tail


def encode_batch(payloads: list[bytes]) -> bytes:
    """One :class:`Batch` of messages already encoded with :func:`encode` (kept in order)."""
    head: bytes = _BATCH_HEAD
    return head + array_header(len(payloads)) + b"".join(payloads)


def decode(data: bytes) -> Any:
    """The message in ``data``; None for a kind this node does not know. Raises :class:`WireError`
    for bytes that are not a node-to-node message."""
    try:
        value = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise WireError(f"not a MessagePack message: {exc}") from None
    return from_value(value)


def from_value(value: Any) -> Any:
    """The message a decoded ``[kind, field, ...]`` list is (as :func:`decode`)."""
    if type(value) is not list or not value or type(value[0]) is not int:
        raise WireError("a node-to-node message is a list starting with its kind")
    cls = _KINDS.get(value[0])
    if cls is None:
        return None
    try:
        decoded = cls(*value[1:])
        decoded.check()
    except (ValueError, TypeError) as exc:
        raise WireError(f"malformed {cls.__name__}: {exc}") from None
    return decoded


def is_str(value: Any) -> bool:
    return type(value) is str


def is_int(value: Any) -> bool:
    return type(value) is int


def require(condition: bool, what: str) -> None:
    """For ``check()`` methods: raise TypeError saying ``what`` was expected."""
    if not condition:
        raise TypeError(f"expected {what}")


def optional_list(value: Any) -> bool:
    return value is None or type(value) is list


def optional_dict(value: Any) -> bool:
    return value is None or type(value) is dict


# -- membership -----------------------------------------------------------------------------------


@message(1)
@dataclass(slots=True)
class Heartbeat:
    """A node is alive: sent on the cluster's heartbeat subject every ``heartbeat_interval``."""

    KIND: ClassVar[int]
    incarnation: str
    node: str
    #: counts up from 1 within one incarnation (a gap says heartbeats were lost)
    sequence: int

    def check(self) -> None:
        require(is_str(self.incarnation) and is_str(self.node) and is_int(self.sequence), "str, str, int")


@message(3)
@dataclass(slots=True)
class NodeLeaving:
    """A node stops cleanly: the others drop its state at once instead of after the failure timeout."""

    KIND: ClassVar[int]
    incarnation: str
    node: str

    def check(self) -> None:
        require(is_str(self.incarnation) and is_str(self.node), "str, str")


@message(4)
@dataclass(slots=True)
class Batch:
    """Several messages for one node, queued in the same event-loop pass, in one NATS message
    (in order): fewer NATS messages, wake-ups and system calls on both nodes under load. Each
    element is a message's ``[kind, field, ...]`` list (:func:`from_value` reads it), built by
    :func:`encode_batch` from the messages' bytes, so the receiver decodes everything at once."""

    KIND: ClassVar[int]
    messages: list[list[Any]]

    def check(self) -> None:
        require(type(self.messages) is list, "a list of messages")


_BATCH_HEAD = b"\x92" + _packer.pack(Batch.KIND)


# -- PubSub ---------------------------------------------------------------------------------------


@message(2)
@dataclass(slots=True)
class Publication:
    """A publication forwarded to a node with a matching subscription, for its local subscribers.

    ``lists``: the publisher's exclude/eligible lists, ``[exclude, eligible, exclude_authid,
    exclude_authrole, eligible_authid, eligible_authrole]``, each a list or None.
    """

    KIND: ClassVar[int]
    realm: str
    topic: str
    publication: int
    details: dict[str, Any]
    args: list[Any] | None
    kwargs: dict[str, Any] | None
    publisher: int
    exclude_me: bool
    lists: list[list[Any] | None]

    def check(self) -> None:
        require(is_str(self.realm) and is_str(self.topic), "string realm and topic")
        require(is_int(self.publication) and is_int(self.publisher), "integer publication and publisher")
        require(type(self.details) is dict and optional_list(self.args) and optional_dict(self.kwargs),
                "details map, args list, kwargs map")  # fmt: skip
        require(type(self.exclude_me) is bool, "boolean exclude_me")
        require(type(self.lists) is list and len(self.lists) == 6 and all(optional_list(x) for x in self.lists),
                "six exclude/eligible lists")  # fmt: skip
