"""Node-to-node messages about sessions (kinds 20-29; see :mod:`cloverleaf.cluster.wire`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .wire import is_int, is_str, message, require


@message(20)
@dataclass(slots=True)
class KillSessions:
    """Close these sessions of the receiving node (``wamp.session.kill`` and its kin called on
    another node): each gets GOODBYE ``reason`` with ``message``, as a local kill does."""

    KIND: ClassVar[int]
    realm: str
    sessions: list[int]
    reason: str
    message: str | None

    def check(self) -> None:
        require(is_str(self.realm) and is_str(self.reason), "string realm and reason")
        require(type(self.sessions) is list and all(is_int(s) for s in self.sessions), "a list of session IDs")
        require(self.message is None or is_str(self.message), "a string message or null")
