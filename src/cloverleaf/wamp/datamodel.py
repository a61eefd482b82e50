"""The values a WAMP message may carry through the router: what every serializer carries both ways.

The router translates between JSON, MessagePack and CBOR peers, so a value is only routed when
each of them can represent it and read it back as the same value (docs/spec-notes.md, "The data
model"):

- ``None``, ``bool``, ``str``, ``bytes`` (JSON carries bytes as a NUL-prefixed base64 string);
- integers in [-2^63, 2^64 - 1] (what MessagePack and orjson encode);
- finite floats (JSON has no NaN or infinity: orjson would write ``null``);
- lists, and maps whose keys are strings;
- at most :data:`MAX_DEPTH` levels of lists and maps, counting the message's own list as the
  first (orjson encodes 254 levels, cbor2 decodes 400 by default);
- no string whose first character is NUL arriving from a binary serializer: a JSON peer would
  read it as base64 binary (the spec's JSON convention), so it cannot arrive as the same value.

Decoders turn what falls outside (a MessagePack extension type, a CBOR tag or simple value) into
an :class:`Unportable` marker instead of interpreting it, so that :func:`find_unportable` names it
and the router answers with an ERROR (or an ABORT when the message itself cannot be routed).

Pure functions, no I/O: one recursive pass over the decoded value, linear in its size. The
serializers call it only for payloads whose bytes show something it could refuse
(:meth:`~cloverleaf.wamp.serializers.Serializer.decode_routable`), but then on the hot path.
"""

from __future__ import annotations

from math import isfinite
from typing import Any, Final

#: deepest nesting of lists and maps in a message, its own list counting as level 1
MAX_DEPTH: Final = 128

#: what :func:`find_unportable` answers for a value nested too deeply to be looked into safely
TOO_DEEP: Final = f"lists and maps nested deeper than {MAX_DEPTH} levels"

MIN_INT: Final = -(2**63)
MAX_INT: Final = 2**64 - 1


class Unportable:
    """Stands where a decoder met a value outside the data model (``what`` names it)."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __repr__(self) -> str:
        return f"<{self.what}>"


def find_unportable(value: Any, check_nul_strings: bool = True) -> str | None:
    """Why ``value`` (a decoded message) cannot be routed to every serializer, or None if it can.

    ``check_nul_strings=False`` skips looking for strings that start with NUL: for values decoded
    from JSON (where such a string was read as binary, so none is left), or from a payload
    without a 0x00 byte.
    """
    if type(value) is list or type(value) is dict:
        return _check_container(value, 1, not check_nul_strings)
    return _check_container([value], 0, not check_nul_strings)


def _check_container(container: list[Any] | dict[Any, Any], depth: int, nul_ok: bool) -> str | None:
    # Scalars are checked inline and only containers recurse: a call per item would double the
    # cost of a walk, which runs while a message is being routed.
    if depth > MAX_DEPTH:
        return TOO_DEEP
    if type(container) is dict:
        for key in container:
            if type(key) is not str:
                return f"a map key of type {type(key).__name__} (only string keys can be carried)"
            if not nul_ok and key[:1] == "\x00":
                return "a map key starting with NUL (JSON peers would read it as binary)"
        items: Any = container.values()
    else:
        items = container
    for item in items:
        kind = type(item)
        if kind is str:
            if not nul_ok and item[:1] == "\x00":
                return "a string starting with NUL (JSON peers would read it as binary)"
        elif kind is int:
            if not MIN_INT <= item <= MAX_INT:
                return "an integer outside [-2^63, 2^64-1]"
        elif kind is list or kind is dict:
            problem = _check_container(item, depth + 1, nul_ok)
            if problem is not None:
                return problem
        elif kind is float:
            if not isfinite(item):
                return "a non-finite float (JSON has no NaN or infinity)"
        elif not (kind is bytes or kind is bool or item is None):
            return _describe(item)
    return None


def _describe(value: Any) -> str:
    if type(value) is Unportable:
        return str(value.what)
    return f"a value of type {type(value).__name__}"

