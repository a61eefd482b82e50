"""What the nodes of a cluster send each other: one MessagePack list per NATS message.

Pure: no I/O, no clocks. Every message is ``[kind, ...]``; each kind has a dataclass and the
codec below. MessagePack carries every value of the router's data model both ways unchanged
(bytes included), and each message is encoded once whatever the number of recipients on the
receiving node (that node encodes once per serializer of its own sessions).

A node drops (and counts) a message it cannot decode or whose kind it does not know, so nodes of
a newer version can add kinds without breaking older ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import msgpack

#: message kinds (the first element of every message)
HEARTBEAT: Final = 1
PUBLICATION: Final = 2


class WireError(ValueError):
    """A node-to-node message that cannot be read."""


@dataclass(slots=True, frozen=True)
class Heartbeat:
    """A node is alive: sent on the cluster's heartbeat subject every ``heartbeat_interval``."""

    incarnation: str
    node: str
    #: counts up from 1 within one incarnation (a gap says heartbeats were lost)
    sequence: int


@dataclass(slots=True, frozen=True)
class AudienceLists:
    """A publication's exclude/eligible lists, as the publisher gave them (None: no such list)."""

    publisher: int
    exclude_me: bool
    exclude: list[int] | None = None
    eligible: list[int] | None = None
    exclude_authid: list[str] | None = None
    exclude_authrole: list[str] | None = None
    eligible_authid: list[str] | None = None
    eligible_authrole: list[str] | None = None


@dataclass(slots=True, frozen=True)
class Publication:
    """A publication forwarded to a node with a matching subscription, for its local subscribers."""

    realm: str
    topic: str
    publication: int
    details: dict[str, Any]
    args: list[Any] | None
    kwargs: dict[str, Any] | None
    audience: AudienceLists


def encode(message: Heartbeat | Publication) -> bytes:
    """The bytes of one node-to-node message."""
    if isinstance(message, Publication):
        a = message.audience
        return _pack([
            PUBLICATION, message.realm, message.topic, message.publication, message.details, message.args,
            message.kwargs,
            [a.publisher, a.exclude_me, a.exclude, a.eligible, a.exclude_authid, a.exclude_authrole,
             a.eligible_authid, a.eligible_authrole],
        ])  # fmt: skip
    return _pack([HEARTBEAT, message.incarnation, message.node, message.sequence])


_packer = msgpack.Packer(use_bin_type=True, autoreset=True)


def _pack(value: list[Any]) -> bytes:
    return _packer.pack(value)  # type: ignore[no-any-return]


def decode(data: bytes) -> Heartbeat | Publication | None:
    """The message in ``data``; None for a kind this node does not know. Raises :class:`WireError`
    for bytes that are not a node-to-node message."""
    try:
        value = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise WireError(f"not a MessagePack message: {exc}") from None
    if type(value) is not list or not value or type(value[0]) is not int:
        raise WireError("a node-to-node message is a list starting with its kind")
    kind = value[0]
    try:
        if kind == PUBLICATION:
            _, realm, topic, publication, details, args, kwargs, lists = value
            publisher, exclude_me, *rest = lists
            message: Heartbeat | Publication = Publication(
                _str(realm), _str(topic), _int(publication), _dict(details), _list_or_none(args),
                _dict_or_none(kwargs), AudienceLists(_int(publisher), bool(exclude_me), *rest),
            )  # fmt: skip
            return message
        if kind == HEARTBEAT:
            _, incarnation, node, sequence = value
            return Heartbeat(_str(incarnation), _str(node), _int(sequence))
    except (ValueError, TypeError) as exc:
        raise WireError(f"malformed message of kind {kind}: {exc}") from None
    return None


def _str(value: Any) -> str:
    if type(value) is not str:
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _int(value: Any) -> int:
    if type(value) is not int:
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _dict(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise TypeError(f"expected a map, got {type(value).__name__}")
    return value


def _dict_or_none(value: Any) -> dict[str, Any] | None:
    return None if value is None else _dict(value)


def _list_or_none(value: Any) -> list[Any] | None:
    if value is not None and type(value) is not list:
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value
